"""The Triton kernels of the three DP ops, one recursion per family ("chunks" and "rows",
kernels.shared.triton), the op chosen by the constexpr OP, as flash-linear-attention's common kernels
serve several ops; and their launches (dp_forward, dp_backward), which each op's operator calls.

- OP="fsd": C[i, j] = x + max_gamma(C[i-1, j-1], y + C[i-1, j], y + C[i, j-1]), 0 on the border
  (x: match, y: gap).
- OP="soft_dtw": R[i, j] = x + min_gamma(R[i-1, j-1], R[i-1, j], R[i, j-1]), R[0, 0] = 0 and +inf
  elsewhere on the border, +inf outside the Sakoe-Chiba band (x: cost; y never read).
- OP="lcs": C[i, j] = C[i-1, j-1] + x if x > threshold, else max_gamma(C[i-1, j], C[i, j-1]), 0 on
  the border (x: similarity; the backward reads it as y).
"""
import torch

from ftcl.kernels.shared.launch import _inv_gamma_log2, _launch_args, rows_launch

try:
    import triton
    import triton.language as tl

    from ftcl.kernels.shared.triton import (_adjoint, _band_extent, _band_program, _cells, _diagonal_offset,
                                            _edge_from_above, _edge_from_below, _edge_to_above, _edge_to_below,
                                            _from_row_above, _from_row_below, _neighbours, _pair_lengths, _push,
                                            _reverse_step, _row_bounds, _up_left)
except ImportError:  # the other backends work without Triton
    triton = None

