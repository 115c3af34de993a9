"""Video-level classification mAP, as WSAL papers report it next to detection mAP."""
import warnings

import numpy as np

THUMOS_CLIFF_DIVING, THUMOS_DIVING = "CliffDiving", "Diving"


def classification_map(labels, scores, classes=None):
    """Mean over classes of sklearn's average_precision_score (the release's metric).
    labels, scores: [V, C]. A class without positive videos scores 0, as sklearn scores it.

    As the release reports it on THUMOS14: CliffDiving is a kind of Diving, so a video's Diving
    score is raised to its CliffDiving score where that is higher (when both classes are named).
    """
    # scikit-learn is imported here, when a score is asked for: it takes most of a second to import.
    from sklearn.exceptions import UndefinedMetricWarning
    from sklearn.metrics import average_precision_score

    scores = np.array(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if classes is not None and THUMOS_CLIFF_DIVING in classes and THUMOS_DIVING in classes:
        cliff, diving = classes.index(THUMOS_CLIFF_DIVING), classes.index(THUMOS_DIVING)
        scores[:, diving] = np.maximum(scores[:, diving], scores[:, cliff])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.filterwarnings("ignore", message="No positive class found in y_true")
        aps = [average_precision_score(labels[:, c] > 0, scores[:, c]) for c in range(scores.shape[1])]
    return float(np.mean(aps)) if aps else 0.0
