"""Soft-DTW's Triton launches: the three-way kernels of kernels.shared.three_way with SOFT_DTW=True
(soft-DTW's border, a soft min, the Sakoe-Chiba band), "rows" (up to Settings.max_rows rows; the
next diagonal's costs loaded one ahead; never split into row bands) or "chunks" family. The table is
R itself, float32, diagonal-major per pair; the backward recomputes each cell's soft-min weights
from it. Both families compute every cell from the same operands in the same order (equal bit for
bit). kernels/soft_dtw/op.py calls them.
"""
import torch

from ftcl.kernels.shared.launch import _inv_gamma_log2, _launch_args, rows_launch
from ftcl.kernels.shared.three_way import triton

if triton is not None:
    from ftcl.kernels.shared.three_way import (three_way_bwd_kernel, three_way_bwd_rows_kernel, three_way_fwd_kernel,
                                               three_way_fwd_rows_kernel)


def soft_dtw_fwd(cost, gamma, lengths, band, settings, zero_table=False):
    """Returns (values [B] float32, table [B, N*M] float32: R, diagonal-major per pair)."""
    batch, n_rows, n_cols = cost.shape
    table = (torch.zeros if zero_table else torch.empty)(batch, n_rows * n_cols, dtype=torch.float32,
                                                        device=cost.device)
    out = torch.empty(batch, dtype=torch.float32, device=cost.device)
    if batch == 0:
        return out, table
    family, len_arg, has_lengths, block, num_warps = _launch_args(lengths, cost.shape, cost.device, settings)
    flags = dict(HAS_LENGTHS=has_lengths, HAS_BAND=band is not None, HARD=gamma == 0, SOFT_DTW=True)
    radius = 0 if band is None else band
    if family == "rows":
        grid, bands, options = rows_launch(cost.shape, cost.device, "soft_dtw", settings)
        three_way_fwd_rows_kernel[grid](
            cost, cost, table, out, len_arg, *bands[:2], *cost.stride(), *cost.stride(), n_rows, n_cols, *bands[2:],
            gamma, _inv_gamma_log2(gamma), radius, **flags, **options)
        return out, table
    three_way_fwd_kernel[(batch,)](
        cost, cost, table, out, len_arg, *cost.stride(), *cost.stride(), n_rows, n_cols, gamma,
        _inv_gamma_log2(gamma), radius, **flags, BLOCK=block, num_warps=num_warps)
    return out, table


def soft_dtw_bwd(grad_out, table, gamma, lengths, band, settings, out):
    """Writes the gradient of sum(grad_out * value) w.r.t. the cost (the expected alignments) into
    out ([B, N, M], zeros outside the lengths) and returns it."""
    grad_cost = out
    batch, n_rows, n_cols = out.shape
    if batch == 0:
        return grad_cost
    family, len_arg, has_lengths, block, num_warps = _launch_args(lengths, out.shape, out.device, settings)
    grad_out = grad_out.float().contiguous()
    flags = dict(HAS_LENGTHS=has_lengths, HAS_BAND=band is not None, HARD=gamma == 0, SOFT_DTW=True)
    radius = 0 if band is None else band
    if family == "rows":
        grid, bands, options = rows_launch(out.shape, out.device, "soft_dtw", settings)
        three_way_bwd_rows_kernel[grid](
            table, table, grad_out, grad_cost, grad_cost, len_arg, *bands[:2], *grad_cost.stride(),
            *grad_cost.stride(), n_rows, n_cols, *bands[2:], _inv_gamma_log2(gamma), radius, **flags, **options)
        return grad_cost
    ring = torch.empty(batch, 7, n_rows + 2, dtype=torch.float32, device=out.device)
    three_way_bwd_kernel[(batch,)](
        table, table, grad_out, grad_cost, grad_cost, ring, len_arg, *grad_cost.stride(), *grad_cost.stride(),
        n_rows, n_cols, _inv_gamma_log2(gamma), radius, **flags, BLOCK=block, num_warps=num_warps)
    return grad_cost
