"""The thresholded LCS's Triton kernels ("rows" and "chunks" families, forward and backward) and
their launches (kernels.shared.triton). kernels/lcs/op.py calls them."""
import torch

from ftcl.kernels.shared.launch import _inv_gamma_log2, _launch_args, rows_launch

try:
    import triton
    import triton.language as tl

    from ftcl.kernels.shared.triton import (_row_bounds, _pair_lengths, _reverse_step, _up_left, _neighbours, _adjoint,
                                            _push, _from_row_above, _from_row_below, _cells, _diagonal_offset,
                                            _band_program, _band_extent, _edge_from_above,
                                            _edge_to_below, _edge_from_below, _edge_to_above)
except ImportError:  # the other backends work without Triton
    triton = None

if triton is not None:

    @triton.jit
    def _lcs_skip(b_up, b_left, gamma, inv_gamma_log2, HARD: tl.constexpr):
        """max_gamma(C[i-1, j], C[i, j-1]): an unmatched LCS cell's value."""
        b_max = tl.maximum(b_up, b_left)
        if HARD:
            return b_max
        b_min = tl.minimum(b_up, b_left)
        return b_max + gamma * tl.log(1.0 + tl.exp2((b_min - b_max) * inv_gamma_log2))

    @triton.jit
    def _lcs_up_weight(b_up, b_left, inv_gamma_log2, HARD: tl.constexpr):
        """Share of an unmatched LCS cell's adjoint that goes to C[i-1, j] (the rest to C[i, j-1])."""
        if HARD:
            return (b_up >= b_left).to(tl.float32)  # ties go to the upper neighbour
        return 1.0 / (1.0 + tl.exp2((b_left - b_up) * inv_gamma_log2))

    @triton.jit
    def lcs_fwd_kernel(
        sim_ptr,  # [B, N, M] any float dtype, any strides
        table_ptr,  # [B, N*M] float32, diagonal-major per pair
        out_ptr,  # [B] float32
        len_ptr,  # [B, 2] int64
        stride_sb, stride_sn, stride_sm,
        N, M,
        threshold,
        gamma,
        inv_gamma_log2,
        HAS_LENGTHS: tl.constexpr,
        HARD: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        i_b = tl.program_id(0).to(tl.int64)
        n, m = _pair_lengths(len_ptr, i_b, N, M, HAS_LENGTHS)
        p_table = table_ptr + i_b * N * M
        p_sim = sim_ptr + i_b * stride_sb
        o_i = tl.arange(0, BLOCK)
        off_0 = 0
        off_1, lo_1 = 0, 1
        off_2, lo_2 = 0, 1
        for d in range(2, n + m + 1):
            lo, hi = _row_bounds(d, n, m)
            for start in range(lo, hi + 1, BLOCK):
                i = start + o_i
                j = d - i
                mask = i <= hi
                b_sim = tl.load(p_sim + (i - 1) * stride_sn + (j - 1) * stride_sm, mask=mask, other=0.0)
                b_sim = b_sim.to(tl.float32)
                b_diag, b_up, b_left = _neighbours(p_table, i, j, mask, off_1, lo_1, off_2, lo_2)
                b_skip = _lcs_skip(b_up, b_left, gamma, inv_gamma_log2, HARD)
                b_value = tl.where(b_sim > threshold, b_diag + b_sim, b_skip)
                tl.store(p_table + off_0 + (i - lo), b_value, mask=mask)
            tl.debug_barrier()
            off_2, lo_2 = off_1, lo_1
            off_1, lo_1 = off_0, lo
            off_0 += hi - lo + 1
        tl.store(out_ptr + i_b, tl.load(p_table + off_0 - 1))

    @triton.jit
    def lcs_bwd_kernel(
        sim_ptr,  # [B, N, M]
        table_ptr,  # [B, N*M] float32, from the forward
        grad_out_ptr,  # [B] float32
        grad_sim_ptr,  # [B, N, M] zero-filled outside each pair's (n, m)
        ring_ptr,  # [B, 7, N + 2] float32 scratch
        len_ptr,  # [B, 2] int64
        stride_sb, stride_sn, stride_sm,
        stride_db, stride_dn, stride_dm,  # of grad_sim
        N, M,
        threshold,
        inv_gamma_log2,
        HAS_LENGTHS: tl.constexpr,
        HARD: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        i_b = tl.program_id(0).to(tl.int64)
        n, m = _pair_lengths(len_ptr, i_b, N, M, HAS_LENGTHS)
        p_table = table_ptr + i_b * N * M
        p_sim = sim_ptr + i_b * stride_sb
        p_grad_sim = grad_sim_ptr + i_b * stride_db
        stride_slot = N + 2
        p_ring = ring_ptr + i_b * 7 * stride_slot
        b_grad_out = tl.load(grad_out_ptr + i_b)
        o_i = tl.arange(0, BLOCK)
        off_0 = n * m - 1
        for k in range(0, n + m - 1):
            d = n + m - k
            lo, hi, lo_1, off_1, _, _ = _reverse_step(d, n, m, off_0)
            for start in range(lo, hi + 1, BLOCK):
                i = start + o_i
                j = d - i
                mask = i <= hi
                b_sim = tl.load(p_sim + (i - 1) * stride_sn + (j - 1) * stride_sm, mask=mask, other=0.0)
                matched = b_sim.to(tl.float32) > threshold
                b_up, b_left = _up_left(p_table, i, j, mask, off_1, lo_1)
                w_up = _lcs_up_weight(b_up, b_left, inv_gamma_log2, HARD)
                b_adj = _adjoint(p_ring, i, j, mask, n, m, d, stride_slot, b_grad_out)
                b_through = tl.where(matched, b_adj, 0.0)
                b_skipped = b_adj - b_through
                tl.store(p_grad_sim + (i - 1).to(tl.int64) * stride_dn + (j - 1) * stride_dm,
                         b_through.to(grad_sim_ptr.dtype.element_ty), mask=mask)
                _push(p_ring, i, mask, d, stride_slot, b_through, b_skipped * w_up, b_skipped * (1.0 - w_up))
            tl.debug_barrier()
            off_0 = off_1

    @triton.jit
    def _lcs_inputs(p_sim, i, d, n, m, stride_sm):
        j, active = _cells(i, d, n, m)
        return tl.load(p_sim + (j - 1) * stride_sm, mask=active, other=0.0)

    @triton.jit
    def _lcs_bwd_inputs(p_sim, p_table, i, d, n, n_last, m, stride_sm):
        """sim and the saved C[i-1, j], C[i, j-1] of diagonal d's cells in rows up to n_last (offsets
        in the whole n x m table)."""
        j, active = _cells(i, d, n_last, m)
        b_sim = tl.load(p_sim + (j - 1) * stride_sm, mask=active, other=0.0)
        off_1, lo_1 = _diagonal_offset(d - 1, n, m), tl.maximum(d - 1 - m, 1)
        b_up, b_left = _up_left(p_table, i, j, active, off_1, lo_1)
        return b_sim, b_up, b_left

    @triton.jit
    def lcs_fwd_rows_kernel(
        sim_ptr,  # [B, N, M] any float dtype, any strides
        table_ptr,  # [B, N*M] float32, diagonal-major per pair
        out_ptr,  # [B] float32
        len_ptr,  # [B, 2] int64
        sync_ptr,  # [1 + B * n_bands] int32 zeros when BANDED: ticket, then each band's published columns
        edge_ptr,  # [B * n_bands, M] float32 when BANDED: each band's last row, for the band below
        stride_sb, stride_sn, stride_sm,
        N, M,
        band_rows, n_bands,  # when BANDED
        threshold,
        gamma,
        inv_gamma_log2,
        HAS_LENGTHS: tl.constexpr,
        HARD: tl.constexpr,
        BLOCK: tl.constexpr,  # >= N (>= band_rows when BANDED)
        PREFETCH: tl.constexpr,
        BANDED: tl.constexpr,
        PUBLISH: tl.constexpr,
    ):
        i_b, band, r0 = _band_program(sync_ptr, band_rows, n_bands, BLOCK, BANDED, False)
        n, m = _pair_lengths(len_ptr, i_b, N, M, HAS_LENGTHS)
        p_table = table_ptr + i_b * N * M
        lanes = tl.arange(0, BLOCK)
        i = r0 + lanes + 1
        p_sim = sim_ptr + i_b * stride_sb + (r0 + lanes).to(tl.int64) * stride_sn
        b_left = tl.zeros([BLOCK], tl.float32)
        b_up = tl.zeros([BLOCK], tl.float32)
        b_diag = tl.zeros([BLOCK], tl.float32)
        b_cur = tl.zeros([BLOCK], tl.float32)
        if BANDED:
            n_last, slot, has_above, has_below = _band_extent(i_b, band, r0, n, band_rows, n_bands)
            d_end = tl.where(n_last > r0, n_last + m + 1, r0 + 2)
            ready = tl.zeros((), tl.int32)
            b_edge_0, ready = _edge_from_above(edge_ptr, sync_ptr, slot, M, ready, lanes, 1, m, has_above)
            b_edge_1, ready = _edge_from_above(edge_ptr, sync_ptr, slot, M, ready, lanes, 2, m, has_above)
            off_0 = _diagonal_offset(r0 + 2, n, m)
        else:
            n_last = n
            d_end = n + m + 1
            off_0 = 0
        b_sim_0 = _lcs_inputs(p_sim, i, r0 + 2, n_last, m, stride_sm)
        b_sim_1 = _lcs_inputs(p_sim, i, r0 + 3, n_last, m, stride_sm)
        b_sim_2 = _lcs_inputs(p_sim, i, r0 + 4, n_last, m, stride_sm)
        b_sim_3 = _lcs_inputs(p_sim, i, r0 + 5, n_last, m, stride_sm)
        for d in range(r0 + 2, d_end):
            b_sim_far = _lcs_inputs(p_sim, i, d + PREFETCH, n_last, m, stride_sm)
            if BANDED:
                column = d - r0 + 1  # lane 0's on diagonal d + 2
                b_edge_far, ready = _edge_from_above(edge_ptr, sync_ptr, slot, M, ready, lanes, column, m, has_above)
                b_up = tl.where(lanes == 0, b_edge_0, b_up)
            j, active = _cells(i, d, n_last, m)
            b_s = b_sim_0.to(tl.float32)
            b_skip = _lcs_skip(b_up, b_left, gamma, inv_gamma_log2, HARD)
            b_cur = tl.where(active, tl.where(b_s > threshold, b_diag + b_s, b_skip), 0.0)
            lo, hi = _row_bounds(d, n, m)
            tl.store(p_table + off_0 + (i - lo), b_cur, mask=active)
            off_0 += hi - lo + 1
            if BANDED:
                column = d - r0 - band_rows
                _edge_to_below(edge_ptr, sync_ptr, slot, M, b_cur, lanes, band_rows, column, m, has_below, PUBLISH)
                b_edge_0, b_edge_1 = b_edge_1, b_edge_far
            b_diag = b_up
            b_up = _from_row_above(b_cur, lanes)
            b_left = b_cur
            if PREFETCH == 1:
                b_sim_0 = b_sim_far
            elif PREFETCH == 2:
                b_sim_0, b_sim_1 = b_sim_1, b_sim_far
            else:
                b_sim_0, b_sim_1, b_sim_2, b_sim_3 = b_sim_1, b_sim_2, b_sim_3, b_sim_far
        b_value = tl.sum(tl.where(i == n, b_cur, 0.0), 0)
        if BANDED:
            tl.store(out_ptr + i_b, b_value, mask=(n_last == n) & ((n > r0) | (band == 0)))
        else:
            tl.store(out_ptr + i_b, b_value)

    @triton.jit
    def lcs_bwd_rows_kernel(
        sim_ptr,  # [B, N, M]
        table_ptr,  # [B, N*M] float32, from the forward
        grad_out_ptr,  # [B] float32
        grad_sim_ptr,  # [B, N, M] zero-filled outside each pair's (n, m)
        len_ptr,  # [B, 2] int64
        sync_ptr,  # [1 + B * n_bands] int32 zeros when BANDED: ticket, then each band's published columns
        edge_ptr,  # [B * n_bands, M] float32 when BANDED: what each band pushes up into the band above
        stride_sb, stride_sn, stride_sm,
        stride_db, stride_dn, stride_dm,  # of grad_sim
        N, M,
        band_rows, n_bands,  # when BANDED
        threshold,
        inv_gamma_log2,
        HAS_LENGTHS: tl.constexpr,
        HARD: tl.constexpr,
        BLOCK: tl.constexpr,  # >= N (>= band_rows when BANDED)
        PREFETCH: tl.constexpr,
        BANDED: tl.constexpr,
        PUBLISH: tl.constexpr,
    ):
        i_b, band, r0 = _band_program(sync_ptr, band_rows, n_bands, BLOCK, BANDED, True)
        n, m = _pair_lengths(len_ptr, i_b, N, M, HAS_LENGTHS)
        p_table = table_ptr + i_b * N * M
        lanes = tl.arange(0, BLOCK)
        i = r0 + lanes + 1
        p_sim = sim_ptr + i_b * stride_sb + (r0 + lanes).to(tl.int64) * stride_sn
        p_grad_sim = grad_sim_ptr + i_b * stride_db + (r0 + lanes).to(tl.int64) * stride_dn
        b_grad_out = tl.load(grad_out_ptr + i_b)
        b_incoming = tl.zeros([BLOCK], tl.float32)
        b_pending_diag = tl.zeros([BLOCK], tl.float32)
        if BANDED:
            n_last, slot, has_above, has_below = _band_extent(i_b, band, r0, n, band_rows, n_bands)
            n_steps = tl.where(n_last > r0, n_last + m - r0 - 1, 0)
            ready = tl.zeros((), tl.int32)
            b_edge_0, ready = _edge_from_below(edge_ptr, sync_ptr, slot, M, ready, lanes, band_rows, m, m, has_below)
            b_edge_1, ready = _edge_from_below(edge_ptr, sync_ptr, slot, M, ready, lanes, band_rows, m - 1, m,
                                               has_below)
        else:
            n_last = n
            n_steps = n + m - 1
        last = n_last + m
        b_sim_0, b_up_0, b_left_0 = _lcs_bwd_inputs(p_sim, p_table, i, last, n, n_last, m, stride_sm)
        b_sim_1, b_up_1, b_left_1 = _lcs_bwd_inputs(p_sim, p_table, i, last - 1, n, n_last, m, stride_sm)
        b_sim_2, b_up_2, b_left_2 = _lcs_bwd_inputs(p_sim, p_table, i, last - 2, n, n_last, m, stride_sm)
        b_sim_3, b_up_3, b_left_3 = _lcs_bwd_inputs(p_sim, p_table, i, last - 3, n, n_last, m, stride_sm)
        for k in range(0, n_steps):
            d = last - k
            b_sim_far, b_up_far, b_left_far = _lcs_bwd_inputs(p_sim, p_table, i, d - PREFETCH, n, n_last, m,
                                                              stride_sm)
            if BANDED:
                column = m - k - 2
                b_edge_far, ready = _edge_from_below(edge_ptr, sync_ptr, slot, M, ready, lanes, band_rows, column, m,
                                                     has_below)
                b_incoming = b_incoming + b_edge_0
            j, active = _cells(i, d, n_last, m)
            matched = b_sim_0.to(tl.float32) > threshold
            w_up = _lcs_up_weight(b_up_0, b_left_0, inv_gamma_log2, HARD)
            b_adj = tl.where(active, b_incoming + tl.where((i == n) & (j == m), b_grad_out, 0.0), 0.0)
            b_through = tl.where(matched, b_adj, 0.0)
            b_skipped = b_adj - b_through
            tl.store(p_grad_sim + (j - 1) * stride_dm, b_through.to(grad_sim_ptr.dtype.element_ty), mask=active)
            b_push_up = b_skipped * w_up + b_pending_diag
            if BANDED:
                column = d - r0 - 1
                _edge_to_above(edge_ptr, sync_ptr, slot, M, b_push_up, lanes, column, m, has_above, PUBLISH)
                b_edge_0, b_edge_1 = b_edge_1, b_edge_far
            b_incoming = b_skipped * (1.0 - w_up) + _from_row_below(b_push_up, lanes, BLOCK)
            b_pending_diag = b_through
            if PREFETCH == 1:
                b_sim_0, b_up_0, b_left_0 = b_sim_far, b_up_far, b_left_far
            elif PREFETCH == 2:
                b_sim_0, b_up_0, b_left_0 = b_sim_1, b_up_1, b_left_1
                b_sim_1, b_up_1, b_left_1 = b_sim_far, b_up_far, b_left_far
            else:
                b_sim_0, b_up_0, b_left_0 = b_sim_1, b_up_1, b_left_1
                b_sim_1, b_up_1, b_left_1 = b_sim_2, b_up_2, b_left_2
                b_sim_2, b_up_2, b_left_2 = b_sim_3, b_up_3, b_left_3
                b_sim_3, b_up_3, b_left_3 = b_sim_far, b_up_far, b_left_far


def lcs_fwd(sim, threshold, gamma, lengths, settings, zero_table=False):
    """Returns (values [B] float32, table [B, N*M] float32); zero_table as in fsd_fwd."""
    batch, n_rows, n_cols = sim.shape
    table = (torch.zeros if zero_table else torch.empty)(batch, n_rows * n_cols, dtype=torch.float32, device=sim.device)
    out = torch.empty(batch, dtype=torch.float32, device=sim.device)
    if batch == 0:
        return out, table
    family, len_arg, has_lengths, block, num_warps = _launch_args(lengths, sim.shape, sim.device, settings)
    if family == "rows":
        grid, bands, options = rows_launch(sim.shape, sim.device, "lcs", settings)
        lcs_fwd_rows_kernel[grid](
            sim, table, out, len_arg, *bands[:2], *sim.stride(), n_rows, n_cols, *bands[2:], threshold, gamma,
            _inv_gamma_log2(gamma), HAS_LENGTHS=has_lengths, HARD=gamma == 0, **options)
        return out, table
    lcs_fwd_kernel[(batch,)](
        sim, table, out, len_arg, *sim.stride(), n_rows, n_cols, threshold, gamma, _inv_gamma_log2(gamma),
        HAS_LENGTHS=has_lengths, HARD=gamma == 0, BLOCK=block, num_warps=num_warps)
    return out, table

def lcs_bwd(grad_out, sim, table, threshold, gamma, lengths, settings, out):
    """Writes the gradient of sum(grad_out * value) w.r.t. sim into out ([B, N, M] in sim's layout or
    diagonal-major, zeros outside the lengths) and returns it."""
    grad_sim = out
    batch, n_rows, n_cols = sim.shape
    if batch == 0:
        return grad_sim
    family, len_arg, has_lengths, block, num_warps = _launch_args(lengths, sim.shape, sim.device, settings)
    grad_out = grad_out.float().contiguous()
    if family == "rows":
        grid, bands, options = rows_launch(sim.shape, sim.device, "lcs", settings)
        lcs_bwd_rows_kernel[grid](sim, table, grad_out, grad_sim, len_arg, *bands[:2], *sim.stride(),
                                  *grad_sim.stride(), n_rows, n_cols, *bands[2:], threshold, _inv_gamma_log2(gamma),
                                  HAS_LENGTHS=has_lengths, HARD=gamma == 0, **options)
        return grad_sim
    ring = torch.empty(batch, 7, n_rows + 2, dtype=torch.float32, device=sim.device)
    lcs_bwd_kernel[(batch,)](sim, table, grad_out, grad_sim, ring, len_arg, *sim.stride(), *grad_sim.stride(),
                             n_rows, n_cols, threshold, _inv_gamma_log2(gamma), HAS_LENGTHS=has_lengths,
                             HARD=gamma == 0, BLOCK=block, num_warps=num_warps)
    return grad_sim
