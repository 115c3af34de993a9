"""Training end to end on a tiny synthetic set, exact resume, checkpoints, and the CLIs' errors."""
import io
import json
import shutil
import subprocess
import sys
import threading
import traceback

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ftcl import evaluation
from ftcl import evaluate as ftcl_evaluate
from ftcl import inference
from ftcl import checkpoint, losses, synthetic
from ftcl.config import preset
from ftcl.data import load_dataset
from ftcl.inference import evaluate_model
from ftcl.model import ACMNet
from ftcl.train import cli as train_cli
from ftcl.train.loop import Trainer, TrainingStopped


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return synthetic.generate(tmp_path_factory.mktemp("data") / "tiny", seed=3, num_classes=4, train_videos=24,
                              test_videos=8, feature_dim=16, min_length=20, max_length=40)


def _config(data_dir, **kw):
    values = dict(data_dir=str(data_dir), sample_snippets=32, batch_size=4, epochs=2, ftcl_epochs=1,
                  lcs_len=6, fsd_len=2, fc_dim=8, lcs_threshold=0.5)
    values.update(kw)
    return preset("thumos14", **values)


def _train(kind, data_dir, run_dir, init=None, **kw):
    trainer = Trainer(kind, _config(data_dir, **kw), run_dir, torch.device("cpu"), progress=False)
    if init:
        trainer.init_from(init)
    trainer.run()
    return trainer


def _rows(path):
    import csv
    with open(path) as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def test_baseline_then_ftcl_end_to_end(tiny_data, tmp_path):
    base = _train("baseline", tiny_data, tmp_path / "baseline")
    for name in ("config.json", "metrics.csv", "last.pt", "best.pt"):
        assert (tmp_path / "baseline" / name).is_file()
    rows = _rows(tmp_path / "baseline" / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"loss", "inst", "guide", "feat", "sparse", "train_acc", "mAP@0.1", "mAP@0.9", "avg0.1:0.7",
            "cls_mAP"} <= set(rows[0])
    ckpt = torch.load(tmp_path / "baseline" / "best.pt", weights_only=True)
    assert ckpt["config"]["data_dir"] == str(tiny_data.resolve()) and ckpt["kind"] == "baseline"
    assert json.loads((tmp_path / "baseline" / "config.json").read_text())["num_classes"] == 4
    assert base.best == pytest.approx(max(float(r["avg0.1:0.7"]) for r in rows), abs=1e-4)

    ftcl = _train("ftcl", tiny_data, tmp_path / "ftcl", init=tmp_path / "baseline" / "best.pt")
    rows = _rows(tmp_path / "ftcl" / "metrics.csv")
    assert len(rows) == 1 and float(rows[0]["lcs"]) != 0.0 and float(rows[0]["fsd"]) != 0.0
    assert ftcl.epoch == 1


@pytest.mark.parametrize("kind,pairs", [("baseline", "release"), ("ftcl", "release"), ("ftcl", "in-batch")])
def test_resume_continues_exactly(tiny_data, tmp_path, kind, pairs):
    init = None
    if kind == "ftcl":
        init = tmp_path / "init" / "last.pt"
        _train("baseline", tiny_data, tmp_path / "init", epochs=1)
    straight = _train(kind, tiny_data, tmp_path / "straight", init=init, epochs=2, ftcl_epochs=2, pairs=pairs)
    _train(kind, tiny_data, tmp_path / "split", init=init, epochs=1, ftcl_epochs=1, pairs=pairs)
    resumed = Trainer(kind, _config(tiny_data, epochs=2, ftcl_epochs=2, pairs=pairs), tmp_path / "split",
                      torch.device("cpu"), progress=False)
    resumed.resume()
    assert resumed.epoch == 1
    resumed.run()
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert _rows(tmp_path / "straight" / "metrics.csv") == _rows(tmp_path / "split" / "metrics.csv")


def test_nan_losses_are_skipped_then_stop_the_run(tiny_data, tmp_path, monkeypatch):
    real = losses.acm_loss
    calls = {"n": 0}

    def first_nan(out, labels, config, *args, **kwargs):
        calls["n"] += 1
        loss, terms = real(out, labels, config, *args, **kwargs)
        return (loss * float("nan") if calls["n"] == 1 else loss), terms

    monkeypatch.setattr(losses, "acm_loss", first_nan)
    trainer = _train("baseline", tiny_data, tmp_path / "one", epochs=1)
    assert trainer.nan_steps == 1 and _rows(tmp_path / "one" / "metrics.csv")[0]["nan_steps"] == "1"

    def nan_after(good):
        counter = {"n": 0}

        def loss_fn(out, labels, config, *args, **kwargs):
            counter["n"] += 1
            loss, terms = real(out, labels, config, *args, **kwargs)
            return (loss if counter["n"] <= good else loss * float("nan")), terms
        return loss_fn

    # 6 batches per epoch, NaN from the 4th step on: the streak carries over into epoch 2, where its
    # 8th NaN (step 5) stops the run.
    monkeypatch.setattr(losses, "acm_loss", nan_after(3))
    with pytest.raises(TrainingStopped, match="8 consecutive non-finite losses up to epoch 2, step 5"):
        _train("baseline", tiny_data, tmp_path / "streak", epochs=3, max_nan_steps=8)
    monkeypatch.setattr(losses, "acm_loss", nan_after(0))
    # A streak limit longer than an epoch: the epoch itself took no finite step, which stops the run.
    with pytest.raises(TrainingStopped, match="epoch 1 took no finite step"):
        _train("baseline", tiny_data, tmp_path / "all", epochs=2, max_nan_steps=100)
    assert not (tmp_path / "all" / "last.pt").exists() and not (tmp_path / "all" / "best.pt").exists()


