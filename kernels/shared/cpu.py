"""What the CPU paths of the DP ops share: compiled scalar loops (numba), one pair after another,
the batch split across threads.

Each op's `cpu.py` holds a forward and a backward loop over a range of pairs [start, stop) of float64
arrays; `run` calls one over the whole batch, in up to torch.get_num_threads() threads when the
batch holds enough work (the loops release the GIL). Tables are [B, N+1, M+1] float64, row-major,
with the border in row and column 0, so a pair is swept row by row through contiguous memory; the
backward recomputes each cell's weights from the table and carries the adjoints in two rows.
"""
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import torch

# Below this many cells per thread a thread costs more than it saves.
MIN_CELLS_PER_THREAD = 1 << 15

jit = numba.njit(cache=True, nogil=True, fastmath=False, error_model="numpy")
# A cell of adjoint_sweep, compiled into the loop that calls it.
cell = numba.njit(cache=True, nogil=True, fastmath=False, error_model="numpy", inline="always")

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


def adjoint_sweep(cell):
    """The backward loop of a DP whose cell (i, j) takes its value from (i-1, j-1), (i-1, j) and
    (i, j-1), compiled around `cell` (a jit function, inlined): sweep(args, table, lengths, grad_out,
    start, stop) goes, for pairs [start, stop), from (n, m) back to (1, 1) row by row and calls
    cell(args, p, i, j, n, m, adjoint, c, above, below) on each cell whose adjoint is not 0. below
    holds the adjoints of row i (pushed into from row i + 1 and from the right), above those of row
    i - 1: the cell adds its pushes to above[j - 1], above[j] and below[j - 1]. c: the pair's table
    [N+1, M+1]."""

    @jit
    def sweep(args, table, lengths, grad_out, start, stop):
        n_cols = table.shape[2] - 1
        below = np.zeros(n_cols + 1)
        above = np.zeros(n_cols + 1)
        for p in range(start, stop):
            n, m = lengths[p, 0], lengths[p, 1]
            c = table[p]
            below[:] = 0.0
            below[m] = grad_out[p]
            for i in range(n, 0, -1):
                above[:] = 0.0
                for j in range(m, 0, -1):
                    if below[j] != 0.0:
                        cell(args, p, i, j, n, m, below[j], c, above, below)
                below, above = above, below

    return sweep


@jit
def soft_max(a, b, c, gamma):
    """max_gamma(a, b, c): the first greatest at gamma = 0; NaN if any is NaN."""
    top = a
    if b > top or b != b:
        top = b
    if c > top or c != c:
        top = c
    if gamma == 0.0 or not (abs(top) < math.inf):
        return top
    # The greatest's own term is exp(0) = 1; the others' are those of the other two.
    if top == a:
        total = 1.0 + math.exp((b - top) / gamma) + math.exp((c - top) / gamma)
    elif top == b:
        total = math.exp((a - top) / gamma) + 1.0 + math.exp((c - top) / gamma)
    else:
        total = math.exp((a - top) / gamma) + math.exp((b - top) / gamma) + 1.0
    return top + gamma * math.log(total)


@jit
def soft_min(a, b, c, gamma):
    """min_gamma(a, b, c) = -max_gamma(-a, -b, -c): the first least at gamma = 0; NaN if any is NaN,
    +inf if all are (every operation is soft_max's negated, so the values are the same bits)."""
    return -soft_max(-a, -b, -c, gamma)


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


