"""python -m ftcl.train: flags, exit codes, --resume, interrupts."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from ftcl import evaluate as ftcl_evaluate
from ftcl import synthetic
from ftcl.model import ACMNet
from ftcl.train import cli as train_cli
from ftcl.train.loop import Trainer
from tests.helpers import copy_of, first_id, metrics_rows, one_line_error


def _broken_copy(tiny_data, tmp_path, breakage):
    target = tmp_path / "broken"
    shutil.copytree(tiny_data, target)
    breakage(target)
    return target


def test_resume_takes_data_dir_and_refuses_what_it_cannot_honour(data, baseline_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(baseline_run, run)
    moved = copy_of(data, tmp_path, "moved")
    config_before = (run / "config.json").read_text()
    assert train_cli.main(["baseline", "--run-dir", str(run), "--resume", "--epochs", "1", "--data-dir",
                           str(tmp_path / "nowhere"), "--no-progress"]) == 2
    one_line_error(capsys, "nowhere", "data directory not found")
    assert (run / "config.json").read_text() == config_before
    assert train_cli.main(["baseline", "--run-dir", str(run), "--resume", "--epochs", "2", "--data-dir",
                           str(moved), "--no-progress"]) == 0
    assert json.loads((run / "config.json").read_text())["data_dir"] == str(moved.resolve())
    config_before = (run / "config.json").read_text()
    assert train_cli.main(["baseline", "--run-dir", str(run), "--resume", "--epochs", "1", "--no-progress"]) == 2
    one_line_error(capsys, "--epochs 1", "below the 2 epochs")
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main(["baseline", "--run-dir", str(run), "--resume", "--lr", "0.1"])
    assert exit_info.value.code == 2
    one_line_error(capsys, "--lr cannot change a run on --resume")
    other = synthetic.generate(tmp_path / "other", seed=1, num_classes=4, train_videos=6, test_videos=3,
                               feature_dim=8, min_length=16, max_length=20)
    assert train_cli.main(["baseline", "--run-dir", str(run), "--resume", "--epochs", "3", "--data-dir",
                           str(other), "--no-progress"]) == 2
    one_line_error(capsys, "Action04", "but the run was trained on 3 classes (Action01, Action02, Action03)")
    assert (run / "config.json").read_text() == config_before


def test_resume_takes_the_flags_that_change_no_number_and_compile_with_a_note(baseline_run, tmp_path, capsys):
    """The checkpoint cadence and the plateau window change on --resume; compiled steps too (a run
    started with --compile goes on where compiling fails), with a one-line note that the steps may
    round differently; the rest is refused, naming what --resume takes."""
    run = tmp_path / "run"
    shutil.copytree(baseline_run, run)
    last = torch.load(run / "last.pt", weights_only=True)
    last["config"].update(compile_step=True, compile_mode="reduce-overhead")  # as started with --compile
    torch.save(last, run / "last.pt")
    assert train_cli.main(["baseline", "--run-dir", str(run), "--resume", "--epochs", "2", "--no-compile",
                           "--checkpoint-every", "2", "--checkpoint-minutes", "5", "--plateau-epochs", "3",
                           "--no-progress"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if line.startswith("note:")] == [
        "note: --no-compile on --resume changes how the steps are computed from here on, which may round "
        "differently from the epochs before (not bit for bit the run it would have been)"]
    config = torch.load(run / "last.pt", weights_only=True)["config"]
    assert (config["epochs"], config["compile_step"], config["compile_mode"], config["checkpoint_every"],
            config["checkpoint_minutes"], config["plateau_epochs"]) == (2, False, "default", 2, 5.0, 3)
    assert json.loads((run / "config.json").read_text())["checkpoint_every"] == 2
    with pytest.raises(SystemExit):
        train_cli.main(["baseline", "--run-dir", str(run), "--resume", "--precision", "bf16"])
    one_line_error(capsys, "--precision cannot change a run on --resume", "(only --data-dir, --epochs, "
                   "--plateau-epochs, --compile, --compile-mode, --checkpoint-every, --checkpoint-minutes and --device")


@pytest.mark.parametrize("flag,value,message", [
    ("--fsd-gamma", "inf", "argument --fsd-gamma"), ("--lcs-gamma", "1e-40", "argument --lcs-gamma"),
    ("--fsd-gamma", "1e7", "must be <= 1e+06"), ("--branch-weights", "1,2", "three comma-separated weights"),
    ("--branch-weights", "1,-2,1", "argument --branch-weights"),
    ("--lr", "nan", "argument --lr"), ("--weight-decay", "-1", "argument --weight-decay"),
    ("--seeds", "0,0", "argument --seeds"), ("--epochs", "0", "argument --epochs"),
    ("--seed", "-1", "argument --seed: must be in [0, 4294967295]"), ("--seed", "4294967296", "argument --seed"),
    ("--seeds", "1,4294967296", "argument --seeds"), ("--lcs-threshold", "1.5", "argument --lcs-threshold"),
    ("--fsd-weight", "-1", "argument --fsd-weight"), ("--lcs-weight", "inf", "argument --lcs-weight"),
    ("--lcs-len", "0", "argument --lcs-len"), ("--fsd-len", "x", "argument --fsd-len"),
    ("--compile-mode", "fast", "argument --compile-mode"),
    ("--compile-mode", "reduce-overhead", "applies to compiled steps: add --compile"),
])
def test_training_flags_are_checked_in_one_line(data, tmp_path, capsys, flag, value, message):
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main(["baseline", "--data-dir", str(data), "--run-dir", str(tmp_path / "run"), flag, value])
    assert exit_info.value.code == 2
    one_line_error(capsys, message, value)


@pytest.mark.parametrize("breakage,message", [
    (lambda d: shutil.rmtree(d), "data directory not found"),
    (lambda d: (d / "gt.json").unlink(), "gt.json: ground-truth file not found"),
    (lambda d: (d / "split_test.txt").unlink(), "split_test.txt: split file not found"),
    (lambda d: (d / "split_train.txt").write_text("\n"), "split_train.txt: split is empty"),
    (lambda d: (d / "train" / f"{first_id(d, 'train')}.npy").unlink(), "feature file not found (video video_validation_0000001"),
    (lambda d: np.save(d / "test" / f"{first_id(d, 'test')}.npy", np.zeros((5, 17), np.float32)), "feature dimension"),
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


def test_an_init_from_another_preset_says_which_to_add(tiny_data, tmp_path, capsys):
    """A checkpoint of this project records its config: an --init whose architecture differs because
    it was trained with another preset names that preset instead of a key."""
    from ftcl.checkpoint import FORMAT
    from ftcl.config import preset
    state = ACMNet(4, 16, fc_dim=2048).state_dict()
    state = {key.replace("feature_embedding.0.", "feature_embedding.1."): value for key, value in state.items()}
    torch.save({"format": FORMAT, "kind": "baseline", "epoch": 3, "config": preset("activitynet13").to_dict(),
                "model_state_dict": state}, tmp_path / "an.pt")
    code = train_cli.main(["ftcl", "--data-dir", str(tiny_data), "--run-dir", str(tmp_path / "run"),
                           "--init", str(tmp_path / "an.pt"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "an.pt: trained with --preset activitynet13, this run has --preset thumos14; add --preset activitynet13" in err


@pytest.mark.slow
def test_cli_runs_in_a_subprocess_with_exit_codes(tiny_data, tmp_path):
    run = subprocess.run([sys.executable, "-m", "ftcl.train", "baseline", "--data-dir", str(tiny_data), "--run-dir",
                          str(tmp_path / "run"), "--epochs", "1", "--sample-snippets", "32", "--batch-size", "4",
                          "--no-progress"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "done: 1 epochs" in run.stdout
    bad = subprocess.run([sys.executable, "-m", "ftcl.train", "baseline", "--data-dir", str(tmp_path / "nope"),
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
    assert config["sample_snippets"] == 75 and config["proposals"]["score_mix"] == [0.7, 0.3] and config["proposals"]["nms_iou"] == 0.9


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
    assert [row["epoch"] for row in metrics_rows(run / "metrics.csv")] == ["1", "2", "3"]
