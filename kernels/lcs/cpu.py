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


@jit
def backward(sim, table, lengths, threshold, gamma, grad_out, grad, start, stop):
    """grad [B, N, M] (zeros) of sum(grad_out * out), for pairs [start, stop)."""
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
                if sim[p, i - 1, j - 1] > threshold:
                    grad[p, i - 1, j - 1] = adjoint
                    above[j - 1] += adjoint
                    continue
                up, left = c[i - 1, j], c[i, j - 1]
                if gamma == 0.0:
                    weight_up = 1.0 if up >= left else 0.0  # ties go to the upper neighbour
                else:
                    weight_up = 1.0 / (1.0 + math.exp((left - up) / gamma))
                above[j] += adjoint * weight_up
                below[j - 1] += adjoint * (1.0 - weight_up)
            below, above = above, below


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
    cpu.run(backward, sim.shape[0], sim.shape[1] * sim.shape[2], cpu.as_array(sim), table,
            cpu.lengths_array(lengths, sim.shape), threshold, gamma, cpu.as_array(grad_out), grad)
    return grad
