"""ActivityNet-style temporal detection mAP, exact and vectorised (numpy only).

Semantics (those of the ActivityNet evaluator the WSAL literature reports with): per class,
predictions in descending score order; at each tIoU threshold a prediction is a true positive when
the highest-tIoU ground-truth instance of its video and class that is still unmatched at that
threshold has tIoU >= threshold, else a false positive (also when its video has no instance of the
class). AP is the VOC-style interpolated area under precision/recall; mAP averages the classes that
occur in the ground truth of the evaluated subset.

Ties follow what the reference's `argsort()[::-1]` gives whenever numpy's sort is stable: among equal
scores (and equal tIoUs) the later entry comes first. Here that is made deterministic for any size.
"""
from dataclasses import dataclass

import numpy as np


@dataclass
class Segments:
    """Labelled temporal segments. video: [K] int, label: [K] int, start/end: [K] float seconds;
    score: [K] float for predictions (None for ground truth)."""

    video: np.ndarray
    label: np.ndarray
    start: np.ndarray
    end: np.ndarray
    score: np.ndarray | None = None

    def __len__(self):
        return len(self.video)

    def select(self, mask):
        return Segments(self.video[mask], self.label[mask], self.start[mask], self.end[mask],
                        None if self.score is None else self.score[mask])


@dataclass
class DetectionResult:
    """AP table of one evaluation. tiou: [T]; classes: C names; ap: [T, C] in [0, 1]."""

    tiou: np.ndarray
    classes: list
    ap: np.ndarray

    @property
    def mAP(self):
        """[T] mean AP over classes at each tIoU."""
        return self.ap.mean(axis=1) if self.ap.shape[1] else np.zeros(len(self.tiou))

    def average(self, low, high):
        """Mean of mAP over the tIoUs within [low, high]."""
        inside = (self.tiou >= low - 1e-9) & (self.tiou <= high + 1e-9)
        if not inside.any():
            raise ValueError(f"no tIoU threshold lies in {low:g}:{high:g} (thresholds: {_label(self.tiou)})")
        return float(self.mAP[inside].mean())

    def average_windows(self):
        """{label: bool mask over tiou} of the usual windows this tIoU set covers in full (0.1:0.5,
        0.1:0.7, 0.3:0.7 at steps of 0.1, THUMOS14); with none covered, one window of all
        thresholds, labelled by what it covers ("0.5:0.95" for an even grid, else the list)."""
        out = {}
        for low, high in STANDARD_WINDOWS:
            if all(np.isclose(self.tiou, t).any() for t in np.arange(low, high + 1e-9, 0.1)):
                out[f"{low:g}:{high:g}"] = (self.tiou >= low - 1e-9) & (self.tiou <= high + 1e-9)
        if not out:
            out[_label(self.tiou)] = np.ones(len(self.tiou), dtype=bool)
        return out

    def averages(self):
        """{label: mean mAP} over average_windows()."""
        return {key: float(self.mAP[mask].mean()) for key, mask in self.average_windows().items()}

    def to_dict(self):
        """{"tiou", "mAP", "average", "per_class"}: plain floats (fractions), JSON-ready."""
        return {"tiou": [round(float(t), 10) for t in self.tiou],
                "mAP": [float(x) for x in self.mAP],
                "average": self.averages(),
                "per_class": {name: [float(x) for x in self.ap[:, c]] for c, name in enumerate(self.classes)}}


STANDARD_WINDOWS = ((0.1, 0.5), (0.1, 0.7), (0.3, 0.7))


def _label(tiou):
    """"low:high" for thresholds on an even grid of 0.1 or 0.05 (the literature's ranges), else
    "low:high:step" for another even grid, else the comma list."""
    tiou = np.sort(np.asarray(tiou, dtype=np.float64))
    if len(tiou) == 1:
        return f"{tiou[0]:g}"
    steps = np.diff(tiou)
    if np.allclose(steps, steps[0], atol=1e-6):
        step = float(steps[0])
        if any(np.isclose(step, s, atol=1e-6) for s in (0.1, 0.05)):
            return f"{tiou[0]:g}:{tiou[-1]:g}"
        if len(tiou) > 2:
            return f"{tiou[0]:g}:{tiou[-1]:g}:{step:g}"
    return ",".join(f"{t:g}" for t in tiou)


def parse_range(text):
    """"low:high" -> (low, high) with 0 < low <= high <= 1, else ValueError naming the text."""
    try:
        low, high = (float(x) for x in str(text).split(":"))
    except ValueError:
        raise ValueError(f"tIoU range {text!r}: expected low:high, e.g. 0.1:0.7") from None
    if not (0 < low <= high <= 1):
        raise ValueError(f"tIoU range {text!r}: expected 0 < low <= high <= 1")
    return low, high


def segment_iou(start_a, end_a, start_b, end_b):
    """tIoU of segments a and b (broadcasting). Zero where the union is empty (two equal points)."""
    inter = np.clip(np.minimum(end_a, end_b) - np.maximum(start_a, start_b), 0, None)
    union = (end_a - start_a) + (end_b - start_b) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def interpolated_ap(precision, recall):
    """VOC-style AP. precision, recall: [T, K] along descending score. Returns [T]."""
    n_rows = precision.shape[0]
    mprec = np.hstack([np.zeros((n_rows, 1)), precision, np.zeros((n_rows, 1))])
    mrec = np.hstack([np.zeros((n_rows, 1)), recall, np.ones((n_rows, 1))])
    mprec = np.maximum.accumulate(mprec[:, ::-1], axis=1)[:, ::-1]
    # Summing over steps where recall changes equals summing every step: a flat step adds zero.
    return np.sum((mrec[:, 1:] - mrec[:, :-1]) * mprec[:, 1:], axis=1)


