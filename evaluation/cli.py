"""The project's command-line parsers: a usage mistake is one line on stderr and exit status 2."""
import argparse
import os
import sys


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
