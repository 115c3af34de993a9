"""The Triton backend of pairwise_cosine: a pair's whole forward in one program (norms, products,
scaling) and its whole backward in one launch (programs over column chunks), so a similarity costs
two launches instead of about twenty; N, M <= MAX_ROWS (32; the candidate counts of the method are 5
and 30)."""
import torch

from ftcl.kernels.shared.autograd import refuse_second_derivative
from ftcl.kernels.shared.launch import next_power_of_2

try:
    import triton
    import triton.language as tl
except ImportError:  # the torch backend works without Triton
    triton = None

# Row tiles of 16 and 32 compile to at most ~110 registers with no spill (bench/compile.py); a
# 64-row backward spills, and the method needs 5 and 30.
MAX_ROWS = 32


if triton is not None:

    @triton.jit
    def cosine_fwd_kernel(
        a_ptr,  # [B, N, D] any float dtype, any strides
        b_ptr,  # [B, M, D]
        sim_ptr,  # [B, P, N, M] float32, contiguous
        norm_a_ptr,  # [B, P, N] float32, contiguous
        norm_b_ptr,  # [B, P, M] float32, contiguous
        stride_ab, stride_an, stride_ad,
        stride_bb, stride_bm, stride_bd,
        N, M, WIDTH,  # WIDTH = D / P columns per part
        eps,
        BLOCK_N: tl.constexpr,
        BLOCK_M: tl.constexpr,
        BLOCK_D: tl.constexpr,
    ):
        i_b = tl.program_id(0).to(tl.int64)
        i_p = tl.program_id(1)
        parts = tl.num_programs(1)
        o_n = tl.arange(0, BLOCK_N)
        o_m = tl.arange(0, BLOCK_M)
        o_d = tl.arange(0, BLOCK_D)
        p_a = a_ptr + i_b * stride_ab + (i_p * WIDTH) * stride_ad
        p_b = b_ptr + i_b * stride_bb + (i_p * WIDTH) * stride_bd
        b_dots = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
        b_sq_a = tl.zeros((BLOCK_N,), dtype=tl.float32)
        b_sq_b = tl.zeros((BLOCK_M,), dtype=tl.float32)
        for start in range(0, WIDTH, BLOCK_D):
            d = start + o_d
            b_a = tl.load(p_a + o_n[:, None] * stride_an + d[None, :] * stride_ad,
                          mask=(o_n[:, None] < N) & (d[None, :] < WIDTH), other=0.0).to(tl.float32)  # [BN, BD]
            b_b = tl.load(p_b + o_m[:, None] * stride_bm + d[None, :] * stride_bd,
                          mask=(o_m[:, None] < M) & (d[None, :] < WIDTH), other=0.0).to(tl.float32)  # [BM, BD]
            b_dots += tl.dot(b_a, tl.trans(b_b), input_precision="ieee")
            b_sq_a += tl.sum(b_a * b_a, axis=1)
            b_sq_b += tl.sum(b_b * b_b, axis=1)
        b_norm_a = tl.sqrt(b_sq_a)
        b_norm_b = tl.sqrt(b_sq_b)
        b_sim = b_dots / tl.maximum(b_norm_a[:, None] * b_norm_b[None, :], eps)
        pair = i_b * parts + i_p
        tl.store(sim_ptr + pair * N * M + o_n[:, None] * M + o_m[None, :], b_sim,
                 mask=(o_n[:, None] < N) & (o_m[None, :] < M))
        tl.store(norm_a_ptr + pair * N + o_n, b_norm_a, mask=o_n < N)
        tl.store(norm_b_ptr + pair * M + o_m, b_norm_b, mask=o_m < M)

    @triton.jit
    def cosine_bwd_kernel(
        a_ptr,  # [B, N, D] any float dtype, any strides
        b_ptr,  # [B, M, D]
        sim_ptr,  # [B, P, N, M] float32, contiguous
        norm_a_ptr,  # [B, P, N] float32, contiguous
        norm_b_ptr,  # [B, P, M] float32, contiguous
        grad_sim_ptr,  # [B, P, N, M] float32, contiguous
        grad_a_ptr,  # [B, N, D] contiguous, a's dtype
        grad_b_ptr,  # [B, M, D] contiguous, b's dtype
        stride_ab, stride_an, stride_ad,
        stride_bb, stride_bm, stride_bd,
        N, M, WIDTH, D,
        eps,
        BLOCK_N: tl.constexpr,
        BLOCK_M: tl.constexpr,
        BLOCK_D: tl.constexpr,
    ):
        """grad_a = (G / max(|a||b|^T, eps)) @ b - a * rowsum(G * S) / max(|a|^2, eps^2), and
        symmetrically for b, on one chunk of BLOCK_D columns of one part of one pair."""
        i_b = tl.program_id(0).to(tl.int64)
        i_p = tl.program_id(1)
        parts = tl.num_programs(1)
        o_n = tl.arange(0, BLOCK_N)
        o_m = tl.arange(0, BLOCK_M)
        d = tl.program_id(2) * BLOCK_D + tl.arange(0, BLOCK_D)
        mask_nm = (o_n[:, None] < N) & (o_m[None, :] < M)
        pair = i_b * parts + i_p
        b_norm_a = tl.load(norm_a_ptr + pair * N + o_n, mask=o_n < N, other=0.0)
        b_norm_b = tl.load(norm_b_ptr + pair * M + o_m, mask=o_m < M, other=0.0)
        cell = pair * N * M + o_n[:, None] * M + o_m[None, :]
        b_grad = tl.load(grad_sim_ptr + cell, mask=mask_nm, other=0.0)
        b_sim = tl.load(sim_ptr + cell, mask=mask_nm, other=0.0)
        b_grad_dots = b_grad / tl.maximum(b_norm_a[:, None] * b_norm_b[None, :], eps)  # [BN, BM]
        b_weighted = b_grad * b_sim
        b_scale_a = tl.sum(b_weighted, axis=1) / tl.maximum(b_norm_a * b_norm_a, eps * eps)  # [BN]
        b_scale_b = tl.sum(b_weighted, axis=0) / tl.maximum(b_norm_b * b_norm_b, eps * eps)  # [BM]
        mask_a = (o_n[:, None] < N) & (d[None, :] < WIDTH)
        mask_b = (o_m[:, None] < M) & (d[None, :] < WIDTH)
        column = i_p * WIDTH + d
        b_a = tl.load(a_ptr + i_b * stride_ab + o_n[:, None] * stride_an + column[None, :] * stride_ad, mask=mask_a,
                      other=0.0).to(tl.float32)  # [BN, BD]
        b_b = tl.load(b_ptr + i_b * stride_bb + o_m[:, None] * stride_bm + column[None, :] * stride_bd, mask=mask_b,
                      other=0.0).to(tl.float32)  # [BM, BD]
        b_grad_a = tl.dot(b_grad_dots, b_b, input_precision="ieee") - b_a * b_scale_a[:, None]
        b_grad_b = tl.dot(tl.trans(b_grad_dots), b_a, input_precision="ieee") - b_b * b_scale_b[:, None]
        tl.store(grad_a_ptr + i_b * N * D + o_n[:, None] * D + column[None, :],
                 b_grad_a.to(grad_a_ptr.dtype.element_ty), mask=mask_a)
        tl.store(grad_b_ptr + i_b * M * D + o_m[:, None] * D + column[None, :],
                 b_grad_b.to(grad_b_ptr.dtype.element_ty), mask=mask_b)


