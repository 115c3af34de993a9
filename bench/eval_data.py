"""Inputs of the evaluation benchmarks: a THUMOS14-sized test split (THUMOS14's annotations when
FTCL_THUMOS14_ANNOTATIONS names them, see annotations_dir: real ids, durations and instances; else the
synthetic generator's test split), model-like per-video outputs, and a large ActivityNet results file."""
import os
import tempfile
from pathlib import Path

import numpy as np

from ftcl import evaluation
from ftcl.evaluation import VideoOutput
from ftcl.config import Config

# The directory of THUMOS14's annotations (gt.json, split_train.txt, split_test.txt), when there is one.
ANNOTATIONS_VARIABLE = "FTCL_THUMOS14_ANNOTATIONS"


def annotations_dir(environ=os.environ):
    """The directory FTCL_THUMOS14_ANNOTATIONS names, or None when it is unset or empty; a named
    directory without gt.json is an error (a mistyped setting must not pass for "none")."""
    value = environ.get(ANNOTATIONS_VARIABLE)
    if not value:
        return None
    path = Path(value)
    if not (path / "gt.json").is_file():
        raise FileNotFoundError(f"{ANNOTATIONS_VARIABLE}={value}: no gt.json there")
    return path


ANNOTATIONS = annotations_dir()
TIOU = Config().tiou


def ground_truth():
    """(GroundTruth of the test subset, test video ids, source description)."""
    if ANNOTATIONS is not None:
        ids = (ANNOTATIONS / "split_test.txt").read_text().split()
        return evaluation.load_ground_truth(ANNOTATIONS / "gt.json", "test"), ids, "THUMOS14 test annotations"
    from ftcl import synthetic
    out = synthetic.generate(Path(tempfile.mkdtemp()) / "syn", feature_dim=4, test_videos=210)
    ids = (out / "split_test.txt").read_text().split()
    return evaluation.load_ground_truth(out / "gt.json", "test"), ids, "synthetic test split"


def model_like_outputs(gt, ids, seed=0, sample=750):
    """Per-video outputs resembling a trained model's: CAS and attention rise over the ground-truth
    instances (with noise, misses and false alarms), video scores favour the true classes."""
    rng = np.random.default_rng(seed)
    segs = gt.segments
    n_cls = len(gt.classes)
    outputs = {}
    for vid in ids:
        duration = gt.durations.get(vid, 120.0)
        original = max(2, int(duration / Config().seconds_per_snippet))
        length = min(original, sample)
        seconds = (np.arange(length) + 0.5) * duration / length
        v = gt.videos.index(vid) if vid in gt.videos else -1
        logits = rng.normal(0, 1.0, (length, n_cls + 1))
        logits[:, -1] += 2.5
        attention = np.clip(rng.normal(0.15, 0.1, length), 0.01, 0.99)
        truth = np.zeros(n_cls)
        for k in np.flatnonzero(segs.video == v):
            inside = (seconds >= segs.start[k]) & (seconds <= segs.end[k])
            if rng.random() < 0.85:
                logits[inside, segs.label[k]] += rng.uniform(2.5, 5.0)
                attention[inside] = np.clip(attention[inside] + rng.uniform(0.4, 0.8), 0, 0.99)
            truth[segs.label[k]] = 1
        for _ in range(rng.poisson(3)):
            s = rng.integers(length)
            logits[s:s + rng.integers(2, 20), rng.integers(n_cls)] += 3.0
        cas = np.exp(logits - logits.max(1, keepdims=True))
        cas = (cas / cas.sum(1, keepdims=True))[:, :n_cls]
        scores = rng.dirichlet(np.ones(n_cls) * 0.3) * 0.4 + truth / max(truth.sum(), 1) * 0.6
        outputs[vid] = VideoOutput(cas=cas.astype(np.float32), attention=attention.astype(np.float32),
                                   video_scores=scores, original_snippets=original)
    return outputs


def many_predictions(gt, ids, count=35_000, seed=1):
    """An ActivityNet results dict of ~count predictions: jittered instances plus false alarms."""
    rng = np.random.default_rng(seed)
    segs = gt.segments
    per_video = {vid: [] for vid in ids}
    known = [vid for vid in ids if vid in gt.videos]
    for k in range(len(segs)):
        vid = gt.videos[segs.video[k]]
        if vid not in per_video:
            continue
        for _ in range(6):
            s, e = segs.start[k] + rng.normal(0, 1.5), segs.end[k] + rng.normal(0, 1.5)
            s, e = max(0.0, min(s, e)), max(0.0, s, e)
            per_video[vid].append((gt.classes[segs.label[k]], float(rng.random()), s, e))
    missing = count - sum(len(p) for p in per_video.values())
    for _ in range(max(0, missing)):
        vid = known[rng.integers(len(known))]
        s = float(rng.uniform(0, gt.durations[vid]))
        per_video[vid].append((gt.classes[rng.integers(len(gt.classes))], float(rng.random()), s,
                               s + float(rng.exponential(4))))
    return evaluation.results_json(per_video)


class MemorySplit:
    """A test split held in memory (what ftcl.evaluate reads of a Split): random non-negative
    features of the given lengths."""

    def __init__(self, ids, lengths, feature_dim, num_classes, seed=0):
        rng = np.random.default_rng(seed)
        self.ids, self.lengths, self.feature_dim = list(ids), np.asarray(lengths), feature_dim
        self.labels = np.zeros((len(ids), num_classes), dtype=np.float32)
        self.labels[np.arange(len(ids)), rng.integers(num_classes, size=len(ids))] = 1
        self._features = [np.abs(rng.standard_normal((n, feature_dim), dtype=np.float32)) for n in self.lengths]

    def features(self, index):
        return self._features[index]

    def __len__(self):
        return len(self.ids)


def thumos_sized_split(gt, ids, feature_dim):
    """MemorySplit of the test videos with their real THUMOS14 snippet counts (duration / 0.64 s)."""
    seconds = Config().seconds_per_snippet
    lengths = [max(2, int(gt.durations.get(vid, 120.0) / seconds)) for vid in ids]
    return MemorySplit(ids, lengths, feature_dim, len(gt.classes))
