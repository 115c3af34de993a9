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
def _soft_max(a, b, c, gamma):
    """max_gamma(a, b, c): the first greatest at gamma = 0; NaN if any is NaN."""
    top = a
    if b > top or b != b:
        top = b
    if c > top or c != c:
        top = c
    if gamma == 0.0 or not (abs(top) < math.inf):
        return top
    # The greatest's own term is exp(0) = 1; the others' are those of the other two.
    if top == a:
        total = 1.0 + math.exp((b - top) / gamma) + math.exp((c - top) / gamma)
    elif top == b:
        total = math.exp((a - top) / gamma) + 1.0 + math.exp((c - top) / gamma)
    else:
        total = math.exp((a - top) / gamma) + math.exp((b - top) / gamma) + 1.0
    return top + gamma * math.log(total)


@jit
def forward(match, gap, lengths, gamma, table, out, start, stop):
    """match, gap [B, N, M] -> table [B, N+1, M+1] (C, zeros on the border) and out [B] = C[n, m]."""
    for p in range(start, stop):
        n, m = lengths[p, 0], lengths[p, 1]
        c = table[p]
        for i in range(1, n + 1):
            for j in range(1, m + 1):
                g = gap[p, i - 1, j - 1]
                c[i, j] = match[p, i - 1, j - 1] + _soft_max(c[i - 1, j - 1], g + c[i - 1, j], g + c[i, j - 1], gamma)
        out[p] = c[n, m]


@jit
def backward(gap, table, lengths, gamma, grad_out, grad_match, grad_gap, start, stop):
    """grad_match, grad_gap [B, N, M] (zeros) of sum(grad_out * out), for pairs [start, stop)."""
    n_cols = table.shape[2] - 1
    below = np.zeros(n_cols + 1)  # adjoints of row i (pushed into from row i + 1 and from the right)
    above = np.zeros(n_cols + 1)  # of row i - 1
    for p in range(start, stop):
        n, m = lengths[p, 0], lengths[p, 1]
        c = table[p]
        below[:] = 0.0
        below[m] = grad_out[p]
        for i in range(n, 0, -1):
            above[:] = 0.0
            for j in range(m, 0, -1):
                adjoint = below[j]
                if adjoint == 0.0:
                    continue
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
                    continue
                top = max(a, b, d)
                w_a = 1.0 if a == top else math.exp((a - top) / gamma)
                w_b = 1.0 if b == top else math.exp((b - top) / gamma)
                w_d = 1.0 if d == top else math.exp((d - top) / gamma)
                scale = adjoint / (w_a + w_b + w_d)
                above[j - 1] += w_a * scale
                above[j] += w_b * scale
                below[j - 1] += w_d * scale
                grad_gap[p, i - 1, j - 1] = (w_b + w_d) * scale
            below, above = above, below


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
    cpu.run(backward, batch, n_rows * n_cols, cpu.as_array(gap), table, cpu.lengths_array(lengths, gap.shape), gamma,
            cpu.as_array(grad_out), grad_match, grad_gap)
    return grad_match, grad_gap
