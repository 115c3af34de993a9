"""The thresholded LCS's CPU path: compiled scalar loops (kernels.shared.cpu), float64, row by row.

C[0, .] = C[., 0] = 0; C[i, j] = C[i-1, j-1] + sim if sim > threshold (never for a NaN), else
max_gamma(C[i-1, j], C[i, j-1]), ties to the upper neighbour at gamma = 0. The backward pushes each
cell's adjoint to its diagonal predecessor (matched) or to the two others by their soft-max weights.
"""
import math

import numpy as np

from ftcl.kernels.shared import cpu
from ftcl.kernels.shared.cpu import jit


@jit
def forward(sim, lengths, threshold, gamma, table, out, start, stop):
    """sim [B, N, M] -> table [B, N+1, M+1] (C, zeros on the border) and out [B] = C[n, m]."""
    for p in range(start, stop):
        n, m = lengths[p, 0], lengths[p, 1]
        c = table[p]
        for i in range(1, n + 1):
            for j in range(1, m + 1):
                s = sim[p, i - 1, j - 1]
                if s > threshold:
                    c[i, j] = c[i - 1, j - 1] + s
                    continue
                up, left = c[i - 1, j], c[i, j - 1]
                top = up if up >= left or up != up else left
                if gamma == 0.0 or not (abs(top) < math.inf):
                    c[i, j] = top
                else:
                    c[i, j] = top + gamma * math.log(math.exp((up - top) / gamma) + math.exp((left - top) / gamma))
        out[p] = c[n, m]


@cpu.cell
def _backward_cell(args, p, i, j, n, m, adjoint, c, above, below):
    """kernels.shared.cpu.adjoint_sweep's cell: writes grad [B, N, M] at (i, j) where matched."""
    sim, threshold, gamma, grad = args
    if sim[p, i - 1, j - 1] > threshold:
        grad[p, i - 1, j - 1] = adjoint
        above[j - 1] += adjoint
        return
    up, left = c[i - 1, j], c[i, j - 1]
    if gamma == 0.0:
        weight_up = 1.0 if up >= left else 0.0  # ties go to the upper neighbour
    else:
        weight_up = 1.0 / (1.0 + math.exp((left - up) / gamma))
    above[j] += adjoint * weight_up
    below[j - 1] += adjoint * (1.0 - weight_up)


_backward = cpu.adjoint_sweep(_backward_cell)


def lcs_forward(sim, threshold, gamma, lengths):
    """(values [B], table [B, N+1, M+1] float64) of the checked arguments."""
    batch, n_rows, n_cols = sim.shape
    table, out = cpu.table_like(sim.shape), np.empty(batch)
    cpu.run(forward, batch, n_rows * n_cols, cpu.as_array(sim), cpu.lengths_array(lengths, sim.shape), threshold, gamma,
            table, out)
    return out, table


def lcs_backward(grad_out, sim, table, threshold, gamma, lengths):
    """d(sum(grad_out * value)) / d sim [B, N, M] float64."""
    grad = np.zeros(sim.shape)
    cpu.run(_backward, sim.shape[0], sim.shape[1] * sim.shape[2],
            (cpu.as_array(sim), threshold, gamma, grad), table, cpu.lengths_array(lengths, sim.shape),
            cpu.as_array(grad_out))
    return grad
