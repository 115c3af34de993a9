"""Host side of the Triton kernels that every op shares: launch rules (family, BLOCK, warps,
prefetch), the diagonal-major layout (when a table is copied, the copy, its buffers and views),
and the common launch arguments."""
import os

import torch

from ftcl.kernels.settings import current_settings
from ftcl.kernels.shared.triton import triton

if triton is not None:
    from ftcl.kernels.shared.triton import skew_kernel

_LOG2E = 1.4426950408889634


def next_power_of_2(n):
    """The smallest power of two >= n (n >= 1), in plain Python: triton.next_power_of_2 is a
    constexpr function whose call costs microseconds on every launch."""
    return 1 << (n - 1).bit_length()


_PLACEHOLDERS = {}


def _placeholder(shape, dtype, device):
    """A zero tensor passed for a kernel argument the launch never reads (lengths without lengths, the
    band buffers of one program per pair), one per (shape, dtype, device)."""
    key = (shape, dtype, device)
    if key not in _PLACEHOLDERS:
        _PLACEHOLDERS[key] = torch.zeros(shape, dtype=dtype, device=device)
    return _PLACEHOLDERS[key]


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


# The "auto" rule of row_bands: bands of at least this many rows, and at most this many programs
# per SM in all.
AUTO_BAND_MIN_ROWS = 256
AUTO_BAND_PROGRAMS_PER_SM = 2

_SM_COUNTS = {}


def _sm_count(device):
    if device not in _SM_COUNTS:
        _SM_COUNTS[device] = (torch.cuda.get_device_properties(device).multi_processor_count
                              if device.type == "cuda" else 1)
    return _SM_COUNTS[device]


def row_bands(shape, device, settings=None):
    """(n_bands, band_rows) of a rows-kernel launch on a [B, N, M] table: settings.row_bands bands of
    ceil(N / k) rows (no empty band), or under "auto" the most bands (a power of two) that keep
    bands at least AUTO_BAND_MIN_ROWS rows tall and B x bands within AUTO_BAND_PROGRAMS_PER_SM
    programs per SM."""
    settings = settings or current_settings()
    batch, n_rows, _ = shape
    bands = settings.row_bands
    if bands == "auto":
        programs = AUTO_BAND_PROGRAMS_PER_SM * _sm_count(device)
        bands = 1
        while n_rows // (2 * bands) >= AUTO_BAND_MIN_ROWS and batch * 2 * bands <= programs:
            bands *= 2
    band_rows = -(-n_rows // min(bands, max(n_rows, 1)))
    return -(-n_rows // band_rows) if n_rows else 1, max(band_rows, 1)


def rows_launch(shape, device, op, settings):
    """(grid, band arguments, constexpr options) of a rows-kernel launch: the band arguments are
    (sync, edge, band_rows, n_bands): a zeroed int32 ticket-and-counts buffer [1 + B * bands] and an
    edge buffer [B * bands, M] float32 when the table is split (placeholders never read otherwise);
    the options BLOCK, num_warps, PREFETCH, BANDED, PUBLISH. Soft-DTW's tables are never split."""
    batch, n_rows, n_cols = shape
    n_bands, band_rows = row_bands(shape, device, settings) if op != "soft_dtw" else (1, n_rows)
    block, num_warps = rows_launch_config(band_rows)
    options = {"BLOCK": block, "num_warps": settings.num_warps or num_warps,
               "PREFETCH": rows_prefetch(block, settings.prefetch(op)), "BANDED": n_bands > 1,
               "PUBLISH": settings.band_publish}
    if n_bands == 1:
        return (batch,), (_placeholder((1,), torch.int32, device), _placeholder((1,), torch.float32, device),
                          n_rows, 1), options
    sync = torch.zeros(1 + batch * n_bands, dtype=torch.int32, device=device)
    edge = torch.empty(batch * n_bands, n_cols, dtype=torch.float32, device=device)
    return (batch * n_bands,), (sync, edge, band_rows, n_bands), options


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
        return family, _placeholder((1, 2), torch.long, device), False, block, num_warps
    return family, lengths.contiguous(), True, block, num_warps


