"""python -m ftcl.evaluation: tables, JSON, one-line errors."""
import json
import os
import subprocess
import sys

import pytest

from tests.helpers import write_json


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "evaluation", *args], capture_output=True, text=True)


@pytest.mark.parametrize("tiou", ["nan,0.5", "0.1:0.9:1e-9", "0.1:inf:0.1", "0:0.5:0.1", "0.5,2"])
def test_evaluation_cli_validates_tiou(tmp_path, tiou):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"database": {"v": {"subset": "test", "annotations": [
        {"label": "A", "segment": [0, 1]}]}}}))
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({"results": {"v": [{"label": "A", "score": 1, "segment": [0, 1]}]}}))
    out = subprocess.run([sys.executable, "-m", "evaluation", str(gt), str(pred), "--tiou", tiou],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "--tiou" in out.stderr, out.stderr


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
    out = _cli(gt_path, write_json(tmp_path / "bad.json", pred))
    assert out.returncode == 2
    assert message in out.stderr and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def test_predictions_outside_the_subset_are_false_positives_and_noted(small_files):
    gt_path, pred_path, tmp_path = small_files
    pred = json.loads(open(pred_path).read())
    pred["results"]["v3"] = [{"label": "Jump", "score": 0.95, "segment": [0.0, 2.0]}]  # a validation video
    pred["results"]["v9"] = [{"label": "Run", "score": 0.1, "segment": [0, 1]}] * 2  # in no subset
    pred["results"]["v8"] = []
    out = _cli(gt_path, write_json(tmp_path / "mixed.json", pred), "--json", "--tiou", "0.5")
    assert out.returncode == 0, out.stderr
    # Jump by score: 0.95 (v3, a false positive), 0.9 (hit), 0.3 (hit): precisions 1/2, 2/3 at recalls
    # 1/2, 1; the envelope makes AP 2/3 (1 without v3). Run has no hit.
    result = json.loads(out.stdout)
    assert result["per_class"]["Jump"] == [pytest.approx(2 / 3)] and result["per_class"]["Run"] == [0.0]
    assert out.stderr.splitlines() == [f"note: {tmp_path / 'mixed.json'}: 3 predictions on 2 videos outside subset "
                                       f"'test' (e.g. v3) count as false positives"]
    assert _cli(gt_path, pred_path).stderr == ""


def test_a_reader_that_stops_early_ends_the_tool_without_a_traceback(small_files):
    """`python -m ftcl.evaluation ... | head -1`: the pipe is closed before the first write here."""
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
