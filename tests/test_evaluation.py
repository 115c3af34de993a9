"""evaluation/: detection mAP, proposals, NMS, classification AP, IO and the CLI."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ftcl import evaluation, tool
from ftcl.evaluation import proposals as prop
from ftcl.evaluation.detection import Segments, evaluate_detection, match_class, segment_iou
from tests import anet_reference as ref


def _segments(rows, with_score):
    """rows: (video, label, start, end[, score])."""
    cols = list(zip(*rows)) if rows else [[]] * (5 if with_score else 4)
    return Segments(video=np.array(cols[0], dtype=np.int64), label=np.array(cols[1], dtype=np.int64),
                    start=np.array(cols[2], dtype=np.float64), end=np.array(cols[3], dtype=np.float64),
                    score=np.array(cols[4], dtype=np.float64) if with_score else None)


def _map(gt_rows, pred_rows, tious=(0.5,), classes=("a", "b", "c")):
    return evaluate_detection(_segments(gt_rows, False), _segments(pred_rows, True), list(classes), tious)


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


def test_upsample_matches_linear_interpolation_with_extrapolation():
    rng = np.random.default_rng(1)
    values = rng.random((7, 3))
    np.testing.assert_allclose(prop.upsample(values, 20), ref.upsample(values, 20), rtol=0, atol=0)
    interpolate = pytest.importorskip("scipy.interpolate")
    f = interpolate.interp1d(np.arange(7), values, kind="linear", axis=0, fill_value="extrapolate")
    np.testing.assert_allclose(prop.upsample(values, 20), f(np.arange(0, 7, 1 / 20)), rtol=0, atol=1e-15)


def test_runs_and_oic_scores_on_a_hand_made_sequence():
    seq = np.array([0.0, 0.5, 0.6, 0.0, 0.0, 0.9, 0.8, 0.7, 0.6, 0.1])
    row, start, end = prop.maximal_runs((seq >= 0.5)[None])
    np.testing.assert_array_equal(start, [1, 5])
    np.testing.assert_array_equal(end, [2, 8])
    cumsum = np.r_[0.0, np.cumsum(seq)][None]
    scores = prop.oic_scores(cumsum, row, start, end, 0.2)
    # Run [1, 2]: inner 0.55; flanks int(1 - 0.4) = 0 .. 0 and 3 .. int(2.4) = 2 (empty) -> outer 0.0.
    # Run [5, 8]: inner 0.75; flanks int(5 - 0.8) = 4 .. 4 and 9 .. int(8.8) = 8 (empty) -> outer 0.0.
    np.testing.assert_allclose(scores, [0.55 - 0.0, 0.75 - 0.0])
    long_seq = np.r_[np.full(5, 0.2), np.full(10, 0.8), np.full(5, 0.4)]
    row, start, end = prop.maximal_runs((long_seq >= 0.5)[None])
    scores = prop.oic_scores(np.r_[0.0, np.cumsum(long_seq)][None], row, start, end, 0.2)
    # Flanks of 2 on each side: [3, 4] at 0.2 and [15, 16] at 0.4 -> outer 0.3.
    np.testing.assert_allclose(scores, [0.8 - 0.3])
    for s, e, score in ref.oic_proposals(np.flatnonzero(long_seq >= 0.5), long_seq, 0.2):
        assert (s, e) == (start[0], end[0]) and score == pytest.approx(scores[0])


def _scanned_runs(mask):
    """(row, start, end) of the runs of True in each row of mask [R, L], one cell at a time."""
    want = []
    for r in range(mask.shape[0]):
        c = 0
        while c < mask.shape[1]:
            if mask[r, c]:
                first = c
                while c + 1 < mask.shape[1] and mask[r, c + 1]:
                    c += 1
                want.append((r, first, c))
            c += 1
    return want


def test_maximal_runs_match_a_row_by_row_scan():
    rng = np.random.default_rng(9)
    for rows, length in ((7, 40), (1, 1), (3, 1), (0, 5), (12, 3)):
        mask = rng.random((rows, length)) < rng.random((rows, 1))
        got = list(zip(*(x.tolist() for x in prop.maximal_runs(mask))))
        assert got == _scanned_runs(mask)


@pytest.mark.parametrize("thresholds", [np.arange(0.15, 1.0, 0.05), np.array([0.5, 0.2, 0.5, 0.9, 0.05]),
                                        np.array([0.3]), np.array([])], ids=["release", "unsorted-repeated", "one", "none"])
def test_threshold_runs_match_a_scan_of_each_threshold(thresholds):
    """Values on a coarse grid hit thresholds exactly (>= keeps them); NaN reaches none; odd lengths."""
    rng = np.random.default_rng(11)
    for length in (1, 2, 7, 333):
        for values in (rng.random(length), np.round(rng.random(length) * 20) / 20,
                       np.where(rng.random(length) < 0.2, np.nan, rng.random(length))):
            got = list(zip(*(x.tolist() for x in prop.threshold_runs(values, thresholds))))
            assert got == _scanned_runs(values[None] >= thresholds[:, None]), (length, values)


@pytest.mark.parametrize("fixed", [False, True])
def test_nms_matches_brute_force(fixed):
    rng = np.random.default_rng(2)
    start = rng.uniform(0, 50, 80)
    end = start + rng.exponential(4, 80)
    score = np.round(rng.random(80), 1)
    kept = prop.nms(start, end, score, 0.55, fixed=fixed)
    want = ref.nms(list(zip(score, start, end)), 0.55, plus=0.0 if fixed else 1.0)
    np.testing.assert_array_equal(kept, want)


@pytest.mark.parametrize("threshold", [0.55, 0.9, 0.05, 0.0])
@pytest.mark.parametrize("fixed", [False, True])
def test_nms_groups_match_brute_force_per_group(fixed, threshold):
    """Many groups of clustered, nested and touching intervals with tied scores, shuffled: every
    group's kept list (and order) is the release loop's on that group alone. Threshold 0 (everything
    suppresses everything) takes the path without overlap clusters."""
    rng = np.random.default_rng(5)
    n = 600
    group = rng.integers(0, 4, n)
    centre = rng.choice(rng.uniform(0, 300, 12), n) + rng.normal(0, 1.5, n)
    start = np.round(centre - rng.exponential(2, n), 1)
    end = start + np.round(rng.exponential(np.where(rng.random(n) < 0.5, 0.5, 6), n), 1) + 0.1
    start[:40], end[:40] = end[40:80] + (0.0 if fixed else 1.0), end[40:80] + 5  # touching: no overlap
    score = np.round(rng.random(n), 1)
    kept = prop.nms_groups(group, start, end, score, threshold, fixed=fixed)
    assert np.all(np.diff(group[kept]) >= 0)
    for g in range(4):
        members = np.flatnonzero(group == g)
        want = ref.nms(list(zip(score[members], start[members], end[members])), threshold,
                       plus=0.0 if fixed else 1.0)
        np.testing.assert_array_equal(kept[group[kept] == g], members[want])


def test_t_factor_converts_upsampled_indices_to_seconds():
    # 100 original snippets of 16 frames at 25 fps = 64 s; sampled to 50 and upsampled x20 = 1000 indices.
    factor = prop.t_factor(100, 50, upscale=20)
    assert factor * 1000 == pytest.approx(64.0)


@pytest.mark.parametrize("seed", range(4))
def test_video_proposals_match_the_literal_release_procedure(seed):
    rng = np.random.default_rng(seed)
    length, n_cls = 23, 5
    cas = rng.dirichlet(np.ones(n_cls + 1) * 0.3, size=length)[:, :n_cls]
    att = np.clip(np.convolve(rng.random(length), np.ones(3) / 3, mode="same"), 0, 1)
    video_scores = rng.dirichlet(np.ones(n_cls) * 0.5)
    factor = prop.t_factor(57, length)
    label, score, start, end = prop.video_proposals(cas, att, video_scores, factor)
    want = ref.video_proposals(cas, att, video_scores, factor)
    assert sorted(set(label.tolist())) == sorted(want)
    for c, props in want.items():
        got = np.flatnonzero(label == c)
        np.testing.assert_allclose(np.c_[score[got], start[got], end[got]], np.array(props), atol=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_activitynet_proposals_match_acm_nets_literal_procedure(seed):
    """The activitynet13 preset's test procedure against a transcription of ACM-Net's main_act.py,
    on a hand-made video with low attention and CAS values around its 0.005 ... 0.02 thresholds."""
    from ftcl.config import preset
    from ftcl.inference import proposal_config
    rng = np.random.default_rng(seed)
    length, n_cls = 31, 6
    cas = rng.dirichlet(np.ones(n_cls + 1) * 0.2, size=length)[:, :n_cls] * 0.05
    att = np.clip(np.convolve(rng.random(length) * 0.04, np.ones(3) / 3, mode="same"), 0, 1)
    video_scores = rng.dirichlet(np.ones(n_cls) * 0.4)
    factor = prop.t_factor(140, length)
    config = proposal_config(preset("activitynet13"))
    label, score, start, end = prop.video_proposals(cas, att, video_scores, factor, config)
    want = ref.activitynet_video_proposals(cas, att, video_scores, factor)
    assert len(label) > 3 and sorted(set(label.tolist())) == sorted(want)
    for c, props in want.items():
        got = np.flatnonzero(label == c)
        np.testing.assert_allclose(np.c_[score[got], start[got], end[got]], np.array(props), atol=1e-9)
    thumos = prop.video_proposals(cas, att, video_scores, factor)
    assert len(thumos[0]) != len(label) or not np.allclose(thumos[1], score)


def test_video_proposals_predict_the_arg_max_class_when_none_passes():
    cas = np.tile(np.array([0.05, 0.9, 0.05]), (10, 1))
    label, *_ = prop.video_proposals(cas, np.full(10, 0.9), np.array([0.2, 0.24, 0.1]), 0.1)
    assert set(label.tolist()) == {1}


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return str(path)


@pytest.fixture
def small_files(tmp_path):
    gt = {"database": {
        "v1": {"subset": "test", "duration": 30.0, "annotations": [
            {"segment": [1.0, 5.0], "label": "Jump"}, {"segment": [10.0, 12.0], "label": "Run"}]},
        "v2": {"subset": "test", "duration": 20.0, "annotations": [{"segment": [3.0, 9.0], "label": "Jump"}]},
        "v3": {"subset": "validation", "duration": 9.0, "annotations": [{"segment": [0.0, 2.0], "label": "Swim"}]}}}
    pred = {"results": {
        "v1": [{"label": "Jump", "score": 0.9, "segment": [1.0, 5.0]}, {"label": "Run", "score": 0.4, "segment": [0, 3]}],
        "v2": [{"label": "Jump", "score": 0.3, "segment": [3.0, 8.0]}]}}
    return _write(tmp_path / "gt.json", gt), _write(tmp_path / "pred.json", pred), tmp_path


def test_json_round_trip_through_results_file(small_files, tmp_path):
    gt_path, _, _ = small_files
    gt = evaluation.load_ground_truth(gt_path)
    assert gt.classes == ["Jump", "Run", "Swim"] and gt.videos == ["v1", "v2"]
    per_video = {"v1": [("Jump", 0.9, 1.0, 5.0)], "v2": [("Jump", 0.25, 3.5, 9.0)]}
    tool.write_json_atomic(tmp_path / "out.json", evaluation.results_json(per_video))
    pred = evaluation.load_predictions(tmp_path / "out.json", gt)
    np.testing.assert_allclose(pred.score, [0.9, 0.25])
    np.testing.assert_allclose(np.c_[pred.start, pred.end], [[1.0, 5.0], [3.5, 9.0]])
    assert [gt.classes[c] for c in pred.label] == ["Jump", "Jump"]
    assert list(tmp_path.glob(".out.json.*")) == []


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "evaluation", *args], capture_output=True, text=True)


def test_cli_prints_a_table_and_json(small_files):
    gt_path, pred_path, _ = small_files
    table = _cli(gt_path, pred_path, "--per-class")
    assert table.returncode == 0, table.stderr
    assert "avg 0.1:0.7" in table.stdout and "| Jump" in table.stdout
    out = _cli(gt_path, pred_path, "--json", "--tiou", "0.5,0.7")
    assert out.returncode == 0
    result = json.loads(out.stdout)
    assert result["tiou"] == [0.5, 0.7]
    # Jump: hit (tIoU 1) then hit (5/6): AP 1 at both; Run: a miss -> AP 0.
    assert result["per_class"] == {"Jump": [1.0, 1.0], "Run": [0.0, 0.0]}
    assert result["mAP"] == [0.5, 0.5]


@pytest.mark.parametrize("mutate,message", [
    (lambda p: p["results"]["v1"].append({"label": "Fly", "score": 1, "segment": [0, 1]}), "'Fly'"),
    (lambda p: p["results"]["v2"].append({"label": "Jump", "score": 1, "segment": [5, 1]}), "end >= start"),
    (lambda p: p["results"]["v2"].append({"label": "Jump", "segment": [1, 5]}), "numeric 'score'"),
    (lambda p: p.pop("results"), "no 'results'"),
])
def test_cli_rejects_bad_predictions_with_one_line(small_files, mutate, message):
    gt_path, pred_path, tmp_path = small_files
    pred = json.loads(open(pred_path).read())
    mutate(pred)
    out = _cli(gt_path, _write(tmp_path / "bad.json", pred))
    assert out.returncode == 2
    assert message in out.stderr and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def test_predictions_outside_the_subset_are_false_positives_and_noted(small_files):
    gt_path, pred_path, tmp_path = small_files
    pred = json.loads(open(pred_path).read())
    pred["results"]["v3"] = [{"label": "Jump", "score": 0.95, "segment": [0.0, 2.0]}]  # a validation video
    pred["results"]["v9"] = [{"label": "Run", "score": 0.1, "segment": [0, 1]}] * 2  # in no subset
    pred["results"]["v8"] = []
    out = _cli(gt_path, _write(tmp_path / "mixed.json", pred), "--json", "--tiou", "0.5")
    assert out.returncode == 0, out.stderr
    # Jump by score: 0.95 (v3, a false positive), 0.9 (hit), 0.3 (hit): precisions 1/2, 2/3 at recalls
    # 1/2, 1; the envelope makes AP 2/3 (1 without v3). Run has no hit.
    result = json.loads(out.stdout)
    assert result["per_class"]["Jump"] == [pytest.approx(2 / 3)] and result["per_class"]["Run"] == [0.0]
    assert out.stderr.splitlines() == [f"note: {tmp_path / 'mixed.json'}: 3 predictions on 2 videos outside subset "
                                       f"'test' (e.g. v3) count as false positives"]
    assert _cli(gt_path, pred_path).stderr == ""


def test_a_reader_that_stops_early_ends_the_tool_without_a_traceback(small_files):
    """`python -m evaluation ... | head -1`: the pipe is closed before the first write here."""
    gt_path, pred_path, _ = small_files
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        out = subprocess.run([sys.executable, "-m", "evaluation", gt_path, pred_path], stdout=write_end,
                             stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write_end)
    assert out.returncode == 1 and out.stderr == ""


def test_cli_rejects_unreadable_files(small_files, tmp_path):
    gt_path, pred_path, _ = small_files
    (tmp_path / "broken.json").write_text("{not json")
    for args, message in [((gt_path, str(tmp_path / "missing.json")), "not found"),
                          ((str(tmp_path / "broken.json"), pred_path), "not valid JSON"),
                          ((gt_path, pred_path, "--subset", "train"), "no video has subset 'train'")]:
        out = _cli(*args)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
    assert _cli(gt_path, pred_path, "--tiou", "0:2").returncode == 2


def test_real_thumos_ground_truth_loads(thumos_annotations):
    gt = evaluation.load_ground_truth(thumos_annotations / "gt.json", "test")
    assert len(gt.classes) == 20 and len(gt.videos) == 212
    assert gt.classes[4] == "CliffDiving" and gt.classes[7] == "Diving"


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


def test_markdown_tables_without_tabulate(monkeypatch):
    import pandas as pd
    frame = pd.DataFrame({"stage": ["a", "b"], "ms": [1.23456, 20.0]})
    with_tabulate = tool.markdown(frame)

    def missing(*args, **kwargs):
        raise ImportError("Missing optional dependency 'tabulate'")

    monkeypatch.setattr(pd.DataFrame, "to_markdown", missing)
    plain = tool.markdown(frame)
    assert plain.splitlines()[0] == "| stage | ms |" and "| a | 1.23 |" in plain and "| b | 20.00 |" in plain
    assert len(plain.splitlines()) == len(with_tabulate.splitlines()) == 4


def _outputs(seed, n_videos=13, n_cls=5):
    """Random per-video outputs of uneven lengths, CAS quantised so that equal scores (ties) occur."""
    rng = np.random.default_rng(seed)
    outputs = {}
    for v in range(n_videos):
        length = int(rng.integers(3, 60))
        cas = np.round(rng.dirichlet(np.ones(n_cls + 1) * 0.3, size=length)[:, :n_cls] * 8) / 8
        att = np.clip(np.convolve(rng.random(length), np.ones(3) / 3, mode="same"), 0, 1)
        outputs[f"video_{v:02d}"] = evaluation.VideoOutput(cas=cas, attention=att,
                                                           video_scores=rng.dirichlet(np.ones(n_cls) * 0.5),
                                                           original_snippets=int(length * rng.uniform(1, 3)))
    return outputs


@pytest.mark.parametrize("workers", [2, 3, 40])
@pytest.mark.parametrize("seed", range(3))
def test_proposals_over_worker_processes_equal_each_videos_own(seed, workers):
    """Spread over processes, every video's proposals (and their order: class, then descending score,
    ties as the release breaks them) are those of video_proposals() on that video alone."""
    from ftcl.evaluation.pipeline import proposals
    outputs = _outputs(seed)
    config = evaluation.ProposalConfig()
    video, label, score, start, end = proposals(outputs, config, workers=workers)
    assert len(video) > 50 and np.all(np.diff(video) >= 0)
    for v, out in enumerate(outputs.values()):
        factor = prop.t_factor(out.original_snippets, len(out.attention))
        want = prop.video_proposals(out.cas, out.attention, out.video_scores, factor, config)
        mine = video == v
        for got, expected in zip((label[mine], score[mine], start[mine], end[mine]), want):
            np.testing.assert_array_equal(got, expected)


def test_proposals_with_workers_on_no_video_or_one():
    from ftcl.evaluation.pipeline import proposals
    one = dict(list(_outputs(0).items())[:1])
    for outputs in ({}, one):
        got = proposals(outputs, evaluation.ProposalConfig(), workers=4)
        want = proposals(outputs, evaluation.ProposalConfig(), workers=1)
        assert all(np.array_equal(a, b) for a, b in zip(got, want))


def _exit_in_a_worker(chunk):
    import os
    if os.getpid() != chunk[1]:
        os._exit(3)
    return chunk[0] * 2


def test_a_broken_worker_pool_falls_back_to_this_process():
    import os

    from ftcl.evaluation import workers
    workers.shutdown()
    chunks = [(k, os.getpid()) for k in range(5)]
    assert workers.map_chunks(_exit_in_a_worker, chunks, 2) == [0, 2, 4, 6, 8]


@pytest.mark.parametrize("value,message", [("two", "whole number"), ("0", "at least 1")])
def test_eval_workers_variable_is_checked(monkeypatch, value, message):
    from ftcl.evaluation import workers
    monkeypatch.setenv("FTCL_EVAL_WORKERS", value)
    with pytest.raises(ValueError, match=f"FTCL_EVAL_WORKERS.*{message}"):
        workers.default_workers()
    monkeypatch.setenv("FTCL_EVAL_WORKERS", "3")
    assert workers.default_workers() == 3
    monkeypatch.delenv("FTCL_EVAL_WORKERS")
    assert 1 <= workers.default_workers() <= workers.MAX_DEFAULT_WORKERS


def _worker_pid(_):
    import os
    return os.getpid()


def test_worker_processes_start_from_the_calling_thread():
    """workers.start forks the whole pool now (training calls it before its epoch-end thread exists);
    the next map runs on those processes."""
    import multiprocessing
    import os

    from ftcl.evaluation import workers
    workers.shutdown()
    workers.start(1)
    assert workers._pool is None
    before = {p.pid for p in multiprocessing.active_children()}
    workers.start(2)
    started = {p.pid for p in multiprocessing.active_children()} - before
    assert len(started) == 2
    assert set(workers.map_chunks(_worker_pid, list(range(6)), 2)) <= started and os.getpid() not in started
    workers.shutdown()
