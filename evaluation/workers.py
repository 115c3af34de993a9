"""Worker processes for the proposals of many videos, for callers that evaluate again and again
(training evaluates the test split after every epoch). The pool starts on first use and is reused
until the process exits."""
import atexit
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

# At most this many workers by default: past it the hand-off of outputs and results dominates.
MAX_DEFAULT_WORKERS = 8
_pool = None
_pool_size = 0


def default_workers():
    """FTCL_EVAL_WORKERS when set, else the CPU cores this process may use (at most
    MAX_DEFAULT_WORKERS): the evaluation runs between epochs, when training leaves them idle. 1 means
    in-process."""
    value = os.environ.get("FTCL_EVAL_WORKERS")
    if value is not None:
        try:
            workers = int(value)
        except ValueError:
            raise ValueError(f"FTCL_EVAL_WORKERS must be a whole number, got {value!r}") from None
        if workers < 1:
            raise ValueError(f"FTCL_EVAL_WORKERS must be at least 1, got {workers}")
        return workers
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_DEFAULT_WORKERS, cores))


def _executor(workers):
    global _pool, _pool_size
    if _pool is None or _pool_size != workers:
        shutdown()
        # fork where there is one (as torch's DataLoader workers): a worker starts in milliseconds with
        # what the caller imported, where spawn and forkserver re-import the caller's __main__ (torch
        # included) in every worker. Workers only run numpy on the outputs, never CUDA.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        _pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                                    initializer=_exit_with_parent, initargs=(os.getpid(),))
        _pool_size = workers
    return _pool


# How often a worker looks whether its parent still lives, in seconds.
PARENT_CHECK_SECONDS = 0.5


def _exit_with_parent(parent):
    """Worker initializer: end this worker once its parent is gone. A parent killed with SIGKILL
    cannot stop its pool, and an orphaned worker would keep whatever it inherited (files, locks).
    Ctrl-C reaches the whole process group: the parent alone handles it (and stops the pool)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    def watch():
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(0)
    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def start(workers):
    """Start the pool's processes now, from the calling thread (none for 1 worker; where processes
    cannot be started, map_chunks runs in-process), by mapping a trivial function over them."""
    map_chunks(abs, list(range(workers)), workers)


def map_chunks(fn, chunks, workers):
    """[fn(chunk) for chunk in chunks], over `workers` processes (in this one when workers is 1, when
    the pool broke, or where processes cannot be started: the result is the same)."""
    if workers <= 1 or len(chunks) <= 1:
        return [fn(chunk) for chunk in chunks]
    try:
        return list(_executor(workers).map(fn, chunks))
    except (BrokenProcessPool, OSError):
        shutdown()
        return [fn(chunk) for chunk in chunks]


@atexit.register
def shutdown():
    """Stop the workers (also at exit)."""
    global _pool, _pool_size
    if _pool is not None:
        _pool.shutdown(cancel_futures=True)
    _pool, _pool_size = None, 0