def test_a_non_finite_step_changes_no_weight_moment_or_gradient(tiny_data, tmp_path, monkeypatch):
    """A step's backward is queued before its finite check is read: a non-finite step's gradients are
    dropped and the optimizer does not step, so the next step starts from the same weights and Adam
    state, with no gradients left over."""
    trainer = Trainer("baseline", _config(tiny_data), tmp_path / "run", torch.device("cpu"), progress=False)
    real, seen = losses.acm_loss, []

    def second_is_nan(out, labels, config, *args, **kwargs):
        params = list(trainer.model.parameters())
        seen.append(([p.detach().clone() for p in params], [p.grad is None for p in params]))
        loss, terms = real(out, labels, config, *args, **kwargs)
        return (loss * float("nan") if len(seen) == 2 else loss), terms

    monkeypatch.setattr(losses, "acm_loss", second_is_nan)
    stepped_after = []
    real_step = trainer.optimizer.step
    trainer.optimizer.step = lambda: (stepped_after.append(len(seen)), real_step())[1]
    steps = len(trainer.objective.batches(trainer))
    trainer.train_epoch()
    assert trainer.nan_steps == 1 and stepped_after == [n for n in range(1, steps + 1) if n != 2]
    (weights_1, _), (weights_2, _), (weights_3, no_grads_3) = seen[:3]
    assert not all(torch.equal(a, b) for a, b in zip(weights_1, weights_2))
    assert all(torch.equal(a, b) for a, b in zip(weights_2, weights_3)) and all(no_grads_3)
    assert {int(state["step"]) for state in trainer.optimizer.state.values()} == {steps - 1}


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU"))])
def test_resume_keeps_this_devices_form_of_adam(tiny_data, tmp_path, device):
    """A checkpoint resumes with the resuming device's form of Adam (torch's load_state_dict alone
    would carry the writer's "fused" over) and the moments and step counts it saved: on the CPU one
    written with the GPU's fused Adam, on a GPU one written on the CPU."""
    _train("baseline", tiny_data, tmp_path / "run", epochs=1)
    written = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    if device == "cpu":
        for group in written["optimizer_state_dict"]["param_groups"]:
            group["fused"] = True  # as a GPU run writes it
        torch.save(written, tmp_path / "run" / "last.pt")
    resumed = Trainer("baseline", _config(tiny_data, epochs=2), tmp_path / "run", torch.device(device), progress=False)
    resumed.resume()
    assert all(group["fused"] is (True if device == "cuda" else None) for group in resumed.optimizer.param_groups)
    saved = written["optimizer_state_dict"]["state"]
    for index, state in enumerate(resumed.optimizer.state_dict()["state"].values()):
        assert torch.equal(state["exp_avg"].cpu(), saved[index]["exp_avg"])
        assert float(state["step"]) == saved[index]["step"]
    resumed.run()
    assert resumed.epoch == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("kind,options", [("baseline", {}), ("baseline", {"objective": "acm"}), ("ftcl", {}),
                                          ("ftcl", {"pairs": "in-batch"})],
                         ids=["release-baseline", "acm-baseline", "ftcl", "ftcl-in-batch"])
def test_training_steps_never_wait_for_the_gpu(tiny_data, tmp_path, kind, options):
    """torch's sync debug mode warns at every call that waits for the device (read-backs, blocking copies
    to it): an epoch's steps make none (their finite checks wait on an event, after the backward is
    queued); its end reads the sums and the weights' finiteness (two)."""
    import warnings
    trainer = Trainer(kind, _config(tiny_data, **options), tmp_path / "run", torch.device("cuda"), progress=False)
    trainer.train_epoch()  # the first epoch allocates the caches and compiles the kernels
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.train_epoch()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    waits = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message)]
    assert len(waits) <= 2, waits


def test_release_checkpoint_without_projection_initialises_ftcl(tiny_data, tmp_path, capsys):
    config = _config(tiny_data, num_classes=4, feature_dim=16)
    state = {k: v for k, v in ACMNet.from_config(config).state_dict().items() if not k.startswith("feature_trans")}
    torch.save({"epoch": 3, "model_state_dict": state}, tmp_path / "THUMOS14_best.pth")
    trainer = Trainer("ftcl", _config(tiny_data), tmp_path / "run", torch.device("cpu"), progress=False)
    trainer.init_from(tmp_path / "THUMOS14_best.pth")
    assert torch.equal(trainer.model.state_dict()["att_branch.weight"], state["att_branch.weight"])
    assert "feature_trans" in capsys.readouterr().err


def _broken_copy(tiny_data, tmp_path, breakage):
    target = tmp_path / "broken"
    shutil.copytree(tiny_data, target)
    breakage(target)
    return target


def _first_id(d, split):
    return (d / f"split_{split}.txt").read_text().split()[0]


