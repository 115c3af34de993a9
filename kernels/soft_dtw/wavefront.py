"""The "torch" backend of soft-DTW: the vectorised anti-diagonal wavefront of FSD and LCS
(kernels.shared.wavefront) with soft-DTW's boundary (+inf off the origin) and a soft min.

table[b, d, i] = R[i, d - i]; the backward pushes each cell's adjoint times its soft-min weights
onto its three predecessors, the weights recomputed from the saved table; the gradient with
respect to the cost is the expected alignment.
"""
import torch

from ftcl.kernels.shared import wavefront
from ftcl.kernels.soft_dtw.band import band_mask


def _skewed_cost(cost, order, lengths, band, dtype):
    """cost [B, N, M] -> [B, N*M] diagonal-major; +inf outside each pair's band."""
    skewed = wavefront._to_skewed(cost, order, lengths, dtype)
    if band is not None:
        _, n_rows, n_cols = cost.shape
        full = lengths if lengths is not None else torch.tensor([[n_rows, n_cols]], device=cost.device)
        inside = band_mask(order // n_cols + 1, order % n_cols + 1, full, band)  # [B or 1, N*M]
        skewed = torch.where(inside, skewed, torch.full((), float("inf"), dtype=dtype, device=cost.device))
    return skewed


def soft_dtw_forward(cost, gamma, lengths, band):
    """Returns (values [B], table [B, N+M+1, N+1], skewed cost) in the compute dtype."""
    batch, n_rows, n_cols = cost.shape
    dtype = wavefront.compute_dtype(cost)
    spans, order = wavefront._diagonals(n_rows, n_cols)
    order = order.to(cost.device)
    cost_s = _skewed_cost(cost, order, lengths, band, dtype)
    table = torch.full((batch, n_rows + n_cols + 1, n_rows + 1), float("inf"), dtype=dtype, device=cost.device)
    table[:, 0, 0] = 0
    for d, lo, hi, off in spans:
        previous = torch.stack((table[:, d - 2, lo - 1:hi], table[:, d - 1, lo - 1:hi], table[:, d - 1, lo:hi + 1]))
        if gamma == 0:
            best = previous.amin(dim=0)
        else:
            low = wavefront.shift(previous.amin(dim=0))
            best = low - gamma * torch.logsumexp((low - previous) / gamma, dim=0)
        table[:, d, lo:hi + 1] = cost_s[:, off:off + hi - lo + 1] + best
    end_diag, end_row = wavefront._end_cells(lengths, cost.shape, cost.device)
    return wavefront._answer(table, end_diag, end_row), table, cost_s


def soft_dtw_backward(grad_out, table, gamma, lengths, shape):
    """Gradient (skewed [B, N*M]) of sum(grad_out * value) w.r.t. the cost."""
    batch, n_rows, n_cols = shape
    spans, _ = wavefront._diagonals(n_rows, n_cols)
    seeds = wavefront._Seeds(grad_out.to(table.dtype), lengths, shape)
    pushes = wavefront._Pushes(batch, n_rows, table)
    grad_cost = table.new_zeros(batch, n_rows * n_cols)
    for d, lo, hi, off in reversed(spans):
        adjoint = seeds.add(pushes.adjoint(d, lo, hi), d, lo)
        previous = torch.stack((table[:, d - 2, lo - 1:hi], table[:, d - 1, lo - 1:hi],
                                table[:, d - 1, lo:hi + 1]))  # [3, B, width]
        if gamma == 0:
            first = previous.argmin(dim=0)  # the first minimum, as the forward's tie rule
            weights = torch.nn.functional.one_hot(first, 3).movedim(-1, 0).to(table.dtype)
        else:
            # A cell none of whose predecessors is reachable (outside the band) has no weights: 0, not NaN.
            low = wavefront.shift(previous.amin(dim=0))
            weights = torch.nan_to_num(torch.softmax((low - previous) / gamma, dim=0), nan=0.0)
        pushed = adjoint * weights
        grad_cost[:, off:off + hi - lo + 1] = adjoint
        pushes.push(d, lo, hi, pushed[0], pushed[1], pushed[2])
    return grad_cost
