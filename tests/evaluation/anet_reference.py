"""Literal, slow re-statements of the reference procedures, used only as test oracles.

Each follows the published algorithm step by step (per prediction, per threshold, per candidate),
with the tie rule of a stable argsort reversed, so the vectorised code can be checked against it.
"""
import numpy as np


def tiou(seg, segs):
    out = []
    for s, e in segs:
        inter = max(0.0, min(seg[1], e) - max(seg[0], s))
        union = (seg[1] - seg[0]) + (e - s) - inter
        out.append(inter / union if union > 0 else 0.0)
    return np.array(out)


def voc_ap(prec, rec):
    mprec = [0.0] + list(prec) + [0.0]
    mrec = [0.0] + list(rec) + [1.0]
    for i in range(len(mprec) - 2, -1, -1):
        mprec[i] = max(mprec[i], mprec[i + 1])
    return sum((mrec[i] - mrec[i - 1]) * mprec[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])


def class_ap(gt_rows, pred_rows, thresholds):
    """gt_rows: [(video, start, end)]; pred_rows: [(video, start, end, score)] of one class."""
    ap = np.zeros(len(thresholds))
    if not pred_rows or not gt_rows:
        return ap
    scores = np.array([p[3] for p in pred_rows])
    order = np.argsort(scores, kind="stable")[::-1]
    preds = [pred_rows[i] for i in order]
    locked = -np.ones((len(thresholds), len(gt_rows)))
    tp = np.zeros((len(thresholds), len(preds)))
    fp = np.zeros((len(thresholds), len(preds)))
    for idx, (video, start, end, _) in enumerate(preds):
        gt_idx = [k for k, g in enumerate(gt_rows) if g[0] == video]
        if not gt_idx:
            fp[:, idx] = 1
            continue
        ious = tiou((start, end), [(gt_rows[k][1], gt_rows[k][2]) for k in gt_idx])
        by_iou = np.argsort(ious, kind="stable")[::-1]
        for t, thr in enumerate(thresholds):
            for j in by_iou:
                if ious[j] < thr:
                    fp[t, idx] = 1
                    break
                if locked[t, gt_idx[j]] >= 0:
                    continue
                tp[t, idx] = 1
                locked[t, gt_idx[j]] = idx
                break
            if tp[t, idx] == 0 and fp[t, idx] == 0:
                fp[t, idx] = 1
    tp_cum, fp_cum = np.cumsum(tp, axis=1), np.cumsum(fp, axis=1)
    for t in range(len(thresholds)):
        ap[t] = voc_ap(tp_cum[t] / (tp_cum[t] + fp_cum[t]), tp_cum[t] / len(gt_rows))
    return ap


def upsample(arr, scale):
    """scipy.interpolate.interp1d(kind='linear', fill_value='extrapolate') written out."""
    arr = np.asarray(arr, dtype=np.float64)
    x_new = np.arange(0, arr.shape[0], 1 / scale)
    out = []
    for x in x_new:
        k = int(np.searchsorted(np.arange(arr.shape[0], dtype=np.float64), x))
        k = min(max(k, 1), arr.shape[0] - 1)
        out.append((arr[k] - arr[k - 1]) / 1.0 * (x - (k - 1)) + arr[k - 1])
    return np.array(out)


def oic_proposals(positions, scores, lamb):
    """Runs of consecutive positions (length >= 2) with their outer-inner-contrastive score."""
    out = []
    if len(positions) == 0:
        return out
    groups = np.split(positions, np.where(np.diff(positions) != 1)[0] + 1)
    for g in groups:
        if len(g) < 2:
            continue
        inner = np.mean(scores[g])
        outer_s = max(0, int(g[0] - lamb * len(g)))
        outer_e = min(int(len(scores) - 1), int(g[-1] + lamb * len(g)))
        outer_idx = list(range(outer_s, int(g[0]))) + list(range(int(g[-1] + 1), outer_e + 1))
        outer = np.mean(scores[outer_idx]) if outer_idx else 0.0
        out.append((int(g[0]), int(g[-1]), inner - outer))
    return out


