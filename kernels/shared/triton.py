"""Triton pieces that every DP op's kernels share: the walk along anti-diagonals (row bounds, each
pair's lengths, the previous diagonals' offsets in a diagonal-major table), the adjoint ring of the
"chunks" backward, the lane shifts of the "rows" kernels, and the diagonal-major copy (skew_kernel).

Each program sweeps its pair's n x m table one anti-diagonal d = i + j at a time (1-indexed cells).
The table is stored diagonal-major and compact (N*M float32 per pair): the forward writes it, the
backward recomputes each cell's soft weights from it. Two families (kernels.shared.launch.kernel_family):

- "rows" (tables of up to Settings.max_rows rows): lane k holds row k + 1 on every diagonal, so a
  cell's left neighbour is the lane's own last value, and its upper and diagonal neighbours are the
  row above's last two, moved one lane down per diagonal (tl.gather). Nothing is exchanged through
  global memory within a launch; the inputs of a few diagonals ahead (Settings.fsd_prefetch,
  lcs_prefetch) are loaded while this one is computed.
  Backward is the reverse wavefront with the adjoints in registers the same way: a cell's left push
  stays in its lane, its up and diagonal pushes move one lane up (one shift carries both).
- "chunks" (any size): lanes across the diagonal, BLOCK rows at a time, with a block barrier between
  diagonals; the neighbours are re-read from the table, and the backward pushes adjoint x weight to
  the predecessors through small per-pair ring buffers (3 + 2 + 2 rows of N + 2 floats).

Inputs are read and gradients written with any strides: row-major by default, diagonal-major (each
diagonal one contiguous run) for the tables `skews` selects.
"""
try:
    import triton
    import triton.language as tl
except ImportError:  # the other backends work without Triton
    triton = None

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
    def skew_kernel(
        x_ptr,  # [B, N, M] any dtype, last dimension contiguous
        skewed_ptr,  # [B, (N + M - 1) * N] the same dtype: cell (i, j) at (i + j) * N + i
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
        tl.store(skewed_ptr + i_b * (N + M - 1) * N + d[None, :].to(tl.int64) * N + i[:, None], values, mask=inside)

    # Row bands: a rows kernel may split each pair's table into bands of band_rows rows, one program
    # per band, so that a long sweep keeps more SMs busy and each program's diagonal is shorter. A
    # forward band needs the last row of the band above (C[r0, j], column by column); a backward
    # band the adjoint that the band below pushes up into its last row. The producer stores those
    # values in an edge buffer and publishes how many columns are ready (a release store of a count
    # after a block barrier); the consumer waits for the columns it needs (acquire loads) a few
    # diagonals before it uses them. Programs take their band from a ticket counter in the order
    # they start, so a band only ever waits for one that started before it: no deadlock, however
    # many programs are resident.

    @triton.jit
    def _band_program(sync_ptr, band_rows, n_bands, BLOCK: tl.constexpr, BANDED: tl.constexpr,
                      UPWARDS: tl.constexpr):
        """(pair, band, first row r0) of this program. Banded: from the ticket counter sync_ptr[0],
        pair-major, the bands of a pair in the order they wait for each other (top first in a
        forward, bottom first in a backward when UPWARDS); else one program per pair, band 0."""
        if BANDED:
            ticket = tl.atomic_add(sync_ptr, 1)
            band = ticket % n_bands
            if UPWARDS:
                band = n_bands - 1 - band
            return (ticket // n_bands).to(tl.int64), band, band * band_rows
        return tl.program_id(0).to(tl.int64), 0, 0

    @triton.jit
    def _wait_published(p_count, ready, need):
        """Spins until the count at p_count reaches need; returns the count last read (ready: the
        count read before, so that most calls read nothing)."""
        while ready < need:
            ready = tl.atomic_add(p_count, 0, sem="acquire")
        return ready

    @triton.jit
    def _edge_load(p_edge, p_count, ready, lanes, lane, column, need, live):
        """Waits until `need` columns are published, then loads the edge value of `column`
        (1-indexed) into lane `lane` (0 elsewhere, and everywhere unless live). Returns (value,
        ready)."""
        ready = _wait_published(p_count, ready, tl.where(live, need, 0))
        # volatile: another program wrote it during this launch, so no stale cache line may serve it.
        value = tl.load(p_edge + (column - 1) + lanes * 0, mask=lanes == tl.where(live, lane, -1), other=0.0,
                        volatile=True)
        return value, ready

    @triton.jit
    def _edge_store(p_edge, p_count, x, lanes, lane, column, count, live, last, PUBLISH: tl.constexpr):
        """Stores lane `lane`'s x at `column` (1-indexed) of the edge when live, and publishes `count`
        columns every PUBLISH of them and at the last (all of this block's stores first)."""
        tl.store(p_edge + (column - 1) + lanes * 0, x, mask=lanes == tl.where(live, lane, -1))
        if live & ((count % PUBLISH == 0) | last):
            tl.debug_barrier()
            tl.atomic_xchg(p_count, count, sem="release")

    @triton.jit
    def _band_extent(i_b, band, r0, n, band_rows, n_bands):
        """(n_last, slot, has_above, has_below) of a band starting below row r0: its last row (none
        when <= r0), its index among all bands, and whether a band above / below trades edges with it."""
        n_last = tl.minimum(n, r0 + band_rows)
        return n_last, i_b * n_bands + band, (band > 0) & (n_last > r0), r0 + band_rows < n

    @triton.jit
    def _edge_from_above(edge_ptr, sync_ptr, slot, M, ready, lanes, column, m, has_above):
        """Forward: lane 0's upper neighbour C[r0, column], once the band above has published it.
        Returns (value, ready)."""
        return _edge_load(edge_ptr + (slot - 1) * M, sync_ptr + slot, ready, lanes, 0, column, column,
                          has_above & (column <= m))

    @triton.jit
    def _edge_to_below(edge_ptr, sync_ptr, slot, M, x, lanes, band_rows, column, m, has_below,
                       PUBLISH: tl.constexpr):
        """Forward: the band's last row's x at `column`, for the band below (counts from the left)."""
        _edge_store(edge_ptr + slot * M, sync_ptr + 1 + slot, x, lanes, band_rows - 1, column, column,
                    has_below & (column >= 1) & (column <= m), column == m, PUBLISH)

    @triton.jit
    def _edge_from_below(edge_ptr, sync_ptr, slot, M, ready, lanes, band_rows, column, m, has_below):
        """Backward: what the band below pushes into this band's last row at `column`, once published
        (counts of columns from the right). Returns (value, ready)."""
        return _edge_load(edge_ptr + (slot + 1) * M, sync_ptr + 2 + slot, ready, lanes, band_rows - 1, column,
                          m - column + 1, has_below & (column >= 1))

    @triton.jit
    def _edge_to_above(edge_ptr, sync_ptr, slot, M, x, lanes, column, m, has_above, PUBLISH: tl.constexpr):
        """Backward: lane 0's up and diagonal pushes x at `column`, for the band above."""
        _edge_store(edge_ptr + slot * M, sync_ptr + 1 + slot, x, lanes, 0, column, m - column + 1,
                    has_above & (column >= 1) & (column <= m), column == 1, PUBLISH)

    # The rows kernels load each diagonal's inputs PREFETCH diagonals ahead (1 to 4) and keep them
    # in registers x_0 (this diagonal) ... x_{PREFETCH-1}, so that the loads' latency hides behind
    # that many diagonals of work.
