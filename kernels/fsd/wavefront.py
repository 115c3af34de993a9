"""The "torch" backend of FSD: the vectorised anti-diagonal wavefront of kernels.shared.wavefront
(one few-operation step per diagonal, all pairs at once), its backward the reverse wavefront."""
import torch

from ftcl.kernels.shared import wavefront as shared


def fsd_forward(match, gap, gamma, lengths):
    """Returns (values [B], table [B, N+M+1, N+1], skewed match, skewed gap) in the compute dtype."""
    batch, n_rows, n_cols = match.shape
    dtype = shared.compute_dtype(match, gap)
    spans, order = shared._diagonals(n_rows, n_cols)
    order = order.to(match.device)
    match_s = shared._to_skewed(match, order, lengths, dtype)
    gap_s = shared._to_skewed(gap, order, lengths, dtype)
    table = torch.zeros(batch, n_rows + n_cols + 1, n_rows + 1, dtype=dtype, device=match.device)
    for d, lo, hi, off in spans:
        width = hi - lo + 1
        g = gap_s[:, off:off + width]
        diag = table[:, d - 2, lo - 1:hi]
        up = table[:, d - 1, lo - 1:hi] + g
        left = table[:, d - 1, lo:hi + 1] + g
        if gamma == 0:
            best = torch.maximum(torch.maximum(diag, up), left)
        else:
            candidates = torch.stack((diag, up, left))  # [3, B, width]
            top = shared.shift(candidates.amax(dim=0))
            best = top + gamma * torch.logsumexp((candidates - top) / gamma, dim=0)
        table[:, d, lo:hi + 1] = match_s[:, off:off + width] + best
    end_diag, end_row = shared._end_cells(lengths, match.shape, match.device)
    return shared._answer(table, end_diag, end_row), table, match_s, gap_s


def fsd_backward(grad_out, table, gap_s, gamma, lengths, shape):
    """Gradients (skewed [B, N*M]) of sum(grad_out * value) w.r.t. match and gap."""
    batch, n_rows, n_cols = shape
    spans, _ = shared._diagonals(n_rows, n_cols)
    seeds = shared._Seeds(grad_out.to(table.dtype), lengths, shape)
    pushes = shared._Pushes(batch, n_rows, table)
    grad_match = torch.zeros_like(gap_s)
    grad_gap = torch.zeros_like(gap_s)
    for d, lo, hi, off in reversed(spans):
        width = hi - lo + 1
        adjoint = seeds.add(pushes.adjoint(d, lo, hi), d, lo)
        g = gap_s[:, off:off + width]
        candidates = torch.stack((table[:, d - 2, lo - 1:hi], table[:, d - 1, lo - 1:hi] + g,
                                  table[:, d - 1, lo:hi + 1] + g))  # [3, B, width]
        if gamma == 0:
            first = candidates.argmax(dim=0)  # the first maximum, as the forward's tie rule
            weights = torch.nn.functional.one_hot(first, 3).movedim(-1, 0).to(table.dtype)
        else:
            weights = torch.softmax((candidates - shared.shift(candidates.amax(dim=0))) / gamma, dim=0)
        pushed = adjoint * weights
        grad_match[:, off:off + width] = adjoint
        grad_gap[:, off:off + width] = pushed[1] + pushed[2]
        pushes.push(d, lo, hi, pushed[0], pushed[1], pushed[2])
    return grad_match, grad_gap
