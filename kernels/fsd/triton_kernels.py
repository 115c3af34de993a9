"""FSD's Triton kernels ("rows" and "chunks" families, forward and backward) and their launches;
one program per pair (kernels.shared.triton). kernels/fsd/op.py calls them."""
import torch

from ftcl.kernels.shared.launch import _inv_gamma_log2, _launch_args, rows_launch

try:
    import triton
    import triton.language as tl

    from ftcl.kernels.shared.triton import (_row_bounds, _pair_lengths, _reverse_step, _neighbours, _adjoint, _push,
                                            _from_row_above, _from_row_below, _cells, _diagonal_offset,
                                            _band_program, _band_extent, _edge_from_above,
                                            _edge_to_below, _edge_from_below, _edge_to_above)
except ImportError:  # the other backends work without Triton
    triton = None

if triton is not None:

    @triton.jit
    def _fsd_weights(b_diag, b_up, b_left, inv_gamma_log2, HARD: tl.constexpr):
        """Soft-max (or first-arg-max) weights of the three candidates, and their max_gamma / gamma."""
        if HARD:
            w_diag = ((b_diag >= b_up) & (b_diag >= b_left)).to(tl.float32)
            w_up = (1.0 - w_diag) * (b_up >= b_left).to(tl.float32)
            w_left = 1.0 - w_diag - w_up
            return w_diag, w_up, w_left
        b_max = tl.maximum(tl.maximum(b_diag, b_up), b_left)
        e_diag = tl.exp2((b_diag - b_max) * inv_gamma_log2)
        e_up = tl.exp2((b_up - b_max) * inv_gamma_log2)
        e_left = tl.exp2((b_left - b_max) * inv_gamma_log2)
        inv_sum = 1.0 / (e_diag + e_up + e_left)
        return e_diag * inv_sum, e_up * inv_sum, e_left * inv_sum

    @triton.jit
    def _fsd_max(b_diag, b_up, b_left, gamma, inv_gamma_log2, HARD: tl.constexpr):
        """max_gamma of FSD's three candidates (the hard max when HARD); NaN if any is NaN (as
        torch.maximum)."""
        b_max = tl.maximum(tl.maximum(b_diag, b_up, propagate_nan=tl.PropagateNan.ALL), b_left,
                           propagate_nan=tl.PropagateNan.ALL)
        if HARD:
            return b_max
        b_sum = (tl.exp2((b_diag - b_max) * inv_gamma_log2) + tl.exp2((b_up - b_max) * inv_gamma_log2)
                 + tl.exp2((b_left - b_max) * inv_gamma_log2))
        return b_max + gamma * tl.log(b_sum)

    @triton.jit
    def fsd_fwd_kernel(
        match_ptr,  # [B, N, M] any float dtype, any strides
        gap_ptr,  # [B, N, M]
        table_ptr,  # [B, N*M] float32, diagonal-major per pair
        out_ptr,  # [B] float32
        len_ptr,  # [B, 2] int64, read only when HAS_LENGTHS
        stride_mb, stride_mn, stride_mm,
        stride_gb, stride_gn, stride_gm,
        N, M,
        gamma,
        inv_gamma_log2,
        HAS_LENGTHS: tl.constexpr,
        HARD: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        i_b = tl.program_id(0).to(tl.int64)
        n, m = _pair_lengths(len_ptr, i_b, N, M, HAS_LENGTHS)
        p_table = table_ptr + i_b * N * M
        p_match = match_ptr + i_b * stride_mb
        p_gap = gap_ptr + i_b * stride_gb
        o_i = tl.arange(0, BLOCK)
        off_0 = 0  # offset of the current diagonal in the table
        off_1, lo_1 = 0, 1  # previous diagonal
        off_2, lo_2 = 0, 1  # the one before
        for d in range(2, n + m + 1):
            lo, hi = _row_bounds(d, n, m)
            for start in range(lo, hi + 1, BLOCK):
                i = start + o_i  # [BLOCK] rows, 1-indexed
                j = d - i
                mask = i <= hi
                b_match = tl.load(p_match + (i - 1) * stride_mn + (j - 1) * stride_mm, mask=mask, other=0.0)
                b_gap = tl.load(p_gap + (i - 1) * stride_gn + (j - 1) * stride_gm, mask=mask, other=0.0)
                b_gap = b_gap.to(tl.float32)
                b_diag, b_up, b_left = _neighbours(p_table, i, j, mask, off_1, lo_1, off_2, lo_2)
                b_best = _fsd_max(b_diag, b_up + b_gap, b_left + b_gap, gamma, inv_gamma_log2, HARD)
                tl.store(p_table + off_0 + (i - lo), b_match.to(tl.float32) + b_best, mask=mask)
            # Every lane's diagonal must be visible before any lane reads it as a neighbour.
            tl.debug_barrier()
            off_2, lo_2 = off_1, lo_1
            off_1, lo_1 = off_0, lo
            off_0 += hi - lo + 1
        tl.store(out_ptr + i_b, tl.load(p_table + off_0 - 1))

    @triton.jit
    def fsd_bwd_kernel(
        gap_ptr,  # [B, N, M]
        table_ptr,  # [B, N*M] float32, from the forward
        grad_out_ptr,  # [B] float32
        grad_match_ptr,  # [B, N, M] zero-filled outside each pair's (n, m)
        grad_gap_ptr,  # [B, N, M] the same layout as grad_match
        ring_ptr,  # [B, 7, N + 2] float32 scratch
        len_ptr,  # [B, 2] int64
        stride_gb, stride_gn, stride_gm,
        stride_db, stride_dn, stride_dm,  # of both gradients
        N, M,
        inv_gamma_log2,
        HAS_LENGTHS: tl.constexpr,
        HARD: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        i_b = tl.program_id(0).to(tl.int64)
        n, m = _pair_lengths(len_ptr, i_b, N, M, HAS_LENGTHS)
        p_table = table_ptr + i_b * N * M
        p_gap = gap_ptr + i_b * stride_gb
        p_grad_match = grad_match_ptr + i_b * stride_db
        p_grad_gap = grad_gap_ptr + i_b * stride_db
        stride_slot = N + 2
        p_ring = ring_ptr + i_b * 7 * stride_slot
        b_grad_out = tl.load(grad_out_ptr + i_b)
        o_i = tl.arange(0, BLOCK)
        off_0 = n * m - 1  # the answer cell is alone on the last diagonal
        for k in range(0, n + m - 1):
            d = n + m - k
            lo, hi, lo_1, off_1, lo_2, off_2 = _reverse_step(d, n, m, off_0)
            for start in range(lo, hi + 1, BLOCK):
                i = start + o_i
                j = d - i
                mask = i <= hi
                b_gap = tl.load(p_gap + (i - 1) * stride_gn + (j - 1) * stride_gm, mask=mask, other=0.0)
                b_gap = b_gap.to(tl.float32)
                b_diag, b_up, b_left = _neighbours(p_table, i, j, mask, off_1, lo_1, off_2, lo_2)
                w_diag, w_up, w_left = _fsd_weights(b_diag, b_up + b_gap, b_left + b_gap, inv_gamma_log2, HARD)
                b_adj = _adjoint(p_ring, i, j, mask, n, m, d, stride_slot, b_grad_out)
                p_cell = (i - 1).to(tl.int64) * stride_dn + (j - 1) * stride_dm
                tl.store(p_grad_match + p_cell, b_adj.to(grad_match_ptr.dtype.element_ty), mask=mask)
                tl.store(p_grad_gap + p_cell, (b_adj * (w_up + w_left)).to(grad_gap_ptr.dtype.element_ty),
                         mask=mask)
                _push(p_ring, i, mask, d, stride_slot, b_adj * w_diag, b_adj * w_up, b_adj * w_left)
            tl.debug_barrier()
            off_0 = off_1

    @triton.jit
    def _fsd_inputs(p_match, p_gap, i, d, n, m, stride_mm, stride_gm):
        """match and gap of diagonal d's cells (0 outside the table)."""
        j, active = _cells(i, d, n, m)
        return (tl.load(p_match + (j - 1) * stride_mm, mask=active, other=0.0),
                tl.load(p_gap + (j - 1) * stride_gm, mask=active, other=0.0))

    @triton.jit
    def _fsd_bwd_inputs(p_gap, p_table, i, d, n, n_last, m, stride_gm):
        """gap and the saved C[i-1, j-1], C[i-1, j], C[i, j-1] of diagonal d's cells in rows up to
        n_last (offsets in the whole n x m table)."""
        j, active = _cells(i, d, n_last, m)
        b_gap = tl.load(p_gap + (j - 1) * stride_gm, mask=active, other=0.0)
        b_diag, b_up, b_left = _neighbours(p_table, i, j, active, _diagonal_offset(d - 1, n, m),
                                           tl.maximum(d - 1 - m, 1), _diagonal_offset(d - 2, n, m),
                                           tl.maximum(d - 2 - m, 1))
        return b_gap, b_diag, b_up, b_left

    @triton.jit
    def fsd_fwd_rows_kernel(
        match_ptr,  # [B, N, M] any float dtype, any strides
        gap_ptr,  # [B, N, M]
        table_ptr,  # [B, N*M] float32, diagonal-major per pair
        out_ptr,  # [B] float32
        len_ptr,  # [B, 2] int64, read only when HAS_LENGTHS
        sync_ptr,  # [1 + B * n_bands] int32 zeros when BANDED: ticket, then each band's published columns
        edge_ptr,  # [B * n_bands, M] float32 when BANDED: each band's last row, for the band below
        stride_mb, stride_mn, stride_mm,
        stride_gb, stride_gn, stride_gm,
        N, M,
        band_rows, n_bands,  # when BANDED
        gamma,
        inv_gamma_log2,
        HAS_LENGTHS: tl.constexpr,
        HARD: tl.constexpr,
        BLOCK: tl.constexpr,  # >= N (>= band_rows when BANDED): lane k holds row r0 + k + 1 on every diagonal
        PREFETCH: tl.constexpr,
        BANDED: tl.constexpr,
        PUBLISH: tl.constexpr,
    ):
        i_b, band, r0 = _band_program(sync_ptr, band_rows, n_bands, BLOCK, BANDED, False)
        n, m = _pair_lengths(len_ptr, i_b, N, M, HAS_LENGTHS)
        p_table = table_ptr + i_b * N * M
        lanes = tl.arange(0, BLOCK)
        i = r0 + lanes + 1
        p_match = match_ptr + i_b * stride_mb + (r0 + lanes).to(tl.int64) * stride_mn
        p_gap = gap_ptr + i_b * stride_gb + (r0 + lanes).to(tl.int64) * stride_gn
        # The previous diagonal in registers: left = C[i, j-1] (this lane's last cell), up = C[i-1, j]
        # and diag = C[i-1, j-1] (the row above's last two, shifted down one lane).
        b_left = tl.zeros([BLOCK], tl.float32)
        b_up = tl.zeros([BLOCK], tl.float32)
        b_diag = tl.zeros([BLOCK], tl.float32)
        b_cur = tl.zeros([BLOCK], tl.float32)
        if BANDED:
            n_last, slot, has_above, has_below = _band_extent(i_b, band, r0, n, band_rows, n_bands)
            d_end = tl.where(n_last > r0, n_last + m + 1, r0 + 2)
            # Lane 0's upper neighbour C[r0, j] on diagonals r0 + 2 and r0 + 3 (j = 1, 2).
            ready = tl.zeros((), tl.int32)
            b_edge_0, ready = _edge_from_above(edge_ptr, sync_ptr, slot, M, ready, lanes, 1, m, has_above)
            b_edge_1, ready = _edge_from_above(edge_ptr, sync_ptr, slot, M, ready, lanes, 2, m, has_above)
            off_0 = _diagonal_offset(r0 + 2, n, m)
        else:
            n_last = n
            d_end = n + m + 1
            off_0 = 0
        b_match_0, b_gap_0 = _fsd_inputs(p_match, p_gap, i, r0 + 2, n_last, m, stride_mm, stride_gm)
        b_match_1, b_gap_1 = _fsd_inputs(p_match, p_gap, i, r0 + 3, n_last, m, stride_mm, stride_gm)
        b_match_2, b_gap_2 = _fsd_inputs(p_match, p_gap, i, r0 + 4, n_last, m, stride_mm, stride_gm)
        b_match_3, b_gap_3 = _fsd_inputs(p_match, p_gap, i, r0 + 5, n_last, m, stride_mm, stride_gm)
        for d in range(r0 + 2, d_end):
            b_match_far, b_gap_far = _fsd_inputs(p_match, p_gap, i, d + PREFETCH, n_last, m, stride_mm, stride_gm)
            if BANDED:
                column = d - r0 + 1  # lane 0's on diagonal d + 2
                b_edge_far, ready = _edge_from_above(edge_ptr, sync_ptr, slot, M, ready, lanes, column, m, has_above)
                b_up = tl.where(lanes == 0, b_edge_0, b_up)
            j, active = _cells(i, d, n_last, m)
            b_g = b_gap_0.to(tl.float32)
            b_best = _fsd_max(b_diag, b_up + b_g, b_left + b_g, gamma, inv_gamma_log2, HARD)
            # Outside the table 0: C[i, 0] is the left border of the next diagonal.
            b_cur = tl.where(active, b_match_0.to(tl.float32) + b_best, 0.0)
            lo, hi = _row_bounds(d, n, m)
            tl.store(p_table + off_0 + (i - lo), b_cur, mask=active)
            off_0 += hi - lo + 1
            if BANDED:
                column = d - r0 - band_rows  # the band's last row's, handed to the band below
                _edge_to_below(edge_ptr, sync_ptr, slot, M, b_cur, lanes, band_rows, column, m, has_below, PUBLISH)
                b_edge_0, b_edge_1 = b_edge_1, b_edge_far
            b_diag = b_up
            b_up = _from_row_above(b_cur, lanes)
            b_left = b_cur
            if PREFETCH == 1:
                b_match_0, b_gap_0 = b_match_far, b_gap_far
            elif PREFETCH == 2:
                b_match_0, b_gap_0, b_match_1, b_gap_1 = b_match_1, b_gap_1, b_match_far, b_gap_far
            else:
                b_match_0, b_gap_0, b_match_1, b_gap_1 = b_match_1, b_gap_1, b_match_2, b_gap_2
                b_match_2, b_gap_2, b_match_3, b_gap_3 = b_match_3, b_gap_3, b_match_far, b_gap_far
        b_value = tl.sum(tl.where(i == n, b_cur, 0.0), 0)
        if BANDED:
            # The band holding row n answers (band 0 for a pair without rows).
            tl.store(out_ptr + i_b, b_value, mask=(n_last == n) & ((n > r0) | (band == 0)))
        else:
            tl.store(out_ptr + i_b, b_value)

    @triton.jit
    def fsd_bwd_rows_kernel(
        gap_ptr,  # [B, N, M]
        table_ptr,  # [B, N*M] float32, from the forward
        grad_out_ptr,  # [B] float32
        grad_match_ptr,  # [B, N, M] zero-filled outside each pair's (n, m)
        grad_gap_ptr,  # [B, N, M] the same layout as grad_match
        len_ptr,  # [B, 2] int64
        sync_ptr,  # [1 + B * n_bands] int32 zeros when BANDED: ticket, then each band's published columns
        edge_ptr,  # [B * n_bands, M] float32 when BANDED: what each band pushes up into the band above
        stride_gb, stride_gn, stride_gm,
        stride_db, stride_dn, stride_dm,  # of both gradients
        N, M,
        band_rows, n_bands,  # when BANDED
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
        p_gap = gap_ptr + i_b * stride_gb + (r0 + lanes).to(tl.int64) * stride_gn
        p_grad_match = grad_match_ptr + i_b * stride_db + (r0 + lanes).to(tl.int64) * stride_dn
        p_grad_gap = grad_gap_ptr + i_b * stride_db + (r0 + lanes).to(tl.int64) * stride_dn
        b_grad_out = tl.load(grad_out_ptr + i_b)
        # Adjoint flowing into each lane's cell of the current diagonal from the two after it, and
        # the diagonal pushes of the last diagonal, still to be moved up one row.
        b_incoming = tl.zeros([BLOCK], tl.float32)
        b_pending_diag = tl.zeros([BLOCK], tl.float32)
        if BANDED:
            n_last, slot, has_above, has_below = _band_extent(i_b, band, r0, n, band_rows, n_bands)
            n_steps = tl.where(n_last > r0, n_last + m - r0 - 1, 0)
            # What the band below pushes into this band's last row at columns m and m - 1 (its first
            # two diagonals), published as counts of columns from the right.
            ready = tl.zeros((), tl.int32)
            b_edge_0, ready = _edge_from_below(edge_ptr, sync_ptr, slot, M, ready, lanes, band_rows, m, m, has_below)
            b_edge_1, ready = _edge_from_below(edge_ptr, sync_ptr, slot, M, ready, lanes, band_rows, m - 1, m,
                                               has_below)
        else:
            n_last = n
            n_steps = n + m - 1
        last = n_last + m  # the band's last diagonal (the answer cell alone on it in the bottom band)
        b_gap_0, b_diag_0, b_up_0, b_left_0 = _fsd_bwd_inputs(p_gap, p_table, i, last, n, n_last, m, stride_gm)
        b_gap_1, b_diag_1, b_up_1, b_left_1 = _fsd_bwd_inputs(p_gap, p_table, i, last - 1, n, n_last, m, stride_gm)
        b_gap_2, b_diag_2, b_up_2, b_left_2 = _fsd_bwd_inputs(p_gap, p_table, i, last - 2, n, n_last, m, stride_gm)
        b_gap_3, b_diag_3, b_up_3, b_left_3 = _fsd_bwd_inputs(p_gap, p_table, i, last - 3, n, n_last, m, stride_gm)
        for k in range(0, n_steps):
            d = last - k
            b_gap_far, b_diag_far, b_up_far, b_left_far = _fsd_bwd_inputs(
                p_gap, p_table, i, d - PREFETCH, n, n_last, m, stride_gm)
            if BANDED:
                column = m - k - 2  # the band's last row's on diagonal d - 2
                b_edge_far, ready = _edge_from_below(edge_ptr, sync_ptr, slot, M, ready, lanes, band_rows, column, m,
                                                     has_below)
                b_incoming = b_incoming + b_edge_0
            j, active = _cells(i, d, n_last, m)
            b_g = b_gap_0.to(tl.float32)
            w_diag, w_up, w_left = _fsd_weights(b_diag_0, b_up_0 + b_g, b_left_0 + b_g, inv_gamma_log2, HARD)
            b_adj = tl.where(active, b_incoming + tl.where((i == n) & (j == m), b_grad_out, 0.0), 0.0)
            tl.store(p_grad_match + (j - 1) * stride_dm, b_adj.to(grad_match_ptr.dtype.element_ty), mask=active)
            tl.store(p_grad_gap + (j - 1) * stride_dm, (b_adj * (w_up + w_left)).to(grad_gap_ptr.dtype.element_ty),
                     mask=active)
            # C[i, j-1] gets the left push in this lane; C[i-1, j] the up push and C[i-1, j-1]
            # (two diagonals on) the diagonal push, both from the row below: one shift carries both.
            b_push_up = b_adj * w_up + b_pending_diag
            if BANDED:
                column = d - r0 - 1  # lane 0's, whose up pushes go to the band above
                _edge_to_above(edge_ptr, sync_ptr, slot, M, b_push_up, lanes, column, m, has_above, PUBLISH)
                b_edge_0, b_edge_1 = b_edge_1, b_edge_far
            b_incoming = b_adj * w_left + _from_row_below(b_push_up, lanes, BLOCK)
            b_pending_diag = b_adj * w_diag
            if PREFETCH == 1:
                b_gap_0, b_diag_0, b_up_0, b_left_0 = b_gap_far, b_diag_far, b_up_far, b_left_far
            elif PREFETCH == 2:
                b_gap_0, b_diag_0, b_up_0, b_left_0 = b_gap_1, b_diag_1, b_up_1, b_left_1
                b_gap_1, b_diag_1, b_up_1, b_left_1 = b_gap_far, b_diag_far, b_up_far, b_left_far
            else:
                b_gap_0, b_diag_0, b_up_0, b_left_0 = b_gap_1, b_diag_1, b_up_1, b_left_1
                b_gap_1, b_diag_1, b_up_1, b_left_1 = b_gap_2, b_diag_2, b_up_2, b_left_2
                b_gap_2, b_diag_2, b_up_2, b_left_2 = b_gap_3, b_diag_3, b_up_3, b_left_3
                b_gap_3, b_diag_3, b_up_3, b_left_3 = b_gap_far, b_diag_far, b_up_far, b_left_far


def kernels_for(family):
    """(forward, backward) Triton kernels of FSD in family ("rows" or "chunks")."""
    if family == "rows":
        return fsd_fwd_rows_kernel, fsd_bwd_rows_kernel
    return fsd_fwd_kernel, fsd_bwd_kernel


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
    if family == "rows":
        grid, bands, options = rows_launch(match.shape, match.device, "fsd", settings)
        fsd_fwd_rows_kernel[grid](
            match, gap, table, out, len_arg, *bands[:2], *match.stride(), *gap.stride(), n_rows, n_cols, *bands[2:],
            gamma, _inv_gamma_log2(gamma), HAS_LENGTHS=has_lengths, HARD=gamma == 0, **options)
        return out, table
    fsd_fwd_kernel[(batch,)](
        match, gap, table, out, len_arg, *match.stride(), *gap.stride(), n_rows, n_cols,
        gamma, _inv_gamma_log2(gamma), HAS_LENGTHS=has_lengths, HARD=gamma == 0, BLOCK=block,
        num_warps=num_warps)
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
    if family == "rows":
        grid, bands, options = rows_launch(gap.shape, gap.device, "fsd", settings)
        fsd_bwd_rows_kernel[grid](gap, table, grad_out, grad_match, grad_gap, len_arg, *bands[:2], *gap.stride(),
                                  *grad_match.stride(), n_rows, n_cols, *bands[2:], _inv_gamma_log2(gamma),
                                  HAS_LENGTHS=has_lengths, HARD=gamma == 0, **options)
        return grad_match, grad_gap
    ring = torch.empty(batch, 7, n_rows + 2, dtype=torch.float32, device=gap.device)
    fsd_bwd_kernel[(batch,)](gap, table, grad_out, grad_match, grad_gap, ring, len_arg, *gap.stride(),
                             *grad_match.stride(), n_rows, n_cols, _inv_gamma_log2(gamma), HAS_LENGTHS=has_lengths,
                             HARD=gamma == 0, BLOCK=block, num_warps=num_warps)
    return grad_match, grad_gap
