"""Careless users and broken data: nothing lost, nothing silently wrong, one-line errors (exit 2)."""
import json
import os
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch

from ftcl import kernels
from ftcl import evaluate as ftcl_evaluate
from ftcl import synthetic
from ftcl.data import DataError, load_dataset
from ftcl.train import cli as train_cli
from ftcl.train.loop import Trainer, TrainingStopped
from ftcl.train.rundir import RunDirectory, RunDirError

TRAIN = ["--epochs", "1", "--sample-snippets", "16", "--batch-size", "4", "--no-progress"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return synthetic.generate(tmp_path_factory.mktemp("bad") / "tiny", seed=4, num_classes=3, train_videos=10,
                              test_videos=5, feature_dim=8, min_length=16, max_length=30)


@pytest.fixture(scope="module")
def baseline_run(data, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "baseline"
    assert train_cli.main(["baseline", "--data-dir", str(data), "--run-dir", str(run), *TRAIN]) == 0
    return run


def _copy(data, tmp_path, name="copy"):
    target = tmp_path / name
    shutil.copytree(data, target)
    return target


def _one_line_error(capsys, *fragments):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def _snapshot(directory):
    return {p.relative_to(directory): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_synthetic_replaces_only_what_it_wrote(tmp_path, capsys):
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "gt.json").write_text("{}")  # looks like a data directory, but is the user's
    (precious / "notes.txt").write_text("keep me")
    args = ["--train-videos", "2", "--test-videos", "2", "--feature-dim", "4"]
    assert synthetic.main(["--out", str(precious), *args]) == 2
    _one_line_error(capsys, str(precious), "not written by ftcl.synthetic")
    assert (precious / "notes.txt").read_text() == "keep me"
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert synthetic.main(["--out", str(a_file), *args]) == 2
    _one_line_error(capsys, str(a_file), "not a directory")
    assert a_file.read_text() == "x"
    ours = tmp_path / "ours"
    assert synthetic.main(["--out", str(ours), *args]) == 0
    assert synthetic.main(["--out", str(ours), "--seed", "1", *args]) == 0  # its own: replaced
    assert json.loads((ours / synthetic.MARKER).read_text())["seed"] == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert synthetic.main(["--out", str(empty), *args]) == 0


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


def test_a_new_run_never_overwrites_a_run(data, baseline_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(baseline_run, run)
    before = _snapshot(run)
    assert train_cli.main(["baseline", "--data-dir", str(data), "--run-dir", str(run), *TRAIN]) == 2
    _one_line_error(capsys, str(run), "already holds a run", "--overwrite")
    assert _snapshot(run) == before
    assert train_cli.main(["baseline", "--data-dir", str(data), "--run-dir", str(run), "--overwrite", *TRAIN,
                           "--seed", "5"]) == 0
    assert json.loads((run / "config.json").read_text())["seed"] == 5


@pytest.mark.parametrize("seeds", [[], ["--seeds", "2"]], ids=["one-run", "seeds"])
def test_overwrite_keeps_the_old_run_when_the_new_one_cannot_start(data, baseline_run, tmp_path, capsys, seeds):
    """--overwrite removes the old run only once the new one is ready to train: a missing --init or
    data directory leaves every old file as it was."""
    run = tmp_path / "run"
    shutil.copytree(baseline_run, run)
    if seeds:
        shutil.copytree(baseline_run, run / "seed-0")
    before = _snapshot(run)
    for broken in (["--init", str(tmp_path / "missing.pt")], ["--data-dir", str(tmp_path / "no-data")]):
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
        _one_line_error(capsys, str(run), f"another run (pid {os.getpid()})")
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
    _one_line_error(capsys, "FTCL_EVAL_WORKERS must be at least 1")
    assert sorted(p.name for p in kept.iterdir()) == ["notes.txt"]


def test_resume_takes_data_dir_and_refuses_what_it_cannot_honour(data, baseline_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(baseline_run, run)
    moved = _copy(data, tmp_path, "moved")
    config_before = (run / "config.json").read_text()
    assert train_cli.main(["baseline", "--run-dir", str(run), "--resume", "--epochs", "1", "--data-dir",
                           str(tmp_path / "nowhere"), "--no-progress"]) == 2
    _one_line_error(capsys, "nowhere", "data directory not found")
    assert (run / "config.json").read_text() == config_before
    assert train_cli.main(["baseline", "--run-dir", str(run), "--resume", "--epochs", "2", "--data-dir",
                           str(moved), "--no-progress"]) == 0
    assert json.loads((run / "config.json").read_text())["data_dir"] == str(moved.resolve())
    config_before = (run / "config.json").read_text()
    assert train_cli.main(["baseline", "--run-dir", str(run), "--resume", "--epochs", "1", "--no-progress"]) == 2
    _one_line_error(capsys, "--epochs 1", "below the 2 epochs")
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main(["baseline", "--run-dir", str(run), "--resume", "--lr", "0.1"])
    assert exit_info.value.code == 2
    _one_line_error(capsys, "--lr cannot change a run on --resume")
    other = synthetic.generate(tmp_path / "other", seed=1, num_classes=4, train_videos=6, test_videos=3,
                               feature_dim=8, min_length=16, max_length=20)
    assert train_cli.main(["baseline", "--run-dir", str(run), "--resume", "--epochs", "3", "--data-dir",
                           str(other), "--no-progress"]) == 2
    _one_line_error(capsys, "Action04", "but the run was trained on 3 classes (Action01, Action02, Action03)")
    assert (run / "config.json").read_text() == config_before


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_features_are_refused_when_a_split_loads(data, tmp_path, capsys, split, value):
    root = _copy(data, tmp_path)
    vid = (root / f"split_{split}.txt").read_text().split()[1]
    features = np.load(root / split / f"{vid}.npy")
    features[7, 3] = value
    np.save(root / split / f"{vid}.npy", features)
    assert train_cli.main(["baseline", "--data-dir", str(root), "--run-dir", str(tmp_path / "run"), *TRAIN]) == 2
    _one_line_error(capsys, f"{vid}.npy: row 7 holds a non-finite value")
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize("array,message", [
    (np.array([["a", "b"], ["c", "d"]]), "are not numbers"),
    (np.ones((4, 8), dtype=np.complex64), "complex features"),
    (np.ones((4, 8), dtype=bool), "are not numbers"),
    (np.ones(8, dtype=np.float32), "must be [T, D]"),
    (np.empty((0, 8), dtype=np.float32), "must be [T, D]"),
    (np.array([np.ones(3), np.ones(4)], dtype=object), "not a readable .npy array"),
])
def test_feature_files_that_are_not_real_numbers(data, tmp_path, capsys, array, message):
    root = _copy(data, tmp_path)
    vid = (root / "split_train.txt").read_text().split()[0]
    np.save(root / "train" / f"{vid}.npy", array, allow_pickle=True)
    assert train_cli.main(["baseline", "--data-dir", str(root), "--run-dir", str(tmp_path / "run"), *TRAIN]) == 2
    _one_line_error(capsys, f"{vid}.npy", message)


def test_a_run_that_cannot_take_a_finite_step_stops_without_saving(data, tmp_path, monkeypatch):
    with pytest.raises(SystemExit):
        train_cli.main(["baseline", "--data-dir", str(data), "--run-dir", str(tmp_path / "r"), "--lr", "inf"])
    trainer = Trainer("baseline", _config(data), tmp_path / "run", torch.device("cpu"), progress=False)
    real_step = trainer.optimizer.step

    def blow_up(*args, **kwargs):
        real_step(*args, **kwargs)
        with torch.no_grad():
            trainer.model.snippet_cls.weight[0, 0] = float("inf")

    monkeypatch.setattr(trainer.optimizer, "step", blow_up)
    with pytest.raises(TrainingStopped, match="non-finite weights \\(snippet_cls.weight\\); nothing saved"):
        trainer.run()
    assert not (tmp_path / "run" / "best.pt").exists() and not (tmp_path / "run" / "last.pt").exists()


def _config(data_dir, **kw):
    from ftcl.config import preset
    values = dict(data_dir=str(data_dir), sample_snippets=16, batch_size=4, epochs=1, ftcl_epochs=1, lcs_len=6,
                  fsd_len=2, fc_dim=8)
    values.update(kw)
    return preset("thumos14", **values)


def test_ftcl_without_a_positive_pair_is_refused(tmp_path, capsys):
    # Every training video gets its own class: no two share labels.
    root = synthetic.generate(tmp_path / "distinct", seed=2, num_classes=12, train_videos=12, test_videos=3,
                              feature_dim=8, min_length=16, max_length=20, two_class_fraction=0.0)
    database = json.loads((root / "gt.json").read_text())
    ids = (root / "split_train.txt").read_text().split()
    for k, vid in enumerate(ids):
        for ann in database["database"][vid]["annotations"]:
            ann["label"] = f"Action{k + 1:02d}"
    (root / "gt.json").write_text(json.dumps(database))
    init = tmp_path / "base"
    assert train_cli.main(["baseline", "--data-dir", str(root), "--run-dir", str(init), *TRAIN]) == 0
    capsys.readouterr()
    for extra in ([], ["--pairs", "in-batch"]):
        code = train_cli.main(["ftcl", "--data-dir", str(root), "--run-dir", str(tmp_path / "ftcl"), "--init",
                               str(init / "best.pt"), *TRAIN, *extra])
        assert code == 2
        _one_line_error(capsys, "no positive pair")
    assert not (tmp_path / "ftcl" / "last.pt").exists()


def test_sample_snippets_too_few_for_the_candidates(data, tmp_path, capsys):
    code = train_cli.main(["baseline", "--data-dir", str(data), "--run-dir", str(tmp_path / "run"), "--epochs", "1",
                           "--sample-snippets", "1", "--no-progress"])
    assert code == 2
    _one_line_error(capsys, "--sample-snippets 1", "must be >= 10")


@pytest.mark.parametrize("flag,value,message", [
    ("--fsd-gamma", "inf", "argument --fsd-gamma"), ("--lcs-gamma", "1e-40", "argument --lcs-gamma"),
    ("--lr", "nan", "argument --lr"), ("--weight-decay", "-1", "argument --weight-decay"),
    ("--seeds", "0,0", "argument --seeds"), ("--epochs", "0", "argument --epochs"),
    ("--seed", "-1", "argument --seed: must be in [0, 4294967295]"), ("--seed", "4294967296", "argument --seed"),
    ("--seeds", "1,4294967296", "argument --seeds"), ("--lcs-threshold", "1.5", "argument --lcs-threshold"),
    ("--fsd-weight", "-1", "argument --fsd-weight"), ("--lcs-weight", "inf", "argument --lcs-weight"),
    ("--lcs-len", "0", "argument --lcs-len"), ("--fsd-len", "x", "argument --fsd-len"),
])
def test_training_flags_are_checked_in_one_line(data, tmp_path, capsys, flag, value, message):
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main(["baseline", "--data-dir", str(data), "--run-dir", str(tmp_path / "run"), flag, value])
    assert exit_info.value.code == 2
    _one_line_error(capsys, message, value)


def test_synthetic_refuses_a_seed_numpy_cannot_take(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        synthetic.main(["--out", str(tmp_path / "syn"), "--seed", "-1"])
    assert exit_info.value.code == 2
    _one_line_error(capsys, "argument --seed: must be in [0, 4294967295], got -1")
    assert not (tmp_path / "syn").exists()


@pytest.mark.parametrize("tiou", ["nan,0.5", "0.1:0.9:1e-9", "0.1:inf:0.1", "0:0.5:0.1", "0.5,2"])
def test_evaluation_cli_validates_tiou(tmp_path, tiou):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"database": {"v": {"subset": "test", "annotations": [
        {"label": "A", "segment": [0, 1]}]}}}))
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({"results": {"v": [{"label": "A", "score": 1, "segment": [0, 1]}]}}))
    out = subprocess.run([sys.executable, "-m", "evaluation", str(gt), str(pred), "--tiou", tiou],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "--tiou" in out.stderr, out.stderr


def _edit_gt(root, edit):
    database = json.loads((root / "gt.json").read_text())
    vid = (root / "split_train.txt").read_text().split()[0]
    edit(database["database"], vid)
    (root / "gt.json").write_text(json.dumps(database))
    return vid


GT_BREAKAGES = [
    (lambda db, v: db[v]["annotations"][0].__setitem__("label", None), "non-empty 'label' string"),
    (lambda db, v: db[v]["annotations"][0].pop("label"), "non-empty 'label' string"),
    (lambda db, v: db[v]["annotations"][0].__setitem__("label", 7), "non-empty 'label' string"),
    (lambda db, v: db[v].__setitem__("annotations", {"label": "x"}), "'annotations' must be a list"),
    (lambda db, v: db.__setitem__(v, ["not", "an", "object"]), "entry must be an object"),
    (lambda db, v: db[v].__setitem__("duration", "long"), "'duration' must be a finite number"),
    (lambda db, v: db[v]["annotations"][0].__setitem__("segment", [5, "x"]), "segment"),
]


@pytest.mark.parametrize("edit,message", GT_BREAKAGES)
def test_malformed_ground_truth_in_training_and_evaluation(data, tmp_path, capsys, edit, message):
    root = _copy(data, tmp_path)
    vid = _edit_gt(root, edit)
    assert train_cli.main(["baseline", "--data-dir", str(root), "--run-dir", str(tmp_path / "run"), *TRAIN]) == 2
    _one_line_error(capsys, "gt.json", f"video {vid}", message)
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({"results": {}}))
    out = subprocess.run([sys.executable, "-m", "evaluation", str(root / "gt.json"), str(pred), "--subset",
                          "validation"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and f"video {vid}" in out.stderr, out.stderr


def test_a_training_video_without_annotations_is_refused_and_a_test_video_without_is_scored(data, tmp_path,
                                                                                             capsys):
    """Unrefused, such a training video made every step it was in non-finite: the baseline skipped
    them in silence and FTCL (which pairs it with any other unlabelled video) took no step at all."""
    root = _copy(data, tmp_path)
    vid = _edit_gt(root, lambda db, v: db[v].__setitem__("annotations", []))
    assert train_cli.main(["baseline", "--data-dir", str(root), "--run-dir", str(tmp_path / "run"), *TRAIN]) == 2
    _one_line_error(capsys, "gt.json", f"training video {vid} has no annotations", "1 of 10")
    assert not (tmp_path / "run").exists()
    root = _copy(data, tmp_path, "test-unlabelled")
    database = json.loads((root / "gt.json").read_text())
    database["database"][(root / "split_test.txt").read_text().split()[0]]["annotations"] = []
    (root / "gt.json").write_text(json.dumps(database))
    assert train_cli.main(["baseline", "--data-dir", str(root), "--run-dir", str(tmp_path / "run"), *TRAIN]) == 0


def test_split_mixing_subsets_or_listing_a_video_twice_is_refused(data, tmp_path):
    root = _copy(data, tmp_path)
    train_ids = (root / "split_train.txt").read_text().split()
    test_ids = (root / "split_test.txt").read_text().split()
    shutil.copy(root / "train" / f"{train_ids[0]}.npy", root / "test" / f"{train_ids[0]}.npy")
    (root / "split_test.txt").write_text("\n".join(test_ids + [train_ids[0]]) + "\n")
    with pytest.raises(DataError, match=f"split_test.txt: videos of several gt.json subsets .*{train_ids[0]} is 'validation'"):
        load_dataset(root)
    (root / "split_test.txt").write_text("\n".join(test_ids + [test_ids[0]]) + "\n")
    with pytest.raises(DataError, match=f"split_test.txt: video id {test_ids[0]} is listed twice"):
        load_dataset(root)


def test_evaluating_on_other_data_names_both_sides(data, baseline_run, tmp_path, capsys):
    other = synthetic.generate(tmp_path / "other", seed=1, num_classes=4, train_videos=8, test_videos=8,
                               feature_dim=8, min_length=16, max_length=20)
    assert ftcl_evaluate.main([str(baseline_run / "best.pt"), "--data-dir", str(other)]) == 2
    _one_line_error(capsys, "Action04", "of 8-d", "trained on 3 classes (Action01, Action02, Action03) of 8-d")
    wide = synthetic.generate(tmp_path / "wide", seed=4, num_classes=3, train_videos=4, test_videos=3,
                              feature_dim=12, min_length=16, max_length=20)
    assert ftcl_evaluate.main([str(baseline_run / "best.pt"), "--data-dir", str(wide)]) == 2
    _one_line_error(capsys, "of 12-d features", "of 8-d features")


def test_broken_outputs_files(data, baseline_run, tmp_path, capsys):
    good = tmp_path / "out.npz"
    assert ftcl_evaluate.main([str(baseline_run / "best.pt"), "--json", "--save-outputs", str(good)]) == 0
    capsys.readouterr()
    raw = good.read_bytes()
    for name, content in (("empty.npz", b""), ("truncated.npz", raw[: len(raw) // 2]), ("text.npz", b"hello")):
        (tmp_path / name).write_bytes(content)
        assert ftcl_evaluate.main(["--from-outputs", str(tmp_path / name)]) == 2
        _one_line_error(capsys, name, "not an outputs file")
    assert ftcl_evaluate.main(["--from-outputs", str(tmp_path / "none.npz")]) == 2
    _one_line_error(capsys, "none.npz: outputs file not found")


def test_named_outputs_are_never_replaced_unasked(baseline_run, tmp_path, capsys):
    out = tmp_path / "mine.json"
    out.write_text("precious")
    assert ftcl_evaluate.main([str(baseline_run / "best.pt"), "--out", str(out)]) == 2
    _one_line_error(capsys, "mine.json: exists", "--overwrite")
    assert out.read_text() == "precious"
    assert ftcl_evaluate.main([str(baseline_run / "best.pt"), "--out", str(out), "--overwrite"]) == 0
    err = capsys.readouterr().err
    assert f"wrote {out}" in err and json.loads(out.read_text())["results"]


def test_plot_arguments_are_checked_before_the_evaluation(baseline_run, tmp_path, capsys):
    taken = tmp_path / "plots"
    taken.write_text("a file")
    results = baseline_run / "best.pt.results.json"
    before = results.read_bytes() if results.exists() else None
    assert ftcl_evaluate.main([str(baseline_run / "best.pt"), "--plot", str(taken)]) == 2
    _one_line_error(capsys, f"{taken}: exists and is not a directory")
    with pytest.raises(SystemExit) as stop:
        ftcl_evaluate.main([str(baseline_run / "best.pt"), "--plot-videos", "video_test_0000001"])
    assert stop.value.code == 2
    _one_line_error(capsys, "--plot-videos", "give --plot too")
    assert (results.read_bytes() if results.exists() else None) == before  # nothing written by either


def test_a_failed_write_names_the_file_asked_for_and_leaves_no_temporary(tmp_path, monkeypatch, capsys,
                                                                          baseline_run):
    """A full disk at the rename (or any write error on the temporary) is reported for --out's path."""
    import errno
    out = tmp_path / "results.json"

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", src)

    monkeypatch.setattr(os, "replace", full)
    assert ftcl_evaluate.main([str(baseline_run / "best.pt"), "--out", str(out), "--json"]) == 2
    _one_line_error(capsys, f"error: {out}: No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_naive_lcs_stays_differentiable_and_tiny_gamma_is_refused():
    sim = torch.full((2, 3, 4), 0.1, dtype=torch.float64, requires_grad=True)  # nothing clears 0.92
    value = kernels.lcs(sim, backend="naive")
    assert value.grad_fn is not None
    (grad,) = torch.autograd.grad(value.sum(), sim)
    assert torch.equal(grad, torch.zeros_like(sim))
    for call in (lambda: kernels.lcs(sim, gamma=1e-40), lambda: kernels.fsd(sim, sim, gamma=1e-40)):
        with pytest.raises(ValueError, match="gamma 1e-40 is below"):
            call()


def test_scoring_saved_outputs_reads_no_feature_file(data, baseline_run, tmp_path, capsys):
    root = _copy(data, tmp_path)
    saved = tmp_path / "out.npz"
    assert ftcl_evaluate.main([str(baseline_run / "best.pt"), "--data-dir", str(root), "--json",
                               "--save-outputs", str(saved)]) == 0
    want = json.loads(capsys.readouterr().out)
    shutil.rmtree(root / "test")
    assert ftcl_evaluate.main(["--from-outputs", str(saved), "--data-dir", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == want


@pytest.mark.parametrize("flag", ["--feature-dim", "--classes", "--train-videos", "--test-videos"])
def test_synthetic_sizes_are_checked_in_one_line(tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as exit_info:
        synthetic.main(["--out", str(tmp_path / "syn"), flag, "0"])
    assert exit_info.value.code == 2
    _one_line_error(capsys, f"argument {flag}: must be >= 1, got 0")
    assert not (tmp_path / "syn").exists()


def test_evaluate_batch_size_is_checked_in_one_line(baseline_run, capsys):
    with pytest.raises(SystemExit) as exit_info:
        ftcl_evaluate.main([str(baseline_run / "best.pt"), "--batch-size", "0"])
    assert exit_info.value.code == 2
    _one_line_error(capsys, "argument --batch-size: must be >= 1, got 0")


def test_a_run_directory_given_as_a_checkpoint_names_its_checkpoints(data, baseline_run, tmp_path, capsys):
    assert ftcl_evaluate.main([str(baseline_run)]) == 2
    _one_line_error(capsys, f"{baseline_run}: a directory, not a checkpoint file",
                    f"{baseline_run / 'best.pt'} and {baseline_run / 'last.pt'}")
    assert train_cli.main(["ftcl", "--data-dir", str(data), "--run-dir", str(tmp_path / "ftcl"),
                           "--init", str(baseline_run), *TRAIN]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("error: ") and "a directory, not a checkpoint file" in err



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
    _one_line_error(capsys, f"error: {target}: No space left on device")


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
