"""FSD's CPU path: compiled scalar loops (kernels.shared.cpu), float64, row by row.

C[0, .] = C[., 0] = 0; C[i, j] = match + max_gamma(C[i-1, j-1], gap + C[i-1, j], gap + C[i, j-1]),
taken from the hard maximum (NaN if any is NaN). The backward pushes each cell's adjoint times its
soft-max weights (recomputed from C) onto its predecessors.
"""
import math

import numpy as np

from ftcl.kernels.shared import cpu
from ftcl.kernels.shared.cpu import jit


@jit
def forward(match, gap, lengths, gamma, table, out, start, stop):
    """match, gap [B, N, M] -> table [B, N+1, M+1] (C, zeros on the border) and out [B] = C[n, m]."""
    for p in range(start, stop):
        n, m = lengths[p, 0], lengths[p, 1]
        c = table[p]
        for i in range(1, n + 1):
            for j in range(1, m + 1):
                g = gap[p, i - 1, j - 1]
                best = cpu.soft_max(c[i - 1, j - 1], g + c[i - 1, j], g + c[i, j - 1], gamma)
                c[i, j] = match[p, i - 1, j - 1] + best
        out[p] = c[n, m]


@cpu.cell
def _backward_cell(args, p, i, j, n, m, adjoint, c, above, below):
    """kernels.shared.cpu.adjoint_sweep's cell: writes grad_match, grad_gap [B, N, M] at (i, j)."""
    gap, gamma, grad_match, grad_gap = args
    g = gap[p, i - 1, j - 1]
    a, b, d = c[i - 1, j - 1], g + c[i - 1, j], g + c[i, j - 1]
    grad_match[p, i - 1, j - 1] = adjoint
    if gamma == 0.0:
        if a >= b and a >= d:
            above[j - 1] += adjoint
        elif b >= d:
            above[j] += adjoint
            grad_gap[p, i - 1, j - 1] = adjoint
        else:
            below[j - 1] += adjoint
            grad_gap[p, i - 1, j - 1] = adjoint
        return
    top = max(a, b, d)
    w_a = 1.0 if a == top else math.exp((a - top) / gamma)
    w_b = 1.0 if b == top else math.exp((b - top) / gamma)
    w_d = 1.0 if d == top else math.exp((d - top) / gamma)
    scale = adjoint / (w_a + w_b + w_d)
    above[j - 1] += w_a * scale
    above[j] += w_b * scale
    below[j - 1] += w_d * scale
    grad_gap[p, i - 1, j - 1] = (w_b + w_d) * scale


_backward = cpu.adjoint_sweep(_backward_cell)


def fsd_forward(match, gap, gamma, lengths):
    """(values [B], table [B, N+1, M+1] float64) of the checked arguments."""
    batch, n_rows, n_cols = match.shape
    table, out = cpu.table_like(match.shape), np.empty(batch)
    cpu.run(forward, batch, n_rows * n_cols, cpu.as_array(match), cpu.as_array(gap),
            cpu.lengths_array(lengths, match.shape), gamma, table, out)
    return out, table


def fsd_backward(grad_out, gap, table, gamma, lengths):
    """d(sum(grad_out * value)) / d match and d gap, [B, N, M] float64 each."""
    batch, n_rows, n_cols = gap.shape
    grad_match, grad_gap = np.zeros(gap.shape), np.zeros(gap.shape)
    cpu.run(_backward, batch, n_rows * n_cols, (cpu.as_array(gap), gamma, grad_match, grad_gap),
            table, cpu.lengths_array(lengths, gap.shape), cpu.as_array(grad_out))
    return grad_match, grad_gap
