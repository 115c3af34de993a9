"""The specification: the thresholded LCS as readable per-cell loops in torch.

Slow (one autograd node per cell) but obviously right; every other backend is tested against it,
and it is float64-gradcheckable. Tables are 1-indexed with a zero first row and column.
"""
import torch

from ftcl.kernels.shared.naive import smooth_max


def lcs_naive(sim, threshold, gamma, lengths):
    """Thresholded LCS value per pair. sim: [B, N, M]; lengths: per pair [n, m] (B of them). Returns [B]."""
    out = []
    for b in range(sim.shape[0]):
        n, m = lengths[b]
        # An empty sum of sim: 0, but in the graph, so the value keeps a grad_fn (a zero gradient)
        # even when no cell clears the threshold.
        zero = sim[b, :0].sum()
        table = [[zero] * (m + 1) for _ in range(n + 1)]
        for i in range(1, n + 1):
            for j in range(1, m + 1):
                s = sim[b, i - 1, j - 1]
                if s > threshold:
                    table[i][j] = table[i - 1][j - 1] + s
                else:
                    # The upper neighbour comes first, so it wins ties at gamma = 0 (as the release's max()).
                    table[i][j] = smooth_max([table[i - 1][j], table[i][j - 1]], gamma)
        out.append(table[n][m])
    return torch.stack(out) if out else sim.new_zeros(0)
