"""Soft-DTW (Cuturi & Blondel, 2017): naive (the specification), cpu (compiled loops), op (the
registered operator; its Triton kernels are kernels.shared.dp's with OP="soft_dtw"), band (the
Sakoe-Chiba band)."""
