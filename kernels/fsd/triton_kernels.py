"""FSD's Triton launches: the three-way kernels of kernels.shared.three_way with SOFT_DTW=False, "rows"
or "chunks" family (kernels.shared.launch); one program per pair, or row bands. kernels/fsd/op.py
calls them."""
import torch

from ftcl.kernels.shared.launch import _inv_gamma_log2, _launch_args, rows_launch
from ftcl.kernels.shared.three_way import triton

if triton is not None:
    from ftcl.kernels.shared.three_way import (three_way_bwd_kernel, three_way_bwd_rows_kernel, three_way_fwd_kernel,
                                               three_way_fwd_rows_kernel)


def fsd_fwd(match, gap, gamma, lengths, settings, zero_table=False):
    """Returns (values [B] float32, table [B, N*M] float32); zero_table: the cells no pair reaches
    (outside the lengths) are 0, not left as they were in memory."""
    batch, n_rows, n_cols = match.shape
    table = (torch.zeros if zero_table else torch.empty)(batch, n_rows * n_cols, dtype=torch.float32,
                                                        device=match.device)
    out = torch.empty(batch, dtype=torch.float32, device=match.device)
    if batch == 0:
        return out, table
    family, len_arg, has_lengths, block, num_warps = _launch_args(lengths, match.shape, match.device, settings)
    flags = dict(HAS_LENGTHS=has_lengths, HAS_BAND=False, HARD=gamma == 0, SOFT_DTW=False)
    if family == "rows":
        grid, bands, options = rows_launch(match.shape, match.device, "fsd", settings)
        three_way_fwd_rows_kernel[grid](
            match, gap, table, out, len_arg, *bands[:2], *match.stride(), *gap.stride(), n_rows, n_cols, *bands[2:],
            gamma, _inv_gamma_log2(gamma), 0, **flags, **options)
        return out, table
    three_way_fwd_kernel[(batch,)](
        match, gap, table, out, len_arg, *match.stride(), *gap.stride(), n_rows, n_cols, gamma,
        _inv_gamma_log2(gamma), 0, **flags, BLOCK=block, num_warps=num_warps)
    return out, table


def fsd_bwd(grad_out, gap, table, gamma, lengths, settings, out):
    """Writes the gradients of sum(grad_out * value) w.r.t. match and gap into out (two [B, N, M]
    tensors in one layout, zeros outside the lengths: the kernel writes every cell inside each
    pair's (n, m)) and returns them."""
    grad_match, grad_gap = out
    batch, n_rows, n_cols = gap.shape
    if batch == 0:
        return grad_match, grad_gap
    family, len_arg, has_lengths, block, num_warps = _launch_args(lengths, gap.shape, gap.device, settings)
    grad_out = grad_out.float().contiguous()
    flags = dict(HAS_LENGTHS=has_lengths, HAS_BAND=False, HARD=gamma == 0, SOFT_DTW=False)
    if family == "rows":
        grid, bands, options = rows_launch(gap.shape, gap.device, "fsd", settings)
        three_way_bwd_rows_kernel[grid](
            gap, table, grad_out, grad_match, grad_gap, len_arg, *bands[:2], *gap.stride(), *grad_match.stride(),
            n_rows, n_cols, *bands[2:], _inv_gamma_log2(gamma), 0, **flags, **options)
        return grad_match, grad_gap
    ring = torch.empty(batch, 7, n_rows + 2, dtype=torch.float32, device=gap.device)
    three_way_bwd_kernel[(batch,)](
        gap, table, grad_out, grad_match, grad_gap, ring, len_arg, *gap.stride(), *grad_match.stride(), n_rows,
        n_cols, _inv_gamma_log2(gamma), 0, **flags, BLOCK=block, num_warps=num_warps)
    return grad_match, grad_gap
