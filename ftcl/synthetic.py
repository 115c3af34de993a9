"""python -m ftcl.synthetic --out DIR [--seed 0] [--feature-dim 256]: a THUMOS-like data directory.

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

About 13 % of videos hold two classes; videos have 100-400 snippets and ~15 instances whose
lengths have a median near 5 snippets and a heavy tail. Deterministic for a seed.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

SNIPPET_SECONDS = 16 / 25
FRAMES_PER_SECOND = 30


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


def _video(rng, world, classes_of_video, length, dim):
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
    for start, end in _instances(rng, length):
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


def generate(out_dir, *, seed=0, num_classes=20, train_videos=200, test_videos=200, feature_dim=256,
             min_length=100, max_length=400, two_class_fraction=0.13):
    """Write a synthetic data directory at out_dir (built beside it, then renamed into place)."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    world = _World(rng, num_classes, feature_dim)
    names = [f"Action{c + 1:02d}" for c in range(num_classes)]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        database = {}
        for split, subset, prefix, count in (("train", "validation", "video_validation", train_videos),
                                              ("test", "test", "video_test", test_videos)):
            (tmp / split).mkdir()
            ids = []
            for v in range(count):
                vid = f"{prefix}_{v + 1:07d}"
                first = int(rng.integers(num_classes))
                classes_of_video = [first]
                if rng.random() < two_class_fraction:
                    classes_of_video.append(int((first + rng.integers(1, num_classes)) % num_classes))
                length = int(rng.integers(min_length, max_length + 1))
                features, annotations = _video(rng, world, classes_of_video, length, feature_dim)
                np.save(tmp / split / f"{vid}.npy", features)
                duration = length * SNIPPET_SECONDS + float(rng.uniform(0, SNIPPET_SECONDS))
                database[vid] = {
                    "subset": subset, "duration": duration, "frames": int(round(duration * FRAMES_PER_SECOND)),
                    "annotations": [{"segment": [round(s * SNIPPET_SECONDS, 2), round(e * SNIPPET_SECONDS, 2)],
                                     "label": names[c]} for c, s, e in annotations]}
                ids.append(vid)
            (tmp / f"split_{split}.txt").write_text("\n".join(ids) + "\n")
        (tmp / "gt.json").write_text(json.dumps({"version": "synthetic", "taxonomy": [], "database": database}))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ftcl.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="directory to write (replaced if it holds a synthetic set)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--feature-dim", type=int, default=256)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--train-videos", type=int, default=200)
    parser.add_argument("--test-videos", type=int, default=200)
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not (out / "gt.json").is_file():
        print(f"error: {out} exists and is not a data directory; choose another --out", file=sys.stderr)
        return 2
    for name in ("feature_dim", "classes", "train_videos", "test_videos"):
        if getattr(args, name) < 1:
            print(f"error: --{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}", file=sys.stderr)
            return 2
    try:
        generate(out, seed=args.seed, num_classes=args.classes, train_videos=args.train_videos,
                 test_videos=args.test_videos, feature_dim=args.feature_dim)
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}: {args.classes} classes, {args.train_videos} train and {args.test_videos} test videos, "
          f"{args.feature_dim}-d features")
    return 0


if __name__ == "__main__":
    sys.exit(main())
