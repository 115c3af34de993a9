"""Differentiable dynamic programs of FTCL (FSD and LCS) and soft-DTW as batched kernels.

    kernels.fsd_score(match, gap, *, gamma=0.1, lengths=None, backend="auto") -> Tensor[B]
    kernels.lcs_score(sim, *, threshold=0.92, gamma=0.0, lengths=None, backend="auto") -> Tensor[B]
    kernels.soft_dtw_score(cost, *, gamma=1.0, lengths=None, band=None, backend="auto") -> Tensor[B]
    kernels.SoftDTW(gamma=1.0, normalize=False, band=None, cost=None)(x, y, lengths=None) -> Tensor[B]
    kernels.pairwise_cosine(a, b, *, parts=1, eps=1e-8) -> Tensor[B, parts, N, M]

Backends: "naive" (per-cell loops, the specification), "cpu" (compiled scalar loops, the batch split
across threads), "triton" (one program per pair; CUDA, or CPU under TRITON_INTERPRET=1), "auto".
Each DP is a registered operator (torch.ops.ftcl.*_forward / *_backward), which checks its
arguments. The Triton kernels' tuning is one Settings object: kernels.current_settings() reads it,
`with kernels.configure(family="chunks"): ...` changes it. docs/kernels.md is the reference.
This package depends on nothing else in the repository.
"""
from ftcl.kernels.settings import Settings, configure, current_settings
from ftcl.kernels.api import (BACKENDS, MIN_GAMMA, SoftDTW, fsd_score, lcs_score, pairwise_cosine, soft_dtw_score,
                              squared_euclidean)

__all__ = ["BACKENDS", "MIN_GAMMA", "Settings", "SoftDTW", "configure", "current_settings", "fsd_score", "lcs_score",
           "pairwise_cosine", "soft_dtw_score", "squared_euclidean"]
