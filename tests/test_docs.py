"""The docs' command lines are the test: each one is copy-pasteable as written, and those that run on
the synthetic set are run here as a newcomer meets them, after `make train-ftcl`, in reading order
(README, then docs/), on smaller data with one epoch, nothing else changed."""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# In reading order: the README, then the topic docs it points to.
DOCS = [README] + [ROOT / "docs" / name for name in ("install.md", "data.md", "cli.md", "kernels.md", "fidelity.md",
                                                     "performance.md", "testing.md")]
# What `make train-ftcl` runs on the synthetic set (the Makefile's defaults), before the docs' lines.
MAKE_TRAIN_FTCL = [
    "python -m ftcl.synthetic --out data/synthetic",
    "python -m ftcl.train baseline --data-dir data/synthetic --run-dir runs/synthetic/baseline --epochs 30 --objective acm",
    "python -m ftcl.train ftcl --data-dir data/synthetic --run-dir runs/synthetic/ftcl --init runs/synthetic/baseline/best.pt "
    "--epochs 3",
]


def command_lines(paths=DOCS):
    """Lines of the ```bash blocks of the docs, in order (comments and blank lines dropped)."""
    lines = []
    for path in paths:
        inside = False
        for line in path.read_text().splitlines():
            if line.startswith("```"):
                inside = line.strip() == "```bash"
                continue
            if inside and line.strip() and not line.lstrip().startswith("#"):
                lines.append(line.strip())
    return lines


def test_every_command_line_is_copy_pasteable():
    lines = command_lines()
    assert len(lines) > 20
    for line in lines:
        assert line.split()[0] in ("python", "make", "source", "bash"), line
        assert "..." not in line and " | " not in line and not re.search(r"[\[\]{}<>]", line), line
        shlex.split(line)  # balanced quotes


def test_the_make_train_ftcl_stand_in_matches_the_makefile():
    makefile = (ROOT / "Makefile").read_text()
    assert "$(PY) -m ftcl.synthetic --out $(DATA)" in makefile
    assert "$(PY) -m ftcl.train baseline --data-dir $(DATA) --run-dir $(RUNS)/baseline" in makefile
    assert "$(PY) -m ftcl.train ftcl --data-dir $(DATA) --run-dir $(RUNS)/ftcl --init $(RUNS)/baseline/best.pt" in makefile
    assert re.search(r"^EPOCHS \?= 30$", makefile, re.M) and re.search(r"^FTCL_EPOCHS \?= 3$", makefile, re.M)
    assert re.search(r"^OBJECTIVE \?= acm$", makefile, re.M) and "$(objective_arg)" in makefile


def _shrunk(line):
    """The docs' line, run small: tiny synthetic sets, one epoch (two when resuming)."""
    args = shlex.split(line)
    if args[:3] == ["python", "-m", "ftcl.synthetic"]:
        args += ["--train-videos", "24", "--test-videos", "8", "--classes", "4", "--feature-dim", "16"]
    if args[:3] == ["python", "-m", "ftcl.train"]:
        if "--epochs" in args:
            args[args.index("--epochs") + 1] = "2" if "--resume" in args else "1"
        if "--resume" not in args:
            args += ["--batch-size", "4"] + (["--sample-snippets", "32"] if "activitynet13" not in args else [])
            if "--epochs" not in args:
                args += ["--epochs", "1"]
    return [sys.executable] + args[1:]


@pytest.mark.slow
def test_synthetic_command_lines_run_as_written(tmp_path):
    lines = [line for line in command_lines() if line.startswith("python -m") and "synthetic" in line]
    assert len(lines) >= 15
    # In a scratch directory with the checkout on the path: what running them from the checkout does.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for line in MAKE_TRAIN_FTCL + lines:
        run = subprocess.run(_shrunk(line), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, f"{line}\n{run.stderr[-2000:]}"
        assert "Traceback" not in run.stderr, line


@pytest.mark.parametrize("target", ["train-ftcl", "train-baseline", "test", "test-fast", "bench"])
def test_make_targets_named_in_the_docs_exist(target):
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(rf"^{target}:", makefile, re.M)


def test_the_docs_index_names_every_page():
    index = (ROOT / "docs" / "README.md").read_text()
    pages = sorted(str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md") if p.name != "README.md")
    assert [page for page in pages if f"]({page})" not in index] == []


def test_docs_link_only_to_files_that_exist():
    for path in DOCS + [ROOT / "docs" / "README.md", ROOT / "CHANGELOG.md", ROOT / "bench" / "RESULTS.md"]:
        for name in re.findall(r"(?<![\w/])((?:docs|bench|tests)/[\w/.-]+\.(?:md|py|sh))\b", path.read_text()):
            assert (ROOT / name).exists(), f"{path.name} names {name}"
        for link in re.findall(r"\]\(([\w/.-]+\.md)\)", path.read_text()):
            assert (path.parent / link).exists(), f"{path.name} links {link}"


def test_the_readme_is_for_users():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    assert "make train-ftcl" in text and "make test" in text
    assert "../shared" not in text


def test_every_training_flag_is_in_the_cli_table():
    """docs/cli.md's flags table names every flag of `python -m ftcl.train --help`."""
    from ftcl.train import cli
    flags = {option for action in cli.build_parser()._actions for option in action.option_strings
             if option.startswith("--") and option != "--help"}
    table = "\n".join(line for line in (ROOT / "docs" / "cli.md").read_text().splitlines() if line.startswith("| `--"))
    assert sorted(flag for flag in flags if f"`{flag}" not in table) == []
