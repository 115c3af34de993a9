"""ftcl.tool: one-line errors, files written whole or not at all, tables, closed pipes."""
import json
import os
import stat
import subprocess
import sys

import pytest

from ftcl import evaluate as ftcl_evaluate
from ftcl import synthetic, tool
from ftcl.train import cli as train_cli
from tests.helpers import TRAIN, one_line_error


def test_outputs_honour_the_umask(data, tmp_path):
    old = os.umask(0o022)
    try:
        syn = synthetic.generate(tmp_path / "syn", train_videos=2, test_videos=2, feature_dim=4)
        assert train_cli.main(["baseline", "--data-dir", str(data), "--run-dir", str(tmp_path / "run"), *TRAIN]) == 0
        assert ftcl_evaluate.main([str(tmp_path / "run" / "best.pt"), "--json"]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(syn.stat().st_mode) == 0o755
    for name in ("config.json", "metrics.csv", "last.pt", "best.pt", "best.pt.results.json"):
        assert stat.S_IMODE((tmp_path / "run" / name).stat().st_mode) == 0o644, name


def test_a_failed_write_names_the_file_asked_for_and_leaves_no_temporary(tmp_path, monkeypatch, capsys,
                                                                          baseline_run):
    """A full disk at the rename (or any write error on the temporary) is reported for --out's path."""
    import errno
    out = tmp_path / "results.json"

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", src)

    monkeypatch.setattr(os, "replace", full)
    monkeypatch.setattr(os, "link", full)
    assert ftcl_evaluate.main([str(baseline_run / "best.pt"), "--out", str(out), "--json"]) == 2
    one_line_error(capsys, f"error: {out}: No space left on device")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("module,working,argv", [
    ("ftcl.evaluate", "evaluate_model", ["{run}/best.pt", "--out", "{out}", "--json"]),
    ("ftcl.evaluate", "evaluate_model", ["{run}/best.pt", "--out", "{tmp}/new.json", "--save-outputs", "{out}"]),
    ("ftcl.localize", "localize_files", ["{run}/best.pt", "{data}/test", "--out", "{out}"]),
    ("ftcl.train.curves", "curves_figure", ["{run}", "--out", "{out}"]),
], ids=["evaluate", "evaluate-save-outputs", "localize", "curves"])
def test_a_file_written_meanwhile_is_never_replaced(module, working, argv, data, baseline_run, tmp_path, monkeypatch,
                                                     capsys):
    """Two runs given the same --out: the one that finishes second is refused, atomically, and leaves
    the first one's file (and no new file of its own) as it was."""
    import importlib
    cli_module = importlib.import_module(module)
    out = tmp_path / "out"
    real = getattr(cli_module, working)

    def meanwhile(*args, **kwargs):
        out.write_bytes(b"the other run's")  # after the tool's check, before its write
        return real(*args, **kwargs)

    monkeypatch.setattr(cli_module, working, meanwhile)
    assert cli_module.main([a.format(run=baseline_run, data=data, out=out, tmp=tmp_path) for a in argv]) == 2
    one_line_error(capsys, f"error: {out}: exists; never replaced unless you add --overwrite")
    assert out.read_bytes() == b"the other run's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("module,failing,argv", [
    ("ftcl.train.cli", "train_one", ["baseline", "--data-dir", "{data}", "--run-dir", "{out}"]),
    ("ftcl.synthetic", "generate", ["--out", "{out}"]),
    ("ftcl.convert", "convert_wtalc", ["wtalc", "{data}", "{out}"]),
], ids=["train", "synthetic", "convert"])
def test_a_failed_file_operation_is_one_line_naming_the_file(module, failing, argv, tmp_path, monkeypatch, capsys):
    """Every CLI that reports OSErrors prints them as `error: FILE: reason` (not errno's tuple)."""
    import errno
    import importlib
    target = tmp_path / "out"

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    cli_module = importlib.import_module(module)
    monkeypatch.setattr(cli_module, failing, full)
    assert cli_module.main([a.format(data=tmp_path, out=target) for a in argv]) == 2
    one_line_error(capsys, f"error: {target}: No space left on device")


@pytest.mark.slow
@pytest.mark.parametrize("argv", [
    ["train", "baseline", "--data-dir", "{data}", "--run-dir", "{tmp}/seeds", "--seeds", "1", *TRAIN],
    ["ftcl.evaluate", "{run}/best.pt", "--out", "{tmp}/results.json"],
    ["ftcl.localize", "{run}/best.pt", "{data}/test"],
], ids=["train-seeds", "evaluate", "localize"])
def test_a_closed_stdout_ends_a_finished_run_quietly(argv, data, baseline_run, tmp_path):
    """`... | head`: the work is done and written, then the first write to the closed pipe ends the
    tool with status 1 and nothing on stderr but its progress lines (no traceback, no `error:`)."""
    command = [sys.executable, "-m", *(a.format(data=data, tmp=tmp_path, run=baseline_run) for a in argv)]
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        out = subprocess.run(command, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write_end)
    assert out.returncode == 1 and "Traceback" not in out.stderr and "error" not in out.stderr, out.stderr
    if argv[0] == "train":
        assert (tmp_path / "seeds" / "seeds.csv").is_file() and (tmp_path / "seeds" / "best.pt").exists()
    if argv[0] == "ftcl.evaluate":
        assert json.loads((tmp_path / "results.json").read_text())["results"]


def test_markdown_tables_without_tabulate(monkeypatch):
    import pandas as pd
    frame = pd.DataFrame({"stage": ["a", "b"], "ms": [1.23456, 20.0]})
    with_tabulate = tool.markdown(frame)

    def missing(*args, **kwargs):
        raise ImportError("Missing optional dependency 'tabulate'")

    monkeypatch.setattr(pd.DataFrame, "to_markdown", missing)
    plain = tool.markdown(frame)
    assert plain.splitlines()[0] == "| stage | ms |" and "| a | 1.23 |" in plain and "| b | 20.00 |" in plain
    assert len(plain.splitlines()) == len(with_tabulate.splitlines()) == 4


def test_clis_report_unwritable_paths_in_one_line(tiny_data, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code = train_cli.main(["baseline", "--data-dir", str(tiny_data), "--run-dir", str(blocker / "run"),
                           "--epochs", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and str(blocker) in err and err.count("\n") == 1
    assert synthetic.main(["--out", str(blocker / "syn"), "--train-videos", "1", "--test-videos", "1"]) == 2
    assert str(blocker) in capsys.readouterr().err


@pytest.mark.parametrize("hard_links", [True, False], ids=["hard-links", "no-hard-links"])
def test_atomic_write_without_replace(tmp_path, monkeypatch, hard_links):
    """replace=False writes a new file whole and refuses an existing one, also on a file system
    without hard links; no temporary file stays behind either way."""
    import errno
    if not hard_links:
        def refused(src, dst):
            raise OSError(errno.EPERM, "Operation not permitted", src)
        monkeypatch.setattr(os, "link", refused)
    path = tmp_path / "new.json"
    tool.write_json_atomic(path, {"a": 1}, replace=False)
    assert json.loads(path.read_text()) == {"a": 1}
    with pytest.raises(FileExistsError, match="never replaced") as caught:
        tool.write_json_atomic(path, {"a": 2}, replace=False)
    assert caught.value.filename == str(path) and json.loads(path.read_text()) == {"a": 1}
    tool.write_json_atomic(path, {"a": 3})
    assert json.loads(path.read_text()) == {"a": 3} and [p.name for p in tmp_path.iterdir()] == ["new.json"]
