"""evaluation.io: ground-truth and results files."""
import numpy as np

from ftcl import evaluation, tool


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


def test_real_thumos_ground_truth_loads(thumos_annotations):
    gt = evaluation.load_ground_truth(thumos_annotations / "gt.json", "test")
    assert len(gt.classes) == 20 and len(gt.videos) == 212
    assert gt.classes[4] == "CliffDiving" and gt.classes[7] == "Diving"
