"""ftcl.synthetic: the generated data sets and the directories it may write."""
import json
import shutil

import numpy as np
import pytest
import torch

from ftcl import evaluation, synthetic
from ftcl.config import preset
from ftcl.data import load_dataset
from ftcl.inference import evaluate_model
from ftcl.model import ACMNet
from tests.helpers import first_id, one_line_error


def test_synthetic_replaces_only_what_it_wrote(tmp_path, capsys):
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "gt.json").write_text("{}")  # looks like a data directory, but is the user's
    (precious / "notes.txt").write_text("keep me")
    args = ["--train-videos", "2", "--test-videos", "2", "--feature-dim", "4"]
    assert synthetic.main(["--out", str(precious), *args]) == 2
    one_line_error(capsys, str(precious), "not written by ftcl.synthetic")
    assert (precious / "notes.txt").read_text() == "keep me"
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert synthetic.main(["--out", str(a_file), *args]) == 2
    one_line_error(capsys, str(a_file), "not a directory")
    assert a_file.read_text() == "x"
    ours = tmp_path / "ours"
    assert synthetic.main(["--out", str(ours), *args]) == 0
    assert synthetic.main(["--out", str(ours), "--seed", "1", *args]) == 0  # its own: replaced
    assert json.loads((ours / synthetic.MARKER).read_text())["seed"] == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert synthetic.main(["--out", str(empty), *args]) == 0


def test_synthetic_refuses_a_seed_numpy_cannot_take(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        synthetic.main(["--out", str(tmp_path / "syn"), "--seed", "-1"])
    assert exit_info.value.code == 2
    one_line_error(capsys, "argument --seed: must be in [0, 4294967295], got -1")
    assert not (tmp_path / "syn").exists()


@pytest.mark.parametrize("flag", ["--feature-dim", "--classes", "--train-videos", "--test-videos"])
def test_synthetic_sizes_are_checked_in_one_line(tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as exit_info:
        synthetic.main(["--out", str(tmp_path / "syn"), flag, "0"])
    assert exit_info.value.code == 2
    one_line_error(capsys, f"argument {flag}: must be >= 1, got 0")
    assert not (tmp_path / "syn").exists()


def test_synthetic_generator_is_deterministic_and_thumos_like(tmp_path):
    a = synthetic.generate(tmp_path / "a", seed=5, train_videos=6, test_videos=4, feature_dim=8)
    b = synthetic.generate(tmp_path / "b", seed=5, train_videos=6, test_videos=4, feature_dim=8)
    c = synthetic.generate(tmp_path / "c", seed=6, train_videos=6, test_videos=4, feature_dim=8)
    assert (a / "gt.json").read_bytes() == (b / "gt.json").read_bytes() != (c / "gt.json").read_bytes()
    first = first_id(a, "train")
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
