"""The "triton" backend: FSD and LCS forward and backward, one program per video pair.

Each program sweeps its pair's n x m table one anti-diagonal d = i + j at a time (1-indexed cells).
The table is stored diagonal-major and compact (N*M float32 per pair): the forward writes it, the
backward recomputes each cell's soft-max weights from it. Two families (kernel_family):

- "rows" (tables of up to Settings.max_rows rows): lane k holds row k + 1 on every diagonal, so a
  cell's left neighbour is the lane's own last value, and its upper and diagonal neighbours are the
  row above's last two, moved one lane down per diagonal (tl.gather). Nothing is exchanged through
  global memory within a launch; the inputs of a few diagonals ahead (Settings.fsd_prefetch,
  lcs_prefetch) are loaded while this
  one is computed.
  Backward is the reverse wavefront with the adjoints in registers the same way: a cell's left push
  stays in its lane, its up and diagonal pushes move one lane up (one shift carries both).
- "chunks" (any size): lanes across the diagonal, BLOCK rows at a time, with a block barrier between
  diagonals; the neighbours are re-read from the table, and the backward pushes adjoint x weight to
  the predecessors through small per-pair ring buffers (3 + 2 + 2 rows of N + 2 floats).

Inputs are read and gradients written with any strides: row-major by default, diagonal-major (each
diagonal one contiguous run) for the tables `skews` selects.
"""
import os

import torch

from ftcl.kernels.autograd import refuse_second_derivative
from ftcl.kernels.settings import settings as current_settings

try:
    import triton
    import triton.language as tl
except ImportError:  # the other backends work without Triton
    triton = None

# Tuning choices (the family, prefetch depths, when tables are copied diagonal-major) live in
# kernels.settings; each op's forward reads them and keeps them for its backward.
_LOG2E = 1.4426950408889634

