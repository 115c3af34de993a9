"""What the CPU paths of the DP ops share: compiled scalar loops (numba), one pair after another,
the batch split across threads.

Each op's `cpu.py` holds a forward and a backward loop over a range of pairs [start, stop) of float64
arrays; `run` calls one over the whole batch, in up to torch.get_num_threads() threads when the
batch holds enough work (the loops release the GIL). Tables are [B, N+1, M+1] float64, row-major,
with the border in row and column 0, so a pair is swept row by row through contiguous memory; the
backward recomputes each cell's weights from the table and carries the adjoints in two rows.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import torch

# Below this many cells per thread a thread costs more than it saves.
MIN_CELLS_PER_THREAD = 1 << 15

jit = numba.njit(cache=True, nogil=True, fastmath=False, error_model="numpy")

_pool = None
_pool_pid = None


def _executor(threads):
    """A thread pool of at least `threads` workers, made again in a forked child (threads do not
    survive a fork)."""
    global _pool, _pool_pid
    if _pool is None or _pool_pid != os.getpid() or _pool._max_workers < threads:
        _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ftcl-cpu")
        _pool_pid = os.getpid()
    return _pool


def run(loop, batch, cells, *args):
    """loop(*args, start, stop) over pairs [0, batch), split into up to torch.get_num_threads()
    contiguous ranges when each gets at least MIN_CELLS_PER_THREAD of the batch's `cells`."""
    threads = min(torch.get_num_threads(), batch, max(1, batch * cells // MIN_CELLS_PER_THREAD))
    if threads <= 1:
        loop(*args, 0, batch)
        return
    bounds = np.linspace(0, batch, threads + 1).astype(int)
    list(_executor(threads).map(lambda k: loop(*args, bounds[k], bounds[k + 1]), range(threads)))


def as_array(x):
    """x as a C-contiguous float64 numpy array on the host (a copy only where needed)."""
    return x.detach().to("cpu", torch.float64).contiguous().numpy()


def lengths_array(lengths, shape):
    """[B, 2] int64 of per-pair (n, m): the checked lengths, or (N, M) for every pair."""
    batch, n_rows, n_cols = shape
    if lengths is None:
        return np.tile(np.array([[n_rows, n_cols]], dtype=np.int64), (batch, 1))
    return lengths.to("cpu").numpy()


def table_like(shape):
    batch, n_rows, n_cols = shape
    return np.zeros((batch, n_rows + 1, n_cols + 1))


