"""Differentiable dynamic programs of FTCL (FSD and LCS) as batched kernels.

    kernels.fsd(match, gap, *, gamma=0.1, lengths=None, backend="auto") -> Tensor[B]
    kernels.lcs(sim, *, threshold=0.92, gamma=0.0, lengths=None, backend="auto") -> Tensor[B]
    kernels.pairwise_cosine(a, b, *, parts=1, eps=1e-8, backend="auto") -> Tensor[B, parts, N, M]
    kernels.soft_dtw(cost, *, gamma=1.0, lengths=None, band=None, backend="auto") -> Tensor[B]
    kernels.soft_dtw_sequences(x, y, *, gamma=1.0, lengths=None, band=None, backend="auto") -> Tensor[B]

soft_dtw is Cuturi & Blondel's soft-DTW on the same wavefront (naive and torch backends).
Backends: "naive" (per-cell loops, the specification), "torch" (vectorised anti-diagonal wavefront,
the CPU path), "triton" (one program per pair; CUDA, or CPU under TRITON_INTERPRET=1), "auto".
pairwise_cosine produces their inputs (torch, or Triton: one launch forward, one backward).
The Triton kernels' tuning (kernel family, prefetch depths, diagonal-major copies) is one Settings
object: kernels.settings() reads it, `with kernels.configure(family="chunks"): ...` changes it.
This package depends on nothing else in the repository.
"""
from ftcl.kernels.settings import Settings, configure, settings
from ftcl.kernels.api import (BACKENDS, COSINE_BACKENDS, SOFT_DTW_BACKENDS, fsd, lcs, pairwise_cosine, soft_dtw,
                              soft_dtw_sequences, squared_euclidean)

__all__ = ["BACKENDS", "COSINE_BACKENDS", "SOFT_DTW_BACKENDS", "Settings", "configure", "fsd", "lcs",
           "pairwise_cosine", "settings", "soft_dtw", "soft_dtw_sequences", "squared_euclidean"]