if triton is not None:

    @triton.jit
    def _max3(b_diag, b_up, b_left):
        """The greatest of three, NaN if any is NaN (as torch.maximum)."""
        return tl.maximum(tl.maximum(b_diag, b_up, propagate_nan=tl.PropagateNan.ALL), b_left,
                          propagate_nan=tl.PropagateNan.ALL)

    @triton.jit
    def _min3(b_diag, b_up, b_left):
        """The least of three, NaN if any is NaN (as torch.minimum)."""
        return tl.minimum(tl.minimum(b_diag, b_up, propagate_nan=tl.PropagateNan.ALL), b_left,
                          propagate_nan=tl.PropagateNan.ALL)

    @triton.jit
    def _soft_max(b_diag, b_up, b_left, gamma, inv_gamma_log2, HARD: tl.constexpr):
        """max_gamma of FSD's three candidates (the hard max when HARD)."""
        b_max = _max3(b_diag, b_up, b_left)
        if HARD:
            return b_max
        b_sum = (tl.exp2((b_diag - b_max) * inv_gamma_log2) + tl.exp2((b_up - b_max) * inv_gamma_log2)
                 + tl.exp2((b_left - b_max) * inv_gamma_log2))
        return b_max + gamma * tl.log(b_sum)

    @triton.jit
    def _soft_max_weights(b_diag, b_up, b_left, inv_gamma_log2, HARD: tl.constexpr):
        """Soft-max (or first-arg-max) weights of FSD's three candidates."""
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
    def _soft_min(b_diag, b_up, b_left, gamma, inv_gamma_log2, HARD: tl.constexpr):
        """min_gamma of soft-DTW's three predecessors (the hard min when HARD); +inf when all three
        are, NaN when any is."""
        b_min = _min3(b_diag, b_up, b_left)
        if HARD:
            return b_min
        reachable = b_min < float("inf")  # False for +inf and NaN, which are the answer there
        safe = tl.where(reachable, b_min, 0.0)
        b_sum = (tl.exp2((safe - b_diag) * inv_gamma_log2) + tl.exp2((safe - b_up) * inv_gamma_log2)
                 + tl.exp2((safe - b_left) * inv_gamma_log2))
        # b_sum >= 1 where the minimum is finite (its own term is 1); the floor only spares the
        # unreachable lanes a log(0).
        return tl.where(reachable, safe - gamma * tl.log(tl.maximum(b_sum, 1.0)), b_min)

    @triton.jit
    def _soft_min_weights(b_diag, b_up, b_left, inv_gamma_log2, HARD: tl.constexpr):
        """Soft-min (or first-arg-min) weights of soft-DTW's three predecessors; 0 where none is
        reachable."""
        b_min = _min3(b_diag, b_up, b_left)
        reachable = (b_min < float("inf")).to(tl.float32)
        if HARD:
            w_diag = ((b_diag <= b_up) & (b_diag <= b_left)).to(tl.float32)
            w_up = (1.0 - w_diag) * (b_up <= b_left).to(tl.float32)
            return w_diag * reachable, w_up * reachable, (1.0 - w_diag - w_up) * reachable
        safe = tl.where(b_min < float("inf"), b_min, 0.0)
        e_diag = tl.exp2((safe - b_diag) * inv_gamma_log2)
        e_up = tl.exp2((safe - b_up) * inv_gamma_log2)
        e_left = tl.exp2((safe - b_left) * inv_gamma_log2)
        scale = reachable / tl.maximum(e_diag + e_up + e_left, 1.0)  # the sum is >= 1 where reachable
        return e_diag * scale, e_up * scale, e_left * scale

    @triton.jit
    def _lcs_skip(b_up, b_left, gamma, inv_gamma_log2, HARD: tl.constexpr):
        """max_gamma(C[i-1, j], C[i, j-1]): an unmatched LCS cell's value."""
        b_max = tl.maximum(b_up, b_left)
        if HARD:
            return b_max
        b_min = tl.minimum(b_up, b_left)
        return b_max + gamma * tl.log(1.0 + tl.exp2((b_min - b_max) * inv_gamma_log2))

    @triton.jit
    def _lcs_weights(b_sim, b_up, b_left, threshold, inv_gamma_log2, HARD: tl.constexpr):
        """An LCS cell's weights: (1, ., .) where matched (see _shares), else (0, up, left), up's
        share a soft max of the two (ties to the upper neighbour when HARD)."""
        w_diag = (b_sim.to(tl.float32) > threshold).to(tl.float32)
        if HARD:
            w_up = (b_up >= b_left).to(tl.float32)
        else:
            w_up = 1.0 / (1.0 + tl.exp2((b_left - b_up) * inv_gamma_log2))
        return w_diag, w_up, 1.0 - w_up

    @triton.jit
    def _border(b_diag, b_up, b_left, i, j):
        """The predecessors of cells (i, j) with soft-DTW's border: R[0, 0] = 0, +inf elsewhere on
        row and column 0 (whatever the table or the registers hold there)."""
        inf = float("inf")
        b_diag = tl.where((i > 1) & (j > 1), b_diag, tl.where((i == 1) & (j == 1), 0.0, inf))
        return b_diag, tl.where(i > 1, b_up, inf), tl.where(j > 1, b_left, inf)

    @triton.jit
    def _inside_band(i, j, n, m, band, HAS_BAND: tl.constexpr):
        """Whether cells (i, j) lie inside the Sakoe-Chiba band of an n x m table (tslearn's mask)."""
        if HAS_BAND:
            offset = i - j
            return (offset >= -band - tl.maximum(m - n, 0)) & (offset <= band + tl.maximum(n - m, 0))
        return i == i

    @triton.jit
    def _cell(b_x, b_y, b_diag, b_up, b_left, i, j, n, m, gamma, inv_gamma_log2, band, threshold, OP: tl.constexpr,
              HAS_BAND: tl.constexpr, HARD: tl.constexpr):
        """The value of cells (i, j) from their input(s) and predecessors (as the table holds them)."""
        if OP == "soft_dtw":
            b_diag, b_up, b_left = _border(b_diag, b_up, b_left, i, j)
            b_value = b_x.to(tl.float32) + _soft_min(b_diag, b_up, b_left, gamma, inv_gamma_log2, HARD)
            return tl.where(_inside_band(i, j, n, m, band, HAS_BAND), b_value, float("inf"))
        if OP == "lcs":
            b_sim = b_x.to(tl.float32)
            return tl.where(b_sim > threshold, b_diag + b_sim, _lcs_skip(b_up, b_left, gamma, inv_gamma_log2, HARD))
        b_y = b_y.to(tl.float32)
        b_best = _soft_max(b_diag, b_up + b_y, b_left + b_y, gamma, inv_gamma_log2, HARD)
        return b_x.to(tl.float32) + b_best

    @triton.jit
    def _predecessors(p_table, i, j, mask, off_1, lo_1, off_2, lo_2, OP: tl.constexpr):
        """A backward's saved C[i-1, j-1], C[i-1, j], C[i, j-1] (the diagonal one unread for LCS,
        whose weights do not use it; soft-DTW's border applied)."""
        if OP == "lcs":
            b_up, b_left = _up_left(p_table, i, j, mask, off_1, lo_1)
            return tl.zeros(i.shape, tl.float32), b_up, b_left
        b_diag, b_up, b_left = _neighbours(p_table, i, j, mask, off_1, lo_1, off_2, lo_2)
        if OP == "soft_dtw":
            b_diag, b_up, b_left = _border(b_diag, b_up, b_left, i, j)
        return b_diag, b_up, b_left

    @triton.jit
    def _weights(b_y, b_diag, b_up, b_left, threshold, inv_gamma_log2, OP: tl.constexpr, HARD: tl.constexpr):
        """The share of a cell's adjoint each predecessor gets (diag, up, left; LCS's as _lcs_weights)."""
        if OP == "soft_dtw":
            return _soft_min_weights(b_diag, b_up, b_left, inv_gamma_log2, HARD)
        if OP == "lcs":
            return _lcs_weights(b_y, b_up, b_left, threshold, inv_gamma_log2, HARD)
        b_y = b_y.to(tl.float32)
        return _soft_max_weights(b_diag, b_up + b_y, b_left + b_y, inv_gamma_log2, HARD)

    @triton.jit
    def _shares(b_adj, w_diag, w_up, w_left, OP: tl.constexpr):
        """(to diag, to up, to left, gradient of x, gradient of y) of a cell's adjoint b_adj. LCS: a
        matched cell sends it all to the diagonal and to its similarity, an unmatched one up and left."""
        if OP == "lcs":
            b_through = tl.where(w_diag > 0.0, b_adj, 0.0)
            b_skipped = b_adj - b_through
            return b_through, b_skipped * w_up, b_skipped * w_left, b_through, b_through
        return b_adj * w_diag, b_adj * w_up, b_adj * w_left, b_adj, b_adj * (w_up + w_left)

    @triton.jit
    def dp_fwd_kernel(
        x_ptr,  # [B, N, M] any float dtype, any strides: FSD's match, soft-DTW's cost, LCS's similarity
        y_ptr,  # [B, N, M] FSD's gap (unread by the others)
        table_ptr,  # [B, N*M] float32, diagonal-major per pair
        out_ptr,  # [B] float32
        len_ptr,  # [B, 2] int64, read only when HAS_LENGTHS
        stride_xb, stride_xn, stride_xm,
        stride_yb, stride_yn, stride_ym,
        N, M,
        gamma,
        inv_gamma_log2,
        band,  # soft-DTW's Sakoe-Chiba radius when HAS_BAND
        threshold,  # LCS's
        OP: tl.constexpr,
        HAS_LENGTHS: tl.constexpr,
        HAS_BAND: tl.constexpr,
        HARD: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        i_b = tl.program_id(0).to(tl.int64)
        n, m = _pair_lengths(len_ptr, i_b, N, M, HAS_LENGTHS)
        p_table = table_ptr + i_b * N * M
        p_x = x_ptr + i_b * stride_xb
        p_y = y_ptr + i_b * stride_yb
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
                b_x = tl.load(p_x + (i - 1) * stride_xn + (j - 1) * stride_xm, mask=mask, other=0.0)
                b_y = b_x
                if OP == "fsd":
                    b_y = tl.load(p_y + (i - 1) * stride_yn + (j - 1) * stride_ym, mask=mask, other=0.0)
                b_diag, b_up, b_left = _neighbours(p_table, i, j, mask, off_1, lo_1, off_2, lo_2)
                b_value = _cell(b_x, b_y, b_diag, b_up, b_left, i, j, n, m, gamma, inv_gamma_log2, band, threshold,
                                OP, HAS_BAND, HARD)
                tl.store(p_table + off_0 + (i - lo), b_value, mask=mask)
            # Every lane's diagonal must be visible before any lane reads it as a neighbour.
            tl.debug_barrier()
            off_2, lo_2 = off_1, lo_1
            off_1, lo_1 = off_0, lo
            off_0 += hi - lo + 1
        tl.store(out_ptr + i_b, tl.load(p_table + off_0 - 1))

    @triton.jit
    def dp_bwd_kernel(
        y_ptr,  # [B, N, M] FSD's gap, LCS's similarity (unread for soft-DTW)
        table_ptr,  # [B, N*M] float32, from the forward
        grad_out_ptr,  # [B] float32
        grad_x_ptr,  # [B, N, M] zero-filled outside each pair's (n, m): of match / cost / similarity
        grad_y_ptr,  # [B, N, M] the same layout: of FSD's gap (unwritten by the others)
        ring_ptr,  # [B, 7, N + 2] float32 scratch
        len_ptr,  # [B, 2] int64
        stride_yb, stride_yn, stride_ym,
        stride_db, stride_dn, stride_dm,  # of both gradients
        N, M,
        inv_gamma_log2,
        band,
        threshold,
        OP: tl.constexpr,
        HAS_LENGTHS: tl.constexpr,
        HAS_BAND: tl.constexpr,
        HARD: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        i_b = tl.program_id(0).to(tl.int64)
        n, m = _pair_lengths(len_ptr, i_b, N, M, HAS_LENGTHS)
        p_table = table_ptr + i_b * N * M
        p_y = y_ptr + i_b * stride_yb
        p_grad_x = grad_x_ptr + i_b * stride_db
        p_grad_y = grad_y_ptr + i_b * stride_db
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
                b_y = tl.zeros([BLOCK], tl.float32)
                if OP != "soft_dtw":
                    b_y = tl.load(p_y + (i - 1) * stride_yn + (j - 1) * stride_ym, mask=mask, other=0.0)
                b_diag, b_up, b_left = _predecessors(p_table, i, j, mask, off_1, lo_1, off_2, lo_2, OP)
                w_diag, w_up, w_left = _weights(b_y, b_diag, b_up, b_left, threshold, inv_gamma_log2, OP, HARD)
                b_adj = _adjoint(p_ring, i, j, mask, n, m, d, stride_slot, b_grad_out)
                if OP == "soft_dtw":
                    b_adj = tl.where(_inside_band(i, j, n, m, band, HAS_BAND), b_adj, 0.0)
                b_to_diag, b_to_up, b_to_left, b_grad_x, b_grad_y = _shares(b_adj, w_diag, w_up, w_left, OP)
                p_cell = (i - 1).to(tl.int64) * stride_dn + (j - 1) * stride_dm
                tl.store(p_grad_x + p_cell, b_grad_x.to(grad_x_ptr.dtype.element_ty), mask=mask)
                if OP == "fsd":
                    tl.store(p_grad_y + p_cell, b_grad_y.to(grad_y_ptr.dtype.element_ty), mask=mask)
                _push(p_ring, i, mask, d, stride_slot, b_to_diag, b_to_up, b_to_left)
            tl.debug_barrier()
            off_0 = off_1

    @triton.jit
    def _inputs(p_x, p_y, i, d, n, m, stride_xm, stride_ym, OP: tl.constexpr):
        """x and y of diagonal d's cells (0 outside the table; y is x but for FSD)."""
        j, active = _cells(i, d, n, m)
        b_x = tl.load(p_x + (j - 1) * stride_xm, mask=active, other=0.0)
        if OP != "fsd":
            return b_x, b_x
        return b_x, tl.load(p_y + (j - 1) * stride_ym, mask=active, other=0.0)

    @triton.jit
    def _bwd_inputs(p_y, p_table, i, d, n, n_last, m, stride_ym, OP: tl.constexpr):
        """y (0 for soft-DTW) and the saved predecessors (_predecessors) of diagonal d's cells in rows
        up to n_last (offsets in the whole n x m table)."""
        j, active = _cells(i, d, n_last, m)
        if OP == "soft_dtw":
            b_y = tl.zeros(i.shape, tl.float32)
        else:
            b_y = tl.load(p_y + (j - 1) * stride_ym, mask=active, other=0.0)
        b_diag, b_up, b_left = _predecessors(p_table, i, j, active, _diagonal_offset(d - 1, n, m),
                                             tl.maximum(d - 1 - m, 1), _diagonal_offset(d - 2, n, m),
                                             tl.maximum(d - 2 - m, 1), OP)
        return b_y, b_diag, b_up, b_left

    @triton.jit
    def dp_fwd_rows_kernel(
        x_ptr,  # [B, N, M] any float dtype, any strides: FSD's match, soft-DTW's cost, LCS's similarity
        y_ptr,  # [B, N, M] FSD's gap (unread by the others)
        table_ptr,  # [B, N*M] float32, diagonal-major per pair
        out_ptr,  # [B] float32
        len_ptr,  # [B, 2] int64, read only when HAS_LENGTHS
        sync_ptr,  # [1 + B * n_bands] int32 zeros when BANDED: ticket, then each band's published columns
        edge_ptr,  # [B * n_bands, M] float32 when BANDED: each band's last row, for the band below
        stride_xb, stride_xn, stride_xm,
        stride_yb, stride_yn, stride_ym,
        N, M,
        band_rows, n_bands,  # when BANDED
        gamma,
        inv_gamma_log2,
        band,  # soft-DTW's Sakoe-Chiba radius when HAS_BAND
        threshold,  # LCS's
        OP: tl.constexpr,
        HAS_LENGTHS: tl.constexpr,
        HAS_BAND: tl.constexpr,
        HARD: tl.constexpr,
        BLOCK: tl.constexpr,  # >= N (>= band_rows when BANDED): lane k holds row r0 + k + 1 on every diagonal
        PREFETCH: tl.constexpr,
        BANDED: tl.constexpr,
        PUBLISH: tl.constexpr,
    ):
        i_b, band_index, r0 = _band_program(sync_ptr, band_rows, n_bands, BLOCK, BANDED, False)
        n, m = _pair_lengths(len_ptr, i_b, N, M, HAS_LENGTHS)
        p_table = table_ptr + i_b * N * M
        lanes = tl.arange(0, BLOCK)
        i = r0 + lanes + 1
        p_x = x_ptr + i_b * stride_xb + (r0 + lanes).to(tl.int64) * stride_xn
        p_y = y_ptr + i_b * stride_yb + (r0 + lanes).to(tl.int64) * stride_yn
        # The previous diagonal in registers: left = C[i, j-1] (this lane's last cell), up = C[i-1, j]
        # and diag = C[i-1, j-1] (the row above's last two, shifted down one lane).
        b_left = tl.zeros([BLOCK], tl.float32)
        b_up = tl.zeros([BLOCK], tl.float32)
        b_diag = tl.zeros([BLOCK], tl.float32)
        b_cur = tl.zeros([BLOCK], tl.float32)
        if BANDED:
            n_last, slot, has_above, has_below = _band_extent(i_b, band_index, r0, n, band_rows, n_bands)
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
        b_x_0, b_y_0 = _inputs(p_x, p_y, i, r0 + 2, n_last, m, stride_xm, stride_ym, OP)
        b_x_1, b_y_1 = _inputs(p_x, p_y, i, r0 + 3, n_last, m, stride_xm, stride_ym, OP)
        b_x_2, b_y_2 = _inputs(p_x, p_y, i, r0 + 4, n_last, m, stride_xm, stride_ym, OP)
        b_x_3, b_y_3 = _inputs(p_x, p_y, i, r0 + 5, n_last, m, stride_xm, stride_ym, OP)
        for d in range(r0 + 2, d_end):
            b_x_far, b_y_far = _inputs(p_x, p_y, i, d + PREFETCH, n_last, m, stride_xm, stride_ym, OP)
            if BANDED:
                column = d - r0 + 1  # lane 0's on diagonal d + 2
                b_edge_far, ready = _edge_from_above(edge_ptr, sync_ptr, slot, M, ready, lanes, column, m, has_above)
                b_up = tl.where(lanes == 0, b_edge_0, b_up)
            j, active = _cells(i, d, n_last, m)
            b_value = _cell(b_x_0, b_y_0, b_diag, b_up, b_left, i, j, n, m, gamma, inv_gamma_log2, band, threshold,
                            OP, HAS_BAND, HARD)
            # Outside the table 0: C[i, 0] is the left border of the next diagonal.
            b_cur = tl.where(active, b_value, 0.0)
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
                b_x_0, b_y_0 = b_x_far, b_y_far
            elif PREFETCH == 2:
                b_x_0, b_y_0, b_x_1, b_y_1 = b_x_1, b_y_1, b_x_far, b_y_far
            else:
                b_x_0, b_y_0, b_x_1, b_y_1 = b_x_1, b_y_1, b_x_2, b_y_2
                b_x_2, b_y_2, b_x_3, b_y_3 = b_x_3, b_y_3, b_x_far, b_y_far
        b_value = tl.sum(tl.where(i == n, b_cur, 0.0), 0)
        if BANDED:
            # The band holding row n answers (band 0 for a pair without rows).
            tl.store(out_ptr + i_b, b_value, mask=(n_last == n) & ((n > r0) | (band_index == 0)))
        else:
            tl.store(out_ptr + i_b, b_value)

    @triton.jit
    def dp_bwd_rows_kernel(
        y_ptr,  # [B, N, M] FSD's gap, LCS's similarity (unread for soft-DTW)
        table_ptr,  # [B, N*M] float32, from the forward
        grad_out_ptr,  # [B] float32
        grad_x_ptr,  # [B, N, M] zero-filled outside each pair's (n, m): of match / cost / similarity
        grad_y_ptr,  # [B, N, M] the same layout: of FSD's gap (unwritten by the others)
        len_ptr,  # [B, 2] int64
        sync_ptr,  # [1 + B * n_bands] int32 zeros when BANDED: ticket, then each band's published columns
        edge_ptr,  # [B * n_bands, M] float32 when BANDED: what each band pushes up into the band above
        stride_yb, stride_yn, stride_ym,
        stride_db, stride_dn, stride_dm,  # of both gradients
        N, M,
        band_rows, n_bands,  # when BANDED
        inv_gamma_log2,
        band,
        threshold,
        OP: tl.constexpr,
        HAS_LENGTHS: tl.constexpr,
        HAS_BAND: tl.constexpr,
        HARD: tl.constexpr,
        BLOCK: tl.constexpr,  # >= N (>= band_rows when BANDED)
        PREFETCH: tl.constexpr,
        BANDED: tl.constexpr,
        PUBLISH: tl.constexpr,
    ):
        i_b, band_index, r0 = _band_program(sync_ptr, band_rows, n_bands, BLOCK, BANDED, True)
        n, m = _pair_lengths(len_ptr, i_b, N, M, HAS_LENGTHS)
        p_table = table_ptr + i_b * N * M
        lanes = tl.arange(0, BLOCK)
        i = r0 + lanes + 1
        p_y = y_ptr + i_b * stride_yb + (r0 + lanes).to(tl.int64) * stride_yn
        p_grad_x = grad_x_ptr + i_b * stride_db + (r0 + lanes).to(tl.int64) * stride_dn
        p_grad_y = grad_y_ptr + i_b * stride_db + (r0 + lanes).to(tl.int64) * stride_dn
        b_grad_out = tl.load(grad_out_ptr + i_b)
        # Adjoint flowing into each lane's cell of the current diagonal from the two after it, and
        # the diagonal pushes of the last diagonal, still to be moved up one row.
        b_incoming = tl.zeros([BLOCK], tl.float32)
        b_pending_diag = tl.zeros([BLOCK], tl.float32)
        if BANDED:
            n_last, slot, has_above, has_below = _band_extent(i_b, band_index, r0, n, band_rows, n_bands)
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
        b_y_0, b_diag_0, b_up_0, b_left_0 = _bwd_inputs(p_y, p_table, i, last, n, n_last, m, stride_ym, OP)
        b_y_1, b_diag_1, b_up_1, b_left_1 = _bwd_inputs(p_y, p_table, i, last - 1, n, n_last, m, stride_ym, OP)
        b_y_2, b_diag_2, b_up_2, b_left_2 = _bwd_inputs(p_y, p_table, i, last - 2, n, n_last, m, stride_ym, OP)
        b_y_3, b_diag_3, b_up_3, b_left_3 = _bwd_inputs(p_y, p_table, i, last - 3, n, n_last, m, stride_ym, OP)
        for k in range(0, n_steps):
            d = last - k
            b_y_far, b_diag_far, b_up_far, b_left_far = _bwd_inputs(
                p_y, p_table, i, d - PREFETCH, n, n_last, m, stride_ym, OP)
            if BANDED:
                column = m - k - 2  # the band's last row's on diagonal d - 2
                b_edge_far, ready = _edge_from_below(edge_ptr, sync_ptr, slot, M, ready, lanes, band_rows, column, m,
                                                     has_below)
                b_incoming = b_incoming + b_edge_0
            j, active = _cells(i, d, n_last, m)
            w_diag, w_up, w_left = _weights(b_y_0, b_diag_0, b_up_0, b_left_0, threshold, inv_gamma_log2, OP, HARD)
            inside = active
            if OP == "soft_dtw":
                inside = active & _inside_band(i, j, n, m, band, HAS_BAND)
            b_adj = tl.where(inside, b_incoming + tl.where((i == n) & (j == m), b_grad_out, 0.0), 0.0)
            b_to_diag, b_to_up, b_to_left, b_grad_x, b_grad_y = _shares(b_adj, w_diag, w_up, w_left, OP)
            tl.store(p_grad_x + (j - 1) * stride_dm, b_grad_x.to(grad_x_ptr.dtype.element_ty), mask=active)
            if OP == "fsd":
                tl.store(p_grad_y + (j - 1) * stride_dm, b_grad_y.to(grad_y_ptr.dtype.element_ty), mask=active)
            # C[i, j-1] gets the left push in this lane; C[i-1, j] the up push and C[i-1, j-1]
            # (two diagonals on) the diagonal push, both from the row below: one shift carries both.
            b_push_up = b_to_up + b_pending_diag
            if BANDED:
                column = d - r0 - 1  # lane 0's, whose up pushes go to the band above
                _edge_to_above(edge_ptr, sync_ptr, slot, M, b_push_up, lanes, column, m, has_above, PUBLISH)
                b_edge_0, b_edge_1 = b_edge_1, b_edge_far
            b_incoming = b_to_left + _from_row_below(b_push_up, lanes, BLOCK)
            b_pending_diag = b_to_diag
            if PREFETCH == 1:
                b_y_0, b_diag_0, b_up_0, b_left_0 = b_y_far, b_diag_far, b_up_far, b_left_far
            elif PREFETCH == 2:
                b_y_0, b_diag_0, b_up_0, b_left_0 = b_y_1, b_diag_1, b_up_1, b_left_1
                b_y_1, b_diag_1, b_up_1, b_left_1 = b_y_far, b_diag_far, b_up_far, b_left_far
            else:
                b_y_0, b_diag_0, b_up_0, b_left_0 = b_y_1, b_diag_1, b_up_1, b_left_1
                b_y_1, b_diag_1, b_up_1, b_left_1 = b_y_2, b_diag_2, b_up_2, b_left_2
                b_y_2, b_diag_2, b_up_2, b_left_2 = b_y_3, b_diag_3, b_up_3, b_left_3
                b_y_3, b_diag_3, b_up_3, b_left_3 = b_y_far, b_diag_far, b_up_far, b_left_far


def dp_forward(op, x, y, gamma, lengths, settings, threshold=0.0, band=None, zero_table=False):
    """Op `op`'s values [B] float32 and table [B, N*M] float32 (diagonal-major per pair) on x (and
    FSD's y) [B, N, M]; zero_table: the cells no pair reaches (outside the lengths) are 0, not left
    as they were in memory."""
    batch, n_rows, n_cols = x.shape
    table = (torch.zeros if zero_table else torch.empty)(batch, n_rows * n_cols, dtype=torch.float32, device=x.device)
    out = torch.empty(batch, dtype=torch.float32, device=x.device)
    if batch == 0:
        return out, table
    family, len_arg, has_lengths, block, num_warps = _launch_args(lengths, x.shape, x.device, settings)
    scalars = (gamma, _inv_gamma_log2(gamma), 0 if band is None else band, threshold)
    flags = dict(OP=op, HAS_LENGTHS=has_lengths, HAS_BAND=band is not None, HARD=gamma == 0)
    if family == "rows":
        grid, bands, options = rows_launch(x.shape, x.device, op, settings)
        dp_fwd_rows_kernel[grid](x, y, table, out, len_arg, *bands[:2], *x.stride(), *y.stride(), n_rows, n_cols,
                                 *bands[2:], *scalars, **flags, **options)
    else:
        dp_fwd_kernel[(batch,)](x, y, table, out, len_arg, *x.stride(), *y.stride(), n_rows, n_cols, *scalars,
                                **flags, BLOCK=block, num_warps=num_warps)
    return out, table


def dp_backward(op, grad_out, y, table, gamma, lengths, settings, grad_x, grad_y, threshold=0.0, band=None):
    """Writes the gradients of sum(grad_out * value) w.r.t. x (and FSD's y) into grad_x, grad_y ([B, N,
    M] in one layout, zeros outside the lengths: the kernels write every cell inside each pair's
    (n, m); grad_y unwritten but for FSD). y: FSD's gap, LCS's similarity, anything [B, N, M] for
    soft-DTW (unread)."""
    batch, n_rows, n_cols = grad_x.shape
    if batch == 0:
        return
    family, len_arg, has_lengths, block, num_warps = _launch_args(lengths, grad_x.shape, grad_x.device, settings)
    grad_out = grad_out.float().contiguous()
    scalars = (_inv_gamma_log2(gamma), 0 if band is None else band, threshold)
    flags = dict(OP=op, HAS_LENGTHS=has_lengths, HAS_BAND=band is not None, HARD=gamma == 0)
    if family == "rows":
        grid, bands, options = rows_launch(grad_x.shape, grad_x.device, op, settings)
        dp_bwd_rows_kernel[grid](y, table, grad_out, grad_x, grad_y, len_arg, *bands[:2], *y.stride(),
                                 *grad_x.stride(), n_rows, n_cols, *bands[2:], *scalars, **flags, **options)
    else:
        ring = torch.empty(batch, 7, n_rows + 2, dtype=torch.float32, device=grad_x.device)
        dp_bwd_kernel[(batch,)](y, table, grad_out, grad_x, grad_y, ring, len_arg, *y.stride(), *grad_x.stride(),
                                n_rows, n_cols, *scalars, **flags, BLOCK=block, num_warps=num_warps)