@pytest.mark.parametrize("breakage,message", [
    (lambda d: shutil.rmtree(d), "data directory not found"),
    (lambda d: (d / "gt.json").unlink(), "gt.json: ground-truth file not found"),
    (lambda d: (d / "split_test.txt").unlink(), "split_test.txt: split file not found"),
    (lambda d: (d / "split_train.txt").write_text("\n"), "split_train.txt: split is empty"),
    (lambda d: (d / "train" / f"{_first_id(d, 'train')}.npy").unlink(), "feature file not found (video video_validation_0000001"),
    (lambda d: np.save(d / "test" / f"{_first_id(d, 'test')}.npy", np.zeros((5, 17), np.float32)), "feature dimension"),
    (lambda d: (d / "split_test.txt").write_text("video_test_9999999\n"), "video id video_test_9999999 is not in"),
    (lambda d: (d / "gt.json").write_text("[1, 2]"), "no 'database' object"),
])
def test_train_cli_reports_bad_data_in_one_line(tiny_data, tmp_path, capsys, breakage, message):
    data_dir = _broken_copy(tiny_data, tmp_path, breakage)
    code = train_cli.main(["baseline", "--data-dir", str(data_dir), "--run-dir", str(tmp_path / "run"),
                           "--epochs", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0 and message in err and err.count("\n") == 1
    assert not (tmp_path / "run" / "last.pt").exists()


def test_train_cli_rejects_a_checkpoint_of_another_architecture(tiny_data, tmp_path, capsys):
    torch.save({"model_state_dict": {"encoder.weight": torch.zeros(3)}}, tmp_path / "other.pt")
    code = train_cli.main(["ftcl", "--data-dir", str(tiny_data), "--run-dir", str(tmp_path / "run"),
                           "--init", str(tmp_path / "other.pt"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "other.pt: unexpected key 'encoder.weight'" in err and err.count("\n") == 1
    state = ACMNet(17, 4, fc_dim=1024).state_dict()  # wrong feature dimension
    torch.save({"model_state_dict": state}, tmp_path / "wide.pt")
    code = train_cli.main(["ftcl", "--data-dir", str(tiny_data), "--run-dir", str(tmp_path / "run"),
                           "--init", str(tmp_path / "wide.pt"), "--no-progress"])
    assert code == 2 and "key 'feature_embedding.0.weight' has shape" in capsys.readouterr().err
    code = train_cli.main(["ftcl", "--data-dir", str(tiny_data), "--run-dir", str(tmp_path / "run"),
                           "--init", str(tmp_path / "missing.pt"), "--no-progress"])
    assert code == 2 and "missing.pt: checkpoint not found" in capsys.readouterr().err


def test_cli_runs_in_a_subprocess_with_exit_codes(tiny_data, tmp_path):
    run = subprocess.run([sys.executable, "-m", "train", "baseline", "--data-dir", str(tiny_data), "--run-dir",
                          str(tmp_path / "run"), "--epochs", "1", "--sample-snippets", "32", "--batch-size", "4",
                          "--no-progress"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "done: 1 epochs" in run.stdout
    bad = subprocess.run([sys.executable, "-m", "train", "baseline", "--data-dir", str(tmp_path / "nope"),
                          "--run-dir", str(tmp_path / "run2")], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "data directory not found" in bad.stderr
    out = subprocess.run([sys.executable, "-m", "ftcl.evaluate", str(tmp_path / "run" / "last.pt"), "--json"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert set(json.loads(out.stdout)) == {"tiou", "mAP", "average", "per_class", "classification_mAP"}


def test_ftcl_hyper_parameter_flags_reach_the_run(tiny_data, tmp_path):
    """--lcs-weight / --fsd-weight / --lcs-threshold / --lcs-len / --fsd-len set the run's config
    (config.json, every checkpoint) and the weights the loss uses: the logged weighted terms are the
    raw contrasts times the given weights."""
    run = tmp_path / "run"
    assert train_cli.main(["baseline", "--data-dir", str(tiny_data), "--run-dir", str(run), "--epochs", "2",
                           "--sample-snippets", "32", "--batch-size", "8", "--no-progress", "--lcs-weight", "0.3",
                           "--fsd-weight", "0", "--lcs-threshold", "0.6", "--lcs-len", "7", "--fsd-len", "3"]) == 0
    stored = json.loads((run / "config.json").read_text())
    assert {k: stored[k] for k in ("lambda_lcs", "lambda_fsd", "lcs_threshold", "lcs_len", "fsd_len")} == \
        {"lambda_lcs": 0.3, "lambda_fsd": 0.0, "lcs_threshold": 0.6, "lcs_len": 7, "fsd_len": 3}
    assert torch.load(run / "last.pt", weights_only=True)["config"]["lcs_len"] == 7
    metrics = pd.read_csv(run / "metrics.csv")
    assert (metrics["fsd"] != 0).any() and (metrics["lcs"] != 0).any() and (metrics["weighted_fsd"] == 0).all()
    np.testing.assert_allclose(metrics["weighted_lcs"], 0.3 * metrics["lcs"], rtol=1e-5)


def test_evaluate_cli_outputs_round_trip_and_plots(tiny_data, tmp_path, capsys):
    _train("baseline", tiny_data, tmp_path / "run", epochs=1)
    ckpt = tmp_path / "run" / "last.pt"
    assert ftcl_evaluate.main([str(ckpt), "--json", "--save-outputs", str(tmp_path / "out.npz"),
                               "--plot", str(tmp_path / "plots")]) == 0
    captured = capsys.readouterr()
    direct = json.loads(captured.out)
    assert (tmp_path / "run" / "last.pt.results.json").is_file()
    plotted = sorted(p.stem for p in (tmp_path / "plots").glob("*.png"))
    assert len(plotted) == 4
    # One line per file written: results, outputs, each plot.
    for path in [tmp_path / "run" / "last.pt.results.json", tmp_path / "out.npz",
                 *sorted((tmp_path / "plots").glob("*.png"))]:
        assert f"wrote {path}" in captured.err
    # Default: the first two test videos and the two with the lowest recall@0.5.
    ids = (tiny_data / "split_test.txt").read_text().split()
    assert set(ids[:2]) <= set(plotted)
    result = inference.load_outputs(tmp_path / "out.npz")
    picked = ids[4:6]
    assert ftcl_evaluate.main([str(ckpt), "--json", "--plot", str(tmp_path / "picked"), "--plot-videos",
                               ",".join(picked)]) == 0
    capsys.readouterr()
    assert sorted(p.stem for p in (tmp_path / "picked").glob("*.png")) == sorted(picked)
    assert ftcl_evaluate.main([str(ckpt), "--plot", str(tmp_path / "bad"), "--plot-videos", "nope"]) == 2
    assert "--plot-videos: nope is not a test video" in capsys.readouterr().err
    assert result[1] == ids
    assert ftcl_evaluate.main(["--from-outputs", str(tmp_path / "out.npz"), "--json",
                               "--out", str(tmp_path / "again.json")]) == 0
    assert json.loads(capsys.readouterr().out) == direct
    assert json.loads((tmp_path / "again.json").read_text()) == json.loads((tmp_path / "run" / "last.pt.results.json").read_text())
    assert ftcl_evaluate.main([str(ckpt), "--per-class"]) == 0
    table = capsys.readouterr().out
    assert "| mAP" in table and "Action01" in table and "classification mAP" in table
    assert ftcl_evaluate.main([str(tmp_path / "none.pt")]) == 2
    assert "none.pt: checkpoint not found" in capsys.readouterr().err


def test_synthetic_generator_is_deterministic_and_thumos_like(tmp_path):
    a = synthetic.generate(tmp_path / "a", seed=5, train_videos=6, test_videos=4, feature_dim=8)
    b = synthetic.generate(tmp_path / "b", seed=5, train_videos=6, test_videos=4, feature_dim=8)
    c = synthetic.generate(tmp_path / "c", seed=6, train_videos=6, test_videos=4, feature_dim=8)
    assert (a / "gt.json").read_bytes() == (b / "gt.json").read_bytes() != (c / "gt.json").read_bytes()
    first = _first_id(a, "train")
    assert (a / "train" / f"{first}.npy").read_bytes() == (b / "train" / f"{first}.npy").read_bytes()
    assert list(tmp_path.glob(".*")) == []  # built beside, renamed into place


def test_default_synthetic_set_statistics(tmp_path):
    out = tmp_path / "syn"
    assert synthetic.main(["--out", str(out)]) == 0
    ds = load_dataset(out)
    assert len(ds.classes) == 20 and len(ds.train) == 200 and len(ds.test) == 200 and ds.feature_dim == 256
    train, test = ds.train, ds.test
    assert 100 <= min(train.lengths) and max(test.lengths) <= 400
    database = json.loads((out / "gt.json").read_text())["database"]
    counts = [len(v["annotations"]) for v in database.values()]
    lengths = [(a["segment"][1] - a["segment"][0]) / 0.64 for v in database.values() for a in v["annotations"]]
    two_class = np.mean([len({a["label"] for a in v["annotations"]}) == 2 for v in database.values()])
    assert 12 <= np.mean(counts) <= 18 and 4 <= np.median(lengths) <= 6 and np.percentile(lengths, 99) > 20
    assert 0.07 <= two_class <= 0.2
    assert {v["subset"] for v in database.values()} == {"validation", "test"}


def test_real_thumos_layout_with_generated_features(thumos_annotations, tmp_path):
    """A directory laid out exactly like the ACM-Net release (real ids, labels and durations) loads,
    and a model's outputs on its 210 test videos go through proposals and mAP."""
    root = tmp_path / "THUMOS14"
    root.mkdir()
    for name in ("gt.json", "split_train.txt", "split_test.txt"):
        shutil.copy(thumos_annotations / name, root / name)
    database = json.loads((root / "gt.json").read_text())["database"]
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (root / split).mkdir()
        for vid in (root / f"split_{split}.txt").read_text().split():
            snippets = max(2, int(database[vid]["duration"] * 25 / 16))
            np.save(root / split / f"{vid}.npy", rng.random((snippets, 4), dtype=np.float32))
    ds = load_dataset(root)
    classes, train, test = ds.classes, ds.train, ds.test
    assert len(classes) == 20 and len(train) == 200 and len(test) == 210 and ds.feature_dim == 4
    config = preset("thumos14", data_dir=str(root), num_classes=20, feature_dim=4, classes=classes)
    torch.manual_seed(0)
    result = evaluate_model(ACMNet.from_config(config), test, ds.test_ground_truth(), config, "cpu", batch_size=32)
    assert len(result.outputs) == 210 and set(result.results["results"]) == set(test.ids)
    assert result.detection.ap.shape == (9, 20) and 0 <= result.detection.mAP.max() <= 1
    longest = test.ids[int(np.argmax(test.lengths))]
    assert result.outputs[longest].cas.shape == (750, 20)
    assert isinstance(result.detection, evaluation.DetectionResult)


def test_clis_report_unwritable_paths_in_one_line(tiny_data, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code = train_cli.main(["baseline", "--data-dir", str(tiny_data), "--run-dir", str(blocker / "run"),
                           "--epochs", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and str(blocker) in err and err.count("\n") == 1
    assert synthetic.main(["--out", str(blocker / "syn"), "--train-videos", "1", "--test-videos", "1"]) == 2
    assert str(blocker) in capsys.readouterr().err


def test_release_checkpoint_evaluates_exactly_as_the_same_weights_saved_by_us(tiny_data, tmp_path, capsys):
    """A release .pth ({"epoch", "model_state_dict"}) runs through ftcl.evaluate with --data-dir (the
    preset's config) and gives exactly the mAP of the same weights in our checkpoint."""
    run = tmp_path / "run"
    assert train_cli.main(["baseline", "--data-dir", str(tiny_data), "--run-dir", str(run), "--epochs", "1",
                           "--batch-size", "4", "--no-progress"]) == 0
    ours = torch.load(run / "best.pt", weights_only=True)
    torch.save({"epoch": 0, "model_state_dict": ours["model_state_dict"]}, tmp_path / "THUMOS_best.pth")
    capsys.readouterr()
    assert ftcl_evaluate.main([str(run / "best.pt"), "--json"]) == 0
    want = json.loads(capsys.readouterr().out)
    assert ftcl_evaluate.main([str(tmp_path / "THUMOS_best.pth"), "--data-dir", str(tiny_data), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got == want and max(got["mAP"]) > 0
    assert ftcl_evaluate.main([str(tmp_path / "THUMOS_best.pth")]) == 2
    assert "names no classes; give the --data-dir" in capsys.readouterr().err


def test_seeds_train_one_baseline_each_and_point_best_at_the_best(tiny_data, tmp_path, capsys):
    run = tmp_path / "seeds"
    code = train_cli.main(["baseline", "--data-dir", str(tiny_data), "--run-dir", str(run), "--seeds", "2",
                           "--epochs", "1", "--sample-snippets", "32", "--batch-size", "4", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    frame = pd.read_csv(run / "seeds.csv", dtype={"seed": str})
    assert frame["seed"].tolist() == ["0", "1", "mean", "std"]
    per_seed = frame.iloc[:2]["avg 0.1:0.7"].astype(float)
    assert frame.iloc[2]["avg 0.1:0.7"] == pytest.approx(per_seed.mean())
    assert frame.iloc[3]["avg 0.1:0.7"] == pytest.approx(per_seed.std(ddof=1))
    best_seed = int(np.argmax(per_seed.to_numpy()))
    assert (run / "best.pt").is_symlink() and (run / "best.pt").resolve() == (run / f"seed-{best_seed}" / "best.pt").resolve()
    assert "| mean" in printed and f"best seed {best_seed}" in printed
    for seed in (0, 1):
        assert json.loads((run / f"seed-{seed}" / "config.json").read_text())["seed"] == seed
    code = train_cli.main(["ftcl", "--data-dir", str(tiny_data), "--run-dir", str(tmp_path / "ftcl"), "--init",
                           str(run / "best.pt"), "--epochs", "1", "--sample-snippets", "32", "--batch-size", "4",
                           "--no-progress"])
    assert code == 0
    assert "baseline run, epoch 1, test avg mAP(0.1:0.5)" in capsys.readouterr().err


def test_seeds_read_the_data_once_per_call(tiny_data, tmp_path, monkeypatch):
    """Loading checks every feature file (1.1 GB on THUMOS14): once per call, not once per seed (and
    once more for --overwrite's check)."""
    import ftcl.train.launch
    import ftcl.train.loop
    from ftcl.data import load_dataset
    loads = []

    def counted(*args, **kwargs):
        loads.append(args)
        return load_dataset(*args, **kwargs)

    monkeypatch.setattr(ftcl.train.launch, "load_dataset", counted)
    monkeypatch.setattr(ftcl.train.loop, "load_dataset", counted)
    common = ["--run-dir", str(tmp_path / "seeds"), "--seeds", "0,3", "--no-progress"]
    start = ["--data-dir", str(tiny_data), "--epochs", "1", "--sample-snippets", "32", "--batch-size", "4"]
    for argv in (start, [*start, "--overwrite"], ["--resume", "--epochs", "2"]):
        loads.clear()
        assert train_cli.main(["baseline", *argv, *common]) == 0
        assert len(loads) == 1, argv
    for seed in (0, 3):
        assert len(pd.read_csv(tmp_path / "seeds" / f"seed-{seed}" / "metrics.csv")) == 2


def test_activitynet_preset_end_to_end_on_an_activitynet_shaped_set(tmp_path, capsys):
    data_dir = tmp_path / "anet"
    assert synthetic.main(["--out", str(data_dir), "--preset", "activitynet13", "--classes", "6",
                           "--train-videos", "24", "--test-videos", "8", "--feature-dim", "16"]) == 0
    database = json.loads((data_dir / "gt.json").read_text())["database"]
    assert {v["subset"] for v in database.values()} == {"training", "validation"}
    assert max(len(v["annotations"]) for v in database.values()) <= 3
    common = ["--preset", "activitynet13", "--epochs", "1", "--batch-size", "4", "--no-progress"]
    assert train_cli.main(["baseline", "--data-dir", str(data_dir), "--run-dir", str(tmp_path / "b"), *common]) == 0
    assert train_cli.main(["ftcl", "--data-dir", str(data_dir), "--run-dir", str(tmp_path / "f"), "--init",
                           str(tmp_path / "b" / "best.pt"), *common]) == 0
    capsys.readouterr()
    assert ftcl_evaluate.main([str(tmp_path / "f" / "best.pt"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert list(result["average"]) == ["0.5:0.95"] and len(result["tiou"]) == 10
    config = json.loads((tmp_path / "f" / "config.json").read_text())
    assert config["sample_snippets"] == 75 and config["oic_score_mix"] == [0.7, 0.3] and config["nms_iou"] == 0.9


def test_loggers_are_optional_and_log_every_scalar(tiny_data, tmp_path, capsys, monkeypatch):
    import types
    args = ["baseline", "--data-dir", str(tiny_data), "--epochs", "2", "--sample-snippets", "32", "--batch-size", "4",
            "--no-progress"]
    for flag, module in (("--tensorboard", "tensorboard"), ("--wandb", "wandb")):
        monkeypatch.setitem(sys.modules, module, None)  # not installed
        assert train_cli.main([*args, "--run-dir", str(tmp_path / f"none{flag}"), flag]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{flag} needs the {module} package" in err
        assert not (tmp_path / f"none{flag}" / "last.pt").exists()
    logged = {"tb": [], "wandb": []}

    class Writer:
        def __init__(self, log_dir, purge_step=None):
            logged["tb_dir"] = log_dir

        def add_scalar(self, tag, value, step):
            logged["tb"].append((tag, value, step))

        def flush(self):
            pass

        def close(self):
            logged["tb_closed"] = True

    class Run:
        def log(self, values, step):
            logged["wandb"].append((values, step))

        def finish(self):
            logged["wandb_finished"] = True

    monkeypatch.setitem(sys.modules, "tensorboard", types.ModuleType("tensorboard"))
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=Writer))
    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=lambda **kw: logged.setdefault("init", kw) and Run()))
    run = tmp_path / "logged"
    assert train_cli.main([*args, "--run-dir", str(run), "--tensorboard", "--wandb"]) == 0
    assert logged["tb_dir"] == str(run / "tb") and logged["tb_closed"] and logged["wandb_finished"]
    tags = {tag for tag, _, _ in logged["tb"]}
    assert {"loss/loss", "loss/inst", "loss/lcs", "loss/weighted_fsd", "train/train_acc", "test/mAP@0.5",
            "test/avg0.1:0.7", "test/cls_mAP", "time/seconds_per_epoch"} <= tags
    assert {step for _, _, step in logged["tb"]} == {1, 2} and [step for _, step in logged["wandb"]] == [1, 2]
    rows = _rows(run / "metrics.csv")
    assert dict((t, v) for t, v, s in logged["tb"] if s == 2)["loss/inst"] == pytest.approx(float(rows[1]["inst"]), rel=1e-5)
    assert logged["init"]["config"]["epochs"] == 2


def test_training_batches_from_the_feature_cache_equal_those_read_from_files(tiny_data):
    from ftcl.train.loop import TrainFeatures, _sampled_batch
    split = load_dataset(tiny_data).train
    cache = TrainFeatures(split, "cpu")
    videos = np.array([3, 0, 17, 5])
    for count in (16, 32, 64):  # shorter and longer than the videos (20-40 snippets)
        from_files = _sampled_batch(split, videos, count, np.random.default_rng(count))
        from_cache = _sampled_batch(split, videos, count, np.random.default_rng(count), cache)
        assert from_files.shape == (4, count, 16) and torch.equal(from_files, from_cache)


class _HostReads(TorchDispatchMode):
    """Counts the values a run reads back from tensors (item, bool, int, float, tolist, numpy, cpu),
    except the optimizer's own step counters, which live on the CPU whatever the device."""

    def __init__(self, monkeypatch):
        super().__init__()
        self.where, self.lines = [], []
        for name in ("tolist", "numpy", "cpu"):
            real = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._counted(real))

    def _counted(self, real):
        def read(tensor, *args, **kwargs):
            self._record()
            return real(tensor, *args, **kwargs)
        return read

    def _record(self):
        stack = traceback.extract_stack()[:-2]
        if not any("torch/optim/" in frame.filename for frame in stack):
            ours = next(f for f in reversed(stack) if "/torch/" not in f.filename)
            self.where.append(f"{ours.filename}:{ours.lineno}")
            self.lines.append(ours.line)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self._record()
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("kind,options", [("baseline", {}), ("baseline", {"objective": "acm"}), ("ftcl", {}),
                                          ("ftcl", {"pairs": "in-batch"})],
                         ids=["release-baseline", "acm-baseline", "ftcl", "ftcl-in-batch"])
def test_a_training_step_reads_one_value_back_from_the_device(tiny_data, tmp_path, monkeypatch, kind, options):
    """On a GPU every read-back waits for the queued work: a step may read only whether its loss is
    finite; the terms and accuracy are read once per epoch (two reads), bit-identical to a per-step sum."""
    trainer = Trainer(kind, _config(tiny_data, **options), tmp_path / "run", torch.device("cpu"), progress=False)
    steps = len(trainer.objective.batches(trainer))
    trainer.rng = np.random.default_rng(0)
    reads = _HostReads(monkeypatch)
    with reads:
        terms, _ = trainer.train_epoch()
    assert len(reads.where) == steps + 2, sorted(set(reads.where))
    assert all(np.isfinite(v) for v in terms.values()) and terms["loss"] != 0


def test_evaluation_reads_the_model_outputs_back_in_one_copy(tiny_data, monkeypatch):
    """Every batch's forward is queued before anything is read back; the only other reads are of the
    lengths, which live on the CPU."""
    dataset = load_dataset(tiny_data)
    config = _config(tiny_data, classes=list(dataset.classes), num_classes=len(dataset.classes), feature_dim=16)
    model = ACMNet.from_config(config)
    batches = inference.eval_batches(dataset.test, config, "cpu", batch_size=3)
    want = inference.model_outputs(model, dataset.test, config, "cpu", batch_size=1)
    reads = _HostReads(monkeypatch)
    with reads:
        got = inference.model_outputs(model, dataset.test, config, "cpu", batches=batches)
    assert all(batch.lengths.device.type == "cpu" for batch in batches) and len(batches) == 3
    copy_back = [line for line in reads.lines if "torch.cat(flat)" in line]
    assert len(copy_back) == 2, reads.where  # .cpu() then .numpy() of the one flat tensor
    assert all("lengths" in line for line in reads.lines if "torch.cat(flat)" not in line), reads.where
    assert list(got) == list(want)
    for vid in want:
        for field in ("cas", "attention", "video_scores"):
            np.testing.assert_allclose(getattr(got[vid], field), getattr(want[vid], field), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("lr", [1e-3, 1e-4], ids=["lr1e-3", "lr1e-4"])  # on this set: best at the last epoch, and not
@pytest.mark.parametrize("links", [True, False], ids=["hard-link", "no-links-copy"])
def test_best_checkpoint_is_written_once_and_keeps_its_epoch(tiny_data, tmp_path, monkeypatch, links, lr):
    """An improving epoch writes best.pt and makes last.pt the same file (a link, or a copy where the
    filesystem has none); the next epoch's last.pt is a new file and best.pt keeps its weights."""
    if not links:
        def no_link(*args, **kwargs):
            raise OSError("links not supported here")
        monkeypatch.setattr("os.link", no_link)
    saved = []
    real_save = checkpoint.save_checkpoint
    monkeypatch.setattr("ftcl.train.loop.save_checkpoint", lambda path, payload: (saved.append(path.name),
                                                                             real_save(path, payload)))
    trainer = _train("baseline", tiny_data, tmp_path / "run", epochs=4, lr=lr)
    rows = _rows(tmp_path / "run" / "metrics.csv")
    scores = [float(r["avg0.1:0.7"]) for r in rows]
    best_epoch = 1 + int(np.argmax(scores))
    improving = [e for e in range(1, 5) if scores[e - 1] > max(scores[:e - 1], default=-np.inf)]
    assert saved == ["best.pt" if e in improving else "last.pt" for e in range(1, 5)]
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert best["epoch"] == best_epoch and last["epoch"] == 4 and trainer.best == pytest.approx(max(scores), abs=1e-4)
    same_file = (tmp_path / "run" / "best.pt").stat().st_ino == (tmp_path / "run" / "last.pt").stat().st_ino
    assert same_file == (links and best_epoch == 4)
    weights_equal = all(torch.equal(value, last["model_state_dict"][k]) for k, value in best["model_state_dict"].items())
    assert weights_equal == (best_epoch == 4)
    assert not [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]


def test_training_evaluates_identically_with_worker_processes(tiny_data, tmp_path, monkeypatch):
    """FTCL_EVAL_WORKERS spreads each epoch's proposals over processes: the same metrics and best.pt."""
    runs = {}
    for workers in ("1", "2"):
        monkeypatch.setenv("FTCL_EVAL_WORKERS", workers)
        trainer = _train("baseline", tiny_data, tmp_path / workers, epochs=2)
        assert trainer.eval_workers == int(workers)
        rows = _rows(tmp_path / workers / "metrics.csv")
        runs[workers] = [{k: v for k, v in row.items() if k != "seconds"} for row in rows]
    assert runs["1"] == runs["2"] and float(runs["1"][-1]["avg0.1:0.7"]) > 0


def _same(a, b):
    """Nested checkpoint contents equal: tensors exactly, the rest by ==."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_epoch_ends_beside_training_save_the_state_they_were_given(tiny_data, tmp_path, monkeypatch):
    """With Trainer.overlap, epoch 1's end (scoring, checkpoint, metrics) is held here until epoch 2
    has trained: it still saves epoch 1's weights, optimizer and RNG states, and the run writes what
    an in-line run writes, checkpoint by checkpoint."""
    runs = {}
    for overlap in (False, True):
        saved, trained = [], threading.Event()

        def save(path, payload, overlap=overlap, saved=saved, trained=trained):
            if overlap and payload["epoch"] == 1:
                assert trained.wait(timeout=120), "epoch 1's end did not run beside epoch 2's training"
                assert trainer.epoch == 2  # the training thread is past epoch 2
            saved.append((path.name, _round_trip(payload)))
            checkpoint.save_checkpoint(path, payload)

        monkeypatch.setattr("ftcl.train.loop.save_checkpoint", save)
        trainer = Trainer("baseline", _config(tiny_data, epochs=3, lr=1e-3), tmp_path / str(overlap),
                          torch.device("cpu"), progress=False)
        trainer.overlap = overlap
        real_epoch = trainer.train_epoch

        def train_epoch(real_epoch=real_epoch, trained=trained, trainer=trainer):
            result = real_epoch()
            if trainer.epoch == 1:
                trained.set()
            return result

        trainer.train_epoch = train_epoch
        last_eval = trainer.run()
        assert last_eval is trainer.last_eval and last_eval is not None
        runs[overlap] = (saved, _rows(tmp_path / str(overlap) / "metrics.csv"), trainer.best)
    (in_line, in_line_rows, in_line_best), (beside, beside_rows, beside_best) = runs[False], runs[True]
    assert [name for name, _ in beside] == [name for name, _ in in_line] and len(beside) == 3
    assert [payload["epoch"] for _, payload in beside] == [1, 2, 3]
    for (_, want), (_, got) in zip(in_line, beside):
        assert _same(want, got)
    assert beside_rows == in_line_rows and beside_best == in_line_best


def _round_trip(payload):
    """payload as torch.save writes it and torch.load reads it back (what a checkpoint holds)."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_an_epoch_end_error_stops_the_run_and_a_training_error_waits_for_the_pending_end(tiny_data, tmp_path,
                                                                                          monkeypatch):
    """A checkpoint that cannot be written stops the run with that error by the next epoch's end at
    the latest; a training error raised while an epoch's end is still running waits for it, so
    last.pt holds the last finished epoch."""
    def full_disk(path, payload):
        if payload["epoch"] == 2:
            raise OSError(f"{path}: no space left on device")
        checkpoint.save_checkpoint(path, payload)

    monkeypatch.setattr("ftcl.train.loop.save_checkpoint", full_disk)
    trainer = Trainer("baseline", _config(tiny_data, epochs=5), tmp_path / "disk", torch.device("cpu"), progress=False)
    with pytest.raises(OSError, match="no space left"):
        trainer.run()
    assert trainer.epoch <= 3 and torch.load(tmp_path / "disk" / "last.pt", weights_only=True)["epoch"] == 1

    ending, resume_ending = threading.Event(), threading.Event()

    def slow_save(path, payload):
        ending.set()
        assert resume_ending.wait(timeout=120)
        checkpoint.save_checkpoint(path, payload)

    monkeypatch.setattr("ftcl.train.loop.save_checkpoint", slow_save)
    trainer = Trainer("baseline", _config(tiny_data, epochs=3), tmp_path / "stop", torch.device("cpu"), progress=False)
    real_epoch = trainer.train_epoch

    def train_epoch():
        if trainer.epoch == 1:
            assert ending.wait(timeout=120)  # epoch 1's end is saving now
            resume_ending.set()
            raise TrainingStopped("diverged")
        return real_epoch()

    trainer.train_epoch = train_epoch
    with pytest.raises(TrainingStopped, match="diverged"):
        trainer.run()
    last = torch.load(tmp_path / "stop" / "last.pt", weights_only=True)
    assert last["epoch"] == 1 and [row["epoch"] for row in _rows(tmp_path / "stop" / "metrics.csv")] == ["1"]


def test_cpu_copy_snapshots_every_tensor_of_a_nested_state():
    weight = torch.nn.Parameter(torch.randn(3, 2))
    state = {"model": {"w": weight}, "steps": [torch.tensor(4.0), 7], "pair": (torch.zeros(2), "name"), "lr": 1e-4}
    before = weight.detach().clone()
    copy = checkpoint.cpu_copy(state)
    with torch.no_grad():
        weight.add_(1.0)
        state["steps"][0].add_(1.0)
        state["pair"][0].fill_(5.0)
    assert torch.equal(copy["model"]["w"], before) and not copy["model"]["w"].requires_grad
    assert copy["steps"][0].item() == 4.0 and copy["steps"][1] == 7 and copy["lr"] == 1e-4
    assert isinstance(copy["pair"], tuple) and torch.equal(copy["pair"][0], torch.zeros(2)) and copy["pair"][1] == "name"


def test_epoch_ends_raise_their_error_once_and_outlive_an_interrupted_wait():
    from ftcl.train.loop import _EpochEnds
    ends, release, finished = _EpochEnds(threaded=True), threading.Event(), []
    ends.submit(lambda: (release.wait(timeout=120), finished.append(1)))
    future = ends.pending

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    future.result = interrupted  # Ctrl-C while the training thread waits for the end
    with pytest.raises(KeyboardInterrupt):
        ends.wait()
    assert ends.pending is future and not finished
    del future.result
    release.set()
    ends.close()
    assert finished == [1]

    ends = _EpochEnds(threaded=True)
    ends.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        ends.submit(finished.append, 2)
    assert finished == [1]
    ends.close()  # the error was raised once, by the wait that met it


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU"))])
def test_an_epoch_end_saves_the_state_its_epoch_left(tiny_data, tmp_path, monkeypatch, device):
    """On the training device: each epoch's checkpoint holds the weights and Adam moments its epoch
    ended with, though epoch 1's end is held until epoch 2 has trained (and, on a GPU, its state was
    copied off the device while training went on)."""
    trainer = Trainer("baseline", _config(tiny_data, epochs=2), tmp_path / "run", torch.device(device), progress=False)
    assert trainer.overlap
    left, saved, trained = {}, {}, threading.Event()
    real_epoch = trainer.train_epoch

    def train_epoch():
        result = real_epoch()
        left[trainer.epoch + 1] = checkpoint.cpu_copy({"model_state_dict": trainer.model.state_dict(),
                                                      "optimizer_state_dict": trainer.optimizer.state_dict()})
        if trainer.epoch + 1 == 2:
            trained.set()
        return result

    def save(path, payload):
        if payload["epoch"] == 1:
            assert trained.wait(timeout=120)
        saved[payload["epoch"]] = _round_trip(payload)
        checkpoint.save_checkpoint(path, payload)

    trainer.train_epoch = train_epoch
    monkeypatch.setattr("ftcl.train.loop.save_checkpoint", save)
    trainer.run()
    assert sorted(saved) == [1, 2]
    for epoch in (1, 2):
        for key in ("model_state_dict", "optimizer_state_dict"):
            assert _same(left[epoch][key], saved[epoch][key]), (epoch, key)
    assert not _same(left[1]["model_state_dict"], left[2]["model_state_dict"])


def test_ctrl_c_ends_the_cli_with_a_resume_hint_and_resume_goes_on(tiny_data, tmp_path, capsys, monkeypatch):
    """Ctrl-C in epoch 2: exit 130 and one line naming last.pt and the resume command; last.pt holds
    epoch 1 (the pending epoch end finished), and --resume trains on to the end."""
    real_epoch = Trainer.train_epoch

    def interrupted(self):
        if self.epoch == 1:
            raise KeyboardInterrupt
        return real_epoch(self)

    monkeypatch.setattr(Trainer, "train_epoch", interrupted)
    run = tmp_path / "run"
    common = ["--run-dir", str(run), "--epochs", "3", "--no-progress"]
    assert train_cli.main(["baseline", "--data-dir", str(tiny_data), *common, "--sample-snippets", "32",
                           "--batch-size", "4"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("interrupted: ") and f"--run-dir {run} --resume" in err[0]
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 1
    monkeypatch.setattr(Trainer, "train_epoch", real_epoch)
    assert train_cli.main(["baseline", *common, "--resume"]) == 0
    assert [row["epoch"] for row in _rows(run / "metrics.csv")] == ["1", "2", "3"]
