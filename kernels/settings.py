"""Every tuning choice of the Triton DP kernels, in one object that tests and benchmarks set through
`kernels.configure(...)` (a context manager) instead of patching module globals.

The forward pass of an op reads the settings in force when it is called and keeps them for its
backward, so a backward run later (or in autograd's device threads) launches what its forward chose.
Each default is the fastest measured (bench/RESULTS.md, docs/kernels.md); row bands are
experimental (off until a GPU run measures where they win).
"""
import contextlib
import contextvars
import dataclasses
import numbers

FAMILIES = ("rows", "chunks")
# The rows kernels' largest BLOCK (one lane per row): BLOCK 4096 spills (ptxas stack frames at 16
# and 32 warps), so taller tables always take the chunks kernels.
ROWS_BLOCK_LIMIT = 2048
# The chunks kernels' largest BLOCK (lanes over a diagonal) and the skew copy's largest tile side:
# larger blocks are not compiled ahead of time (bench/compile.py) and hold no more useful lanes.
CHUNK_BLOCK_LIMIT = 1024
SKEW_TILE_LIMIT = 128
# The prefetch depths the rows kernels are written for: 1 (FSD's fastest), 4 (LCS's fastest up to
# 1024 rows) and 2 (LCS's past 1024 rows, where 4 spills): bench/RESULTS.md.
PREFETCH_DEPTHS = (1, 2, 4)
WARPS = (1, 2, 4, 8, 16, 32)


def _whole(name, value, low, high=None, none=False):
    """value must be an int (not a bool) in low..high, or None when none."""
    if value is None and none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low or (
            high is not None and value > high):
        span = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be a whole number in {span}{' or None' if none else ''}, got {value!r}")


def _power_of_two(name, value, high, none=False):
    _whole(name, value, 1, high, none)
    if value is not None and value & (value - 1):
        raise ValueError(f"{name} must be a power of two in 1..{high}{' or None' if none else ''}, got {value!r}")


def _one_of(name, value, allowed):
    if isinstance(value, bool) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Settings:
    """family: "rows" (up to max_rows rows; taller tables take "chunks") or "chunks" for every
    table. max_rows: the tallest table the rows kernels take (<= ROWS_BLOCK_LIMIT). max_chunk_block:
    the chunks kernels' largest BLOCK (lanes over a diagonal). fsd_prefetch, lcs_prefetch: how many
    diagonals ahead the rows kernels load their inputs (1, 2 or 4; at most 2 past 1024 rows).
    skew_min_cells (None: never), skew_min_diagonals, skew_min_batch_cells: when a table is copied
    diagonal-major (kernels.shared.launch.skews); skew_tile: rows x diagonals of a tile of that copy.
    chunk_block, num_warps: fixed launch parameters instead of the launch rules' (None; for tuning:
    the chunks kernels' BLOCK, either family's warps). row_bands (experimental): programs per pair of
    the rows kernels: 1 (one sweeps the whole table), k (k bands of ceil(N / k) rows, each handing its
    edge to the next), or "auto" (kernels.shared.launch.row_bands). band_publish (experimental): how
    many columns a band finishes between two hand-overs."""

    family: str = "rows"
    max_rows: int = ROWS_BLOCK_LIMIT
    max_chunk_block: int = CHUNK_BLOCK_LIMIT
    fsd_prefetch: int = 1
    lcs_prefetch: int = 4
    skew_min_cells: int | None = 128 * 128
    skew_min_diagonals: int = 512
    skew_min_batch_cells: int = 1 << 23
    skew_tile: tuple = (32, 64)
    chunk_block: int | None = None
    num_warps: int | None = None
    row_bands: int | str = 1
    band_publish: int = 16

    def __post_init__(self):
        _one_of("family", self.family, FAMILIES)
        _whole("max_rows", self.max_rows, 1, ROWS_BLOCK_LIMIT)
        _power_of_two("max_chunk_block", self.max_chunk_block, CHUNK_BLOCK_LIMIT)
        _one_of("fsd_prefetch", self.fsd_prefetch, PREFETCH_DEPTHS)
        _one_of("lcs_prefetch", self.lcs_prefetch, PREFETCH_DEPTHS)
        _whole("skew_min_cells", self.skew_min_cells, 0, none=True)
        _whole("skew_min_diagonals", self.skew_min_diagonals, 0)
        _whole("skew_min_batch_cells", self.skew_min_batch_cells, 0)
        if not (isinstance(self.skew_tile, tuple) and len(self.skew_tile) == 2):
            raise ValueError(f"skew_tile must be a tuple (rows, diagonals), got {self.skew_tile!r}")
        for side in self.skew_tile:
            _power_of_two("skew_tile", side, SKEW_TILE_LIMIT)
        _power_of_two("chunk_block", self.chunk_block, CHUNK_BLOCK_LIMIT, none=True)
        if self.num_warps is not None:
            _one_of("num_warps", self.num_warps, WARPS)
        if self.row_bands != "auto":
            _whole("row_bands", self.row_bands, 1)
        _whole("band_publish", self.band_publish, 1)

    def prefetch(self, op):
        """The rows kernels' prefetch depth of op ("fsd", "lcs"; soft-DTW loads one diagonal ahead)."""
        return {"fsd": self.fsd_prefetch, "lcs": self.lcs_prefetch}.get(op, 1)


_current = contextvars.ContextVar("ftcl_kernel_settings", default=Settings())


def current_settings():
    """The Settings in force in this thread (or task)."""
    return _current.get()


@contextlib.contextmanager
def configure(**changes):
    """Within the block, the Triton kernels use the current settings with `changes` (field names of
    Settings); an unknown name (TypeError) or a bad value (ValueError, naming the setting) raises
    before anything changes. Yields the Settings."""
    names = [f.name for f in dataclasses.fields(Settings)]
    unknown = sorted(set(changes) - set(names))
    if unknown:
        raise TypeError(f"unknown kernel setting {unknown[0]!r}; the settings are {', '.join(names)}")
    new = dataclasses.replace(_current.get(), **changes)
    token = _current.set(new)
    try:
        yield new
    finally:
        _current.reset(token)


@contextlib.contextmanager
def use_settings(chosen):
    """Within the block, exactly the Settings `chosen` (what an op's forward saw, for its backward)."""
    token = _current.set(chosen)
    try:
        yield chosen
    finally:
        _current.reset(token)