# Columns per program: a forward program loops over a part's columns in chunks of this; a backward
# program owns one chunk.
BLOCK_D = 32


def launch_config(n_rows, n_cols):
    """(BLOCK_N, BLOCK_M, num_warps): powers of two >= 16 (tl.dot's smallest tile) covering N and
    M, and the warps that keep a 32-row tile's backward near 100 registers."""
    block_n, block_m = max(16, next_power_of_2(n_rows)), max(16, next_power_of_2(n_cols))
    return block_n, block_m, 8 if max(block_n, block_m) > 16 else 4


def cosine_fwd(a, b, parts, eps):
    """(sim [B, P, N, M], norm_a [B, P, N], norm_b [B, P, M]) float32 of the P column parts."""
    batch, n_rows, dim = a.shape
    n_cols = b.shape[1]
    sim = torch.empty(batch, parts, n_rows, n_cols, dtype=torch.float32, device=a.device)
    norm_a = torch.empty(batch, parts, n_rows, dtype=torch.float32, device=a.device)
    norm_b = torch.empty(batch, parts, n_cols, dtype=torch.float32, device=a.device)
    block_n, block_m, num_warps = launch_config(n_rows, n_cols)
    if batch:
        cosine_fwd_kernel[(batch, parts)](
            a, b, sim, norm_a, norm_b, *a.stride(), *b.stride(), n_rows, n_cols, dim // parts, eps,
            BLOCK_N=block_n, BLOCK_M=block_m, BLOCK_D=BLOCK_D, num_warps=num_warps)
    return sim, norm_a, norm_b


def cosine_bwd(grad_sim, a, b, sim, norm_a, norm_b, parts, eps):
    """(grad_a [B, N, D], grad_b [B, M, D]) in a's and b's dtypes."""
    batch, n_rows, dim = a.shape
    n_cols = b.shape[1]
    # Every column of every part is written: no zero fill.
    grad_a = torch.empty(a.shape, dtype=a.dtype, device=a.device)
    grad_b = torch.empty(b.shape, dtype=b.dtype, device=b.device)
    width = dim // parts
    block_n, block_m, num_warps = launch_config(n_rows, n_cols)
    if batch:
        grid = (batch, parts, triton.cdiv(width, BLOCK_D))
        cosine_bwd_kernel[grid](
            a, b, sim, norm_a, norm_b, grad_sim.float().contiguous(), grad_a, grad_b, *a.stride(), *b.stride(),
            n_rows, n_cols, width, dim, eps, BLOCK_N=block_n, BLOCK_M=block_m, BLOCK_D=BLOCK_D,
            num_warps=num_warps)
    return grad_a, grad_b


class CosineTriton(torch.autograd.Function):
    """[B, P, N, M] float32 similarities of the P column parts of a [B, N, D] and b [B, M, D]."""

    @staticmethod
    def forward(ctx, a, b, parts, eps):
        sim, norm_a, norm_b = cosine_fwd(a, b, parts, eps)
        ctx.save_for_backward(a, b, sim, norm_a, norm_b)
        ctx.parts, ctx.eps = parts, eps
        return sim

    @staticmethod
    def backward(ctx, grad_sim):
        refuse_second_derivative("pairwise_cosine (triton backend)")
        a, b, sim, norm_a, norm_b = ctx.saved_tensors
        grad_a, grad_b = cosine_bwd(grad_sim, a, b, sim, norm_a, norm_b, ctx.parts, ctx.eps)
        return grad_a, grad_b, None, None
