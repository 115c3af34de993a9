"""Soft-DTW's Triton kernels, both families of kernels.shared.triton: "rows" (up to Settings.max_rows
rows: lane k holds row k + 1, the previous diagonals in registers, the next diagonal's costs loaded
one ahead; the backward's adjoints in registers) and "chunks" (lanes across each anti-diagonal BLOCK
rows at a time, the previous diagonals re-read from the table, a block barrier between diagonals,
the backward's pushes through the per-pair adjoint ring), with soft-DTW's boundary (R[0, 0] = 0,
+inf elsewhere on row and column 0), a soft min, and the Sakoe-Chiba band (+inf outside). The table
is R itself, float32, diagonal-major per pair; the backward recomputes each cell's soft-min weights
from it. Both families compute every cell from the same operands in the same order (equal bit for
bit).
"""
import torch

from ftcl.kernels.shared.launch import _inv_gamma_log2, _launch_args

try:
    import triton
    import triton.language as tl

    from ftcl.kernels.shared.triton import (_adjoint, _cells, _diagonal_offset, _from_row_above, _from_row_below,
                                            _neighbours, _pair_lengths, _push, _reverse_step, _row_bounds)
except ImportError:  # the other backends work without Triton
    triton = None

if triton is not None:

    @triton.jit
    def _border(b_diag, b_up, b_left, i, j):
        """The predecessors of cells (i, j) with soft-DTW's border: R[0, 0] = 0, +inf elsewhere on
        row and column 0 (whatever the table or the registers hold there)."""
        inf = float("inf")
        b_diag = tl.where((i > 1) & (j > 1), b_diag, tl.where((i == 1) & (j == 1), 0.0, inf))
        return b_diag, tl.where(i > 1, b_up, inf), tl.where(j > 1, b_left, inf)

    @triton.jit
    def _predecessors(p_table, i, j, mask, off_1, lo_1, off_2, lo_2):
        """R[i-1, j-1], R[i-1, j], R[i, j-1] from the table, with soft-DTW's border."""
        b_diag, b_up, b_left = _neighbours(p_table, i, j, mask, off_1, lo_1, off_2, lo_2)
        return _border(b_diag, b_up, b_left, i, j)

    @triton.jit
    def _inside_band(i, j, n, m, band, HAS_BAND: tl.constexpr):
        """Whether cells (i, j) lie inside the Sakoe-Chiba band of an n x m table (tslearn's mask)."""
        if HAS_BAND:
            offset = i - j
            return (offset >= -band - tl.maximum(m - n, 0)) & (offset <= band + tl.maximum(n - m, 0))
        return i == i

    @triton.jit
    def _min3(b_diag, b_up, b_left):
        """The least of three, NaN if any is NaN (as torch.minimum)."""
        return tl.minimum(tl.minimum(b_diag, b_up, propagate_nan=tl.PropagateNan.ALL), b_left,
                          propagate_nan=tl.PropagateNan.ALL)

    @triton.jit
    def _soft_min(b_diag, b_up, b_left, gamma, inv_gamma_log2, HARD: tl.constexpr):
        """min_gamma of the three predecessors (the hard min when HARD); +inf when all three are, NaN
        when any is."""
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
        """Soft-min (or first-arg-min) weights of the three predecessors; 0 where none is reachable."""
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
    def soft_dtw_fwd_kernel(
        cost_ptr,  # [B, N, M] any float dtype, any strides
        table_ptr,  # [B, N*M] float32, diagonal-major per pair: R
        out_ptr,  # [B] float32
        len_ptr,  # [B, 2] int64, read only when HAS_LENGTHS
        stride_cb, stride_cn, stride_cm,
        N, M,
        gamma,
        inv_gamma_log2,
        band,
        HAS_LENGTHS: tl.constexpr,
        HAS_BAND: tl.constexpr,
        HARD: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        i_b = tl.program_id(0).to(tl.int64)
        n, m = _pair_lengths(len_ptr, i_b, N, M, HAS_LENGTHS)
        p_table = table_ptr + i_b * N * M
        p_cost = cost_ptr + i_b * stride_cb
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
                b_cost = tl.load(p_cost + (i - 1) * stride_cn + (j - 1) * stride_cm, mask=mask, other=0.0)
                b_diag, b_up, b_left = _predecessors(p_table, i, j, mask, off_1, lo_1, off_2, lo_2)
                b_value = b_cost.to(tl.float32) + _soft_min(b_diag, b_up, b_left, gamma, inv_gamma_log2, HARD)
                b_value = tl.where(_inside_band(i, j, n, m, band, HAS_BAND), b_value, float("inf"))
                tl.store(p_table + off_0 + (i - lo), b_value, mask=mask)
            # Every lane's diagonal must be visible before any lane reads it as a neighbour.
            tl.debug_barrier()
            off_2, lo_2 = off_1, lo_1
            off_1, lo_1 = off_0, lo
            off_0 += hi - lo + 1
        tl.store(out_ptr + i_b, tl.load(p_table + off_0 - 1))

    @triton.jit
    def soft_dtw_bwd_kernel(
        table_ptr,  # [B, N*M] float32, from the forward
        grad_out_ptr,  # [B] float32
        grad_cost_ptr,  # [B, N, M] zero-filled outside each pair's (n, m)
        ring_ptr,  # [B, 7, N + 2] float32 scratch
        len_ptr,  # [B, 2] int64
        stride_db, stride_dn, stride_dm,
        N, M,
        inv_gamma_log2,
        band,
        HAS_LENGTHS: tl.constexpr,
        HAS_BAND: tl.constexpr,
        HARD: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        i_b = tl.program_id(0).to(tl.int64)
        n, m = _pair_lengths(len_ptr, i_b, N, M, HAS_LENGTHS)
        p_table = table_ptr + i_b * N * M
        p_grad = grad_cost_ptr + i_b * stride_db
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
                b_diag, b_up, b_left = _predecessors(p_table, i, j, mask, off_1, lo_1, off_2, lo_2)
                w_diag, w_up, w_left = _soft_min_weights(b_diag, b_up, b_left, inv_gamma_log2, HARD)
                inside = _inside_band(i, j, n, m, band, HAS_BAND)
                b_adj = tl.where(inside, _adjoint(p_ring, i, j, mask, n, m, d, stride_slot, b_grad_out), 0.0)
                p_cell = (i - 1).to(tl.int64) * stride_dn + (j - 1) * stride_dm
                tl.store(p_grad + p_cell, b_adj.to(grad_cost_ptr.dtype.element_ty), mask=mask)
                _push(p_ring, i, mask, d, stride_slot, b_adj * w_diag, b_adj * w_up, b_adj * w_left)
            tl.debug_barrier()
            off_0 = off_1


    @triton.jit
    def soft_dtw_fwd_rows_kernel(
        cost_ptr,  # [B, N, M] any float dtype, any strides
        table_ptr,  # [B, N*M] float32, diagonal-major per pair: R
        out_ptr,  # [B] float32
        len_ptr,  # [B, 2] int64, read only when HAS_LENGTHS
        stride_cb, stride_cn, stride_cm,
        N, M,
        gamma,
        inv_gamma_log2,
        band,
        HAS_LENGTHS: tl.constexpr,
        HAS_BAND: tl.constexpr,
        HARD: tl.constexpr,
        BLOCK: tl.constexpr,  # >= N: lane k holds row k + 1 on every diagonal
    ):
        i_b = tl.program_id(0).to(tl.int64)
        n, m = _pair_lengths(len_ptr, i_b, N, M, HAS_LENGTHS)
        p_table = table_ptr + i_b * N * M
        lanes = tl.arange(0, BLOCK)
        i = lanes + 1
        p_cost = cost_ptr + i_b * stride_cb + lanes.to(tl.int64) * stride_cn
        # The previous diagonal in registers: left = R[i, j-1] (this lane's last cell), up = R[i-1, j]
        # and diag = R[i-1, j-1] (the row above's last two, shifted down one lane).
        b_left = tl.zeros([BLOCK], tl.float32)
        b_up = tl.zeros([BLOCK], tl.float32)
        b_diag = tl.zeros([BLOCK], tl.float32)
        b_cur = tl.zeros([BLOCK], tl.float32)
        j, active = _cells(i, 2, n, m)
        b_cost_next = tl.load(p_cost + (j - 1) * stride_cm, mask=active, other=0.0)
        off_0 = 0
        for d in range(2, n + m + 1):
            j, active = _cells(i, d, n, m)
            b_cost = b_cost_next
            j_next, active_next = _cells(i, d + 1, n, m)
            b_cost_next = tl.load(p_cost + (j_next - 1) * stride_cm, mask=active_next, other=0.0)
            b_d, b_u, b_l = _border(b_diag, b_up, b_left, i, j)
            b_value = b_cost.to(tl.float32) + _soft_min(b_d, b_u, b_l, gamma, inv_gamma_log2, HARD)
            b_value = tl.where(_inside_band(i, j, n, m, band, HAS_BAND), b_value, float("inf"))
            b_cur = tl.where(active, b_value, 0.0)
            lo, hi = _row_bounds(d, n, m)
            tl.store(p_table + off_0 + (i - lo), b_cur, mask=active)
            off_0 += hi - lo + 1
            b_diag = b_up
            b_up = _from_row_above(b_cur, lanes)
            b_left = b_cur
        tl.store(out_ptr + i_b, tl.sum(tl.where(i == n, b_cur, 0.0), 0))

    @triton.jit
    def _saved_predecessors(p_table, i, d, n, m):
        """R[i-1, j-1], R[i-1, j], R[i, j-1] of diagonal d's cells, from the saved table, with the border."""
        j, active = _cells(i, d, n, m)
        return _predecessors(p_table, i, j, active, _diagonal_offset(d - 1, n, m), tl.maximum(d - 1 - m, 1),
                             _diagonal_offset(d - 2, n, m), tl.maximum(d - 2 - m, 1))

    @triton.jit
    def soft_dtw_bwd_rows_kernel(
        table_ptr,  # [B, N*M] float32, from the forward
        grad_out_ptr,  # [B] float32
        grad_cost_ptr,  # [B, N, M] zero-filled outside each pair's (n, m)
        len_ptr,  # [B, 2] int64
        stride_db, stride_dn, stride_dm,
        N, M,
        inv_gamma_log2,
        band,
        HAS_LENGTHS: tl.constexpr,
        HAS_BAND: tl.constexpr,
        HARD: tl.constexpr,
        BLOCK: tl.constexpr,  # >= N
    ):
        i_b = tl.program_id(0).to(tl.int64)
        n, m = _pair_lengths(len_ptr, i_b, N, M, HAS_LENGTHS)
        p_table = table_ptr + i_b * N * M
        lanes = tl.arange(0, BLOCK)
        i = lanes + 1
        p_grad = grad_cost_ptr + i_b * stride_db + lanes.to(tl.int64) * stride_dn
        b_grad_out = tl.load(grad_out_ptr + i_b)
        # Adjoint flowing into each lane's cell of the current diagonal from the two after it, and
        # the diagonal pushes of the last diagonal, still to be moved up one row.
        b_incoming = tl.zeros([BLOCK], tl.float32)
        b_pending_diag = tl.zeros([BLOCK], tl.float32)
        last = n + m  # the answer cell is alone on the last diagonal
        b_diag_next, b_up_next, b_left_next = _saved_predecessors(p_table, i, last, n, m)
        for k in range(0, n + m - 1):
            d = last - k
            j, active = _cells(i, d, n, m)
            b_diag, b_up, b_left = b_diag_next, b_up_next, b_left_next
            b_diag_next, b_up_next, b_left_next = _saved_predecessors(p_table, i, d - 1, n, m)
            w_diag, w_up, w_left = _soft_min_weights(b_diag, b_up, b_left, inv_gamma_log2, HARD)
            inside = active & _inside_band(i, j, n, m, band, HAS_BAND)
            b_adj = tl.where(inside, b_incoming + tl.where((i == n) & (j == m), b_grad_out, 0.0), 0.0)
            tl.store(p_grad + (j - 1) * stride_dm, b_adj.to(grad_cost_ptr.dtype.element_ty), mask=active)
            # R[i, j-1] gets the left push in this lane; R[i-1, j] the up push and R[i-1, j-1] (two
            # diagonals on) the diagonal push, both from the row below: one shift carries both.
            b_incoming = b_adj * w_left + _from_row_below(b_adj * w_up + b_pending_diag, lanes, BLOCK)
            b_pending_diag = b_adj * w_diag


def kernels_for(family):
    """(forward, backward) Triton kernels of soft-DTW in family ("rows" or "chunks")."""
    if family == "rows":
        return soft_dtw_fwd_rows_kernel, soft_dtw_bwd_rows_kernel
    return soft_dtw_fwd_kernel, soft_dtw_bwd_kernel


def soft_dtw_fwd(cost, gamma, lengths, band, settings, zero_table=False):
    """Returns (values [B] float32, table [B, N*M] float32: R, diagonal-major per pair)."""
    batch, n_rows, n_cols = cost.shape
    table = (torch.zeros if zero_table else torch.empty)(batch, n_rows * n_cols, dtype=torch.float32,
                                                        device=cost.device)
    out = torch.empty(batch, dtype=torch.float32, device=cost.device)
    if batch == 0:
        return out, table
    family, len_arg, has_lengths, block, num_warps = _launch_args(lengths, cost.shape, cost.device, settings)
    kernels_for(family)[0][(batch,)](
        cost, table, out, len_arg, *cost.stride(), n_rows, n_cols, gamma, _inv_gamma_log2(gamma),
        0 if band is None else band, HAS_LENGTHS=has_lengths, HAS_BAND=band is not None, HARD=gamma == 0,
        BLOCK=block, num_warps=num_warps)
    return out, table


def soft_dtw_bwd(grad_out, table, gamma, lengths, band, settings, out):
    """Writes the gradient of sum(grad_out * value) w.r.t. the cost (the expected alignments) into
    out ([B, N, M], zeros outside the lengths) and returns it."""
    grad_cost = out
    batch, n_rows, n_cols = out.shape
    device = table.device
    if batch == 0:
        return grad_cost
    family, len_arg, has_lengths, block, num_warps = _launch_args(lengths, out.shape, device, settings)
    options = dict(HAS_LENGTHS=has_lengths, HAS_BAND=band is not None, HARD=gamma == 0, BLOCK=block,
                   num_warps=num_warps)
    if family == "rows":
        soft_dtw_bwd_rows_kernel[(batch,)](
            table, grad_out.float().contiguous(), grad_cost, len_arg, *grad_cost.stride(), n_rows, n_cols,
            _inv_gamma_log2(gamma), 0 if band is None else band, **options)
        return grad_cost
    ring = torch.empty(batch, 7, n_rows + 2, dtype=torch.float32, device=device)
    soft_dtw_bwd_kernel[(batch,)](
        table, grad_out.float().contiguous(), grad_cost, ring, len_arg, *grad_cost.stride(), n_rows, n_cols,
        _inv_gamma_log2(gamma), 0 if band is None else band, **options)
    return grad_cost
