"""From per-video model outputs to an ActivityNet results object and its mAP (no model needed)."""
from dataclasses import dataclass

import numpy as np

from evaluation.detection import evaluate_detection
from evaluation.io import predictions_from_results, results_json
from evaluation.proposals import ProposalConfig, t_factor, video_proposals


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


def localize(outputs, classes, config=ProposalConfig()):
    """Proposals of every video. outputs: {vid: VideoOutput}. Returns {vid: [(label, score, start, end)]}."""
    per_video = {}
    for vid, out in outputs.items():
        factor = t_factor(out.original_snippets, out.cas.shape[0], upscale=config.upscale,
                          frames_per_snippet=config.frames_per_snippet, fps=config.fps)
        label, score, start, end = video_proposals(out.cas, out.attention, out.video_scores, factor, config)
        per_video[vid] = [(classes[c], s, a, b) for c, s, a, b in
                          zip(label.tolist(), score.tolist(), start.tolist(), end.tolist())]
    return per_video


def evaluate_outputs(outputs, ground_truth, tiou_thresholds, config=ProposalConfig()):
    """Localize every video and score the result. Returns (DetectionResult, ActivityNet results dict)."""
    results = results_json(localize(outputs, ground_truth.classes, config))
    pred = predictions_from_results(results["results"], ground_truth)
    return evaluate_detection(ground_truth.segments, pred, ground_truth.classes, tiou_thresholds), results