def nms(props, thresh, plus=1.0):
    """props: [(score, start, end)] -> kept in order of selection."""
    props = np.array(props, dtype=np.float64)
    x1, x2, scores = props[:, 1], props[:, 2], props[:, 0]
    areas = x2 - x1 + plus
    order = np.argsort(scores, kind="stable")[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        xx1 = np.maximum(x1[i], x1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        inter = np.maximum(0.0, xx2 - xx1 + plus)
        iou = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[np.where(iou < thresh)[0] + 1]
    return keep


def _classes_and_upsampled(cas, att, video_scores, cls_thr, scale):
    """Both releases' first steps: the predicted classes (else the arg-max), then their CAS [L, K]
    and the attention repeated per class [L, K], upsampled."""
    if video_scores.max() > cls_thr:
        classes = np.where(video_scores > cls_thr)[0]
    else:
        classes = np.array([np.argmax(video_scores)])
    cas_up = upsample(cas[:, classes], scale)  # [L, K]
    att_up = upsample(np.repeat(att[:, None], len(classes), axis=1), scale)
    return classes, cas_up, att_up


def video_proposals(cas, att, video_scores, t_factor, cls_thr=0.25, scale=20, nms_thr=0.55, plus=1.0):
    """The release's per-video test procedure, loop by loop. Returns {class: [(score, start, end)]}."""
    classes, cas_up, att_up = _classes_and_upsampled(cas, att, video_scores, cls_thr, scale)
    found = {}
    for thr in np.arange(0.15, 0.25, 0.05):
        tmp = cas_up.copy()
        tmp[tmp < thr] = 0
        for k, c in enumerate(classes):
            for s, e, score in oic_proposals(np.where(tmp[:, k] >= thr)[0], tmp[:, k], 0.2):
                found.setdefault(int(c), []).append((score, s * t_factor, (e + 1) * t_factor))
    for thr in np.arange(0.15, 1.00, 0.05):
        for k, c in enumerate(classes):
            for s, e, score in oic_proposals(np.where(att_up[:, k] >= thr)[0], cas_up[:, k], 0.2):
                found.setdefault(int(c), []).append((score, s * t_factor, (e + 1) * t_factor))
    return {c: [props[i] for i in nms(props, nms_thr, plus)] for c, props in found.items()}


def activitynet_video_proposals(cas, att, video_scores, t_factor, cls_thr=0.10, scale=20, nms_thr=0.90):
    """ACM-Net's ActivityNet test procedure (main_act.py), loop by loop: CAS and attention runs at
    0.005 ... 0.02, scored on 0.7 CAS + 0.3 attention (the quantity that made the run thresholded),
    flanks of 0.15, attention runs adding 0.25 x the class's video score; NMS at 0.9 with "+1" lengths.
    Returns {class: [(score, start, end)]}."""
    classes, cas_up, att_up = _classes_and_upsampled(cas, att, video_scores, cls_thr, scale)
    found = {}
    for thr in [0.005, 0.01, 0.015, 0.02]:
        tmp = cas_up.copy()
        tmp[tmp < thr] = 0
        scores = 0.70 * tmp + 0.30 * att_up
        for k, c in enumerate(classes):
            for s, e, score in oic_proposals(np.where(tmp[:, k] >= thr)[0], scores[:, k], 0.150):
                found.setdefault(int(c), []).append((score + 0.0 * video_scores[c], s * t_factor, (e + 1) * t_factor))
    for thr in [0.005, 0.01, 0.015, 0.02]:
        tmp = att_up.copy()
        tmp[tmp < thr] = 0
        scores = 0.70 * cas_up + 0.30 * tmp
        for k, c in enumerate(classes):
            for s, e, score in oic_proposals(np.where(tmp[:, k] >= thr)[0], scores[:, k], 0.150):
                found.setdefault(int(c), []).append((score + 0.250 * video_scores[c], s * t_factor, (e + 1) * t_factor))
    return {c: [props[i] for i in nms(props, nms_thr)] for c, props in found.items()}
