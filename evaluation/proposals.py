"""Action proposals from class activation sequences: the ACM-Net / FTCL test-time procedure.

Per video: predict the classes whose video score exceeds `class_threshold` (else the arg-max),
upsample the instance CAS and the instance attention x`upscale` by linear interpolation, take the
maximal runs at or above each CAS threshold and each attention threshold, drop runs shorter than
`min_run`, score each run outer-inner-contrastively, convert indices to seconds and apply per-class
NMS. A run is scored on score_mix[0] x CAS + score_mix[1] x attention, where the quantity whose
threshold made the run has its values below that threshold set to 0; a run's score adds
video_score_weights[branch] x the video's class score.

THUMOS14 (FTCL's test_thu.py): CAS runs at 0.15, 0.20 and attention runs at 0.15 ... 0.95, scored on
the CAS alone with flanks of 0.2 x the run. ActivityNet (ACM-Net's main_act.py): both kinds of runs
at 0.005 ... 0.02, scored on 0.7 CAS + 0.3 attention with flanks of 0.15, attention runs adding 0.25
x the video score.

The defaults reproduce the release bit for bit where it matters (its interpolation arithmetic, its
index-based run boundaries, its NMS with "+1" lengths). `fixed=True` corrects the NMS to a true IoU.
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ProposalConfig:
    """Test-time settings, and the features' time scale (frames per snippet, fps); the defaults are
    the release's THUMOS14 ones. The one definition of each: ftcl.config.Config holds one as its
    `proposals` (with the ActivityNet preset's values)."""

    class_threshold: float = 0.25
    upscale: int = 20
    cas_thresholds: tuple = tuple(np.arange(0.15, 0.25, 0.05).tolist())  # 0.15, 0.20
    att_thresholds: tuple = tuple(np.arange(0.15, 1.00, 0.05).tolist())  # 0.15 ... 0.95
    outer_ratio: float = 0.2  # flank length as a fraction of the run, each side
    video_score_weights: tuple = (0.0, 0.0)  # gamma of CAS runs, of attention runs
    score_mix: tuple = (1.0, 0.0)  # runs are scored on mix[0] * CAS + mix[1] * attention
    nms_iou: float = 0.55
    min_run: int = 2
    fixed: bool = False
    frames_per_snippet: int = 16
    fps: int = 25


def t_factor(original_snippets, sampled_snippets, upscale=20, frames_per_snippet=16, fps=25):
    """Seconds per upsampled index: frames x original count / (fps x upscale x sampled count)."""
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
    # np.searchsorted(arange(length), positions, "left") (scipy's index) is ceil() for positions >= 0.
    hi = np.ceil(positions).astype(np.int64).clip(1, length - 1)
    lo = hi - 1
    shape = (-1,) + (1,) * (values.ndim - 1)
    return (values[hi] - values[lo]) * (positions - lo).reshape(shape) + values[lo]


def maximal_runs(mask):
    """Maximal runs of True along the last axis. mask: [R, L] bool. Returns (row, start, end)
    arrays in row-major order, end inclusive."""
    width = mask.shape[1] + 2
    padded = np.zeros((mask.shape[0], width), dtype=np.int8)
    padded[:, 1:-1] = mask
    # One flat pass (faster than a 2-D nonzero): the zero pads keep rows apart, so no edge crosses one.
    row, col = np.divmod(np.flatnonzero(np.diff(padded.ravel())), width)
    # Along each row, edges alternate: a run's start (+1), then its end + 1 (-1).
    return row[0::2], col[0::2], col[1::2] - 1


def threshold_runs(values, thresholds):
    """Maximal runs of values >= each threshold: maximal_runs(values[None] >= thresholds[:, None])
    without building that [H, L] mask. values: [L]; thresholds: [H] in any order. Returns
    (threshold index, start, end) by threshold index, then time; end inclusive.

    Each value is given its level, the count of (sorted) thresholds it reaches; a run of threshold h
    starts where the level rises past h and ends where it falls below it again, so every run comes
    from one of the level's steps, whatever the number of thresholds.
    """
    order = np.argsort(thresholds, kind="stable")
    level = np.zeros(len(values) + 2, dtype=np.int64)
    level[1:-1] = np.searchsorted(np.asarray(thresholds)[order], values, side="right")
    level[1:-1][np.isnan(values)] = 0  # NaN reaches no threshold (searchsorted puts it past all)
    step = np.diff(level)  # [L + 1]: at i, runs start (rise) at i or end (fall) at i - 1
    rise, fall = np.flatnonzero(step > 0), np.flatnonzero(step < 0)
    start_level, start = _ranges(level[rise], level[rise + 1]), np.repeat(rise, step[rise])
    end_level, end = _ranges(level[fall + 1], level[fall]), np.repeat(fall - 1, -step[fall])
    # Starts and ends come in time order: a stable sort by level keeps it within each level. Runs of
    # one threshold never nest, so its k-th start and k-th end form its k-th run.
    start_order = np.argsort(start_level, kind="stable")
    end_order = np.argsort(end_level, kind="stable")
    index, start, end = order[start_level[start_order]], start[start_order], end[end_order]
    if np.any(order[1:] < order[:-1]):  # thresholds given out of order: back to their index order
        by_index = np.argsort(index, kind="stable")
        index, start, end = index[by_index], start[by_index], end[by_index]
    return index, start, end


def _ranges(low, high):
    """np.concatenate([np.arange(a, b) for a, b in zip(low, high)]) without the Python loop."""
    counts = high - low
    return np.repeat(low - (np.cumsum(counts) - counts), counts) + np.arange(counts.sum())


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


def nms_groups(group, start, end, score, iou_threshold, fixed=False):
    """Greedy NMS within each group (e.g. each (video, class)); returns kept indices ordered by
    group, then by descending score. group: [K] int; start/end/score: [K].

    Exactly the release's loop per group (descending score, the later entry first among equal
    scores; suppress what overlaps the best by >= iou_threshold; repeat), run for all groups at once:
    each round keeps the best survivor of every group and removes what it suppresses, so the Python
    loop runs as many rounds as the largest group keeps, not once per kept proposal. With a positive
    threshold, only overlapping intervals can suppress each other, so each group is first split into
    runs of overlapping intervals and those run as the groups: far fewer rounds over far fewer
    survivors, the same result. The release measures lengths as end - start + 1 (a pixel
    convention, on seconds here): kept by default; fixed=True uses the true temporal IoU.
    """
    plus = 0.0 if fixed else 1.0
    group, start, end = np.asarray(group), np.asarray(start), np.asarray(end)
    score = np.asarray(score, dtype=np.float64)
    if iou_threshold > 0 and len(score):
        kept = _greedy(_overlap_clusters(group, start, end, plus), start, end, score, iou_threshold, plus)
        return kept[np.lexsort((-kept, -score[kept], group[kept]))]
    return _greedy(group, start, end, score, iou_threshold, plus)


def _overlap_clusters(group, start, end, plus):
    """[K] id of each interval's cluster: within a group, intervals joined by chains of positive
    intersection (min(ends) - max(starts) + plus > 0, computed as NMS computes it, so any pair NMS
    could find overlapping shares a cluster)."""
    import pandas as pd  # imported on first use: a tool's --help need not wait for it

    order = np.lexsort((start, group))
    group_s, start_s = group[order], start[order]
    reach = pd.Series(end[order]).groupby(group_s).cummax().to_numpy()  # furthest end so far in the group
    new = np.ones(len(order), dtype=bool)
    same_group = group_s[1:] == group_s[:-1]
    new[1:] = ~same_group | ((reach[:-1] - start_s[1:]) + plus <= 0)
    cluster = np.empty(len(order), dtype=np.int64)
    cluster[order] = np.cumsum(new) - 1
    return cluster


def _greedy(group, start, end, score, iou_threshold, plus):
    """The batched greedy rounds of nms_groups over `group`; kept indices by group, then descending
    score (the later entry first among equal scores)."""
    index = np.arange(len(score))
    order = np.lexsort((-index, -score, group))
    group, start, end = group[order], start[order], end[order]
    lengths = end - start + plus
    survivors = np.arange(len(order))
    keep = []
    while len(survivors):
        first = np.r_[True, group[survivors[1:]] != group[survivors[:-1]]]
        heads = survivors[first]
        keep.append(heads)
        rest = survivors[~first]
        # The head of each survivor's group: survivors are sorted by group, heads lead their runs.
        head = heads[np.cumsum(first)[~first] - 1]
        inter = np.maximum(0.0, np.minimum(end[head], end[rest]) - np.maximum(start[head], start[rest]) + plus)
        union = lengths[head] + lengths[rest] - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        survivors = rest[iou < iou_threshold]
    kept = np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)
    return order[kept]


