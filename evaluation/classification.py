"""Video-level classification mAP, as WSAL papers report it next to detection mAP."""
import numpy as np

THUMOS_CLIFF_DIVING, THUMOS_DIVING = "CliffDiving", "Diving"


def average_precision(labels, scores):
    """Non-interpolated AP of one class (the definition of sklearn's average_precision_score).
    labels: [V] {0, 1}; scores: [V]. Equal scores form one operating point. 0 without positives."""
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    positives = labels.sum()
    if positives == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    labels, scores = labels[order], scores[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tp = np.cumsum(labels)[last_of_tie]
    precision = tp / (last_of_tie + 1)
    recall = tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def classification_map(labels, scores, classes=None):
    """Mean over classes of the video-level AP. labels, scores: [V, C].

    As the release reports it on THUMOS14: CliffDiving is a kind of Diving, so a video's Diving
    score is raised to its CliffDiving score where that is higher (when both classes are named).
    """
    scores = np.array(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if classes is not None and THUMOS_CLIFF_DIVING in classes and THUMOS_DIVING in classes:
        cliff, diving = classes.index(THUMOS_CLIFF_DIVING), classes.index(THUMOS_DIVING)
        scores[:, diving] = np.maximum(scores[:, diving], scores[:, cliff])
    aps = [average_precision(labels[:, c], scores[:, c]) for c in range(scores.shape[1])]
    return float(np.mean(aps)) if aps else 0.0
