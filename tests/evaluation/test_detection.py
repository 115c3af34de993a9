"""evaluation.detection: ActivityNet-style matching and AP, against hand-computed cases and a literal reference."""
import json

import numpy as np
import pytest

from ftcl import evaluation
from ftcl.evaluation.detection import (
    Segments,
    evaluate_detection,
    match_class,
    segment_iou,
)
from tests.evaluation import anet_reference as ref


def _segments(rows, with_score):
    """rows: (video, label, start, end[, score])."""
    cols = list(zip(*rows)) if rows else [[]] * (5 if with_score else 4)
    return Segments(video=np.array(cols[0], dtype=np.int64), label=np.array(cols[1], dtype=np.int64),
                    start=np.array(cols[2], dtype=np.float64), end=np.array(cols[3], dtype=np.float64),
                    score=np.array(cols[4], dtype=np.float64) if with_score else None)


def _map(gt_rows, pred_rows, tious=(0.5,), classes=("a", "b", "c")):
    return evaluate_detection(_segments(gt_rows, False), _segments(pred_rows, True), list(classes), tious)


def _random_detection_case(seed, n_videos=12, n_classes=4):
    rng = np.random.default_rng(seed)
    gt, pred = [], []
    for v in range(n_videos):
        for _ in range(rng.integers(0, 6)):
            c, s = int(rng.integers(n_classes)), float(rng.uniform(0, 100))
            gt.append((v, c, s, s + float(rng.exponential(8))))
    for g in gt:
        for _ in range(rng.integers(0, 4)):
            j = rng.normal(0, 3, 2)
            s = g[2] + j[0]
            pred.append((g[0], g[1] if rng.random() < 0.8 else int(rng.integers(n_classes)), s,
                         max(s, g[3] + j[1]), float(np.round(rng.random(), 1))))  # rounded: many ties
    for _ in range(40):
        s = float(rng.uniform(0, 100))
        pred.append((int(rng.integers(n_videos + 2)), int(rng.integers(n_classes)), s, s + float(rng.exponential(5)),
                     float(np.round(rng.random(), 1))))
    return gt, pred


def test_ap_duplicate_detection_of_one_instance_is_a_false_positive():
    gt = [(0, 0, 0, 10), (0, 0, 20, 30)]
    pred = [(0, 0, 0, 10, 0.9), (0, 0, 0, 10, 0.8), (0, 0, 20, 30, 0.7)]
    # tp = 1, 0, 1 -> precision 1, 1/2, 2/3; recall 1/2, 1/2, 1 -> AP = 1/2 * 1 + 1/2 * 2/3.
    assert _map(gt, pred).ap[0, 0] == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_ap_ties_in_score_put_the_later_prediction_first():
    gt = [(0, 0, 0, 10)]
    pred = [(0, 0, 0, 10, 0.5), (0, 0, 50, 60, 0.5)]
    # Order: miss, hit -> precision 0, 1/2 at recall 0, 1 -> AP = 1/2.
    assert _map(gt, pred).ap[0, 0] == pytest.approx(0.5)
    assert _map(gt, pred[::-1]).ap[0, 0] == pytest.approx(1.0)


def test_classes_without_predictions_count_as_zero_and_absent_classes_are_not_scored():
    gt = [(0, 0, 0, 10), (1, 1, 5, 9)]
    pred = [(0, 0, 0, 10, 0.9), (2, 2, 0, 10, 0.8)]  # class 2 has no ground truth: not scored
    result = _map(gt, pred)
    assert result.classes == ["a", "b"]
    np.testing.assert_allclose(result.ap[0], [1.0, 0.0])
    assert result.mAP[0] == pytest.approx(0.5)


def test_predictions_in_videos_without_that_class_are_false_positives():
    gt = [(0, 0, 0, 10), (1, 1, 0, 10)]
    pred = [(1, 0, 0, 10, 0.9), (0, 0, 0, 10, 0.5), (7, 0, 0, 10, 0.4)]  # video 7 has no ground truth
    # miss, hit, miss -> precision 0, 1/2, 1/3; recall 0, 1, 1 -> AP = 1/2.
    assert _map(gt, pred).ap[0, 0] == pytest.approx(0.5)


def test_a_video_without_predictions_only_lowers_recall():
    gt = [(0, 0, 0, 10), (1, 0, 0, 10), (2, 0, 0, 10), (3, 0, 0, 10)]
    pred = [(0, 0, 0, 10, 0.9)]
    assert _map(gt, pred).ap[0, 0] == pytest.approx(0.25)


