"""The Sakoe-Chiba band as tslearn.metrics.sakoe_chiba_mask draws it, for tables of any shape."""


def band_limits(n, m, radius):
    """(lowest, highest) i - j of the cells inside the band of an n x m table: the radius around the
    diagonal, widened on the long side by |n - m| so that (n, m) stays reachable."""
    return -radius - max(0, m - n), radius + max(0, n - m)


def inside_band(i, j, n, m, radius):
    """Whether cell (i, j) (1-indexed) of an n x m table lies inside the band."""
    lowest, highest = band_limits(n, m, radius)
    return lowest <= i - j <= highest


def band_mask(rows, cols, lengths, radius):
    """[B, K] bool: whether each cell (rows[k], cols[k]) (1-indexed, [K] long) lies inside the band
    of each pair's n x m table (lengths [B, 2] long)."""
    n, m = lengths[:, :1], lengths[:, 1:]
    lowest = -radius - (m - n).clamp_min(0)
    highest = radius + (n - m).clamp_min(0)
    offset = (rows - cols)[None, :]
    return (offset >= lowest) & (offset <= highest)
