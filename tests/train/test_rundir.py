"""train.rundir: a run directory is never shared, never silently overwritten, never left half-made."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from ftcl.train import cli as train_cli
from ftcl.train.rundir import RunDirectory, RunDirError
from tests.helpers import TRAIN, one_line_error


def _snapshot(directory):
    return {p.relative_to(directory): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_a_new_run_never_overwrites_a_run(data, baseline_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(baseline_run, run)
    before = _snapshot(run)
    assert train_cli.main(["baseline", "--data-dir", str(data), "--run-dir", str(run), *TRAIN]) == 2
    one_line_error(capsys, str(run), "already holds a run", "--overwrite")
    assert _snapshot(run) == before
    assert train_cli.main(["baseline", "--data-dir", str(data), "--run-dir", str(run), "--overwrite", *TRAIN,
                           "--seed", "5"]) == 0
    assert json.loads((run / "config.json").read_text())["seed"] == 5


@pytest.mark.parametrize("seeds", [[], ["--seeds", "2"]], ids=["one-run", "seeds"])
def test_overwrite_keeps_the_old_run_when_the_new_one_cannot_start(data, baseline_run, tmp_path, capsys, seeds,
                                                                    monkeypatch):
    """--overwrite removes the old run only once the new one is ready to train: a missing --init or
    data directory, or a logger whose package is not installed, leaves every old file as it was."""
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # not installed
    monkeypatch.setitem(sys.modules, "wandb", None)
    run = tmp_path / "run"
    shutil.copytree(baseline_run, run)
    if seeds:
        shutil.copytree(baseline_run, run / "seed-0")
    before = _snapshot(run)
    for broken in (["--init", str(tmp_path / "missing.pt")], ["--data-dir", str(tmp_path / "no-data")],
                   ["--tensorboard"], ["--wandb"]):
        argv = ["baseline", "--data-dir", str(data), "--run-dir", str(run), "--overwrite", *seeds, *TRAIN, *broken]
        assert train_cli.main(argv) == 2
        assert capsys.readouterr().err.splitlines()[-1].startswith("error: ")
        assert _snapshot(run) == before
    assert train_cli.main(["baseline", "--data-dir", str(data), "--run-dir", str(run), "--overwrite", *seeds,
                           *TRAIN]) == 0
    assert _snapshot(run) != before


def test_two_runs_never_share_a_directory(data, tmp_path, capsys):
    run = tmp_path / "run"
    with RunDirectory(run):
        assert train_cli.main(["baseline", "--data-dir", str(data), "--run-dir", str(run), *TRAIN]) == 2
        one_line_error(capsys, str(run), f"another run (pid {os.getpid()})")
        assert not (run / "config.json").exists()
    # The lock goes with its process, even one killed with SIGKILL.
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from train.rundir import RunDirectory\n"
                               f"with RunDirectory({str(run)!r}):\n    print('held', flush=True); sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunDirError, match="another run"):
        RunDirectory(run).__enter__()
    holder.kill()
    holder.wait()
    with RunDirectory(run):
        pass


@pytest.mark.skipif(not (hasattr(os, "pidfd_open") and os.path.isdir("/proc/self/task")),
                    reason="needs Linux pidfds and /proc")
def test_a_killed_run_with_evaluation_workers_leaves_no_lock(data, tmp_path):
    """kill -9 of a trainer whose proposal workers run: --resume can take the directory at once (the
    workers never held its lock), and the workers end by themselves."""
    import select
    run = tmp_path / "run"
    script = ("import sys\nfrom ftcl.evaluation import workers\nreal = workers.start\n"
              "def start(n):\n    real(n)\n    print('workers', flush=True)\n"
              "workers.start = start\nfrom ftcl.train import cli\n"
              f"cli.main(['baseline', '--data-dir', {str(data)!r}, '--run-dir', {str(run)!r}, '--epochs', '100000', "
              "'--sample-snippets', '16', '--batch-size', '4', '--no-progress'])\n")
    trainer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "FTCL_EVAL_WORKERS": "2"})
    try:
        assert trainer.stdout.readline().strip() == "workers"
        children = open(f"/proc/{trainer.pid}/task/{trainer.pid}/children").read().split()
        assert len(children) >= 2, children
        handles = [os.pidfd_open(int(pid)) for pid in children]
    finally:
        trainer.kill()
        trainer.wait()
    with RunDirectory(run):  # free at once, though the workers may still be ending
        pass
    try:
        pending = list(handles)
        while pending:  # a pidfd turns readable when its process ends
            ready, _, _ = select.select(pending, [], [], 30.0)
            assert ready, f"{len(pending)} evaluation workers outlived their killed parent"
            pending = [h for h in pending if h not in ready]
    finally:
        for handle in handles:
            os.close(handle)


@pytest.mark.parametrize("seeds", [[], ["--seeds", "2"]], ids=["one-run", "seeds"])
def test_a_refused_start_leaves_no_run_directory_behind(data, tmp_path, capsys, monkeypatch, seeds):
    """A run refused before it writes anything removes the lock file and the directory it made; a
    directory that was there keeps what it held."""
    new = tmp_path / "runs" / "new"
    assert train_cli.main(["baseline", "--data-dir", str(tmp_path / "missing"), "--run-dir", str(new), *seeds,
                           *TRAIN]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("error: ") and "data directory not found" in err[-1], err
    assert err[:-1] == ([f"== seed 0 -> {new / 'seed-0'}"] if seeds else []), err  # --seeds names each seed first
    assert not new.exists() and (tmp_path / "runs").is_dir()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    monkeypatch.setenv("FTCL_EVAL_WORKERS", "0")
    assert train_cli.main(["baseline", "--data-dir", str(data), "--run-dir", str(kept), *seeds, *TRAIN]) == 2
    one_line_error(capsys, "FTCL_EVAL_WORKERS must be at least 1")
    assert sorted(p.name for p in kept.iterdir()) == ["notes.txt"]
