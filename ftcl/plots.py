"""Pictures of an evaluation (`python -m ftcl.evaluate --plot DIR`): per video, the instance
attention and the predicted classes' CAS over time, the ground truth and the top detections.
matplotlib is imported when a picture is drawn, not with this module."""
from pathlib import Path

import numpy as np

from ftcl import evaluation, tool


def _video_recall(result, ground_truth, threshold=0.5):
    """{vid: fraction of its ground-truth instances met by a same-class detection of tIoU >= threshold}."""
    gt = ground_truth.segments
    recall = {}
    for vid in result.ids:
        if vid not in ground_truth.videos:
            continue
        v = ground_truth.videos.index(vid)
        instances = np.flatnonzero(gt.video == v)
        if not len(instances):
            continue
        found = 0
        for k in instances:
            name = ground_truth.classes[gt.label[k]]
            segs = np.array([d["segment"] for d in result.results["results"].get(vid, []) if d["label"] == name])
            if len(segs) and (evaluation.segment_iou(segs[:, 0], segs[:, 1], gt.start[k], gt.end[k]) >= threshold).any():
                found += 1
        recall[vid] = found / len(instances)
    return recall


def default_plot_videos(result, ground_truth, count=4):
    """The first count // 2 test videos and the count - count // 2 with the lowest recall@0.5."""
    first = list(result.ids[:count // 2])
    recall = _video_recall(result, ground_truth)
    worst = [vid for vid in sorted(recall, key=lambda v: (recall[v], v)) if vid not in first]
    return first + worst[:count - len(first)]


def plot_videos(path, evaluation_, ground_truth, config, videos, top=5):
    """One PNG per video id: the instance attention and each predicted class's CAS over time, the
    ground-truth instances (shaded, with class names) and the top detections (bars with scores).
    Returns the paths written."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    gt = ground_truth.segments
    written = []
    for vid in videos:
        out = evaluation_.outputs[vid]
        seconds = np.arange(len(out.attention)) * config.seconds_per_snippet * out.original_snippets / len(out.attention)
        classes = evaluation.proposals.predicted_classes(out.video_scores, config.proposals.class_threshold)
        fig, (ax, ax_det) = plt.subplots(2, 1, figsize=(11, 4.6), sharex=True, height_ratios=[3, 1.4])
        ax.plot(seconds, out.attention, color="black", lw=1, label="instance attention")
        for c in classes:
            ax.plot(seconds, out.cas[:, c], lw=1, label=f"CAS {ground_truth.classes[c]} "
                                                        f"(video score {out.video_scores[c]:.2f})")
        if vid in ground_truth.videos:
            v = ground_truth.videos.index(vid)
            for k in np.flatnonzero(gt.video == v):
                ax.axvspan(gt.start[k], gt.end[k], color="tab:green", alpha=0.18)
                ax.text((gt.start[k] + gt.end[k]) / 2, 1.01, ground_truth.classes[gt.label[k]], ha="center",
                        va="bottom", fontsize=6, color="tab:green", rotation=90)
        ax.set_ylabel("score")
        ax.set_ylim(0, 1)
        ax.set_title(f"{vid} (green: ground truth)", fontsize=9, pad=40)
        ax.legend(loc="upper right", fontsize=7)
        detections = sorted(evaluation_.results["results"].get(vid, []), key=lambda d: -d["score"])[:top]
        for row, det in enumerate(detections):
            start, end = det["segment"]
            ax_det.barh(row, end - start, left=start, height=0.7, color="tab:blue", alpha=0.6)
            ax_det.text(end, row, f" {det['label']} {det['score']:.2f}", va="center", fontsize=7)
        ax_det.set_yticks(range(len(detections)), [f"#{r + 1}" for r in range(len(detections))], fontsize=7)
        ax_det.invert_yaxis()
        ax_det.set_ylabel(f"top {top}\ndetections", fontsize=8)
        ax_det.set_xlabel("time (s)")
        fig.tight_layout()
        target = path / f"{vid}.png"
        with tool.atomic_write(target, "wb") as f:
            fig.savefig(f, dpi=100, format="png")
        plt.close(fig)
        written.append(target)
    return written
