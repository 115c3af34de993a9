"""The Sakoe-Chiba band as tslearn.metrics.sakoe_chiba_mask draws it, for tables of any shape (the
naive specification, and compiled for the CPU loops; the Triton kernels' copy is
kernels.shared.dp._inside_band)."""


def band_limits(n, m, radius):
    """(lowest, highest) i - j of the cells inside the band of an n x m table: the radius around the
    diagonal, widened on the long side by |n - m| so that (n, m) stays reachable."""
    return -radius - max(0, m - n), radius + max(0, n - m)


def inside_band(i, j, n, m, radius):
    """Whether cell (i, j) (1-indexed) of an n x m table lies inside the band."""
    if radius < 0:
        return True
    lowest, highest = band_limits(n, m, radius)
    return lowest <= i - j <= highest
