"""Reading ActivityNet-format ground truth and results files."""
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ftcl.evaluation.detection import Segments


class EvaluationInputError(ValueError):
    """A user-facing problem with an input file: the message is one line naming the file and what."""


@dataclass
class VideoInfo:
    """One video of a ground-truth file. annotations: [(label, start, end)] in seconds; duration:
    seconds or None when the file gives none."""

    subset: str | None
    duration: float | None
    annotations: list


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
    except IsADirectoryError:
        raise EvaluationInputError(f"{path}: is a directory, not a {what} file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise EvaluationInputError(f"{path}: cannot read {what} file ({err.__class__.__name__})") from None
    except json.JSONDecodeError as err:
        raise EvaluationInputError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    except RecursionError:
        raise EvaluationInputError(f"{path}: JSON nested too deeply") from None


def _number(value):
    """value (a number or a numeric string) as a finite float, or None; bools are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        value = float(value)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _segment(path, vid, entry):
    seg = entry.get("segment") if isinstance(entry, dict) else None
    if not (isinstance(seg, (list, tuple)) and len(seg) == 2):
        raise EvaluationInputError(f"{path}: video {vid}: 'segment' must be [start, end], got {seg!r}")
    start, end = _number(seg[0]), _number(seg[1])
    if start is None or end is None or end < start:
        raise EvaluationInputError(f"{path}: video {vid}: segment {seg!r} must be two finite numbers with end >= start")
    return start, end


def read_database(path):
    """Every video of an ActivityNet-style gt.json ({"database": {vid: {"subset", "duration",
    "annotations": [{"label", "segment"}]}}}), checked entry by entry. Returns {vid: VideoInfo}.
    Any malformed entry raises EvaluationInputError naming the file and the video."""
    return parse_database(_read_json(path, "ground-truth"), path)


def parse_database(data, path):
    """read_database() of a gt.json object already in memory; path names it in the messages (a
    converter checks what it is about to write exactly as a reader of the file will)."""
    database = data.get("database") if isinstance(data, dict) else None
    if not isinstance(database, dict):
        raise EvaluationInputError(f"{path}: no 'database' object (expected ActivityNet-style ground truth)")
    videos = {}
    for vid, info in database.items():
        if not isinstance(info, dict):
            raise EvaluationInputError(f"{path}: video {vid}: entry must be an object, got {type(info).__name__}")
        subset = info.get("subset")
        if subset is not None and not isinstance(subset, str):
            raise EvaluationInputError(f"{path}: video {vid}: 'subset' must be a string, got {subset!r}")
        duration = info.get("duration")
        if duration is not None:
            duration = _number(duration)
            if duration is None or duration < 0:
                raise EvaluationInputError(f"{path}: video {vid}: 'duration' must be a finite number >= 0, "
                                           f"got {info.get('duration')!r}")
        annotations = info.get("annotations", [])
        if not isinstance(annotations, list):
            raise EvaluationInputError(f"{path}: video {vid}: 'annotations' must be a list")
        rows = []
        for ann in annotations:
            label = ann.get("label") if isinstance(ann, dict) else None
            if not isinstance(label, str) or not label:
                raise EvaluationInputError(f"{path}: video {vid}: every annotation needs a non-empty 'label' "
                                           f"string, got {label!r}")
            rows.append((label, *_segment(path, vid, ann)))
        videos[vid] = VideoInfo(subset=subset, duration=duration, annotations=rows)
    return videos


def class_names(videos):
    """Sorted labels of every annotation. videos: {vid: VideoInfo} from read_database()."""
    return sorted({label for info in videos.values() for label, _, _ in info.annotations})


def ground_truth_from(videos, subset, path="ground truth"):
    """The GroundTruth of one subset of read_database()'s videos; classes are those of all videos."""
    classes = class_names(videos)
    index = {name: c for c, name in enumerate(classes)}
    chosen = [vid for vid, info in videos.items() if info.subset == subset]
    if not chosen:
        raise EvaluationInputError(f"{path}: no video has subset '{subset}'")
    rows = [(v, index[label], start, end) for v, vid in enumerate(chosen)
            for label, start, end in videos[vid].annotations]
    columns = list(zip(*rows)) if rows else [(), (), (), ()]
    segments = Segments(video=np.array(columns[0], dtype=np.int64), label=np.array(columns[1], dtype=np.int64),
                        start=np.array(columns[2], dtype=np.float64), end=np.array(columns[3], dtype=np.float64))
    durations = {vid: videos[vid].duration if videos[vid].duration is not None else float("nan") for vid in chosen}
    return GroundTruth(classes=classes, videos=chosen, segments=segments, durations=durations)


def load_ground_truth(path, subset="test"):
    """Read an ActivityNet-style gt.json and keep one subset. Returns a GroundTruth."""
    return ground_truth_from(read_database(path), subset, path)


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
            if not isinstance(name, str) or name not in class_index:
                raise EvaluationInputError(f"{source}: video {vid}: label {name!r} is not in the ground truth")
            s = entry.get("score")
            try:
                s = float(s) if not isinstance(s, bool) else None
            except (TypeError, ValueError):
                s = None
            if s is None or math.isnan(s):
                raise EvaluationInputError(f"{source}: video {vid}: every prediction needs a numeric 'score', "
                                           f"got {entry.get('score')!r}")
            seg = _segment(source, vid, entry)
            video.append(v)
            label.append(class_index[name])
            score.append(s)
            start.append(seg[0])
            end.append(seg[1])
    return Segments(video=np.array(video, dtype=np.int64), label=np.array(label, dtype=np.int64),
                    start=np.array(start, dtype=np.float64), end=np.array(end, dtype=np.float64),
                    score=np.array(score, dtype=np.float64))


def read_results(path):
    """The {vid: [{"label", "score", "segment"}]} object of an ActivityNet results JSON."""
    data = _read_json(path, "predictions")
    if not isinstance(data, dict) or "results" not in data:
        raise EvaluationInputError(f"{path}: no 'results' object (expected ActivityNet results JSON)")
    return data["results"]


def load_predictions(path, ground_truth):
    """Read an ActivityNet results JSON ({"results": {vid: [...]}, ...}) against the ground truth."""
    return predictions_from_results(read_results(path), ground_truth, source=str(path))


def results_json(per_video):
    """ActivityNet results object. per_video: {vid: [(label_name, score, start, end), ...]}."""
    return {"version": "VERSION 1.3",
            "results": {vid: [{"label": name, "score": float(score), "segment": [float(s), float(e)]}
                              for name, score, s, e in rows] for vid, rows in per_video.items()},
            "external_data": {"used": True, "details": "I3D features"}}
