"""Every tuning choice of the Triton DP kernels, in one object that tests and benchmarks set through
`kernels.configure(...)` (a context manager) instead of patching module globals.

The forward pass of an op reads the settings in force when it is called and keeps them for its
backward, so a backward run later (or in autograd's device threads) launches what its forward chose.
Each default is the fastest measured (bench/RESULTS.md, docs/kernels.md).
"""
import contextlib
import contextvars
import dataclasses

FAMILIES = ("rows", "chunks")
# The rows kernels' largest BLOCK (one lane per row): BLOCK 4096 spills (ptxas stack frames at 16
# and 32 warps), so taller tables always take the chunks kernels.
ROWS_BLOCK_LIMIT = 2048


@dataclasses.dataclass(frozen=True)
class Settings:
    """family: "rows" (up to max_rows rows; taller tables take "chunks") or "chunks" for every
    table. max_rows: the tallest table the rows kernels take (<= ROWS_BLOCK_LIMIT). max_chunk_block:
    the chunks kernels' largest BLOCK (lanes over a diagonal). fsd_prefetch, lcs_prefetch: how many
    diagonals ahead the rows kernels load their inputs (1-4; at most 2 past 1024 rows).
    skew_min_cells (None: never), skew_min_diagonals, skew_min_batch_cells: when a table is copied
    diagonal-major (kernels.shared.launch.skews); skew_tile: rows x diagonals of a tile of that copy.
    cosine_auto: the backend pairwise_cosine's "auto" takes for CUDA tensors ("torch" or "triton").
    chunk_block, num_warps: fixed launch parameters instead of the launch rules' (None; for tuning:
    the chunks kernels' BLOCK, either family's warps). row_bands: programs per pair of the rows
    kernels: 1 (one sweeps the whole table), k (k bands of ceil(N / k) rows, each handing its edge
    to the next), or "auto" (kernels.shared.launch.row_bands). band_publish: how many columns a band
    finishes between two hand-overs."""

    family: str = "rows"
    max_rows: int = ROWS_BLOCK_LIMIT
    max_chunk_block: int = 1024
    fsd_prefetch: int = 1
    lcs_prefetch: int = 4
    skew_min_cells: int | None = 128 * 128
    skew_min_diagonals: int = 512
    skew_min_batch_cells: int = 1 << 23
    skew_tile: tuple = (32, 64)
    cosine_auto: str = "torch"
    chunk_block: int | None = None
    num_warps: int | None = None
    row_bands: int | str = 1
    band_publish: int = 16

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {self.family!r}")
        if not 1 <= self.max_rows <= ROWS_BLOCK_LIMIT:
            raise ValueError(f"max_rows must be in 1..{ROWS_BLOCK_LIMIT}, got {self.max_rows}")
        if self.max_chunk_block < 1 or self.max_chunk_block & (self.max_chunk_block - 1):
            raise ValueError(f"max_chunk_block must be a power of two, got {self.max_chunk_block}")
        if self.cosine_auto not in ("torch", "triton"):
            raise ValueError(f"cosine_auto must be torch or triton, got {self.cosine_auto!r}")
        if self.row_bands != "auto" and not (type(self.row_bands) is int and self.row_bands >= 1):
            raise ValueError(f"row_bands must be a positive integer or 'auto', got {self.row_bands!r}")
        if not isinstance(self.band_publish, int) or self.band_publish < 1:
            raise ValueError(f"band_publish must be a positive integer, got {self.band_publish!r}")
        for name in ("fsd_prefetch", "lcs_prefetch"):
            if not 1 <= getattr(self, name) <= 4:
                raise ValueError(f"{name} must be in 1..4, got {getattr(self, name)}")

    def prefetch(self, op):
        """The rows kernels' prefetch depth of op ("fsd" or "lcs")."""
        return self.fsd_prefetch if op == "fsd" else self.lcs_prefetch


_current = contextvars.ContextVar("ftcl_kernel_settings", default=Settings())


def settings():
    """The Settings in force in this thread (or task)."""
    return _current.get()


@contextlib.contextmanager
def configure(**changes):
    """Within the block, the Triton kernels use the current settings with `changes` (field names of
    Settings); an unknown name or a bad value raises before anything changes. Yields the Settings."""
    unknown = set(changes) - {f.name for f in dataclasses.fields(Settings)}
    if unknown:
        raise TypeError(f"unknown kernel setting {sorted(unknown)[0]!r}; the settings are "
                        f"{', '.join(f.name for f in dataclasses.fields(Settings))}")
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
