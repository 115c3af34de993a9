"""train.loggers: TensorBoard and W&B are optional and get every scalar."""
import sys

import pytest

from ftcl.train import cli as train_cli
from tests.helpers import metrics_rows


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
    rows = metrics_rows(run / "metrics.csv")
    assert dict((t, v) for t, v, s in logged["tb"] if s == 2)["loss/inst"] == pytest.approx(float(rows[1]["inst"]), rel=1e-5)
    assert logged["init"]["config"]["epochs"] == 2
