"""The published code's way of computing the two terms, re-created for timing comparisons only.

One tensor operation per DP cell from Python: for FSD a stack of the three neighbours, a soft max and
a masked write of the whole table (a host-built mask per cell); for LCS a host-side comparison per
cell (a device sync on a GPU) and an in-place write. Values agree with kernels.fsd / kernels.lcs.
"""
import numpy as np
import torch


def _cosine(a, b):
    a = a / torch.linalg.vector_norm(a, ord=2, dim=1, keepdim=True)
    b = b / torch.linalg.vector_norm(b, ord=2, dim=1, keepdim=True)
    return a @ b.T


def _soft_max(values, gamma):
    scaled = values / gamma
    top = scaled.max()
    return gamma * (top + torch.log(torch.exp(scaled - top).sum()))


def _write_cell(table, i, j, value):
    mask = np.ones(table.shape, dtype=np.float32)
    mask[i, j] = 0
    mask = torch.tensor(mask, device=table.device)
    return table * mask + value * (1 - mask)


def fsd_release(cand_a, cand_b, gamma=0.1):
    """cand_a, cand_b: [B, L, D] with D even (match from the first half, gap from the second) -> [B]."""
    half = cand_a.shape[-1] // 2
    out = []
    for a, b in zip(cand_a, cand_b):
        match, gap = _cosine(a[:, :half], b[:, :half]), _cosine(a[:, half:], b[:, half:])
        n, m = match.shape
        table = torch.zeros(n + 1, m + 1, device=a.device)
        for i in range(1, n + 1):
            for j in range(1, m + 1):
                g = gap[i - 1, j - 1]
                neighbours = torch.stack([table[i - 1, j - 1], g + table[i - 1, j], g + table[i, j - 1]])
                table = _write_cell(table, i, j, match[i - 1, j - 1] + _soft_max(neighbours, gamma))
        out.append(table[-1, -1])
    return torch.stack(out)


def lcs_release(cand_a, cand_b, threshold=0.92):
    """cand_a, cand_b: [B, L, D] -> [B]: hard thresholded LCS of the cosine similarities."""
    out = []
    for a, b in zip(cand_a, cand_b):
        sim = _cosine(a, b)
        n, m = sim.shape
        table = torch.zeros(n + 1, m + 1, device=a.device)
        for i in range(1, n + 1):
            for j in range(1, m + 1):
                if sim[i - 1, j - 1] > threshold:
                    table[i, j] = table[i - 1, j - 1] + sim[i - 1, j - 1]
                else:
                    table[i, j] = max(table[i - 1, j], table[i, j - 1])
        out.append(table[-1, -1])
    return torch.stack(out)
