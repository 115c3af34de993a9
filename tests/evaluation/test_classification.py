"""evaluation.classification: video-level classification mAP."""
import numpy as np
import pytest

from ftcl import evaluation


def test_classification_map_is_the_mean_of_hand_computed_aps():
    # Class 0: scores 0.9 (pos), 0.8 (neg), 0.7 (pos) -> precision 1, 2/3 at recall 1/2, 1 -> AP 5/6.
    # Class 1: a tie between a positive and a negative at the top -> one point: precision 1/2, recall 1
    # -> AP 1/2. Class 2: no positive video -> 0 (sklearn's value).
    labels = np.array([[1, 1, 0], [0, 0, 0], [1, 0, 0]])
    scores = np.array([[0.9, 0.5, 0.1], [0.8, 0.5, 0.2], [0.7, 0.1, 0.3]])
    assert evaluation.classification_map(labels, scores) == pytest.approx((5 / 6 + 1 / 2 + 0) / 3)


def test_classification_map_copies_cliff_diving_into_diving():
    classes = ["CliffDiving", "Diving"]
    labels = np.array([[1, 1], [0, 1], [0, 0]])
    scores = np.array([[0.9, 0.1], [0.2, 0.5], [0.1, 0.3]])
    # Diving scores become 0.9, 0.5, 0.3: ranked perfectly -> AP 1 for both classes.
    assert evaluation.classification_map(labels, scores, classes) == pytest.approx(1.0)
    assert evaluation.classification_map(labels, scores) < 1.0