def test_each_prediction_takes_its_best_unmatched_instance_per_threshold():
    gt = [(0, 0, 0, 10), (0, 0, 4, 14)]
    pred = [(0, 0, 3, 13, 0.9), (0, 0, 0, 11, 0.8)]
    # p0 has tIoU 7/13 and 9/11: it takes the second instance at 0.5 and 0.7; p1 has 10/11 and 7/14
    # and takes the first -> AP 1. At 0.85 p0 misses and p1 hits: precision 0, 1/2 at recall 0, 1/2
    # -> AP 1/4.
    result = _map(gt, pred, tious=(0.5, 0.7, 0.85))
    np.testing.assert_allclose(result.ap[:, 0], [1.0, 1.0, 0.25])


@pytest.mark.parametrize("a,b,expected", [
    ((0, 10), (10, 20), 0.0),  # touching
    ((0, 10), (2, 5), 0.3),  # nested
    ((0, 10), (5, 5), 0.0),  # zero-length inside
    ((5, 5), (5, 5), 0.0),  # two equal points: empty union
    ((0, 10), (5, 15), 5 / 15),
])
def test_segment_iou_edge_cases(a, b, expected):
    assert segment_iou(a[0], a[1], b[0], b[1]) == pytest.approx(expected)
    assert segment_iou(b[0], b[1], a[0], a[1]) == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(6))
def test_detection_ap_matches_the_literal_reference(seed):
    gt, pred = _random_detection_case(seed)
    tious = np.round(np.arange(0.1, 1.0, 0.1), 10)
    result = _map(gt, pred, tious=tious, classes=("a", "b", "c", "d"))
    for k, name in enumerate(result.classes):
        c = "abcd".index(name)
        want = ref.class_ap([(g[0], g[2], g[3]) for g in gt if g[1] == c],
                            [(p[0], p[2], p[3], p[4]) for p in pred if p[1] == c], tious)
        np.testing.assert_allclose(result.ap[:, k], want, atol=1e-12)


def test_unsorted_thresholds_give_the_same_aps():
    gt, pred = _random_detection_case(7)
    sorted_result = _map(gt, pred, tious=(0.3, 0.5, 0.7), classes="abcd")
    shuffled = _map(gt, pred, tious=(0.7, 0.3, 0.5), classes="abcd")
    np.testing.assert_allclose(shuffled.ap[[1, 2, 0]], sorted_result.ap)


def test_match_class_marks_hits_in_descending_score_order():
    gt = _segments([(0, 0, 0, 10)], False)
    pred = _segments([(0, 0, 50, 60, 0.2), (0, 0, 0, 10, 0.9)], True)
    np.testing.assert_array_equal(match_class(gt, pred, [0.5]), [[True, False]])


def test_averages_and_json_dict():
    gt, pred = _random_detection_case(8)
    result = _map(gt, pred, tious=np.round(np.arange(0.1, 1.0, 0.1), 10), classes="abcd")
    out = json.loads(json.dumps(result.to_dict()))
    assert set(out) == {"tiou", "mAP", "average", "per_class"}
    assert set(out["average"]) == {"0.1:0.5", "0.1:0.7", "0.3:0.7"}
    assert out["average"]["0.1:0.7"] == pytest.approx(np.mean(out["mAP"][:7]))
    assert out["average"]["0.3:0.7"] == pytest.approx(np.mean(out["mAP"][2:7]))
    anet = _map(gt, pred, tious=np.round(np.arange(0.5, 1.0, 0.05), 10), classes="abcd")
    assert list(anet.averages()) == ["0.5:0.95"]


def test_averages_are_labelled_by_the_thresholds_they_cover():
    gt = [(0, 0, 0, 10)]
    pred = [(0, 0, 0, 10, 0.9)]
    assert list(_map(gt, pred, tious=np.arange(0.1, 1.0, 0.1)).averages()) == ["0.1:0.5", "0.1:0.7", "0.3:0.7"]
    assert list(_map(gt, pred, tious=[0.3, 0.5, 0.7]).averages()) == ["0.3:0.7:0.2"]
    assert list(_map(gt, pred, tious=[0.3, 0.5]).averages()) == ["0.3,0.5"]
    assert list(_map(gt, pred, tious=[0.5, 0.75, 0.95]).averages()) == ["0.5,0.75,0.95"]
    assert list(_map(gt, pred, tious=np.arange(0.5, 1.0, 0.05)).averages()) == ["0.5:0.95"]
    table = evaluation.detection_table(_map(gt, pred, tious=[0.3, 0.5, 0.7]))
    assert "avg 0.3:0.7:0.2" in table and "avg 0.3:0.7 " not in table
