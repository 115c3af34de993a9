"""Soft-DTW's CPU path: compiled scalar loops (kernels.shared.cpu), float64, row by row.

R[0, 0] = 0, +inf elsewhere on the border and outside the band; R[i, j] = cost + min_gamma of the
three predecessors, taken from the hard minimum (NaN if any is NaN). The backward pushes each cell's
adjoint times its soft-min weights (recomputed from R) onto its predecessors.
"""
import math

import numpy as np

from ftcl.kernels.shared import cpu
from ftcl.kernels.shared.cpu import jit
from ftcl.kernels.soft_dtw import band

band_limits = jit(band.band_limits)


@jit
def forward(cost, lengths, gamma, band, table, out, start, stop):
    """cost [B, N, M] -> table [B, N+1, M+1] (R) and out [B] = R[n, m], for pairs [start, stop)."""
    for p in range(start, stop):
        n, m = lengths[p, 0], lengths[p, 1]
        lowest, highest = band_limits(n, m, band) if band >= 0 else (-n - m, n + m)
        r = table[p]
        r[0, 0] = 0.0
        r[0, 1:m + 1] = math.inf
        for i in range(1, n + 1):
            r[i, 0] = math.inf
            for j in range(1, m + 1):
                if i - j < lowest or i - j > highest:
                    r[i, j] = math.inf
                else:
                    r[i, j] = cost[p, i - 1, j - 1] + cpu.soft_min(r[i - 1, j - 1], r[i - 1, j], r[i, j - 1], gamma)
        out[p] = r[n, m]


@cpu.cell
def _backward_cell(args, p, i, j, n, m, adjoint, r, above, below):
    """kernels.shared.cpu.adjoint_sweep's cell: writes grad [B, N, M] at (i, j) inside the band."""
    gamma, band, grad = args
    if band >= 0:
        lowest, highest = band_limits(n, m, band)
        if i - j < lowest or i - j > highest:
            return
    grad[p, i - 1, j - 1] = adjoint
    a, b, c = r[i - 1, j - 1], r[i - 1, j], r[i, j - 1]
    low = cpu.soft_min(a, b, c, 0.0)
    if not (low < math.inf):
        return  # no predecessor reachable (or a NaN): nothing to push
    if gamma == 0.0:
        if a <= b and a <= c:
            above[j - 1] += adjoint
        elif b <= c:
            above[j] += adjoint
        else:
            below[j - 1] += adjoint
        return
    w_a = 1.0 if a == low else math.exp((low - a) / gamma)
    w_b = 1.0 if b == low else math.exp((low - b) / gamma)
    w_c = 1.0 if c == low else math.exp((low - c) / gamma)
    scale = adjoint / (w_a + w_b + w_c)
    above[j - 1] += w_a * scale
    above[j] += w_b * scale
    below[j - 1] += w_c * scale


_backward = cpu.adjoint_sweep(_backward_cell)


def soft_dtw_forward(cost, gamma, lengths, band):
    """(values [B], table [B, N+1, M+1] float64) of the checked arguments."""
    batch, n_rows, n_cols = cost.shape
    table, out = cpu.table_like(cost.shape), np.empty(batch)
    cpu.run(forward, batch, n_rows * n_cols, cpu.as_array(cost), cpu.lengths_array(lengths, cost.shape), gamma,
            -1 if band is None else band, table, out)
    return out, table


def soft_dtw_backward(grad_out, table, gamma, lengths, band, shape):
    """d(sum(grad_out * value)) / d cost [B, N, M] float64."""
    batch, n_rows, n_cols = shape
    grad = np.zeros(shape)
    cpu.run(_backward, batch, n_rows * n_cols, (gamma, -1 if band is None else band, grad),
            table, cpu.lengths_array(lengths, shape), cpu.as_array(grad_out))
    return grad
