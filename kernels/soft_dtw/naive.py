"""The specification: soft-DTW as readable per-cell loops in torch (float64-gradcheckable).

R[0, 0] = 0, R[i, 0] = R[0, j] = +inf and, 1-indexed, R[i, j] = cost[i, j] + min_gamma(R[i-1, j-1],
R[i-1, j], R[i, j-1]) with min_gamma(x) = -gamma * logsumexp(-x / gamma) (the hard min, first minimum
winning, at gamma = 0). A cell outside the Sakoe-Chiba band is +inf.
"""
import torch

from ftcl.kernels.soft_dtw.band import inside_band


def _smooth_min(values, gamma):
    """min_gamma over a list of 0-d tensors; at gamma = 0 the first minimum wins (and takes the gradient);
    NaN if any is NaN (as torch.minimum)."""
    if gamma == 0:
        best = values[0]
        for value in values[1:]:
            if value < best or value != value:
                best = value
        return best
    stacked = torch.stack(values)
    low = stacked.min().detach()  # (low - x) / gamma cannot overflow; the value does not depend on low
    if not torch.isfinite(low):
        return -gamma * torch.logsumexp(-stacked / gamma, dim=0)
    return low - gamma * torch.logsumexp((low - stacked) / gamma, dim=0)


def soft_dtw_naive(cost, gamma, lengths, band):
    """Soft-DTW value per pair. cost: [B, N, M]; lengths: per pair [n, m] (B of them); band: the
    Sakoe-Chiba radius or None. Returns [B]."""
    out = []
    for b in range(cost.shape[0]):
        n, m = lengths[b]
        infinite = cost.new_tensor(float("inf"))
        table = [[infinite] * (m + 1) for _ in range(n + 1)]
        table[0][0] = cost[b, :0].sum()  # 0, in the graph
        for i in range(1, n + 1):
            for j in range(1, m + 1):
                if band is not None and not inside_band(i, j, n, m, band):
                    continue
                previous = [table[i - 1][j - 1], table[i - 1][j], table[i][j - 1]]
                table[i][j] = cost[b, i - 1, j - 1] + _smooth_min(previous, gamma)
        out.append(table[n][m])
    return torch.stack(out) if out else cost.new_zeros(0)
