"""Soft-DTW (Cuturi & Blondel, 2017): naive (the specification), cpu (compiled loops), triton_kernels
(FSD's kernels with soft-DTW's cell), op (the registered operator), band (the Sakoe-Chiba band)."""
