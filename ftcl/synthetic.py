"""python -m ftcl.synthetic --out DIR [--preset thumos14] [--seed 0] [--feature-dim 256]: a data directory
shaped like THUMOS14 (or, with --preset activitynet13, like ActivityNet 1.3).

Writes the ACM-Net / FTCL layout (gt.json, split files, train/ and test/ features) in seconds, so
the whole method runs end to end without the multi-GB I3D download. The generative story:

* every video is filmed in a background "scene" (a vector); classes come in pairs that share a
  home scene (as CricketBowling and CricketShot share a pitch), so the scene alone is ambiguous;
* action snippets carry their class's pattern (pairs of classes have correlated patterns) on top
  of a weakened scene, with an intensity that rises and falls over the instance;
* context snippets just before and after an instance show the scene plus a weak class cue, so
  instance, context and background are three different things, as ACM-Net assumes;
* snippet noise is correlated in time, and a shared positive offset makes all features look alike
  (real I3D features are non-negative and highly similar), so similarity thresholds mean something.

THUMOS14-shaped: 20 classes, about 13 % of videos hold two classes; videos have 100-400 snippets and
~15 instances whose lengths have a median near 5 snippets and a heavy tail. ActivityNet-shaped:
100 classes, one class per video, 40-250 snippets, 1-3 long instances (15-60 % of the video).
Deterministic for a seed. The directory gets a marker file (.ftcl-synthetic); only a directory
holding it is ever replaced.
"""
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ftcl import tool
from ftcl.tool import atomic_directory, reported_as
from ftcl.config import Config

MARKER = ".ftcl-synthetic"
FRAMES_PER_SECOND = 30


@dataclass(frozen=True)
class Shape:
    """What a generated data set looks like."""

    num_classes: int
    train_videos: int
    test_videos: int
    min_length: int
    max_length: int
    two_class_fraction: float
    subsets: tuple  # gt.json subset of the train split, of the test split
    id_prefixes: tuple
    long_instances: bool  # ActivityNet: 1-3 instances covering 15-60 % of the video each


SHAPES = {
    "thumos14": Shape(20, 200, 200, 100, 400, 0.13, ("validation", "test"), ("video_validation_", "video_test_"), False),
    "activitynet13": Shape(100, 400, 200, 40, 250, 0.0, ("training", "validation"), ("v_train_", "v_val_"), True),
}


class SyntheticError(ValueError):
    """A directory the generator will not write; the message is one line naming it."""


