"""THUMOS14-format data (the ACM-Net / FTCL layout), sampling, and the FTCL pair sets.

    DIR/gt.json                      ActivityNet-style {"database": {vid: {subset, duration, annotations}}}
    DIR/split_train.txt, split_test.txt   one video id per line
    DIR/train/<vid>.npy, DIR/test/<vid>.npy   [T, D] features, one row per snippet (16 frames at 25 fps)

Classes are the sorted labels of gt.json. Every problem with the directory raises DataError, whose
message is one line naming the file, id or value. Features are checked when a split is loaded
(readable, real-valued, 2-D, one dimension, every value finite), so a bad file stops a run before
its first step rather than as a NaN loss or a NaN score later.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ftcl.evaluation.io import EvaluationInputError, class_names, ground_truth_from, read_database
from ftcl.config import Config


class DataError(ValueError):
    """A problem with the user's data directory; the message is one line naming what is wrong."""


@dataclass
class Split:
    """One split of a data directory. ids: V video ids; labels: [V, C] multi-hot float32; lengths: [V]
    snippet counts; durations: [V] seconds; paths: V feature files (loaded lazily); feature_dim: D;
    subset: the gt.json subset of its videos."""

    name: str
    ids: list
    labels: np.ndarray
    lengths: np.ndarray
    durations: np.ndarray
    paths: list
    feature_dim: int
    subset: str | None

    def features(self, index):
        """[T, D] features of video `index` (memory-mapped, so repeated epochs hit the page cache)."""
        return np.load(self.paths[index], mmap_mode="r")

    def __len__(self):
        return len(self.ids)


@dataclass
class Dataset:
    """A loaded data directory: classes (sorted labels), both splits, and the parsed gt.json."""

    data_dir: Path
    classes: list
    train: Split
    test: Split
    videos: dict

    @property
    def feature_dim(self):
        return self.test.feature_dim

    def test_ground_truth(self):
        """GroundTruth of the gt.json subset the test videos belong to (THUMOS14: "test", 212 videos)."""
        return ground_truth_from(self.videos, self.test.subset, self.data_dir / "gt.json")


def describe_classes(classes):
    """"3 classes (A, B, C)", the first six named, for messages comparing two sets of classes."""
    shown = ", ".join(classes[:6]) + (", ..." if len(classes) > 6 else "")
    return f"{len(classes)} classes ({shown})"


def describe(classes, feature_dim):
    """"3 classes (A, B, C) of 2048-d features", for messages comparing two data sets."""
    return f"{describe_classes(classes)} of {feature_dim}-d features"


def require_same_data(dataset, classes, feature_dim, trained):
    """Refuse a Dataset whose classes or feature dimension differ from those `trained` (the run or
    checkpoint, as named in the message) was trained on."""
    if list(classes) != dataset.classes or feature_dim != dataset.feature_dim:
        raise DataError(f"{dataset.data_dir}: {describe(dataset.classes, dataset.feature_dim)}, but {trained} was "
                        f"trained on {describe(list(classes), feature_dim)}")


def read_ground_truth(data_dir):
    """{vid: VideoInfo} of DIR/gt.json, every entry checked (evaluation's parser)."""
    path = Path(data_dir) / "gt.json"
    if not Path(data_dir).is_dir():
        raise DataError(f"{data_dir}: data directory not found")
    if not path.is_file():
        raise DataError(f"{path}: ground-truth file not found")
    try:
        return read_database(path)
    except EvaluationInputError as err:
        raise DataError(str(err)) from None


def _read_ids(path):
    if not path.is_file():
        raise DataError(f"{path}: split file not found")
    try:
        ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read split file ({err.__class__.__name__})") from None
    if not ids:
        raise DataError(f"{path}: split is empty")
    seen = set()
    for vid in ids:
        if vid in seen:
            raise DataError(f"{path}: video id {vid} is listed twice")
        seen.add(vid)
    return ids


_ROWS_PER_CHECK = 8192


