"""THUMOS14-format data (the ACM-Net / FTCL layout), sampling, and the FTCL pair sets.

    DIR/gt.json                      ActivityNet-style {"database": {vid: {subset, duration, annotations}}}
    DIR/split_train.txt, split_test.txt   one video id per line
    DIR/train/<vid>.npy, DIR/test/<vid>.npy   [T, D] features, one row per 16-frame snippet at 25 fps

Classes are the sorted labels of gt.json. Every problem with the directory raises DataError, whose
message is one line naming the file, id or value.
"""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """A problem with the user's data directory; the message is one line naming what is wrong."""


@dataclass
class Split:
    """One split of a data directory. ids: V video ids; labels: [V, C] multi-hot float32; lengths: [V]
    snippet counts; durations: [V] seconds; paths: V feature files (loaded lazily); feature_dim: D."""

    name: str
    ids: list
    labels: np.ndarray
    lengths: np.ndarray
    durations: np.ndarray
    paths: list
    feature_dim: int

    def features(self, index):
        """[T, D] float32 features of video `index` (memory-mapped, so repeated epochs hit the page cache)."""
        return np.load(self.paths[index], mmap_mode="r")

    def __len__(self):
        return len(self.ids)


def read_ground_truth(data_dir):
    path = Path(data_dir) / "gt.json"
    if not Path(data_dir).is_dir():
        raise DataError(f"{data_dir}: data directory not found")
    if not path.is_file():
        raise DataError(f"{path}: ground-truth file not found")
    try:
        database = json.loads(path.read_text())["database"]
        if not isinstance(database, dict):
            raise TypeError
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        raise DataError(f"{path}: not an ActivityNet-style ground truth (needs a 'database' object)") from None
    return database


def class_names(database):
    """Sorted labels of every annotation in the ground truth."""
    return sorted({ann["label"] for info in database.values() for ann in info.get("annotations", [])})


def _read_ids(path):
    if not path.is_file():
        raise DataError(f"{path}: split file not found")
    ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise DataError(f"{path}: split is empty")
    return ids


def load_split(data_dir, name, classes=None, database=None):
    """Read split `name` ("train" or "test") of a data directory, checking every file it needs."""
    data_dir = Path(data_dir)
    database = read_ground_truth(data_dir) if database is None else database
    classes = class_names(database) if classes is None else classes
    index = {c: k for k, c in enumerate(classes)}
    split_file = data_dir / f"split_{name}.txt"
    ids = _read_ids(split_file)
    labels = np.zeros((len(ids), len(classes)), dtype=np.float32)
    lengths, durations, paths, feature_dim = [], [], [], None
    for v, vid in enumerate(ids):
        if vid not in database:
            raise DataError(f"{split_file}: video id {vid} is not in {data_dir / 'gt.json'}")
        for ann in database[vid].get("annotations", []):
            if ann.get("label") not in index:
                raise DataError(f"{data_dir / 'gt.json'}: video {vid} has label {ann.get('label')!r} outside the classes")
            labels[v, index[ann["label"]]] = 1.0
        path = data_dir / name / f"{vid}.npy"
        if not path.is_file():
            raise DataError(f"{path}: feature file not found (video {vid} of {split_file.name})")
        try:
            shape = np.load(path, mmap_mode="r").shape
        except (ValueError, OSError):
            raise DataError(f"{path}: not a readable .npy array") from None
        if len(shape) != 2 or shape[0] < 1:
            raise DataError(f"{path}: features must be [T, D] with T >= 1, got shape {shape}")
        if feature_dim is not None and shape[1] != feature_dim:
            raise DataError(f"{path}: feature dimension {shape[1]} differs from {feature_dim} of {paths[0]}")
        feature_dim = shape[1]
        lengths.append(shape[0])
        durations.append(float(database[vid].get("duration", shape[0] * 16 / 25)))
        paths.append(path)
    return Split(name=name, ids=ids, labels=labels, lengths=np.array(lengths), durations=np.array(durations),
                 paths=paths, feature_dim=feature_dim)


def test_subset(data_dir):
    """The gt.json subset name of the test split's videos ("test" on THUMOS14)."""
    first = _read_ids(Path(data_dir) / "split_test.txt")[0]
    database = read_ground_truth(data_dir)
    if first not in database:
        raise DataError(f"{Path(data_dir) / 'split_test.txt'}: video id {first} is not in {Path(data_dir) / 'gt.json'}")
    return database[first].get("subset", "test")


def load_dataset(data_dir):
    """(classes, train split, test split, feature dim) of a data directory; both splits share a dimension."""
    database = read_ground_truth(data_dir)
    classes = class_names(database)
    if not classes:
        raise DataError(f"{Path(data_dir) / 'gt.json'}: no annotations, so no classes")
    train = load_split(data_dir, "train", classes, database)
    test = load_split(data_dir, "test", classes, database)
    if train.feature_dim != test.feature_dim:
        raise DataError(f"{test.paths[0]}: feature dimension {test.feature_dim} differs from "
                        f"{train.feature_dim} of {train.paths[0]}")
    return classes, train, test, train.feature_dim


def random_sample(length, count, rng):
    """Training indices (the release's "random" sampling): a random snippet from each of `count`
    equal strides when the video is longer; sorted draws with replacement when shorter. -> [count]."""
    if length < count:
        return np.sort(rng.integers(0, length, size=count))
    if length == count:
        return np.arange(length)
    bounds = (np.arange(count) * length / count).astype(np.int64)
    # Stride i draws from [bounds[i], bounds[i + 1]] inclusive; the last from its predecessor's draw on.
    idx = np.empty(count, dtype=np.int64)
    idx[:-1] = bounds[:-1] + (rng.random(count - 1) * (bounds[1:] - bounds[:-1] + 1)).astype(np.int64)
    idx[-1] = rng.integers(idx[-2], length)
    return idx


def uniform_sample(length, count):
    """Test indices (the release's "uniform" sampling): all snippets up to `count`, else evenly spaced;
    a one-snippet video is read twice (the test-time interpolation needs two points). -> [<= count]."""
    if count >= length > 1:
        return np.arange(length)
    if length == 1:
        count = 2
    return np.floor(np.arange(count) * (length / count)).astype(np.int64)


def release_pairs(labels, rng):
    """The release's FTCL pair set, drawn again each epoch: every pair with identical label vectors
    (positive) plus as many random pairs with disjoint labels (negative). labels: [V, C].
    Returns int [P, 2] of video indices (i < j), shuffled."""
    labels = np.asarray(labels) > 0
    first, second = np.triu_indices(len(labels), k=1)
    same = (labels[first] == labels[second]).all(axis=1)
    disjoint = ~(labels[first] & labels[second]).any(axis=1)
    positives = np.flatnonzero(same)
    negatives = np.flatnonzero(disjoint)
    chosen_negatives = rng.choice(negatives, size=min(len(positives), len(negatives)), replace=False)
    pairs = np.concatenate([positives, chosen_negatives])
    rng.shuffle(pairs)
    return np.stack([first[pairs], second[pairs]], axis=1)


def in_batch_pairs(labels):
    """Every positive (identical labels) and negative (disjoint labels) pair among a batch's videos.
    labels: [B, C]. Returns (pairs int [P, 2], positive bool [P])."""
    labels = np.asarray(labels) > 0
    first, second = np.triu_indices(len(labels), k=1)
    same = (labels[first] == labels[second]).all(axis=1)
    disjoint = ~(labels[first] & labels[second]).any(axis=1)
    keep = same | disjoint
    return np.stack([first[keep], second[keep]], axis=1), same[keep]
