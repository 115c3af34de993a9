"""Soft-DTW (Cuturi & Blondel, 2017) on the wavefront machinery of FSD and LCS: naive (the
specification), torch (vectorised anti-diagonals)."""
