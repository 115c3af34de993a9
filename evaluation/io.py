"""Reading ActivityNet-format ground truth and results files; writing results atomically."""
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation.detection import Segments


class EvaluationInputError(ValueError):
    """A user-facing problem with an input file: the message is one line naming the file and what."""


@dataclass
class GroundTruth:
    """One subset of a ground-truth file. classes: sorted labels of the whole file; videos: ids of the
    subset in file order; segments: its instances (video indexes `videos`, label indexes `classes`)."""

    classes: list
    videos: list
    segments: Segments
    durations: dict


def _read_json(path, what):
    path = Path(path)
    try:
        with path.open() as f:
            return json.load(f)
    except FileNotFoundError:
        raise EvaluationInputError(f"{path}: {what} file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise EvaluationInputError(f"{path}: cannot read {what} file ({err.__class__.__name__})") from None
    except json.JSONDecodeError as err:
        raise EvaluationInputError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None


def _segment(path, vid, entry):
    seg = entry.get("segment") if isinstance(entry, dict) else None
    if not (isinstance(seg, (list, tuple)) and len(seg) == 2):
        raise EvaluationInputError(f"{path}: video {vid}: 'segment' must be [start, end], got {seg!r}")
    try:
        start, end = float(seg[0]), float(seg[1])
    except (TypeError, ValueError):
        raise EvaluationInputError(f"{path}: video {vid}: segment {seg!r} is not numeric") from None
    if not (math.isfinite(start) and math.isfinite(end)) or end < start:
        raise EvaluationInputError(f"{path}: video {vid}: segment {seg!r} must be finite with end >= start")
    return start, end


def load_ground_truth(path, subset="test"):
    """Read an ActivityNet-style gt.json ({"database": {vid: {"subset", "annotations": [...]}}})."""
    data = _read_json(path, "ground-truth")
    database = data.get("database") if isinstance(data, dict) else None
    if not isinstance(database, dict):
        raise EvaluationInputError(f"{path}: no 'database' object (expected ActivityNet-style ground truth)")
    labels, videos, rows, durations = set(), [], [], {}
    for vid, info in database.items():
        annotations = info.get("annotations", []) if isinstance(info, dict) else None
        if not isinstance(annotations, list):
            raise EvaluationInputError(f"{path}: video {vid}: 'annotations' must be a list")
        for ann in annotations:
            if not isinstance(ann, dict) or not isinstance(ann.get("label"), str):
                raise EvaluationInputError(f"{path}: video {vid}: every annotation needs a 'label' string")
            labels.add(ann["label"])
        if info.get("subset") != subset:
            continue
        durations[vid] = float(info.get("duration", float("nan")))
        videos.append(vid)
        for ann in annotations:
            rows.append((len(videos) - 1, ann["label"], *_segment(path, vid, ann)))
    if not videos:
        raise EvaluationInputError(f"{path}: no video has subset '{subset}'")
    classes = sorted(labels)
    index = {name: c for c, name in enumerate(classes)}
    segments = Segments(
        video=np.array([r[0] for r in rows], dtype=np.int64),
        label=np.array([index[r[1]] for r in rows], dtype=np.int64),
        start=np.array([r[2] for r in rows], dtype=np.float64),
        end=np.array([r[3] for r in rows], dtype=np.float64))
    return GroundTruth(classes=classes, videos=videos, segments=segments, durations=durations)


def predictions_from_results(results, ground_truth, source="predictions"):
    """Segments from an ActivityNet results dict {vid: [{"label", "score", "segment"}]}; videos
    outside the subset get their own indexes (so they only make false positives)."""
    if not isinstance(results, dict):
        raise EvaluationInputError(f"{source}: 'results' must be an object mapping video ids to lists")
    class_index = {name: c for c, name in enumerate(ground_truth.classes)}
    video_index = {vid: v for v, vid in enumerate(ground_truth.videos)}
    video, label, score, start, end = [], [], [], [], []
    for vid, entries in results.items():
        if not isinstance(entries, list):
            raise EvaluationInputError(f"{source}: video {vid}: expected a list of predictions")
        v = video_index.setdefault(vid, len(video_index))
        for entry in entries:
            name = entry.get("label") if isinstance(entry, dict) else None
            if name not in class_index:
                raise EvaluationInputError(f"{source}: video {vid}: label {name!r} is not in the ground truth")
            try:
                s = float(entry["score"])
            except (KeyError, TypeError, ValueError):
                raise EvaluationInputError(f"{source}: video {vid}: every prediction needs a numeric 'score'") from None
            if math.isnan(s):
                raise EvaluationInputError(f"{source}: video {vid}: score is NaN")
            seg = _segment(source, vid, entry)
            video.append(v)
            label.append(class_index[name])
            score.append(s)
            start.append(seg[0])
            end.append(seg[1])
    return Segments(video=np.array(video, dtype=np.int64), label=np.array(label, dtype=np.int64),
                    start=np.array(start, dtype=np.float64), end=np.array(end, dtype=np.float64),
                    score=np.array(score, dtype=np.float64))


def load_predictions(path, ground_truth):
    """Read an ActivityNet results JSON ({"results": {vid: [...]}, ...}) against the ground truth."""
    data = _read_json(path, "predictions")
    if not isinstance(data, dict) or "results" not in data:
        raise EvaluationInputError(f"{path}: no 'results' object (expected ActivityNet results JSON)")
    return predictions_from_results(data["results"], ground_truth, source=str(path))


def results_json(per_video):
    """ActivityNet results object. per_video: {vid: [(label_name, score, start, end), ...]}."""
    return {"version": "VERSION 1.3",
            "results": {vid: [{"label": name, "score": float(score), "segment": [float(s), float(e)]}
                              for name, score, s, e in rows] for vid, rows in per_video.items()},
            "external_data": {"used": True, "details": "I3D features"}}


def write_json_atomic(path, obj):
    """Write JSON to a temporary file beside path, then rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
