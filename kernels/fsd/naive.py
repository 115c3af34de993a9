"""The specification: FSD as readable per-cell loops in torch.

Slow (one autograd node per cell) but obviously right; every other backend is tested against it,
and it is float64-gradcheckable. Tables are 1-indexed with a zero first row and column.
"""
import torch

from ftcl.kernels.shared.naive import smooth_max


def fsd_naive(match, gap, gamma, lengths):
    """FSD value per pair. match, gap: [B, N, M]; lengths: per pair [n, m] (B of them). Returns [B]."""
    out = []
    for b in range(match.shape[0]):
        n, m = lengths[b]
        zero = match[b, :0].sum()
        table = [[zero] * (m + 1) for _ in range(n + 1)]
        for i in range(1, n + 1):
            for j in range(1, m + 1):
                g = gap[b, i - 1, j - 1]
                candidates = [table[i - 1][j - 1], g + table[i - 1][j], g + table[i][j - 1]]
                table[i][j] = match[b, i - 1, j - 1] + smooth_max(candidates, gamma)
        out.append(table[n][m])
    return torch.stack(out) if out else match.new_zeros(0)