def _descending(values):
    """Indices sorting values in descending order, later entries first among equals."""
    return np.argsort(values, kind="stable")[::-1]


def match_class(gt, pred, tiou_thresholds):
    """Greedy matching of one class. gt, pred: Segments of that class. Returns tp: [T, P] bool in
    descending score order of pred."""
    thresholds = np.asarray(tiou_thresholds, dtype=np.float64)
    order = _descending(pred.score)
    p_video, p_start, p_end = pred.video[order], pred.start[order], pred.end[order]
    tp = np.zeros((len(thresholds), len(order)), dtype=bool)
    if len(gt) == 0 or len(order) == 0:
        return tp
    gt_order = np.argsort(gt.video, kind="stable")
    g_video, g_start, g_end = gt.video[gt_order], gt.start[gt_order], gt.end[gt_order]
    first = np.searchsorted(g_video, p_video, side="left")
    count = np.searchsorted(g_video, p_video, side="right") - first
    # Every (prediction, ground truth of its video) pair, flattened.
    pair_pred = np.repeat(np.arange(len(order)), count)
    offsets = np.arange(len(pair_pred)) - np.repeat(np.cumsum(count) - count, count)
    pair_gt = np.repeat(first, count) + offsets
    pair_iou = segment_iou(p_start[pair_pred], p_end[pair_pred], g_start[pair_gt], g_end[pair_gt])
    keep = pair_iou >= thresholds.min()
    if not keep.any():
        return tp
    pair_pred, pair_gt, pair_iou = pair_pred[keep], pair_gt[keep], pair_iou[keep]
    # Within each prediction: candidates by descending tIoU, the later instance first on ties.
    rank = np.lexsort((-pair_gt, -pair_iou, pair_pred))
    pair_pred, pair_gt, pair_iou = pair_pred[rank], pair_gt[rank], pair_iou[rank]
    bounds = np.flatnonzero(np.diff(pair_pred)) + 1
    starts, ends = np.r_[0, bounds], np.r_[bounds, len(pair_pred)]
    # Plain lists and bytearrays: the loop reads single items, where numpy's per-item cost dominates.
    preds, starts, ends = pair_pred[starts].tolist(), starts.tolist(), ends.tolist()
    gts, ious, threshold_list = pair_gt.tolist(), pair_iou.tolist(), thresholds.tolist()
    locked = [bytearray(len(g_video)) for _ in thresholds]
    hits = [[] for _ in thresholds]
    # Sequential by nature (an instance taken by a higher score is gone); only predictions that
    # reach some threshold are visited.
    for p, lo, hi in zip(preds, starts, ends):
        best = ious[lo]
        for t, threshold in enumerate(threshold_list):
            if best < threshold:
                continue
            row = locked[t]
            for k in range(lo, hi):
                if ious[k] < threshold:
                    break
                if not row[gts[k]]:
                    row[gts[k]] = 1
                    hits[t].append(p)
                    break
    for t, taken in enumerate(hits):
        tp[t, taken] = True
    return tp


def average_precision_class(gt, pred, tiou_thresholds):
    """AP of one class at each tIoU threshold. gt, pred: Segments of that class. Returns [T]."""
    if len(pred) == 0 or len(gt) == 0:
        return np.zeros(len(tiou_thresholds))
    tp = match_class(gt, pred, tiou_thresholds)
    tp_cum = np.cumsum(tp, axis=1, dtype=np.float64)
    seen = np.arange(1, tp.shape[1] + 1, dtype=np.float64)
    return interpolated_ap(tp_cum / seen, tp_cum / len(gt))


def evaluate_detection(gt, pred, classes, tiou_thresholds):
    """AP table over the classes. gt, pred: Segments (labels index `classes`); the classes scored
    are those with at least one ground-truth instance. Returns a DetectionResult."""
    tiou = np.asarray(tiou_thresholds, dtype=np.float64)
    present = np.unique(gt.label)
    ap = np.zeros((len(tiou), len(present)))
    gt_by = np.argsort(gt.label, kind="stable")
    pred_by = np.argsort(pred.label, kind="stable")
    gt_bounds = np.searchsorted(gt.label[gt_by], present, side="left"), np.searchsorted(
        gt.label[gt_by], present, side="right")
    pred_bounds = np.searchsorted(pred.label[pred_by], present, side="left"), np.searchsorted(
        pred.label[pred_by], present, side="right")
    for c in range(len(present)):
        gt_c = gt.select(gt_by[gt_bounds[0][c]:gt_bounds[1][c]])
        pred_c = pred.select(pred_by[pred_bounds[0][c]:pred_bounds[1][c]])
        ap[:, c] = average_precision_class(gt_c, pred_c, tiou)
    return DetectionResult(tiou=tiou, classes=[classes[c] for c in present], ap=ap)
