"""What several test modules build: small data sets, configs, runs and checks of one-line errors."""
import json
import os
import shutil
import traceback
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ftcl.config import preset
from ftcl.model import ACMNet
from ftcl.train.loop import Trainer

# The directory of THUMOS14's real annotations (gt.json, split_train.txt, split_test.txt); the tests
# that need them skip where it is unset (a user's clone has none).
ANNOTATIONS_VARIABLE = "FTCL_THUMOS14_ANNOTATIONS"


def thumos14_annotations():
    """The directory FTCL_THUMOS14_ANNOTATIONS names, or None when unset or empty; a named directory
    without gt.json fails (a mistyped setting must not pass for a skip)."""
    value = os.environ.get(ANNOTATIONS_VARIABLE)
    if not value:
        return None
    path = Path(value)
    assert (path / "gt.json").is_file(), f"{ANNOTATIONS_VARIABLE}={value}: no gt.json there"
    return path


# W-TALC's own Thumos14reduced-Annotations directory (videoname.npy, duration.npy, ... as W-TALC
# distributes them, features aside); the tests that need it skip where it is unset.
WTALC_VARIABLE = "FTCL_WTALC_ANNOTATIONS"


def wtalc_annotations():
    """The directory FTCL_WTALC_ANNOTATIONS names, or None when unset or empty; a named directory
    without videoname.npy fails (a mistyped setting must not pass for a skip)."""
    value = os.environ.get(WTALC_VARIABLE)
    if not value:
        return None
    path = Path(value)
    assert (path / "videoname.npy").is_file(), f"{WTALC_VARIABLE}={value}: no videoname.npy there"
    return path


# Marks of a test case that runs only on a CUDA GPU (and is skipped elsewhere).
CUDA = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

# Training flags of a one-epoch run on a tiny set.
TRAIN = ["--epochs", "1", "--sample-snippets", "16", "--batch-size", "4", "--no-progress"]


def copy_of(data, tmp_path, name="copy"):
    """A copy of data directory `data` under tmp_path, to break."""
    target = tmp_path / name
    shutil.copytree(data, target)
    return target


def one_line_error(capsys, *fragments):
    """The one stderr line a refused input printed (no traceback), holding every fragment."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def write_json(path, obj):
    """obj as JSON at path; returns the path as text."""
    path.write_text(json.dumps(obj))
    return str(path)


def small_model(feature_dim=12, num_classes=5, **kw):
    """A seeded ACM-Net with few, small candidates."""
    torch.manual_seed(0)
    return ACMNet(feature_dim, num_classes, lcs_len=kw.pop("lcs_len", 4), fsd_len=kw.pop("fsd_len", 3),
                  fc_dim=kw.pop("fc_dim", 6), **kw)


class HostReads(TorchDispatchMode):
    """Counts the values a run reads back from tensors (item, bool, int, float, tolist, numpy, cpu),
    except the optimizer's own step counters, which live on the CPU whatever the device, and the DP
    ops' CPU path, which runs on host arrays by design (on a GPU the Triton path reads nothing)."""

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
        if not any("torch/optim/" in frame.filename or "/kernels/" in frame.filename for frame in stack):
            ours = next(f for f in reversed(stack) if "/torch/" not in f.filename)
            self.where.append(f"{ours.filename}:{ours.lineno}")
            self.lines.append(ours.line)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self._record()
        return func(*args, **(kwargs or {}))


def tiny_config(data_dir, **kw):
    """A Config for the tiny sets: 32 snippets, batch 4, 2 + 1 epochs, few candidates."""
    values = dict(data_dir=str(data_dir), sample_snippets=32, batch_size=4, epochs=2, ftcl_epochs=1,
                  lcs_len=6, fsd_len=2, fc_dim=8, lcs_threshold=0.5)
    values.update(kw)
    return preset("thumos14", **values)


def first_id(d, split):
    """The first video id of a split of data directory d."""
    return (d / f"split_{split}.txt").read_text().split()[0]


def metrics_rows(path):
    """metrics.csv rows as dicts of text, without the wall-clock column."""
    import csv
    with open(path) as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def train_run(kind, data_dir, run_dir, init=None, device="cpu", **kw):
    """A finished run of tiny_config(data_dir, **kw) on the device (from `init` when given)."""
    trainer = Trainer(kind, tiny_config(data_dir, **kw), run_dir, torch.device(device), progress=False)
    if init:
        trainer.init_from(init)
    trainer.run()
    return trainer
