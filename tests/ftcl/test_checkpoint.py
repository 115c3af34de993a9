"""ftcl.checkpoint: snapshots of the training state."""
import shutil

import pytest
import torch

from ftcl import checkpoint
from tests.helpers import TRAIN, one_line_error


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


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
@pytest.mark.parametrize("tool", ["localize", "evaluate", "init", "resume"])
def test_a_checkpoint_with_non_finite_weights_is_refused_by_name(data, baseline_run, tmp_path, capsys, tool, bad):
    """NaN weights made localize report 0 detections with status 0 and evaluate fail in
    scikit-learn naming no file: every loader refuses them, naming the file and the weight."""
    from ftcl import evaluate, localize
    from ftcl.train import cli as train_cli
    run = tmp_path / "run"
    shutil.copytree(baseline_run, run)
    broken = run / ("last.pt" if tool == "resume" else "best.pt")
    ckpt = torch.load(broken, weights_only=True)
    key = sorted(ckpt["model_state_dict"])[-1]
    ckpt["model_state_dict"][key].view(-1)[0] = bad
    broken.unlink()  # best.pt may be a link to last.pt
    torch.save(ckpt, broken)
    argv = {"localize": (localize.main, [str(broken), str(data / "test"), "--out", str(tmp_path / "out.json")]),
            "evaluate": (evaluate.main, [str(broken), "--out", str(tmp_path / "out.json")]),
            "init": (train_cli.main, ["ftcl", "--data-dir", str(data), "--run-dir", str(tmp_path / "ftcl"), "--init",
                                      str(broken), *TRAIN]),
            "resume": (train_cli.main, ["baseline", "--run-dir", str(run), "--resume", "--epochs", "2",
                                        "--no-progress"])}
    main, args = argv[tool]
    capsys.readouterr()
    assert main(args) == 2
    one_line_error(capsys, str(broken), repr(key), "NaN or infinite")
    assert not (tmp_path / "out.json").exists() and not (tmp_path / "ftcl").exists()
