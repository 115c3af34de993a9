"""ftcl.data: sampling, the pair sets, and data directories that are refused."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ftcl import data, evaluation
from ftcl.data import DataError, load_dataset
from ftcl.train import cli as train_cli
from tests.helpers import TRAIN, copy_of, one_line_error


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


def _release_generate_pairs(labels):
    """The release's generate_pairs (utils/net_utils.py), loop by loop, before its negative sampling."""
    positives, negatives = [], []
    for i in range(len(labels) - 1):
        for j in range(i + 1, len(labels)):
            shared = float(np.sum(labels[i] * labels[j]))
            if shared == 1 and np.array_equal(labels[i], labels[j]):
                positives.append((i, j))
            elif shared == 0:
                negatives.append((i, j))
    return positives, negatives


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_features_are_refused_when_a_split_loads(data, tmp_path, capsys, split, value):
    root = copy_of(data, tmp_path)
    vid = (root / f"split_{split}.txt").read_text().split()[1]
    features = np.load(root / split / f"{vid}.npy")
    features[7, 3] = value
    np.save(root / split / f"{vid}.npy", features)
    assert train_cli.main(["baseline", "--data-dir", str(root), "--run-dir", str(tmp_path / "run"), *TRAIN]) == 2
    one_line_error(capsys, f"{vid}.npy: row 7 holds a non-finite value")
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
    root = copy_of(data, tmp_path)
    vid = (root / "split_train.txt").read_text().split()[0]
    np.save(root / "train" / f"{vid}.npy", array, allow_pickle=True)
    assert train_cli.main(["baseline", "--data-dir", str(root), "--run-dir", str(tmp_path / "run"), *TRAIN]) == 2
    one_line_error(capsys, f"{vid}.npy", message)