def _unit_rows(rng, rows, dim):
    x = rng.standard_normal((rows, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True) * np.sqrt(dim)


class _World:
    """Scenes, class patterns and the common offset shared by every video of a data set."""

    def __init__(self, rng, num_classes, dim):
        self.num_classes = num_classes
        self.scenes = _unit_rows(rng, (num_classes + 1) // 2, dim)
        fresh = _unit_rows(rng, num_classes, dim)
        patterns = fresh.copy()
        patterns[1::2] = 0.55 * fresh[0::2][:len(patterns[1::2])] + 0.835 * fresh[1::2]
        self.patterns = patterns
        self.offset = np.abs(rng.standard_normal(dim)) * OFFSET[1] + OFFSET[0]
        self.home = np.arange(num_classes) // 2


def _long_instances(rng, length):
    """ActivityNet-like: 1-3 non-overlapping long instances (15-60 % of the video each)."""
    count = min(3, 1 + rng.poisson(0.5))
    lengths = np.maximum(2, np.round(rng.uniform(0.15, 0.6, count) * length)).astype(int)
    while lengths.sum() + 2 * (count + 1) > length - 2 and count > 1:
        count -= 1
        lengths = lengths[:count]
    lengths = np.minimum(lengths, length - 6)
    free = length - lengths.sum()
    gaps = np.floor(rng.dirichlet(np.ones(count + 1)) * (free - 2 * (count + 1))).astype(int) + 2
    starts = gaps[:-1].cumsum() + np.r_[0, lengths[:-1].cumsum()]
    return [(int(s), int(s + n)) for s, n in zip(starts, lengths)]


def _instances(rng, length):
    """Non-overlapping (start, end) snippet ranges, end exclusive, in time order."""
    count = max(1, rng.poisson(length / 17))
    lengths = np.clip(np.round(rng.lognormal(np.log(5), 0.75, count)), 2, 80).astype(int)
    while lengths.sum() + 2 * (len(lengths) + 1) > 0.7 * length and len(lengths) > 1:
        lengths = lengths[:-1]
    lengths = np.minimum(lengths, int(0.7 * length) - 4)
    free = length - lengths.sum()
    gaps = np.floor(rng.dirichlet(np.ones(len(lengths) + 1)) * (free - 2 * (len(lengths) + 1))).astype(int) + 2
    starts = gaps[:-1].cumsum() + np.r_[0, lengths[:-1].cumsum()]
    return [(int(s), int(s + n)) for s, n in zip(starts, lengths)]


ACTION_STRENGTH = 1.5
NOISE = 0.8
OFFSET = (0.8, 1.0)  # constant and random (half-normal) part of the shared positive offset


def _video(rng, world, classes_of_video, length, dim, long_instances=False):
    """Features [T, D] float32 and annotations [(class, start, end)] of one video."""
    scene = 0.8 * world.scenes[world.home[classes_of_video[0]]] + 0.6 * rng.standard_normal(dim)
    # Temporally correlated snippet noise (AR(1) with coefficient 0.6).
    white = rng.standard_normal((length, dim))
    noise = np.empty_like(white)
    noise[0] = white[0]
    for t in range(1, length):
        noise[t] = 0.6 * noise[t - 1] + 0.8 * white[t]
    signal = np.tile(scene, (length, 1))
    annotations = []
    for start, end in (_long_instances if long_instances else _instances)(rng, length):
        cls = int(rng.choice(classes_of_video))
        for lo, hi in ((max(0, start - rng.integers(1, 4)), start), (end, min(length, end + rng.integers(1, 4)))):
            signal[lo:hi] = scene + 0.35 * world.patterns[cls]
        annotations.append((cls, start, end))
    # Actions are written after all context, which may spill onto a neighbouring instance.
    for cls, start, end in annotations:
        bump = 0.55 + 0.45 * np.sin(np.linspace(0.15, np.pi - 0.15, end - start))  # intensity over the instance
        signal[start:end] = 0.5 * scene + ACTION_STRENGTH * bump[:, None] * world.patterns[cls]
    features = np.maximum(world.offset + 0.55 * signal + NOISE * noise, 0.0)
    return features.astype(np.float32), annotations


def _check_target(out_dir):
    """Refuse to replace anything but an empty directory or one this generator wrote."""
    if out_dir.exists() or out_dir.is_symlink():
        if not out_dir.is_dir():
            raise SyntheticError(f"{out_dir}: exists and is not a directory; choose another --out")
        if any(out_dir.iterdir()) and not (out_dir / MARKER).is_file():
            raise SyntheticError(f"{out_dir}: exists and was not written by ftcl.synthetic (no {MARKER}); "
                                 f"it is left as it is; choose another --out")


def generate(out_dir, *, shape="thumos14", seed=0, feature_dim=256, config=None, lengths=None, **sizes):
    """Write a synthetic data directory at out_dir (built beside it, then renamed into place).

    shape: "thumos14" or "activitynet13" (see SHAPES); sizes override a Shape's fields (num_classes,
    train_videos, test_videos, min_length, max_length, two_class_fraction). lengths: optional
    (train lengths, test lengths) in snippets, fixing the video counts and lengths (e.g. THUMOS14's
    real ones). config: the Config whose snippet duration the segments use (default: the defaults).
    Raises SyntheticError for a target that is not empty and not generated here.
    """
    if lengths is not None:
        sizes.update(train_videos=len(lengths[0]), test_videos=len(lengths[1]))
    out_dir = Path(out_dir)
    _check_target(out_dir)
    spec = Shape(**{**SHAPES[shape].__dict__, **sizes})
    seconds_per_snippet = (config or Config()).seconds_per_snippet
    rng = np.random.default_rng(seed)
    world = _World(rng, spec.num_classes, feature_dim)
    digits = max(2, len(str(spec.num_classes)))
    names = [f"{'Activity' if spec.long_instances else 'Action'}{c + 1:0{digits}d}" for c in range(spec.num_classes)]

    def make_room(path):
        _check_target(path)
        shutil.rmtree(path)

    with atomic_directory(out_dir, make_room) as tmp:
        database = {}
        for k, (split, subset, prefix, count) in enumerate((
                ("train", spec.subsets[0], spec.id_prefixes[0], spec.train_videos),
                ("test", spec.subsets[1], spec.id_prefixes[1], spec.test_videos))):
            (tmp / split).mkdir()
            ids = []
            for v in range(count):
                vid = f"{prefix}{v + 1:07d}"
                first = int(rng.integers(spec.num_classes))
                classes_of_video = [first]
                if spec.num_classes > 1 and rng.random() < spec.two_class_fraction:
                    classes_of_video.append(int((first + rng.integers(1, spec.num_classes)) % spec.num_classes))
                length = int(rng.integers(spec.min_length, spec.max_length + 1))
                if lengths is not None:
                    length = max(int(lengths[k][v]), 12)
                features, annotations = _video(rng, world, classes_of_video, length, feature_dim, spec.long_instances)
                with reported_as(out_dir / split / f"{vid}.npy"):
                    np.save(tmp / split / f"{vid}.npy", features)
                duration = length * seconds_per_snippet + float(rng.uniform(0, seconds_per_snippet))
                database[vid] = {
                    "subset": subset, "duration": duration, "frames": int(round(duration * FRAMES_PER_SECOND)),
                    "annotations": [{"segment": [round(s * seconds_per_snippet, 2), round(e * seconds_per_snippet, 2)],
                                     "label": names[c]} for c, s, e in annotations]}
                ids.append(vid)
            with reported_as(out_dir / f"split_{split}.txt"):
                (tmp / f"split_{split}.txt").write_text("\n".join(ids) + "\n")
        with reported_as(out_dir / "gt.json"):
            (tmp / "gt.json").write_text(json.dumps({"version": f"synthetic {shape}", "taxonomy": [], "database": database}))
        (tmp / MARKER).write_text(json.dumps({"shape": shape, "seed": seed, "feature_dim": feature_dim,
                                              **spec.__dict__}) + "\n")
    return out_dir


def main(argv=None):
    parser = tool.OneLineParser(prog="python -m ftcl.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="directory to write (replaced only if ftcl.synthetic wrote it)")
    parser.add_argument("--preset", choices=sorted(SHAPES), default="thumos14", help="what the data set looks like")
    parser.add_argument("--seed", type=tool.seed, default=0)
    parser.add_argument("--feature-dim", type=tool.positive_int, default=256)
    parser.add_argument("--classes", type=tool.positive_int, help="class count (default 20 thumos14, 100 activitynet13)")
    parser.add_argument("--train-videos", type=tool.positive_int, help="default 200 thumos14, 400 activitynet13")
    parser.add_argument("--test-videos", type=tool.positive_int, help="default 200")
    args = parser.parse_args(argv)
    sizes = {key: value for key, value in (("num_classes", args.classes), ("train_videos", args.train_videos),
                                           ("test_videos", args.test_videos)) if value is not None}
    try:
        out = generate(args.out, shape=args.preset, seed=args.seed, feature_dim=args.feature_dim, **sizes)
    except (SyntheticError, OSError) as err:
        print(tool.error_line(err), file=sys.stderr)
        return 2
    spec = json.loads((out / MARKER).read_text())
    print(f"wrote {out}: {args.preset}-shaped, {spec['num_classes']} classes, {spec['train_videos']} train and "
          f"{spec['test_videos']} test videos, {args.feature_dim}-d features")
    return 0


run = tool.script(main)  # the console script


if __name__ == "__main__":
    run()
