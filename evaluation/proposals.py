"""Action proposals from class activation sequences: the ACM-Net / FTCL test-time procedure.

Per video: predict the classes whose video score exceeds `class_threshold` (else the arg-max),
upsample the instance CAS and the instance attention x`upscale` by linear interpolation, take the
maximal runs at or above each CAS threshold and each attention threshold, drop runs shorter than 2,
score each run outer-inner-contrastively, convert indices to seconds and apply per-class NMS.

The defaults reproduce the release bit for bit where it matters (its interpolation arithmetic, its
index-based run boundaries, its NMS with "+1" lengths). `fixed=True` corrects the NMS to a true IoU.
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ProposalConfig:
    """Test-time settings; defaults are the release's THUMOS14 ones."""

    class_threshold: float = 0.25
    upscale: int = 20
    cas_thresholds: tuple = tuple(np.arange(0.15, 0.25, 0.05).tolist())  # 0.15, 0.20
    att_thresholds: tuple = tuple(np.arange(0.15, 1.00, 0.05).tolist())  # 0.15 ... 0.95
    outer_ratio: float = 0.2  # flank length as a fraction of the run, each side
    video_score_weight: float = 0.0  # gamma: the OIC score adds gamma * video score
    nms_iou: float = 0.55
    min_run: int = 2
    fixed: bool = False


def t_factor(original_snippets, sampled_snippets, upscale=20, frames_per_snippet=16, fps=25):
    """Seconds per upsampled index: 16 frames x original count / (25 fps x upscale x sampled count)."""
    return frames_per_snippet * original_snippets / (fps * upscale * sampled_snippets)


def predicted_classes(video_scores, threshold):
    """Classes with score > threshold, or the arg-max class when none is. video_scores: [C]."""
    if video_scores.max() > threshold:
        return np.flatnonzero(video_scores > threshold)
    return np.array([int(np.argmax(video_scores))])


def upsample(values, scale):
    """Linear interpolation of values [T, ...] at positions 0, 1/scale, ..., extrapolating the last
    segment past T - 1, with the arithmetic of scipy's interp1d (what the release calls)."""
    values = np.asarray(values, dtype=np.float64)
    length = values.shape[0]
    positions = np.arange(0, length, 1 / scale)
    if length == 1:
        return np.repeat(values, len(positions), axis=0)
    hi = np.searchsorted(np.arange(length, dtype=np.float64), positions, side="left").clip(1, length - 1)
    lo = hi - 1
    shape = (-1,) + (1,) * (values.ndim - 1)
    return (values[hi] - values[lo]) * (positions - lo).reshape(shape) + values[lo]


def maximal_runs(mask):
    """Maximal runs of True along the last axis. mask: [R, L] bool. Returns (row, start, end)
    arrays, end inclusive."""
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    row, start = np.nonzero(edges == 1)
    _, stop = np.nonzero(edges == -1)
    return row, start, stop - 1


def oic_scores(cumsum, row, start, end, outer_ratio):
    """Outer-inner-contrastive score of each run: mean inside minus mean of the two flanks of
    `outer_ratio` x run length (clipped to the sequence, pooled, 0 when empty).

    cumsum: [R, L + 1] prefix sums of the scored sequences (leading 0); row/start/end: [K].
    The flank ends are int() of start - ratio*len and end + ratio*len, as the release computes them.
    """
    last = cumsum.shape[1] - 2
    length = end - start + 1
    inner = (cumsum[row, end + 1] - cumsum[row, start]) / length
    outer_start = np.maximum(0, np.trunc(start - outer_ratio * length).astype(np.int64))
    outer_end = np.minimum(last, np.trunc(end + outer_ratio * length).astype(np.int64))
    outer_sum = (cumsum[row, start] - cumsum[row, outer_start]) + (cumsum[row, outer_end + 1] - cumsum[row, end + 1])
    outer_count = (start - outer_start) + (outer_end - end)
    outer = np.where(outer_count > 0, outer_sum / np.maximum(outer_count, 1), 0.0)
    return inner - outer


def nms(start, end, score, iou_threshold, fixed=False):
    """Greedy NMS; returns kept indices in descending score order. start/end/score: [K].

    The release measures lengths as end - start + 1 (a pixel convention, on seconds here): kept by
    default for comparable numbers; fixed=True uses the true temporal IoU.
    """
    plus = 0.0 if fixed else 1.0
    lengths = end - start + plus
    order = np.argsort(score, kind="stable")[::-1]  # later first among equal scores, as the release
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        inter = np.maximum(0.0, np.minimum(end[best], end[rest]) - np.maximum(start[best], start[rest]) + plus)
        union = lengths[best] + lengths[rest] - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        order = rest[iou < iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def video_proposals(cas, attention, video_scores, seconds_per_index, config=ProposalConfig()):
    """Proposals of one video.

    Args:
        cas: [T, C] instance-branch class activation (softmax over classes + background, background
            column dropped).
        attention: [T] instance attention.
        video_scores: [C] instance-branch video-level class scores.
        seconds_per_index: see t_factor().
    Returns:
        (label [K] int, score [K], start [K], end [K]) in seconds, after per-class NMS.
    """
    classes = predicted_classes(np.asarray(video_scores), config.class_threshold)
    cas_up = upsample(np.asarray(cas)[:, classes], config.upscale).T  # [K, L]
    att_up = upsample(np.asarray(attention), config.upscale)  # [L]
    length = cas_up.shape[1]
    n_cls = len(classes)
    labels, scores, starts, ends = [], [], [], []

    def collect(series, row_class, row, start, end):
        keep = end - start + 1 >= config.min_run
        row, start, end = row[keep], start[keep], end[keep]
        cumsum = np.zeros((series.shape[0], length + 1))
        np.cumsum(series, axis=1, out=cumsum[:, 1:])
        score = oic_scores(cumsum, row, start, end, config.outer_ratio)
        cls = row_class[row]
        labels.append(classes[cls])
        scores.append(score + config.video_score_weight * np.asarray(video_scores)[classes[cls]])
        starts.append(start * seconds_per_index)
        ends.append((end + 1) * seconds_per_index)

    if config.cas_thresholds:
        cas_thr = np.asarray(config.cas_thresholds)[:, None, None]
        # CAS runs are scored on the CAS with values below their threshold set to 0.
        thresholded = np.where(cas_up[None] < cas_thr, 0.0, cas_up[None]).reshape(-1, length)  # [H*K, L]
        row, start, end = maximal_runs(thresholded >= np.repeat(cas_thr[:, 0, 0], n_cls)[:, None])
        collect(thresholded, np.tile(np.arange(n_cls), len(config.cas_thresholds)), row, start, end)
    if config.att_thresholds:
        att_thr = np.asarray(config.att_thresholds)
        # The attention is shared by the classes: its runs are scored on each class's full CAS.
        run_thr, start, end = maximal_runs(att_up[None] >= att_thr[:, None])
        row = np.repeat(np.arange(n_cls), len(start))
        collect(cas_up, np.arange(n_cls), row, np.tile(start, n_cls), np.tile(end, n_cls))

    label, score = np.concatenate(labels), np.concatenate(scores)
    start, end = np.concatenate(starts), np.concatenate(ends)
    kept = [idx[nms(start[idx], end[idx], score[idx], config.nms_iou, config.fixed)]
            for idx in (np.flatnonzero(label == c) for c in classes)]
    kept = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
    return label[kept], score[kept], start[kept], end[kept]