if triton is not None:

    @triton.jit
    def _row_bounds(d, n, m):
        """First and last row of anti-diagonal d inside an n x m table."""
        return tl.maximum(d - m, 1), tl.minimum(d - 1, n)

    @triton.jit
    def _pair_lengths(len_ptr, i_b, N, M, HAS_LENGTHS: tl.constexpr):
        if HAS_LENGTHS:
            n = tl.load(len_ptr + 2 * i_b).to(tl.int32)
            m = tl.load(len_ptr + 2 * i_b + 1).to(tl.int32)
        else:
            n = N + tl.zeros((), tl.int32)
            m = M + tl.zeros((), tl.int32)
        return n, m

    @triton.jit
    def _reverse_step(d, n, m, off_0):
        """Rows of diagonal d and of the two before it, and their offsets, given d's offset off_0."""
        lo, hi = _row_bounds(d, n, m)
        lo_1, hi_1 = _row_bounds(d - 1, n, m)
        off_1 = off_0 - (hi_1 - lo_1 + 1)
        lo_2, hi_2 = _row_bounds(d - 2, n, m)
        off_2 = off_1 - (hi_2 - lo_2 + 1)
        return lo, hi, lo_1, off_1, lo_2, off_2

    @triton.jit
    def _up_left(p_table, i, j, mask, off_1, lo_1):
        """C[i-1, j], C[i, j-1] from the previous diagonal, which starts at off_1 with row lo_1 (0 on
        the border)."""
        b_up = tl.load(p_table + off_1 + (i - 1 - lo_1), mask=mask & (i > 1), other=0.0)
        b_left = tl.load(p_table + off_1 + (i - lo_1), mask=mask & (j > 1), other=0.0)
        return b_up, b_left

    @triton.jit
    def _neighbours(p_table, i, j, mask, off_1, lo_1, off_2, lo_2):
        """C[i-1, j-1], C[i-1, j], C[i, j-1] from the two previous diagonals (0 on the border)."""
        b_diag = tl.load(p_table + off_2 + (i - 1 - lo_2), mask=mask & (i > 1) & (j > 1), other=0.0)
        # _up_left's loads, written out: through the call, ptxas allocates the 2048-row FSD backward
        # differently (up to 128 registers, its 16-warp cap, on sm_120).
        b_up = tl.load(p_table + off_1 + (i - 1 - lo_1), mask=mask & (i > 1), other=0.0)
        b_left = tl.load(p_table + off_1 + (i - lo_1), mask=mask & (j > 1), other=0.0)
        return b_diag, b_up, b_left

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
        """max_gamma of FSD's three candidates (the hard max when HARD)."""
        b_max = tl.maximum(tl.maximum(b_diag, b_up), b_left)
        if HARD:
            return b_max
        b_sum = (tl.exp2((b_diag - b_max) * inv_gamma_log2) + tl.exp2((b_up - b_max) * inv_gamma_log2)
                 + tl.exp2((b_left - b_max) * inv_gamma_log2))
        return b_max + gamma * tl.log(b_sum)

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
    def _adjoint(p_ring, i, j, mask, n, m, d, stride_slot, b_grad_out):
        """Adjoint of the cells on diagonal d: what their three successors pushed, plus the upstream
        gradient at the answer cell (n, m)."""
        slot_diag = (d + 2) % 3
        slot_side = (d + 1) % 2
        b_adj = tl.load(p_ring + slot_diag * stride_slot + i + 1, mask=mask & (i < n) & (j < m), other=0.0)
        b_adj += tl.load(p_ring + (3 + slot_side) * stride_slot + i + 1, mask=mask & (i < n), other=0.0)
        b_adj += tl.load(p_ring + (5 + slot_side) * stride_slot + i, mask=mask & (j < m), other=0.0)
        return b_adj + tl.where((i == n) & (j == m), b_grad_out, 0.0)

    @triton.jit
    def _push(p_ring, i, mask, d, stride_slot, b_to_diag, b_to_up, b_to_left):
        tl.store(p_ring + (d % 3) * stride_slot + i, b_to_diag, mask=mask)
        tl.store(p_ring + (3 + d % 2) * stride_slot + i, b_to_up, mask=mask)
        tl.store(p_ring + (5 + d % 2) * stride_slot + i, b_to_left, mask=mask)

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
    def _from_row_above(x, lanes):
        """[BLOCK] -> [BLOCK]: lane k gets x[k - 1], lane 0 (row 1) the border's 0."""
        return tl.where(lanes == 0, 0.0, tl.gather(x, tl.maximum(lanes - 1, 0), 0))

    @triton.jit
    def _from_row_below(x, lanes, BLOCK: tl.constexpr):
        """[BLOCK] -> [BLOCK]: lane k gets x[k + 1], the last lane 0."""
        return tl.where(lanes == BLOCK - 1, 0.0, tl.gather(x, tl.minimum(lanes + 1, BLOCK - 1), 0))

    @triton.jit
    def _cells(i, d, n, m):
        """Column j = d - i of each lane's row i on diagonal d, and whether (i, j) is in the table."""
        j = d - i
        return j, (i <= n) & (j >= 1) & (j <= m)

    @triton.jit
    def _triangle(x):
        x = tl.maximum(x, 0).to(tl.int64)
        return x * (x + 1) // 2

    @triton.jit
    def _diagonal_offset(d, n, m):
        """Where diagonal d starts in an n x m diagonal-major table: its cells with i + j < d
        (inclusion-exclusion over the triangle i + j <= d - 1)."""
        k = d - 2
        return _triangle(k) - _triangle(k - n) - _triangle(k - m) + _triangle(k - n - m)

    @triton.jit
    def _fsd_inputs(p_match, p_gap, i, d, n, m, stride_mm, stride_gm):
        """match and gap of diagonal d's cells (0 outside the table)."""
        j, active = _cells(i, d, n, m)
        return (tl.load(p_match + (j - 1) * stride_mm, mask=active, other=0.0),
                tl.load(p_gap + (j - 1) * stride_gm, mask=active, other=0.0))

    @triton.jit
    def _fsd_bwd_inputs(p_gap, p_table, i, d, n, m, stride_gm):
        """gap and the saved C[i-1, j-1], C[i-1, j], C[i, j-1] of diagonal d's cells."""
        j, active = _cells(i, d, n, m)
        b_gap = tl.load(p_gap + (j - 1) * stride_gm, mask=active, other=0.0)
        b_diag, b_up, b_left = _neighbours(p_table, i, j, active, _diagonal_offset(d - 1, n, m),
                                           tl.maximum(d - 1 - m, 1), _diagonal_offset(d - 2, n, m),
                                           tl.maximum(d - 2 - m, 1))
        return b_gap, b_diag, b_up, b_left

    @triton.jit
    def _lcs_inputs(p_sim, i, d, n, m, stride_sm):
        j, active = _cells(i, d, n, m)
        return tl.load(p_sim + (j - 1) * stride_sm, mask=active, other=0.0)

    @triton.jit
    def _lcs_bwd_inputs(p_sim, p_table, i, d, n, m, stride_sm):
        """sim and the saved C[i-1, j], C[i, j-1] of diagonal d's cells."""
        j, active = _cells(i, d, n, m)
        b_sim = tl.load(p_sim + (j - 1) * stride_sm, mask=active, other=0.0)
        off_1, lo_1 = _diagonal_offset(d - 1, n, m), tl.maximum(d - 1 - m, 1)
        b_up, b_left = _up_left(p_table, i, j, active, off_1, lo_1)
        return b_sim, b_up, b_left

    @triton.jit
    def skew_kernel(
        x_ptr,  # [B, N, M] any dtype, last dimension contiguous
        out_ptr,  # [B, (N + M - 1) * N] the same dtype: cell (i, j) at (i + j) * N + i
        stride_xb, stride_xn,
        N, M,
        TILE_I: tl.constexpr,
        TILE_D: tl.constexpr,
    ):
        """Copies rows TILE_I rows at a time to diagonals: each tile is read along its rows and
        written along its diagonals, both runs of consecutive addresses (Triton transposes the tile
        through shared memory between the two)."""
        i_b = tl.program_id(0).to(tl.int64)
        i = tl.program_id(2) * TILE_I + tl.arange(0, TILE_I)  # [TILE_I] rows, 0-indexed
        # Diagonals d = i + j from the tile's first row on: the grid covers only those it meets.
        d = tl.program_id(2) * TILE_I + tl.program_id(1) * TILE_D + tl.arange(0, TILE_D)  # [TILE_D]
        j = d[None, :] - i[:, None]  # [TILE_I, TILE_D]
        inside = (i[:, None] < N) & (j >= 0) & (j < M)
        values = tl.load(x_ptr + i_b * stride_xb + i[:, None].to(tl.int64) * stride_xn + j, mask=inside)
        tl.store(out_ptr + i_b * (N + M - 1) * N + d[None, :].to(tl.int64) * N + i[:, None], values, mask=inside)

    # The rows kernels load each diagonal's inputs PREFETCH diagonals ahead (1 to 4) and keep them
    # in registers x_0 (this diagonal) ... x_{PREFETCH-1}, so that the loads' latency hides behind
    # that many diagonals of work.

    @triton.jit
    def fsd_fwd_rows_kernel(
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
        BLOCK: tl.constexpr,  # >= N: lane k holds row k + 1 on every diagonal
        PREFETCH: tl.constexpr,
    ):
        i_b = tl.program_id(0).to(tl.int64)
        n, m = _pair_lengths(len_ptr, i_b, N, M, HAS_LENGTHS)
        p_table = table_ptr + i_b * N * M
        lanes = tl.arange(0, BLOCK)
        i = lanes + 1
        p_match = match_ptr + i_b * stride_mb + lanes.to(tl.int64) * stride_mn
        p_gap = gap_ptr + i_b * stride_gb + lanes.to(tl.int64) * stride_gn
        # The previous diagonal in registers: left = C[i, j-1] (this lane's last cell), up = C[i-1, j]
        # and diag = C[i-1, j-1] (the row above's last two, shifted down one lane).
        b_left = tl.zeros([BLOCK], tl.float32)
        b_up = tl.zeros([BLOCK], tl.float32)
        b_diag = tl.zeros([BLOCK], tl.float32)
        b_cur = tl.zeros([BLOCK], tl.float32)
        b_match_0, b_gap_0 = _fsd_inputs(p_match, p_gap, i, 2, n, m, stride_mm, stride_gm)
        b_match_1, b_gap_1 = _fsd_inputs(p_match, p_gap, i, 3, n, m, stride_mm, stride_gm)
        b_match_2, b_gap_2 = _fsd_inputs(p_match, p_gap, i, 4, n, m, stride_mm, stride_gm)
        b_match_3, b_gap_3 = _fsd_inputs(p_match, p_gap, i, 5, n, m, stride_mm, stride_gm)
        off_0 = 0
        for d in range(2, n + m + 1):
            b_match_far, b_gap_far = _fsd_inputs(p_match, p_gap, i, d + PREFETCH, n, m, stride_mm, stride_gm)
            j, active = _cells(i, d, n, m)
            b_g = b_gap_0.to(tl.float32)
            b_best = _fsd_max(b_diag, b_up + b_g, b_left + b_g, gamma, inv_gamma_log2, HARD)
            # Outside the table 0: C[i, 0] is the left border of the next diagonal.
            b_cur = tl.where(active, b_match_0.to(tl.float32) + b_best, 0.0)
            lo, hi = _row_bounds(d, n, m)
            tl.store(p_table + off_0 + (i - lo), b_cur, mask=active)
            off_0 += hi - lo + 1
            b_diag = b_up
            b_up = _from_row_above(b_cur, lanes)
            b_left = b_cur
            if PREFETCH == 1:
                b_match_0, b_gap_0 = b_match_far, b_gap_far
            elif PREFETCH == 2:
                b_match_0, b_gap_0, b_match_1, b_gap_1 = b_match_1, b_gap_1, b_match_far, b_gap_far
            elif PREFETCH == 3:
                b_match_0, b_gap_0, b_match_1, b_gap_1 = b_match_1, b_gap_1, b_match_2, b_gap_2
                b_match_2, b_gap_2 = b_match_far, b_gap_far
            else:
                b_match_0, b_gap_0, b_match_1, b_gap_1 = b_match_1, b_gap_1, b_match_2, b_gap_2
                b_match_2, b_gap_2, b_match_3, b_gap_3 = b_match_3, b_gap_3, b_match_far, b_gap_far
        tl.store(out_ptr + i_b, tl.sum(tl.where(i == n, b_cur, 0.0), 0))

    @triton.jit
    def fsd_bwd_rows_kernel(
        gap_ptr,  # [B, N, M]
        table_ptr,  # [B, N*M] float32, from the forward
        grad_out_ptr,  # [B] float32
        grad_match_ptr,  # [B, N, M] zero-filled outside each pair's (n, m)
        grad_gap_ptr,  # [B, N, M] the same layout as grad_match
        len_ptr,  # [B, 2] int64
        stride_gb, stride_gn, stride_gm,
        stride_db, stride_dn, stride_dm,  # of both gradients
        N, M,
        inv_gamma_log2,
        HAS_LENGTHS: tl.constexpr,
        HARD: tl.constexpr,
        BLOCK: tl.constexpr,  # >= N
        PREFETCH: tl.constexpr,
    ):
        i_b = tl.program_id(0).to(tl.int64)
        n, m = _pair_lengths(len_ptr, i_b, N, M, HAS_LENGTHS)
        p_table = table_ptr + i_b * N * M
        lanes = tl.arange(0, BLOCK)
        i = lanes + 1
        p_gap = gap_ptr + i_b * stride_gb + lanes.to(tl.int64) * stride_gn
        p_grad_match = grad_match_ptr + i_b * stride_db + lanes.to(tl.int64) * stride_dn
        p_grad_gap = grad_gap_ptr + i_b * stride_db + lanes.to(tl.int64) * stride_dn
        b_grad_out = tl.load(grad_out_ptr + i_b)
        # Adjoint flowing into each lane's cell of the current diagonal from the two after it, and
        # the diagonal pushes of the last diagonal, still to be moved up one row.
        b_incoming = tl.zeros([BLOCK], tl.float32)
        b_pending_diag = tl.zeros([BLOCK], tl.float32)
        last = n + m  # the answer cell is alone on the last diagonal
        b_gap_0, b_diag_0, b_up_0, b_left_0 = _fsd_bwd_inputs(p_gap, p_table, i, last, n, m, stride_gm)
        b_gap_1, b_diag_1, b_up_1, b_left_1 = _fsd_bwd_inputs(p_gap, p_table, i, last - 1, n, m, stride_gm)
        b_gap_2, b_diag_2, b_up_2, b_left_2 = _fsd_bwd_inputs(p_gap, p_table, i, last - 2, n, m, stride_gm)
        b_gap_3, b_diag_3, b_up_3, b_left_3 = _fsd_bwd_inputs(p_gap, p_table, i, last - 3, n, m, stride_gm)
        for k in range(0, n + m - 1):
            d = last - k
            b_gap_far, b_diag_far, b_up_far, b_left_far = _fsd_bwd_inputs(
                p_gap, p_table, i, d - PREFETCH, n, m, stride_gm)
            j, active = _cells(i, d, n, m)
            b_g = b_gap_0.to(tl.float32)
            w_diag, w_up, w_left = _fsd_weights(b_diag_0, b_up_0 + b_g, b_left_0 + b_g, inv_gamma_log2, HARD)
            b_adj = tl.where(active, b_incoming + tl.where((i == n) & (j == m), b_grad_out, 0.0), 0.0)
            tl.store(p_grad_match + (j - 1) * stride_dm, b_adj.to(grad_match_ptr.dtype.element_ty), mask=active)
            tl.store(p_grad_gap + (j - 1) * stride_dm, (b_adj * (w_up + w_left)).to(grad_gap_ptr.dtype.element_ty),
                     mask=active)
            # C[i, j-1] gets the left push in this lane; C[i-1, j] the up push and C[i-1, j-1]
            # (two diagonals on) the diagonal push, both from the row below: one shift carries both.
            b_incoming = b_adj * w_left + _from_row_below(b_adj * w_up + b_pending_diag, lanes, BLOCK)
            b_pending_diag = b_adj * w_diag
            if PREFETCH == 1:
                b_gap_0, b_diag_0, b_up_0, b_left_0 = b_gap_far, b_diag_far, b_up_far, b_left_far
            elif PREFETCH == 2:
                b_gap_0, b_diag_0, b_up_0, b_left_0 = b_gap_1, b_diag_1, b_up_1, b_left_1
                b_gap_1, b_diag_1, b_up_1, b_left_1 = b_gap_far, b_diag_far, b_up_far, b_left_far
            elif PREFETCH == 3:
                b_gap_0, b_diag_0, b_up_0, b_left_0 = b_gap_1, b_diag_1, b_up_1, b_left_1
                b_gap_1, b_diag_1, b_up_1, b_left_1 = b_gap_2, b_diag_2, b_up_2, b_left_2
                b_gap_2, b_diag_2, b_up_2, b_left_2 = b_gap_far, b_diag_far, b_up_far, b_left_far
            else:
                b_gap_0, b_diag_0, b_up_0, b_left_0 = b_gap_1, b_diag_1, b_up_1, b_left_1
                b_gap_1, b_diag_1, b_up_1, b_left_1 = b_gap_2, b_diag_2, b_up_2, b_left_2
                b_gap_2, b_diag_2, b_up_2, b_left_2 = b_gap_3, b_diag_3, b_up_3, b_left_3
                b_gap_3, b_diag_3, b_up_3, b_left_3 = b_gap_far, b_diag_far, b_up_far, b_left_far

    @triton.jit
    def lcs_fwd_rows_kernel(
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
        BLOCK: tl.constexpr,  # >= N
        PREFETCH: tl.constexpr,
    ):
        i_b = tl.program_id(0).to(tl.int64)
        n, m = _pair_lengths(len_ptr, i_b, N, M, HAS_LENGTHS)
        p_table = table_ptr + i_b * N * M
        lanes = tl.arange(0, BLOCK)
        i = lanes + 1
        p_sim = sim_ptr + i_b * stride_sb + lanes.to(tl.int64) * stride_sn
        b_left = tl.zeros([BLOCK], tl.float32)
        b_up = tl.zeros([BLOCK], tl.float32)
        b_diag = tl.zeros([BLOCK], tl.float32)
        b_cur = tl.zeros([BLOCK], tl.float32)
        b_sim_0 = _lcs_inputs(p_sim, i, 2, n, m, stride_sm)
        b_sim_1 = _lcs_inputs(p_sim, i, 3, n, m, stride_sm)
        b_sim_2 = _lcs_inputs(p_sim, i, 4, n, m, stride_sm)
        b_sim_3 = _lcs_inputs(p_sim, i, 5, n, m, stride_sm)
        off_0 = 0
        for d in range(2, n + m + 1):
            b_sim_far = _lcs_inputs(p_sim, i, d + PREFETCH, n, m, stride_sm)
            j, active = _cells(i, d, n, m)
            b_s = b_sim_0.to(tl.float32)
            b_skip = _lcs_skip(b_up, b_left, gamma, inv_gamma_log2, HARD)
            b_cur = tl.where(active, tl.where(b_s > threshold, b_diag + b_s, b_skip), 0.0)
            lo, hi = _row_bounds(d, n, m)
            tl.store(p_table + off_0 + (i - lo), b_cur, mask=active)
            off_0 += hi - lo + 1
            b_diag = b_up
            b_up = _from_row_above(b_cur, lanes)
            b_left = b_cur
            if PREFETCH == 1:
                b_sim_0 = b_sim_far
            elif PREFETCH == 2:
                b_sim_0, b_sim_1 = b_sim_1, b_sim_far
            elif PREFETCH == 3:
                b_sim_0, b_sim_1, b_sim_2 = b_sim_1, b_sim_2, b_sim_far
            else:
                b_sim_0, b_sim_1, b_sim_2, b_sim_3 = b_sim_1, b_sim_2, b_sim_3, b_sim_far
        tl.store(out_ptr + i_b, tl.sum(tl.where(i == n, b_cur, 0.0), 0))

    @triton.jit
    def lcs_bwd_rows_kernel(
        sim_ptr,  # [B, N, M]
        table_ptr,  # [B, N*M] float32, from the forward
        grad_out_ptr,  # [B] float32
        grad_sim_ptr,  # [B, N, M] zero-filled outside each pair's (n, m)
        len_ptr,  # [B, 2] int64
        stride_sb, stride_sn, stride_sm,
        stride_db, stride_dn, stride_dm,  # of grad_sim
        N, M,
        threshold,
        inv_gamma_log2,
        HAS_LENGTHS: tl.constexpr,
        HARD: tl.constexpr,
        BLOCK: tl.constexpr,  # >= N
        PREFETCH: tl.constexpr,
    ):
        i_b = tl.program_id(0).to(tl.int64)
        n, m = _pair_lengths(len_ptr, i_b, N, M, HAS_LENGTHS)
        p_table = table_ptr + i_b * N * M
        lanes = tl.arange(0, BLOCK)
        i = lanes + 1
        p_sim = sim_ptr + i_b * stride_sb + lanes.to(tl.int64) * stride_sn
        p_grad_sim = grad_sim_ptr + i_b * stride_db + lanes.to(tl.int64) * stride_dn
        b_grad_out = tl.load(grad_out_ptr + i_b)
        b_incoming = tl.zeros([BLOCK], tl.float32)
        b_pending_diag = tl.zeros([BLOCK], tl.float32)
        last = n + m
        b_sim_0, b_up_0, b_left_0 = _lcs_bwd_inputs(p_sim, p_table, i, last, n, m, stride_sm)
        b_sim_1, b_up_1, b_left_1 = _lcs_bwd_inputs(p_sim, p_table, i, last - 1, n, m, stride_sm)
        b_sim_2, b_up_2, b_left_2 = _lcs_bwd_inputs(p_sim, p_table, i, last - 2, n, m, stride_sm)
        b_sim_3, b_up_3, b_left_3 = _lcs_bwd_inputs(p_sim, p_table, i, last - 3, n, m, stride_sm)
        for k in range(0, n + m - 1):
            d = last - k
            b_sim_far, b_up_far, b_left_far = _lcs_bwd_inputs(p_sim, p_table, i, d - PREFETCH, n, m, stride_sm)
            j, active = _cells(i, d, n, m)
            matched = b_sim_0.to(tl.float32) > threshold
            w_up = _lcs_up_weight(b_up_0, b_left_0, inv_gamma_log2, HARD)
            b_adj = tl.where(active, b_incoming + tl.where((i == n) & (j == m), b_grad_out, 0.0), 0.0)
            b_through = tl.where(matched, b_adj, 0.0)
            b_skipped = b_adj - b_through
            tl.store(p_grad_sim + (j - 1) * stride_dm, b_through.to(grad_sim_ptr.dtype.element_ty), mask=active)
            b_incoming = b_skipped * (1.0 - w_up) + _from_row_below(b_skipped * w_up + b_pending_diag, lanes, BLOCK)
            b_pending_diag = b_through
            if PREFETCH == 1:
                b_sim_0, b_up_0, b_left_0 = b_sim_far, b_up_far, b_left_far
            elif PREFETCH == 2:
                b_sim_0, b_up_0, b_left_0 = b_sim_1, b_up_1, b_left_1
                b_sim_1, b_up_1, b_left_1 = b_sim_far, b_up_far, b_left_far
            elif PREFETCH == 3:
                b_sim_0, b_up_0, b_left_0 = b_sim_1, b_up_1, b_left_1
                b_sim_1, b_up_1, b_left_1 = b_sim_2, b_up_2, b_left_2
                b_sim_2, b_up_2, b_left_2 = b_sim_far, b_up_far, b_left_far
            else:
                b_sim_0, b_up_0, b_left_0 = b_sim_1, b_up_1, b_left_1
                b_sim_1, b_up_1, b_left_1 = b_sim_2, b_up_2, b_left_2
                b_sim_2, b_up_2, b_left_2 = b_sim_3, b_up_3, b_left_3
                b_sim_3, b_up_3, b_left_3 = b_sim_far, b_up_far, b_left_far


