"""From per-video model outputs to an ActivityNet results object and its mAP (no model needed)."""
from dataclasses import dataclass

import numpy as np

from evaluation.detection import Segments, evaluate_detection
from evaluation.io import results_json
from evaluation.proposals import ProposalConfig, nms_groups, t_factor, video_candidates


@dataclass
class VideoOutput:
    """What the test-time procedure needs of one video.

    cas: [T, C] instance-branch CAS (softmax over C + 1, background dropped); attention: [T] instance
    attention; video_scores: [C] instance-branch class scores; original_snippets: feature rows before
    sampling (gives the time scale).
    """

    cas: np.ndarray
    attention: np.ndarray
    video_scores: np.ndarray
    original_snippets: int


def proposals(outputs, config=ProposalConfig()):
    """Proposals of every video, NMS run for all (video, class) groups at once.
    outputs: {vid: VideoOutput}. Returns (video [K] index into outputs' order, label [K], score [K],
    start [K], end [K]), by video, class, then descending score."""
    parts = []
    for v, out in enumerate(outputs.values()):
        factor = t_factor(out.original_snippets, out.cas.shape[0], upscale=config.upscale,
                          frames_per_snippet=config.frames_per_snippet, fps=config.fps)
        label, score, start, end = video_candidates(out.cas, out.attention, out.video_scores, factor, config)
        parts.append((np.full(len(label), v, dtype=np.int64), label, score, start, end))
    if not parts:
        return tuple(np.zeros(0, dtype=dtype) for dtype in (np.int64, np.int64, float, float, float))
    video, label, score, start, end = (np.concatenate(column) for column in zip(*parts))
    classes = max(int(label.max()) + 1, 1) if len(label) else 1
    kept = nms_groups(video * classes + label, start, end, score, config.nms_iou, config.fixed)
    return video[kept], label[kept], score[kept], start[kept], end[kept]


def localize(outputs, classes, config=ProposalConfig()):
    """Proposals of every video. outputs: {vid: VideoOutput}. Returns {vid: [(label, score, start, end)]}."""
    return Detections(list(outputs), *proposals(outputs, config)).per_video(classes)


@dataclass
class Detections:
    """Every video's proposals as arrays: ids (the videos, in outputs' order); video [K] (index into
    ids), label [K], score [K], start [K], end [K] seconds; by video, class, descending score."""

    ids: list
    video: np.ndarray
    label: np.ndarray
    score: np.ndarray
    start: np.ndarray
    end: np.ndarray

    def per_video(self, classes):
        """{vid: [(label name, score, start, end)]} in the arrays' order."""
        per_video = {vid: [] for vid in self.ids}
        rows = zip(self.video.tolist(), self.label.tolist(), self.score.tolist(), self.start.tolist(), self.end.tolist())
        for v, c, s, a, b in rows:
            per_video[self.ids[v]].append((classes[c], s, a, b))
        return per_video

    def results_json(self, classes):
        """The ActivityNet results object ({"results": {vid: [{"label", "score", "segment"}]}})."""
        return results_json(self.per_video(classes))


def score_proposals(outputs, ground_truth, tiou_thresholds, config=ProposalConfig()):
    """Localize every video and score the result without building the results JSON (what each
    training epoch needs). Returns (DetectionResult, Detections)."""
    ids = list(outputs)
    detections = Detections(ids, *proposals(outputs, config))
    # Videos outside the ground-truth subset get their own indexes (they only make false positives).
    index = {vid: v for v, vid in enumerate(ground_truth.videos)}
    for vid in ids:
        index.setdefault(vid, len(index))
    pred = Segments(video=np.array([index[vid] for vid in ids], dtype=np.int64)[detections.video],
                    label=detections.label, start=detections.start, end=detections.end, score=detections.score)
    return evaluate_detection(ground_truth.segments, pred, ground_truth.classes, tiou_thresholds), detections


def evaluate_outputs(outputs, ground_truth, tiou_thresholds, config=ProposalConfig()):
    """Localize every video and score the result. Returns (DetectionResult, ActivityNet results dict)."""
    detection, detections = score_proposals(outputs, ground_truth, tiou_thresholds, config)
    return detection, detections.results_json(ground_truth.classes)
