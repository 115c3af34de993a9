"""The "torch" backend of the thresholded LCS: the vectorised anti-diagonal wavefront of kernels.shared.wavefront
(one few-operation step per diagonal, all pairs at once), its backward the reverse wavefront."""
import torch

from ftcl.kernels.shared import wavefront as shared


def lcs_forward(sim, threshold, gamma, lengths):
    """Returns (values [B], table [B, N+M+1, N+1], skewed sim) in the compute dtype."""
    batch, n_rows, n_cols = sim.shape
    dtype = shared.compute_dtype(sim)
    spans, order = shared._diagonals(n_rows, n_cols)
    order = order.to(sim.device)
    sim_s = shared._to_skewed(sim, order, lengths, dtype)
    table = torch.zeros(batch, n_rows + n_cols + 1, n_rows + 1, dtype=dtype, device=sim.device)
    for d, lo, hi, off in spans:
        s = sim_s[:, off:off + hi - lo + 1]
        up, left = table[:, d - 1, lo - 1:hi], table[:, d - 1, lo:hi + 1]
        if gamma == 0:
            skip = torch.maximum(up, left)
        else:
            top = shared.shift(torch.maximum(up, left))
            skip = top + gamma * torch.logaddexp((up - top) / gamma, (left - top) / gamma)
        table[:, d, lo:hi + 1] = torch.where(s > threshold, table[:, d - 2, lo - 1:hi] + s, skip)
    end_diag, end_row = shared._end_cells(lengths, sim.shape, sim.device)
    return shared._answer(table, end_diag, end_row), table, sim_s


def lcs_backward(grad_out, table, sim_s, threshold, gamma, lengths, shape):
    """Gradient (skewed [B, N*M]) of sum(grad_out * value) w.r.t. sim."""
    batch, n_rows, n_cols = shape
    spans, _ = shared._diagonals(n_rows, n_cols)
    seeds = shared._Seeds(grad_out.to(table.dtype), lengths, shape)
    pushes = shared._Pushes(batch, n_rows, table)
    grad_sim = torch.zeros_like(sim_s)
    zero = table.new_zeros(())
    for d, lo, hi, off in reversed(spans):
        width = hi - lo + 1
        adjoint = seeds.add(pushes.adjoint(d, lo, hi), d, lo)
        matched = sim_s[:, off:off + width] > threshold
        up, left = table[:, d - 1, lo - 1:hi], table[:, d - 1, lo:hi + 1]
        if gamma == 0:
            weight_up = (up >= left).to(table.dtype)  # ties go to the upper neighbour
        else:
            weight_up = torch.sigmoid((up - left) / gamma)
        through_diag = torch.where(matched, adjoint, zero)
        skipped = adjoint - through_diag
        grad_sim[:, off:off + width] = through_diag
        pushes.push(d, lo, hi, through_diag, skipped * weight_up, skipped * (1 - weight_up))
    return grad_sim
