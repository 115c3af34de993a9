"""From per-video model outputs to an ActivityNet results object and its mAP (no model needed)."""
from dataclasses import dataclass

import numpy as np

from ftcl.evaluation import workers as workers_
from ftcl.evaluation.detection import Segments, evaluate_detection
from ftcl.evaluation.io import results_json
from ftcl.evaluation.proposals import ProposalConfig, nms_groups, t_factor, video_candidates


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


def _proposals_of(job):
    """(video, label, score, start, end) of a list of VideoOutputs, NMS for all (video, class)
    groups at once; video indexes the list. job: (outputs list, ProposalConfig)."""
    outputs, config = job
    parts = []
    for v, out in enumerate(outputs):
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


def proposals(outputs, config=ProposalConfig(), workers=1):
    """Proposals of every video, NMS run for all (video, class) groups at once.
    outputs: {vid: VideoOutput}; workers: processes to spread the videos over (see
    evaluation.workers; the result is identical for any count). Returns (video [K] index into
    outputs' order, label [K], score [K], start [K], end [K]), by video, class, then descending score."""
    videos = list(outputs.values())
    if workers <= 1 or len(videos) < 2:
        return _proposals_of((videos, config))
    # Consecutive runs of videos of about equal total length, a few per worker (they finish unevenly):
    # every (video, class) group stays whole, so concatenating the runs' results in order is exact.
    sizes = np.cumsum([len(v.attention) for v in videos])
    cuts = np.searchsorted(sizes, sizes[-1] * np.arange(1, 3 * workers) / (3 * workers), side="right")
    bounds = np.unique(np.concatenate([[0], cuts, [len(videos)]]))
    firsts = bounds[:-1]
    parts = workers_.map_chunks(_proposals_of, [(videos[a:b], config) for a, b in zip(firsts, bounds[1:])], workers)
    return tuple(np.concatenate(column) for column in zip(*[(part[0] + first, *part[1:])
                                                            for part, first in zip(parts, firsts)]))


def localize(outputs, classes, config=ProposalConfig(), workers=1):
    """Proposals of every video. outputs: {vid: VideoOutput}; workers: see proposals(). Returns
    {vid: [(label, score, start, end)]}."""
    return Detections(list(outputs), *proposals(outputs, config, workers)).per_video(classes)


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


def score_proposals(outputs, ground_truth, tiou_thresholds, config=ProposalConfig(), workers=1):
    """Localize every video and score the result without building the results JSON (what each
    training epoch needs); workers: see proposals(). Returns (DetectionResult, Detections)."""
    ids = list(outputs)
    detections = Detections(ids, *proposals(outputs, config, workers))
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
