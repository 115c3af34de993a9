"""The README's command lines are the test: each one is copy-pasteable as written, and those that run
on the synthetic set are run here, in README order (smaller data and one epoch, nothing else changed)."""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def command_lines():
    """Lines of the README's ```bash blocks (comments and blank lines dropped)."""
    lines, inside = [], False
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            inside = line.strip() == "```bash"
            continue
        if inside and line.strip() and not line.lstrip().startswith("#"):
            lines.append(line.strip())
    return lines


def _shrunk(line):
    """The README line, run small: tiny synthetic sets, one epoch (two when resuming)."""
    args = shlex.split(line)
    if args[:3] == ["python", "-m", "ftcl.synthetic"]:
        args += ["--train-videos", "24", "--test-videos", "8", "--classes", "4", "--feature-dim", "16"]
    if args[:3] == ["python", "-m", "train"]:
        if "--epochs" in args:
            args[args.index("--epochs") + 1] = "2" if "--resume" in args else "1"
        if "--resume" not in args:
            args += ["--batch-size", "4"] + (["--sample-snippets", "32"] if "activitynet13" not in args else [])
            if "--epochs" not in args:
                args += ["--epochs", "1"]
    return [sys.executable] + args[1:]


def test_every_command_line_is_copy_pasteable():
    lines = command_lines()
    assert len(lines) > 20
    for line in lines:
        assert line.split()[0] in ("python", "make", "source"), line
        assert "..." not in line and " | " not in line and not re.search(r"[\[\]{}<>]", line), line
        shlex.split(line)  # balanced quotes


@pytest.mark.slow
def test_synthetic_command_lines_run_as_written(tmp_path):
    lines = [line for line in command_lines() if line.startswith("python -m") and "synthetic" in line]
    assert len(lines) >= 15
    for line in lines:
        # In a scratch directory with the checkout on the path: what running them from the checkout does.
        env = {**os.environ, "PYTHONPATH": str(README.parent)}
        run = subprocess.run(_shrunk(line), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, f"{line}\n{run.stderr[-2000:]}"
        assert "Traceback" not in run.stderr, line


@pytest.mark.parametrize("target", ["train-ftcl", "test", "bench"])
def test_make_targets_named_in_the_readme_exist(target):
    makefile = (README.parent / "Makefile").read_text()
    assert re.search(rf"^{target}:", makefile, re.M)
