"""A run directory that two runs never share and a new run never silently overwrites."""
import errno
import os
import shutil
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: runs are not locked
    fcntl = None

# What a run writes; any of them means the directory already holds a run.
RUN_FILES = ("config.json", "metrics.csv", "last.pt", "best.pt", "seeds.csv", "seeds.md")
RUN_DIRS = ("tb",)
LOCK_NAME = ".lock"


# The lock files of the run directories this process holds. A forked child (an evaluation worker)
# closes its copies at once: flock locks belong to the open file, so a child that outlived a
# SIGKILLed parent would otherwise keep the run directory locked.
_held_locks = set()


def _close_inherited_locks():
    for lock in _held_locks:
        lock.close()
    _held_locks.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited_locks)


class RunDirError(ValueError):
    """The run directory cannot be used; the message is one line naming it and why."""


class RunDirectory:
    """RUN/ held by this process for the length of a `with` block: an exclusive lock on RUN/.lock
    (released by the kernel when the process ends, even by kill -9) keeps a second run out."""

    def __init__(self, path):
        self.path = Path(path)
        self._lock = None
        self._made_dir = self._made_lock = False
        self.previous = []

    def existing_run_files(self):
        return [name for name in RUN_FILES + RUN_DIRS if (self.path / name).exists()] + \
            sorted(p.name for p in self.path.glob("seed-*") if p.is_dir())

    def __enter__(self):
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"{self.path}: exists and is not a directory; choose another --run-dir")
        self._made_dir = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        self._made_lock = not (self.path / LOCK_NAME).exists()
        lock = open(self.path / LOCK_NAME, "a+")
        if fcntl is not None:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                lock.seek(0)
                holder = lock.read().strip() or "unknown"
                lock.close()
                if err.errno in (errno.EAGAIN, errno.EACCES):
                    raise RunDirError(f"{self.path}: another run (pid {holder}) is using this run directory") from None
                raise
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        self._lock = lock
        _held_locks.add(lock)
        return self

    def __exit__(self, *exc):
        if self._lock is not None:
            # A run that wrote nothing (refused input, say) leaves nothing: not its lock file, nor the
            # directory it made. Removed while still locked, so no other run holds them meanwhile.
            if not self.existing_run_files():
                if self._made_lock:
                    (self.path / LOCK_NAME).unlink(missing_ok=True)
                if self._made_dir:
                    try:
                        self.path.rmdir()
                    except OSError:  # something else was put there: not ours to remove
                        pass
            _held_locks.discard(self._lock)
            self._lock.close()
            self._lock = None
        return False

    def claim_new(self, overwrite):
        """Make sure a new run may write here: refuse a directory holding a run, unless overwrite.
        That run's files stay until replace_previous(), called once the new run is ready to start,
        so a new run that cannot start (bad data, a broken --init) loses nothing."""
        found = self.existing_run_files()
        if found and not overwrite:
            raise RunDirError(f"{self.path}: already holds a run ({', '.join(found)}); continue it with --resume, "
                              f"choose another --run-dir, or start over with --overwrite")
        self.previous = found

    def replace_previous(self):
        """Remove the files of the run that claim_new(overwrite=True) found."""
        for name in self.previous:
            target = self.path / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        self.previous = []