def check_features(path, what):
    """Shape [T, D] of a feature file after checking it is a real-valued 2-D array with every value
    finite; `what` names the video in the message."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise DataError(f"{path}: not a readable .npy array ({what})") from None
    if not isinstance(array, np.ndarray):
        raise DataError(f"{path}: holds several arrays, not one .npy array ({what})")
    return check_feature_array(array, path, what)


def check_feature_array(array, path, what):
    """check_features() of an array in memory (or memory-mapped); path and what name it."""
    kind = array.dtype.kind
    if kind == "c":
        raise DataError(f"{path}: complex features ({array.dtype}); expected real numbers ({what})")
    if kind not in "fiu":
        raise DataError(f"{path}: features of dtype {array.dtype} are not numbers ({what})")
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise DataError(f"{path}: features must be [T, D] with T, D >= 1, got shape {array.shape} ({what})")
    if kind == "f":
        for start in range(0, array.shape[0], _ROWS_PER_CHECK):
            finite = np.isfinite(array[start:start + _ROWS_PER_CHECK]).all(axis=1)
            if not finite.all():
                row = start + int(np.argmin(finite))
                raise DataError(f"{path}: row {row} holds a non-finite value ({what})")
    return array.shape


def _split_subset(videos, ids, split_file):
    """The one gt.json subset of a split's videos; a split mixing subsets would be scored against
    only one of them, so it is refused."""
    subsets = {}
    for vid in ids:
        subsets.setdefault(videos[vid].subset, vid)
    if len(subsets) > 1:
        listed = ", ".join(f"{vid} is {subset!r}" for subset, vid in subsets.items())
        raise DataError(f"{split_file}: videos of several gt.json subsets ({listed}); one split must be one subset")
    return next(iter(subsets))


def split_ground_truth(data_dir, name="test"):
    """GroundTruth of the gt.json subset that split `name`'s videos belong to, read without touching
    the feature files (what scoring saved outputs needs)."""
    data_dir = Path(data_dir)
    videos = read_ground_truth(data_dir)
    split_file = data_dir / f"split_{name}.txt"
    ids = _read_ids(split_file)
    for vid in ids:
        if vid not in videos:
            raise DataError(f"{split_file}: video id {vid} is not in {data_dir / 'gt.json'}")
    return ground_truth_from(videos, _split_subset(videos, ids, split_file), data_dir / "gt.json")


def load_split(data_dir, name, classes=None, videos=None, seconds_per_snippet=None):
    """Read split `name` ("train" or "test") of a data directory, checking every file it needs.
    seconds_per_snippet gives the duration of a video that gt.json gives none for (default: the
    Config default's)."""
    data_dir = Path(data_dir)
    seconds_per_snippet = seconds_per_snippet or Config().seconds_per_snippet
    videos = read_ground_truth(data_dir) if videos is None else videos
    classes = class_names(videos) if classes is None else classes
    index = {c: k for k, c in enumerate(classes)}
    split_file = data_dir / f"split_{name}.txt"
    ids = _read_ids(split_file)
    labels = np.zeros((len(ids), len(classes)), dtype=np.float32)
    lengths, durations, paths, feature_dim = [], [], [], None
    for v, vid in enumerate(ids):
        if vid not in videos:
            raise DataError(f"{split_file}: video id {vid} is not in {data_dir / 'gt.json'}")
        for label, _, _ in videos[vid].annotations:
            if label not in index:
                raise DataError(f"{data_dir / 'gt.json'}: video {vid} has label {label!r} outside the classes")
            labels[v, index[label]] = 1.0
        path = data_dir / name / f"{vid}.npy"
        if not path.is_file():
            raise DataError(f"{path}: feature file not found (video {vid} of {split_file.name})")
        shape = check_features(path, f"video {vid}")
        if feature_dim is not None and shape[1] != feature_dim:
            raise DataError(f"{path}: feature dimension {shape[1]} differs from {feature_dim} of {paths[0]}")
        feature_dim = shape[1]
        lengths.append(shape[0])
        duration = videos[vid].duration
        durations.append(duration if duration is not None else shape[0] * seconds_per_snippet)
        paths.append(path)
    return Split(name=name, ids=ids, labels=labels, lengths=np.array(lengths), durations=np.array(durations),
                 paths=paths, feature_dim=feature_dim, subset=_split_subset(videos, ids, split_file))


def load_dataset(data_dir, seconds_per_snippet=None, splits=("train", "test")):
    """A Dataset of a data directory; both splits share a dimension. splits=("test",) loads only
    the test split (train is then None)."""
    data_dir = Path(data_dir)
    videos = read_ground_truth(data_dir)
    classes = class_names(videos)
    if not classes:
        raise DataError(f"{data_dir / 'gt.json'}: no annotations, so no classes")
    loaded = {name: load_split(data_dir, name, classes, videos, seconds_per_snippet) for name in splits}
    train, test = loaded.get("train"), loaded["test"]
    if train is not None:
        unlabelled = np.flatnonzero(train.labels.sum(axis=1) == 0)
        if len(unlabelled):
            # ACM-Net's loss divides by a video's class count: such a video makes every step it is in
            # non-finite (skipped), and FTCL's pair set counts it label-disjoint from every video.
            raise DataError(f"{data_dir / 'gt.json'}: training video {train.ids[unlabelled[0]]} has no annotations "
                            f"({len(unlabelled)} of {len(train.ids)} in split_train.txt); weak labels need at least "
                            f"one class per training video")
        if train.feature_dim != test.feature_dim:
            raise DataError(f"{test.paths[0]}: feature dimension {test.feature_dim} differs from "
                            f"{train.feature_dim} of {train.paths[0]}")
    return Dataset(data_dir=data_dir, classes=classes, train=train, test=test, videos=videos)


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


def in_batch_pairs(labels, rng):
    """The release baseline's pairs among a batch of videos (its generate_pairs): positive = i < j
    with identical labels of exactly one class; negative = label-disjoint pairs, drawn at random
    down to the number of positives. labels: [B, C]. Returns (pairs int [P, 2], positive bool [P]),
    positives first; no pair at all when the batch has no positive pair."""
    labels = np.asarray(labels) > 0
    first, second = np.triu_indices(len(labels), k=1)
    shared = (labels[first] & labels[second]).sum(axis=1)
    positives = np.flatnonzero((shared == 1) & (labels[first] == labels[second]).all(axis=1))
    negatives = np.flatnonzero(shared == 0)
    chosen = rng.choice(negatives, size=min(len(positives), len(negatives)), replace=False) if len(positives) else []
    keep = np.concatenate([positives, np.asarray(chosen, dtype=np.int64)]).astype(np.int64)
    positive = np.arange(len(keep)) < len(positives)
    return np.stack([first[keep], second[keep]], axis=1), positive