@pytest.mark.parametrize("edit,message", GT_BREAKAGES)
def test_malformed_ground_truth_in_training_and_evaluation(data, tmp_path, capsys, edit, message):
    root = copy_of(data, tmp_path)
    vid = _edit_gt(root, edit)
    assert train_cli.main(["baseline", "--data-dir", str(root), "--run-dir", str(tmp_path / "run"), *TRAIN]) == 2
    one_line_error(capsys, "gt.json", f"video {vid}", message)
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({"results": {}}))
    out = subprocess.run([sys.executable, "-m", "evaluation", str(root / "gt.json"), str(pred), "--subset",
                          "validation"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and f"video {vid}" in out.stderr, out.stderr


def test_a_training_video_without_annotations_is_refused_and_a_test_video_without_is_scored(data, tmp_path,
                                                                                             capsys):
    """Unrefused, such a training video made every step it was in non-finite: the baseline skipped
    them in silence and FTCL (which pairs it with any other unlabelled video) took no step at all."""
    root = copy_of(data, tmp_path)
    vid = _edit_gt(root, lambda db, v: db[v].__setitem__("annotations", []))
    assert train_cli.main(["baseline", "--data-dir", str(root), "--run-dir", str(tmp_path / "run"), *TRAIN]) == 2
    one_line_error(capsys, "gt.json", f"training video {vid} has no annotations", "1 of 10")
    assert not (tmp_path / "run").exists()
    root = copy_of(data, tmp_path, "test-unlabelled")
    database = json.loads((root / "gt.json").read_text())
    database["database"][(root / "split_test.txt").read_text().split()[0]]["annotations"] = []
    (root / "gt.json").write_text(json.dumps(database))
    assert train_cli.main(["baseline", "--data-dir", str(root), "--run-dir", str(tmp_path / "run"), *TRAIN]) == 0


def test_split_mixing_subsets_or_listing_a_video_twice_is_refused(data, tmp_path):
    root = copy_of(data, tmp_path)
    train_ids = (root / "split_train.txt").read_text().split()
    test_ids = (root / "split_test.txt").read_text().split()
    shutil.copy(root / "train" / f"{train_ids[0]}.npy", root / "test" / f"{train_ids[0]}.npy")
    (root / "split_test.txt").write_text("\n".join(test_ids + [train_ids[0]]) + "\n")
    with pytest.raises(DataError, match=f"split_test.txt: videos of several gt.json subsets .*{train_ids[0]} is 'validation'"):
        load_dataset(root)
    (root / "split_test.txt").write_text("\n".join(test_ids + [test_ids[0]]) + "\n")
    with pytest.raises(DataError, match=f"split_test.txt: video id {test_ids[0]} is listed twice"):
        load_dataset(root)


def test_random_sample_longer_video_draws_one_snippet_per_stride():
    rng = np.random.default_rng(0)
    length, count = 1003, 750
    bounds = (np.arange(count) * length / count).astype(int)  # stride i is [bounds[i], bounds[i + 1]]
    for _ in range(5):
        idx = data.random_sample(length, count, rng)
        assert idx.shape == (count,)
        assert (idx[:-1] >= bounds[:-1]).all() and (idx[:-1] <= bounds[1:]).all()
        assert idx[-1] >= idx[-2]
        assert (np.diff(idx) >= 0).all() and idx[-1] < length


def test_random_sample_shorter_video_repeats_sorted_and_equal_takes_all():
    rng = np.random.default_rng(1)
    idx = data.random_sample(37, 750, rng)
    assert idx.shape == (750,) and (np.diff(idx) >= 0).all() and idx.min() >= 0 and idx.max() < 37
    assert len(np.unique(idx)) > 30  # with replacement, but covering the video
    np.testing.assert_array_equal(data.random_sample(750, 750, rng), np.arange(750))


@pytest.mark.parametrize("length,count,expected", [
    (5, 750, [0, 1, 2, 3, 4]),
    (1, 750, [0, 0]),  # read twice: the test-time interpolation needs two points
    (10, 4, [0, 2, 5, 7]),  # floor(i * 10 / 4)
    (7, 7, [0, 1, 2, 3, 4, 5, 6]),
])
def test_uniform_sample(length, count, expected):
    np.testing.assert_array_equal(data.uniform_sample(length, count), expected)


def test_release_pairs_take_identical_labels_and_as_many_disjoint():
    labels = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    pairs = data.release_pairs(labels, np.random.default_rng(0))
    as_set = {tuple(p) for p in pairs.tolist()}
    positives = {(0, 1), (0, 6), (1, 6), (2, 4)}
    assert positives <= as_set and len(pairs) == 8 and len(as_set) == 8
    for i, j in as_set - positives:
        assert i < j and not (labels[i] & labels[j]).any()
    again = data.release_pairs(labels, np.random.default_rng(1))
    assert {tuple(p) for p in again.tolist()} != as_set or not np.array_equal(again, pairs)


def test_in_batch_pairs_are_the_release_baselines_pairs():
    labels = np.array([[1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0], [0, 0, 1], [0, 1, 0], [0, 0, 1]])
    # Positive: identical with exactly one class -> (0, 1), (4, 6); (2, 3) is identical but two-class.
    pairs, positive = data.in_batch_pairs(labels, np.random.default_rng(0))
    got_pos = {tuple(p) for p in pairs[positive].tolist()}
    got_neg = {tuple(p) for p in pairs[~positive].tolist()}
    want_pos, want_neg = _release_generate_pairs(labels)
    assert got_pos == set(want_pos) == {(0, 1), (4, 6)}
    assert len(got_neg) == 2 and got_neg <= set(want_neg)
    rng = np.random.default_rng(3)
    for _ in range(20):
        batch = (rng.random((16, 5)) < 0.25).astype(int)
        pairs, positive = data.in_batch_pairs(batch, rng)
        want_pos, want_neg = _release_generate_pairs(batch)
        assert {tuple(p) for p in pairs[positive].tolist()} == set(want_pos)
        negatives = {tuple(p) for p in pairs[~positive].tolist()}
        assert negatives <= set(want_neg) and len(negatives) == min(len(want_pos), len(want_neg))
        assert len(pairs) == len({tuple(p) for p in pairs.tolist()})
    none, flags = data.in_batch_pairs(np.array([[1, 0], [0, 1]]), rng)
    assert none.shape == (0, 2) and flags.shape == (0,)


def test_real_thumos_pair_set_has_the_release_counts(thumos_annotations):
    """The release notes 861 identical-label pairs among the 200 training videos."""
    database = data.read_ground_truth(thumos_annotations)
    classes = evaluation.class_names(database)
    assert classes[:3] == ["BaseballPitch", "BasketballDunk", "Billiards"] and len(classes) == 20
    ids = (thumos_annotations / "split_train.txt").read_text().split()
    labels = np.zeros((len(ids), len(classes)))
    for v, vid in enumerate(ids):
        for label, _, _ in database[vid].annotations:
            labels[v, classes.index(label)] = 1
    pairs = data.release_pairs(labels, np.random.default_rng(0))
    assert len(pairs) == 2 * 861
