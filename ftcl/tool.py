"""What every tool of the project shares (standard library only, no torch): command-line parsers
whose usage mistakes are one line on stderr and exit status 2, the one-line error of a refused input,
the ending of a tool whose reader closed the pipe, and files written whole or not at all."""
import argparse
import contextlib
import errno
import functools
import json
import math
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path


class OneLineParser(argparse.ArgumentParser):
    """argparse.ArgumentParser whose errors are one line (no usage block; --help still shows it)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parser(prog, doc, **kwargs):
    """A OneLineParser whose description is the second paragraph of a module docstring."""
    return OneLineParser(prog=prog, description=doc.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter,
                         **kwargs)


def _integer(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def positive_int(text):
    """argparse type: a whole number >= 1."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


MAX_SEED = 2**32 - 1  # numpy's and torch's seeding accept 0 ... 2**32 - 1


def seed(text):
    """argparse type: a random seed, a whole number in [0, 2**32 - 1]."""
    value = _integer(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be in [0, {MAX_SEED}], got {value}")
    return value


def number(low, low_inclusive=True, high=None, what=""):
    """argparse type: a finite float >= low (> low unless low_inclusive), <= high when given; `what`
    names the quantity in the message ("a cosine similarity")."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < low or (value == low and not low_inclusive):
            raise argparse.ArgumentTypeError(f"must be a finite number {'>=' if low_inclusive else '>'} {low:g}, "
                                             f"got {text}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be in [{low:g}, {high:g}]{f' ({what})' if what else ''}, got {text}")
        return value
    return parse


def temperature(smallest, largest=None):
    """argparse type: 0 (the hard max) or a finite temperature in [smallest, largest]."""
    def parse(text):
        value = number(0)(text)
        if 0 < value < smallest:
            raise argparse.ArgumentTypeError(f"must be 0 (the hard max) or >= {smallest:g}, got {text}")
        if largest is not None and value > largest:
            raise argparse.ArgumentTypeError(f"must be <= {largest:g}, got {text}")
        return value
    return parse


def error_line(err):
    """The one line a CLI prints for a refused input or a failed file operation (an OSError as its
    file and reason, not errno's tuple)."""
    if isinstance(err, OSError) and err.filename and err.strerror:
        return f"error: {err.filename}: {err.strerror}"
    return f"error: {err}"


def run(main):
    """sys.exit(main()), except that a reader closing the output early (`| head`) ends the tool
    quietly with status 1, as it does a Unix tool, instead of with a BrokenPipeError traceback."""
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout once more at exit: send that flush to /dev/null so it cannot fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 1
    sys.exit(status)



def script(main):
    """A tool's console script ([project.scripts] in pyproject.toml): run(main), called with no
    arguments."""
    return functools.partial(run, main)

def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _file_mode():
    """What a plain open() would give a new file: 0o666 less the process umask."""
    return 0o666 & ~_umask()


def _dir_mode():
    """What a plain mkdir would give a new directory: 0o777 less the process umask."""
    return 0o777 & ~_umask()


# A file or directory being built for PATH is PARENT/.NAME.partial.HOST.PID.RANDOM: a later write of
# the same PATH removes one whose process (on this host) is gone, e.g. killed with SIGKILL.
_PARTIAL = ".partial."


def _partial_prefix(path):
    return f".{path.name}{_PARTIAL}{socket.gethostname()}.{os.getpid()}."


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but another user's
        return True
    return True


def remove_stale_partials(path):
    """Remove what a killed writer of `path` left beside it (a hidden partial file or directory of a
    process of this host that no longer runs). Returns the paths removed."""
    path = Path(path)
    prefix, host, removed = f".{path.name}{_PARTIAL}", socket.gethostname(), []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        try:
            owner, pid, _ = entry.name[len(prefix):].rsplit(".", 2)
            pid = int(pid)
        except ValueError:
            continue
        if owner != host or pid == os.getpid() or _process_alive(pid):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_write(path, mode="w", replace=True):
    """Open a temporary file beside path; on success rename it onto path, on failure remove it.
    replace=False: a file at path is never replaced, even one that appeared while this one was being
    written (the final step links the new file into place, which fails atomically where one exists):
    FileExistsError naming path. The file gets the permissions a plain open() would give it
    (mkstemp's are 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_partial_prefix(path), dir=path.parent)
    except OSError as err:
        raise _naming(err, path) from err
    try:
        os.fchmod(fd, _file_mode())
        with os.fdopen(fd, mode) as f:
            yield f
        if replace:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno is not None and err.filename in (None, tmp):
            raise _naming(err, path) from err
        raise


def _link_new(tmp, path):
    """Put tmp at path unless path exists, atomically; tmp is gone afterwards."""
    refused = FileExistsError(errno.EEXIST, "exists; never replaced unless you add --overwrite", str(path))
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise refused from None
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        # A file system without hard links: the check and the rename are two steps there.
        if path.exists():
            raise refused from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


@contextlib.contextmanager
def reported_as(path):
    """An OSError inside is reported for path: the file the user will look for, not the temporary
    one being written (a write error of a full disk names no file at all)."""
    try:
        yield
    except OSError as err:
        raise _naming(err, path) from None


def _naming(err, path):
    """The OSError err about a temporary file (or about none), reported for the path the user named."""
    return type(err)(err.errno, err.strerror or str(err), str(path))


@contextlib.contextmanager
def atomic_directory(path, make_room=None):
    """Build a directory beside path (yielded), then rename it onto path: a reader sees all of it or
    nothing. make_room(path) runs just before the rename when path exists (e.g. to remove what it
    may replace). On failure the partial directory is removed. Permissions are what a plain mkdir
    gives (mkdtemp's are 0700)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path)
    tmp = Path(tempfile.mkdtemp(prefix=_partial_prefix(path), dir=path.parent))
    try:
        os.chmod(tmp, _dir_mode())
        yield tmp
        if path.exists() and make_room is not None:
            make_room(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json_atomic(path, obj, replace=True):
    """Write JSON to a temporary file beside path, then rename: never a half-written file; replace as
    in atomic_write. (json.dumps: its C encoder is several times faster than json.dump's chunked one.)"""
    text = json.dumps(obj)
    with atomic_write(path, replace=replace) as f:
        f.write(text)


def markdown(frame, floatfmt=".2f"):
    """A pandas DataFrame as a GitHub Markdown table (the one table printer of the project): pandas'
    to_markdown, or plain pipes where tabulate is missing (a machine without a package index)."""
    try:
        return frame.to_markdown(index=False, floatfmt=floatfmt)
    except ImportError:
        cells = [[format(v, floatfmt) if isinstance(v, float) else ("" if v is None else str(v)) for v in row]
                 for row in frame.itertuples(index=False)]
        lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])
