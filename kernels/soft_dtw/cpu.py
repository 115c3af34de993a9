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
def _soft_min(a, b, c, gamma):
    """min_gamma(a, b, c): the first least at gamma = 0; NaN if any is NaN, +inf if all are."""
    low = a
    if b < low or b != b:
        low = b
    if c < low or c != c:
        low = c
    if gamma == 0.0 or not (low < math.inf):
        return low
    # The least's own term is exp(0) = 1; the others' are those of the other two.
    if low == a:
        total = 1.0 + math.exp((low - b) / gamma) + math.exp((low - c) / gamma)
    elif low == b:
        total = math.exp((low - a) / gamma) + 1.0 + math.exp((low - c) / gamma)
    else:
        total = math.exp((low - a) / gamma) + math.exp((low - b) / gamma) + 1.0
    return low - gamma * math.log(total)


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
                    r[i, j] = cost[p, i - 1, j - 1] + _soft_min(r[i - 1, j - 1], r[i - 1, j], r[i, j - 1], gamma)
        out[p] = r[n, m]


@jit
def backward(table, lengths, gamma, band, grad_out, grad, start, stop):
    """grad [B, N, M] (zeros) += d(sum(grad_out * out)) / d cost, for pairs [start, stop)."""
    n_cols = table.shape[2] - 1
    below = np.zeros(n_cols + 1)  # adjoints of row i (pushed into from row i + 1 and from the right)
    above = np.zeros(n_cols + 1)  # of row i - 1
    for p in range(start, stop):
        n, m = lengths[p, 0], lengths[p, 1]
        lowest, highest = band_limits(n, m, band) if band >= 0 else (-n - m, n + m)
        r = table[p]
        below[:] = 0.0
        below[m] = grad_out[p]
        for i in range(n, 0, -1):
            above[:] = 0.0
            for j in range(m, 0, -1):
                adjoint = below[j]
                if adjoint == 0.0 or i - j < lowest or i - j > highest:
                    continue
                grad[p, i - 1, j - 1] = adjoint
                a, b, c = r[i - 1, j - 1], r[i - 1, j], r[i, j - 1]
                low = _soft_min(a, b, c, 0.0)
                if not (low < math.inf):
                    continue  # no predecessor reachable (or a NaN): nothing to push
                if gamma == 0.0:
                    if a <= b and a <= c:
                        above[j - 1] += adjoint
                    elif b <= c:
                        above[j] += adjoint
                    else:
                        below[j - 1] += adjoint
                    continue
                w_a = 1.0 if a == low else math.exp((low - a) / gamma)
                w_b = 1.0 if b == low else math.exp((low - b) / gamma)
                w_c = 1.0 if c == low else math.exp((low - c) / gamma)
                scale = adjoint / (w_a + w_b + w_c)
                above[j - 1] += w_a * scale
                above[j] += w_b * scale
                below[j - 1] += w_c * scale
            below, above = above, below


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
    cpu.run(backward, batch, n_rows * n_cols, table, cpu.lengths_array(lengths, shape), gamma,
            -1 if band is None else band, cpu.as_array(grad_out), grad)
    return grad