def next_power_of_2(n):
    """The smallest power of two >= n (n >= 1), in plain Python: triton.next_power_of_2 is a
    constexpr function whose call costs microseconds on every launch."""
    return 1 << (n - 1).bit_length()


_NO_LENGTHS = {}


def _no_lengths(device):
    """The placeholder lengths argument of launches without lengths (never read), one per device."""
    if device not in _NO_LENGTHS:
        _NO_LENGTHS[device] = torch.zeros(1, 2, dtype=torch.long, device=device)
    return _NO_LENGTHS[device]


def chunks_launch_config(n_rows, n_cols, max_block=1024):
    """BLOCK and num_warps of the "chunks" kernels: lanes over the diagonal, BLOCK rows at a time."""
    block = min(next_power_of_2(min(n_rows, n_cols)), max_block)
    return block, max(1, min(block // 64, 8))


def rows_launch_config(n_rows):
    """BLOCK and num_warps of the "rows" kernels: one lane per row, so BLOCK >= N; one row per thread
    up to 16 warps (the fastest of 1-16 warps at every point swept on an H100: bench/RESULTS.md)."""
    block = max(next_power_of_2(n_rows), 16)
    return block, max(1, min(block // 32, 16))


def rows_prefetch(block, requested):
    """The prefetch depth the rows kernels use at `block` rows: at most 2 past 1024 rows, where each
    thread holds several rows and deeper buffers spill (ptxas caps 16 warps at 128 registers)."""
    return requested if block <= 1024 else min(requested, 2)


def _rows_options(block, op, settings):
    return {"PREFETCH": rows_prefetch(block, settings.prefetch(op))}


def kernel_family(n_rows, settings=None):
    """Which kernels a table of n_rows rows runs on: "rows" (the previous diagonals stay in
    registers, passed one lane down per diagonal) up to settings.max_rows rows when settings.family
    is "rows", else "chunks" (the previous diagonals are re-read from the table in global memory)."""
    settings = settings or current_settings()
    return "rows" if settings.family == "rows" and n_rows <= settings.max_rows else "chunks"


def skews(shape, settings=None):
    """Whether a [B, N, M] table is read and differentiated diagonal-major: at least
    settings.skew_min_cells cells per pair (None: never), at most twice as tall as wide, and a long
    sweep (skew_min_diagonals anti-diagonals) or a big batch (skew_min_batch_cells cells in all)."""
    settings = settings or current_settings()
    batch, n_rows, n_cols = shape
    if settings.skew_min_cells is None or n_rows * n_cols < settings.skew_min_cells or n_rows > 2 * n_cols:
        return False
    return (n_rows + n_cols - 1 >= settings.skew_min_diagonals
            or batch * n_rows * n_cols >= settings.skew_min_batch_cells)


def kernels_for(op, family):
    """(forward, backward) Triton kernels of op ("fsd" or "lcs") in family ("rows" or "chunks")."""
    if op == "fsd":
        return (fsd_fwd_rows_kernel, fsd_bwd_rows_kernel) if family == "rows" else (fsd_fwd_kernel, fsd_bwd_kernel)
    return (lcs_fwd_rows_kernel, lcs_bwd_rows_kernel) if family == "rows" else (lcs_fwd_kernel, lcs_bwd_kernel)


def _diagonal_major_strides(shape):
    """Strides of a [B, N, M] tensor laid out diagonal-major: cell (i, j) of a pair at (i + j) * N + i
    of its (N + M - 1) * N elements (the first stride)."""
    _, n_rows, n_cols = shape
    return (n_rows + n_cols - 1) * n_rows, n_rows + 1, n_rows


def diagonal_major_empty(shape, dtype, device, zero=False):
    """A [B, N, M] tensor (uninitialised, or zeros) whose anti-diagonals are contiguous
    (_diagonal_major_strides)."""
    return diagonal_major_view(diagonal_major_buffer(shape, dtype, device, zero), shape)


def diagonal_major_buffer(shape, dtype, device, zero=False):
    """The storage [B, (N+M-1)*N] of a diagonal-major [B, N, M] tensor (uninitialised, or zeros)."""
    return (torch.zeros if zero else torch.empty)(shape[0], _diagonal_major_strides(shape)[0], dtype=dtype,
                                                   device=device)


def diagonal_major_view(buffer, shape):
    """The diagonal-major [B, N, M] view of a buffer [B, (N+M-1)*N] (diagonal_major_buffer)."""
    return buffer.as_strided(shape, _diagonal_major_strides(shape))




def runs_on(x):
    """Whether the Triton kernels can take tensor x: on a GPU, or anywhere under TRITON_INTERPRET=1
    (set before Triton is imported)."""
    return x.is_cuda or os.environ.get("TRITON_INTERPRET") == "1"


def is_diagonal_major(x):
    """Whether x [B, N, M] already lies as diagonal_major_empty lays it out (strides of size-1
    dimensions do not matter), pairs not overlapping."""
    span, row_stride, col_stride = _diagonal_major_strides(x.shape)
    batch, n_rows, n_cols = x.shape
    return ((batch == 1 or x.stride(0) >= span) and (n_rows == 1 or x.stride(1) == row_stride)
            and (n_cols == 1 or x.stride(2) == col_stride))


def to_diagonal_major(x, settings=None):
    """x [B, N, M] diagonal-major (see diagonal_major_empty): x itself when it already is (a producer
    that writes that layout pays no copy), else a copy. Where the Triton kernels run, one skew_kernel
    launch, whose reads and writes are both coalesced; torch's strided copy, which writes one element
    per N, elsewhere."""
    if is_diagonal_major(x):
        return x
    out = diagonal_major_empty(x.shape, x.dtype, x.device)
    batch, n_rows, n_cols = x.shape
    if triton is None or not runs_on(x) or x.numel() == 0:
        return out.copy_(x)
    if x.stride(2) != 1:
        x = x.contiguous()
    tile_i, tile_d = (settings or current_settings()).skew_tile
    grid = (batch, (tile_i - 1 + n_cols + tile_d - 1) // tile_d, (n_rows + tile_i - 1) // tile_i)
    skew_kernel[grid](x, out, x.stride(0), x.stride(1), n_rows, n_cols, TILE_I=tile_i, TILE_D=tile_d, num_warps=4)
    return out


def _gradient_like(shape, dtype, device, lengths, skew):
    """An output gradient: diagonal-major when `skew`; zeros where the kernel leaves cells out (outside
    each pair's (n, m) when there are lengths)."""
    if skew:
        return diagonal_major_empty(shape, dtype, device, zero=lengths is not None)
    return (torch.empty if lengths is None else torch.zeros)(shape, dtype=dtype, device=device)


def _inv_gamma_log2(gamma):
    return _LOG2E / gamma if gamma > 0 else 0.0


def _launch_args(lengths, shape, device, settings):
    """Launch pieces shared by all kernels: (family, lengths argument, HAS_LENGTHS, BLOCK, num_warps)."""
    _, n_rows, n_cols = shape
    family = kernel_family(n_rows, settings)
    block, num_warps = (rows_launch_config(n_rows) if family == "rows"
                        else chunks_launch_config(n_rows, n_cols, settings.max_chunk_block))
    if family == "chunks" and settings.chunk_block is not None:
        block = settings.chunk_block
    num_warps = settings.num_warps or num_warps
    if lengths is None:
        return family, _no_lengths(device), False, block, num_warps
    return family, lengths.contiguous(), True, block, num_warps


def fsd_fwd(match, gap, gamma, lengths, settings=None, zero_table=False):
    """Returns (values [B] float32, table [B, N*M] float32); zero_table: the cells no pair reaches
    (outside the lengths) are 0, not left as they were in memory."""
    settings = settings or current_settings()
    batch, n_rows, n_cols = match.shape
    table = (torch.zeros if zero_table else torch.empty)(batch, n_rows * n_cols, dtype=torch.float32, device=match.device)
    out = torch.empty(batch, dtype=torch.float32, device=match.device)
    if batch == 0:
        return out, table
    family, len_arg, has_lengths, block, num_warps = _launch_args(lengths, match.shape, match.device, settings)
    kernel = kernels_for("fsd", family)[0]
    extra = _rows_options(block, "fsd", settings) if family == "rows" else {}
    kernel[(batch,)](
        match, gap, table, out, len_arg, *match.stride(), *gap.stride(), n_rows, n_cols,
        gamma, _inv_gamma_log2(gamma), HAS_LENGTHS=has_lengths, HARD=gamma == 0, BLOCK=block,
        num_warps=num_warps, **extra)
    return out, table


def fsd_bwd(grad_out, gap, table, gamma, lengths, match_dtype, skew=False, settings=None, out=None):
    """Gradients [B, N, M] of sum(grad_out * value) w.r.t. match and gap (diagonal-major when skew),
    written into `out` (two tensors laid out so, zeros outside the lengths) when given."""
    settings = settings or current_settings()
    batch, n_rows, n_cols = gap.shape
    # The kernel writes every cell inside each pair's (n, m); only cells outside need zeros.
    grad_match, grad_gap = out or (_gradient_like(gap.shape, match_dtype, gap.device, lengths, skew),
                                   _gradient_like(gap.shape, gap.dtype, gap.device, lengths, skew))
    if batch == 0:
        return grad_match, grad_gap
    family, len_arg, has_lengths, block, num_warps = _launch_args(lengths, gap.shape, gap.device, settings)
    grad_out = grad_out.float().contiguous()
    options = dict(HAS_LENGTHS=has_lengths, HARD=gamma == 0, BLOCK=block, num_warps=num_warps)
    backward = kernels_for("fsd", family)[1]
    if family == "rows":
        backward[(batch,)](gap, table, grad_out, grad_match, grad_gap, len_arg, *gap.stride(), *grad_match.stride(),
                           n_rows, n_cols, _inv_gamma_log2(gamma), **options, **_rows_options(block, "fsd", settings))
        return grad_match, grad_gap
    ring = torch.empty(batch, 7, n_rows + 2, dtype=torch.float32, device=gap.device)
    backward[(batch,)](gap, table, grad_out, grad_match, grad_gap, ring, len_arg, *gap.stride(), *grad_match.stride(),
                       n_rows, n_cols, _inv_gamma_log2(gamma), **options)
    return grad_match, grad_gap


def lcs_fwd(sim, threshold, gamma, lengths, settings=None, zero_table=False):
    """Returns (values [B] float32, table [B, N*M] float32); zero_table as in fsd_fwd."""
    settings = settings or current_settings()
    batch, n_rows, n_cols = sim.shape
    table = (torch.zeros if zero_table else torch.empty)(batch, n_rows * n_cols, dtype=torch.float32, device=sim.device)
    out = torch.empty(batch, dtype=torch.float32, device=sim.device)
    if batch == 0:
        return out, table
    family, len_arg, has_lengths, block, num_warps = _launch_args(lengths, sim.shape, sim.device, settings)
    kernel = kernels_for("lcs", family)[0]
    extra = _rows_options(block, "lcs", settings) if family == "rows" else {}
    kernel[(batch,)](
        sim, table, out, len_arg, *sim.stride(), n_rows, n_cols, threshold, gamma, _inv_gamma_log2(gamma),
        HAS_LENGTHS=has_lengths, HARD=gamma == 0, BLOCK=block, num_warps=num_warps, **extra)
    return out, table


def lcs_bwd(grad_out, sim, table, threshold, gamma, lengths, skew=False, settings=None, out=None):
    """Gradient [B, N, M] of sum(grad_out * value) w.r.t. sim (diagonal-major when skew), written
    into `out` when given (see fsd_bwd)."""
    settings = settings or current_settings()
    batch, n_rows, n_cols = sim.shape
    grad_sim = out if out is not None else _gradient_like(sim.shape, sim.dtype, sim.device, lengths, skew)
    if batch == 0:
        return grad_sim
    family, len_arg, has_lengths, block, num_warps = _launch_args(lengths, sim.shape, sim.device, settings)
    grad_out = grad_out.float().contiguous()
    options = dict(HAS_LENGTHS=has_lengths, HARD=gamma == 0, BLOCK=block, num_warps=num_warps)
    backward = kernels_for("lcs", family)[1]
    if family == "rows":
        backward[(batch,)](sim, table, grad_out, grad_sim, len_arg, *sim.stride(), *grad_sim.stride(),
                           n_rows, n_cols, threshold, _inv_gamma_log2(gamma), **options,
                           **_rows_options(block, "lcs", settings))
        return grad_sim
    ring = torch.empty(batch, 7, n_rows + 2, dtype=torch.float32, device=sim.device)
    backward[(batch,)](sim, table, grad_out, grad_sim, ring, len_arg, *sim.stride(), *grad_sim.stride(),
                       n_rows, n_cols, threshold, _inv_gamma_log2(gamma), **options)
    return grad_sim


def _require_triton():
    if triton is None:
        raise RuntimeError("backend 'triton' needs the triton package (pip install triton)")


class FSDTriton(torch.autograd.Function):
    """FSD values [B] float32 of match, gap [B, N, M] (lengths [B, 2] int64 or None), with the
    backward recomputing the soft-max weights from the saved [B, N*M] table."""

    @staticmethod
    def forward(ctx, match, gap, gamma, lengths):
        _require_triton()
        ctx.settings = current_settings()  # the backward launches what this forward chose
        ctx.skew = skews(match.shape, ctx.settings)
        if ctx.skew:
            match, gap = to_diagonal_major(match, ctx.settings), to_diagonal_major(gap, ctx.settings)
        out, table = fsd_fwd(match, gap, gamma, lengths, ctx.settings)
        ctx.save_for_backward(gap, table, lengths)
        ctx.gamma, ctx.match_dtype = gamma, match.dtype
        return out

    @staticmethod
    def backward(ctx, grad_out):
        refuse_second_derivative("kernels.fsd (triton backend)")
        gap, table, lengths = ctx.saved_tensors
        grad_match, grad_gap = fsd_bwd(grad_out, gap, table, ctx.gamma, lengths, ctx.match_dtype, ctx.skew,
                                       ctx.settings)
        return grad_match, grad_gap, None, None


class LCSTriton(torch.autograd.Function):
    """LCS values [B] float32 of sim [B, N, M] (lengths [B, 2] int64 or None), with the backward
    recomputing each unmatched cell's weights from the saved [B, N*M] table."""

    @staticmethod
    def forward(ctx, sim, threshold, gamma, lengths):
        _require_triton()
        ctx.settings = current_settings()
        ctx.skew = skews(sim.shape, ctx.settings)
        if ctx.skew:
            sim = to_diagonal_major(sim, ctx.settings)
        out, table = lcs_fwd(sim, threshold, gamma, lengths, ctx.settings)
        ctx.save_for_backward(sim, table, lengths)
        ctx.threshold, ctx.gamma = threshold, gamma
        return out

    @staticmethod
    def backward(ctx, grad_out):
        refuse_second_derivative("kernels.lcs (triton backend)")
        sim, table, lengths = ctx.saved_tensors
        grad_sim = lcs_bwd(grad_out, sim, table, ctx.threshold, ctx.gamma, lengths, ctx.skew, ctx.settings)
        return grad_sim, None, None, None