def nms(start, end, score, iou_threshold, fixed=False):
    """Greedy NMS of one set; returns kept indices in descending score order (see nms_groups)."""
    return nms_groups(np.zeros(len(score), dtype=np.int64), start, end, score, iou_threshold, fixed)


def _score_runs(series, row, start, end, run_class, classes, video_scores, gamma, config, seconds_per_index):
    """(label, score, start s, end s) of the runs (row, start, end) of series [R, L]; run_class: the
    index into `classes` of each run."""
    keep = end - start + 1 >= config.min_run
    row, start, end = row[keep], start[keep], end[keep]
    cumsum = np.zeros((series.shape[0], series.shape[1] + 1))
    np.cumsum(series, axis=1, out=cumsum[:, 1:])
    score = oic_scores(cumsum, row, start, end, config.outer_ratio)
    label = classes[run_class[keep]]
    if gamma:
        score = score + gamma * video_scores[label]
    return label, score, start * seconds_per_index, (end + 1) * seconds_per_index


def video_candidates(cas, attention, video_scores, seconds_per_index, config=ProposalConfig()):
    """Scored runs of one video before NMS, in the release's order (CAS runs by threshold, class and
    time, then attention runs by class, threshold and time); arguments as video_proposals().
    Returns (label [K] int, score [K], start [K], end [K]) in seconds."""
    video_scores = np.asarray(video_scores)
    classes = predicted_classes(video_scores, config.class_threshold)
    cas_up = upsample(np.asarray(cas)[:, classes], config.upscale).T  # [K, L]
    att_up = upsample(np.asarray(attention), config.upscale)  # [L]
    n_cls, length = cas_up.shape
    mix_cas, mix_att = config.score_mix
    gamma_cas, gamma_att = config.video_score_weights
    found = []

    if config.cas_thresholds:
        cas_thr = np.asarray(config.cas_thresholds)[:, None, None]
        thresholded = np.where(cas_up[None] < cas_thr, 0.0, cas_up[None])  # [H, K, L]
        row, start, end = maximal_runs(thresholded.reshape(-1, length) >= np.repeat(cas_thr[:, 0, 0], n_cls)[:, None])
        series = thresholded if mix_att == 0 and mix_cas == 1 else mix_cas * thresholded + mix_att * att_up
        found.append(_score_runs(series.reshape(-1, length), row, start, end, row % n_cls, classes, video_scores,
                                 gamma_cas, config, seconds_per_index))
    if config.att_thresholds:
        att_thr = np.asarray(config.att_thresholds)
        run_thr, start, end = threshold_runs(att_up, att_thr)
        # The attention is shared by the classes: each of its runs is scored for every class,
        # class by class (the release's order: class, then threshold, then time).
        run_class = np.repeat(np.arange(n_cls), len(start))
        if mix_att == 0 and mix_cas == 1:
            series, row = cas_up, run_class
        else:
            att_thresholded = np.where(att_up[None] < att_thr[:, None], 0.0, att_up[None])  # [H, L]
            series = (mix_cas * cas_up[None] + mix_att * att_thresholded[:, None]).reshape(-1, length)  # [H*K, L]
            row = np.tile(run_thr, n_cls) * n_cls + run_class
        found.append(_score_runs(series, row, np.tile(start, n_cls), np.tile(end, n_cls), run_class, classes,
                                 video_scores, gamma_att, config, seconds_per_index))

    if not found:
        return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), np.zeros(0)
    return tuple(np.concatenate(parts) for parts in zip(*found))


def video_proposals(cas, attention, video_scores, seconds_per_index, config=ProposalConfig()):
    """Proposals of one video.

    Args:
        cas: [T, C] instance-branch class activation (softmax over classes + background, background
            column dropped).
        attention: [T] instance attention.
        video_scores: [C] instance-branch video-level class scores.
        seconds_per_index: see t_factor().
    Returns:
        (label [K] int, score [K], start [K], end [K]) in seconds, after per-class NMS, by class
        then descending score.
    """
    label, score, start, end = video_candidates(cas, attention, video_scores, seconds_per_index, config)
    kept = nms_groups(label, start, end, score, config.nms_iou, config.fixed)
    return label[kept], score[kept], start[kept], end[kept]
