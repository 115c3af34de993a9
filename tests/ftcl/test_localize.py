"""python -m ftcl.localize: the detections of unannotated feature files are exactly what
ftcl.evaluate finds for the same videos and checkpoint; bad input is one line."""
import json
import shutil

import numpy as np
import pytest
import torch

from ftcl import evaluate as ftcl_evaluate
from ftcl import localize, synthetic
from ftcl.train import cli as train_cli


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("localize")
    data = synthetic.generate(root / "data", seed=5, num_classes=3, train_videos=10, test_videos=6, feature_dim=8,
                              min_length=16, max_length=60)
    assert train_cli.main(["baseline", "--data-dir", str(data), "--run-dir", str(root / "run"), "--epochs", "1",
                           "--sample-snippets", "32", "--batch-size", "4", "--no-progress"]) == 0
    return data, root / "run" / "best.pt"


def _results(path):
    return json.loads(path.read_text())["results"]


def _assert_same_detections(got, want):
    """Same videos, labels and segments; scores within 1e-6 (videos are batched by length, a batch's
    padding moves the forward's last float32 bits, and the OIC score, a difference of means, carries
    them)."""
    assert list(sorted(got)) == list(sorted(want))
    for vid in want:
        assert [(d["label"], d["segment"]) for d in got[vid]] == [(d["label"], d["segment"]) for d in want[vid]], vid
        np.testing.assert_allclose([d["score"] for d in got[vid]], [d["score"] for d in want[vid]], rtol=1e-5,
                                   atol=1e-6)


def test_detections_equal_the_evaluation_of_the_same_videos(run, tmp_path, capsys):
    data, ckpt = run
    assert ftcl_evaluate.main([str(ckpt), "--json", "--out", str(tmp_path / "evaluated.json")]) == 0
    # The test videos' files, given as a directory and as single files (another order): same detections.
    files = sorted((data / "test").glob("*.npy"), reverse=True)
    assert localize.main([str(ckpt), str(data / "test"), "--out", str(tmp_path / "dir.json")]) == 0
    assert localize.main([str(ckpt), *map(str, files), "--out", str(tmp_path / "files.json")]) == 0
    evaluated = _results(tmp_path / "evaluated.json")
    assert sum(map(len, evaluated.values())) > 0
    _assert_same_detections(_results(tmp_path / "dir.json"), evaluated)
    _assert_same_detections(_results(tmp_path / "files.json"), evaluated)
    model, config = localize.inference_model(ckpt)
    split = localize.feature_split([data / "test"], config.seconds_per_snippet)
    over_workers = localize.localize_files(model, config, split, "cpu", workers=2)["results"]
    assert over_workers == _results(tmp_path / "dir.json")  # the same detections from 2 worker processes
    capsys.readouterr()
    assert localize.main([str(ckpt), str(files[0])]) == 0  # no --out: the JSON on stdout
    _assert_same_detections(json.loads(capsys.readouterr().out)["results"], {files[0].stem: evaluated[files[0].stem]})


def test_a_release_checkpoint_takes_its_classes_from_data_dir(run, tmp_path, capsys):
    data, ckpt = run
    release = tmp_path / "release.pth"
    torch.save({"epoch": 1, "model_state_dict": torch.load(ckpt, weights_only=True)["model_state_dict"]}, release)
    assert localize.main([str(release), str(data / "test")]) == 2
    assert "names no classes; give the --data-dir" in capsys.readouterr().err
    assert localize.main([str(release), str(data / "test"), "--data-dir", str(data), "--out",
                          str(tmp_path / "loc.json")]) == 0
    assert ftcl_evaluate.main([str(release), "--data-dir", str(data), "--json", "--out",
                               str(tmp_path / "evaluated.json")]) == 0
    _assert_same_detections(_results(tmp_path / "loc.json"), _results(tmp_path / "evaluated.json"))


@pytest.mark.parametrize("case,message", [
    ("other-dimension", "4-d features, but"),
    ("same-id-twice", "given twice"),
    ("empty-directory", "no .npy feature files in this directory"),
    ("non-finite", "holds a non-finite value"),
])
def test_bad_feature_files_are_one_line_errors(run, tmp_path, capsys, case, message):
    data, ckpt = run
    first = sorted((data / "test").glob("*.npy"))[0]
    inputs = []
    if case == "other-dimension":
        np.save(tmp_path / "v.npy", np.zeros((20, 4), np.float32))
        inputs = [tmp_path / "v.npy"]
    elif case == "same-id-twice":
        (tmp_path / "copy").mkdir()
        shutil.copy(first, tmp_path / "copy" / first.name)
        inputs = [first, tmp_path / "copy"]
    elif case == "empty-directory":
        (tmp_path / "empty").mkdir()
        inputs = [tmp_path / "empty"]
    else:
        bad = np.load(first)
        bad[3, 1] = np.nan
        np.save(tmp_path / "bad.npy", bad)
        inputs = [tmp_path / "bad.npy"]
    assert localize.main([str(ckpt), *map(str, inputs), "--out", str(tmp_path / "out.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "out.json").exists()
