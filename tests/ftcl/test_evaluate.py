"""ftcl.evaluate and ftcl.inference: evaluating a checkpoint, saved outputs, plots, refused input."""
import json
import shutil

import numpy as np
import pytest
import torch

from ftcl import evaluate as ftcl_evaluate
from ftcl import inference, synthetic
from ftcl.config import preset
from ftcl.data import load_dataset
from ftcl.model import ACMNet
from ftcl.train import cli as train_cli
from tests.helpers import (
    TRAIN,
    HostReads,
    copy_of,
    one_line_error,
    tiny_config,
    train_run,
)


def test_evaluating_on_other_data_names_both_sides(data, baseline_run, tmp_path, capsys):
    other = synthetic.generate(tmp_path / "other", seed=1, num_classes=4, train_videos=8, test_videos=8,
                               feature_dim=8, min_length=16, max_length=20)
    assert ftcl_evaluate.main([str(baseline_run / "best.pt"), "--data-dir", str(other)]) == 2
    one_line_error(capsys, "Action04", "of 8-d", "trained on 3 classes (Action01, Action02, Action03) of 8-d")
    wide = synthetic.generate(tmp_path / "wide", seed=4, num_classes=3, train_videos=4, test_videos=3,
                              feature_dim=12, min_length=16, max_length=20)
    assert ftcl_evaluate.main([str(baseline_run / "best.pt"), "--data-dir", str(wide)]) == 2
    one_line_error(capsys, "of 12-d features", "of 8-d features")


def test_broken_outputs_files(data, baseline_run, tmp_path, capsys):
    good = tmp_path / "out.npz"
    assert ftcl_evaluate.main([str(baseline_run / "best.pt"), "--json", "--save-outputs", str(good)]) == 0
    capsys.readouterr()
    raw = good.read_bytes()
    for name, content in (("empty.npz", b""), ("truncated.npz", raw[: len(raw) // 2]), ("text.npz", b"hello")):
        (tmp_path / name).write_bytes(content)
        assert ftcl_evaluate.main(["--from-outputs", str(tmp_path / name)]) == 2
        one_line_error(capsys, name, "not an outputs file")
    assert ftcl_evaluate.main(["--from-outputs", str(tmp_path / "none.npz")]) == 2
    one_line_error(capsys, "none.npz: outputs file not found")


def test_saved_outputs_of_other_classes_are_refused(data, baseline_run, tiny_data, tmp_path, capsys):
    """Outputs of a 3-class set scored against a 4-class ground truth: one line naming both, not an
    IndexError from inside the proposals."""
    saved = tmp_path / "out.npz"
    assert ftcl_evaluate.main([str(baseline_run / "best.pt"), "--json", "--save-outputs", str(saved)]) == 0
    capsys.readouterr()
    assert ftcl_evaluate.main(["--from-outputs", str(saved), "--data-dir", str(tiny_data), "--json"]) == 2
    one_line_error(capsys, "out.npz: outputs of 3 classes", "gt.json has 4 classes")


def test_named_outputs_are_never_replaced_unasked(baseline_run, tmp_path, capsys):
    out = tmp_path / "mine.json"
    out.write_text("precious")
    assert ftcl_evaluate.main([str(baseline_run / "best.pt"), "--out", str(out)]) == 2
    one_line_error(capsys, "mine.json: exists", "--overwrite")
    assert out.read_text() == "precious"
    assert ftcl_evaluate.main([str(baseline_run / "best.pt"), "--out", str(out), "--overwrite"]) == 0
    err = capsys.readouterr().err
    assert f"wrote {out}" in err and json.loads(out.read_text())["results"]


def test_plot_arguments_are_checked_before_the_evaluation(baseline_run, tmp_path, capsys):
    taken = tmp_path / "plots"
    taken.write_text("a file")
    results = baseline_run / "best.pt.results.json"
    before = results.read_bytes() if results.exists() else None
    assert ftcl_evaluate.main([str(baseline_run / "best.pt"), "--plot", str(taken)]) == 2
    one_line_error(capsys, f"{taken}: exists and is not a directory")
    with pytest.raises(SystemExit) as stop:
        ftcl_evaluate.main([str(baseline_run / "best.pt"), "--plot-videos", "video_test_0000001"])
    assert stop.value.code == 2
    one_line_error(capsys, "--plot-videos", "give --plot too")
    assert (results.read_bytes() if results.exists() else None) == before  # nothing written by either


def test_scoring_saved_outputs_reads_no_feature_file(data, baseline_run, tmp_path, capsys):
    root = copy_of(data, tmp_path)
    saved = tmp_path / "out.npz"
    assert ftcl_evaluate.main([str(baseline_run / "best.pt"), "--data-dir", str(root), "--json",
                               "--save-outputs", str(saved)]) == 0
    want = json.loads(capsys.readouterr().out)
    shutil.rmtree(root / "test")
    assert ftcl_evaluate.main(["--from-outputs", str(saved), "--data-dir", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == want


def test_evaluate_batch_size_is_checked_in_one_line(baseline_run, capsys):
    with pytest.raises(SystemExit) as exit_info:
        ftcl_evaluate.main([str(baseline_run / "best.pt"), "--batch-size", "0"])
    assert exit_info.value.code == 2
    one_line_error(capsys, "argument --batch-size: must be >= 1, got 0")


def test_a_run_directory_given_as_a_checkpoint_names_its_checkpoints(data, baseline_run, tmp_path, capsys):
    assert ftcl_evaluate.main([str(baseline_run)]) == 2
    one_line_error(capsys, f"{baseline_run}: a directory, not a checkpoint file",
                    f"{baseline_run / 'best.pt'} and {baseline_run / 'last.pt'}")
    assert train_cli.main(["ftcl", "--data-dir", str(data), "--run-dir", str(tmp_path / "ftcl"),
                           "--init", str(baseline_run), *TRAIN]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("error: ") and "a directory, not a checkpoint file" in err


def test_time_scale_settings_reach_the_proposals():
    """Config.proposals' fps and frames_per_snippet set the seconds of every proposal (not literal 16 / 25);
    the true-IoU NMS keeps the same proposals at any time scale (the release's "+1" does not)."""
    from ftcl.evaluation import ProposalConfig, VideoOutput, localize
    from ftcl.inference import proposal_config
    rng = np.random.default_rng(0)
    out = {"v": VideoOutput(cas=rng.random((30, 3)) * 0.5, attention=rng.random(30), video_scores=np.array([0.9, 0.05, 0.05]),
                            original_snippets=60)}
    base = localize(out, ["a", "b", "c"], proposal_config(preset("thumos14"), fixed_nms=True))["v"]
    fast = localize(out, ["a", "b", "c"], proposal_config(preset("thumos14", proposals=ProposalConfig(fps=50)), fixed_nms=True))["v"]
    long = localize(out, ["a", "b", "c"], proposal_config(preset("thumos14", proposals=ProposalConfig(frames_per_snippet=32)),
                                                              fixed_nms=True))["v"]
    assert base and len(base) == len(fast) == len(long)
    for (_, _, s, e), (_, _, s2, e2), (_, _, s3, e3) in zip(base, fast, long):
        assert (s2, e2) == pytest.approx((s / 2, e / 2)) and (s3, e3) == pytest.approx((2 * s, 2 * e))


def test_evaluate_cli_outputs_round_trip_and_plots(tiny_data, tmp_path, capsys):
    train_run("baseline", tiny_data, tmp_path / "run", epochs=1)
    ckpt = tmp_path / "run" / "last.pt"
    assert ftcl_evaluate.main([str(ckpt), "--json", "--save-outputs", str(tmp_path / "out.npz"),
                               "--plot", str(tmp_path / "plots")]) == 0
    captured = capsys.readouterr()
    direct = json.loads(captured.out)
    assert (tmp_path / "run" / "last.pt.results.json").is_file()
    plotted = sorted(p.stem for p in (tmp_path / "plots").glob("*.png"))
    assert len(plotted) == 4
    # One line per file written: results, outputs, each plot.
    for path in [tmp_path / "run" / "last.pt.results.json", tmp_path / "out.npz",
                 *sorted((tmp_path / "plots").glob("*.png"))]:
        assert f"wrote {path}" in captured.err
    # Default: the first two test videos and the two with the lowest recall@0.5.
    ids = (tiny_data / "split_test.txt").read_text().split()
    assert set(ids[:2]) <= set(plotted)
    result = inference.load_outputs(tmp_path / "out.npz")
    picked = ids[4:6]
    assert ftcl_evaluate.main([str(ckpt), "--json", "--plot", str(tmp_path / "picked"), "--plot-videos",
                               ",".join(picked)]) == 0
    capsys.readouterr()
    assert sorted(p.stem for p in (tmp_path / "picked").glob("*.png")) == sorted(picked)
    assert ftcl_evaluate.main([str(ckpt), "--plot", str(tmp_path / "bad"), "--plot-videos", "nope"]) == 2
    assert "--plot-videos: nope is not a test video" in capsys.readouterr().err
    assert result[1] == ids
    assert ftcl_evaluate.main(["--from-outputs", str(tmp_path / "out.npz"), "--json",
                               "--out", str(tmp_path / "again.json")]) == 0
    assert json.loads(capsys.readouterr().out) == direct
    assert json.loads((tmp_path / "again.json").read_text()) == json.loads((tmp_path / "run" / "last.pt.results.json").read_text())
    assert ftcl_evaluate.main([str(ckpt), "--per-class"]) == 0
    table = capsys.readouterr().out
    assert "| mAP" in table and "Action01" in table and "classification mAP" in table
    assert ftcl_evaluate.main([str(tmp_path / "none.pt")]) == 2
    assert "none.pt: checkpoint not found" in capsys.readouterr().err


def test_release_checkpoint_evaluates_exactly_as_the_same_weights_saved_by_us(tiny_data, tmp_path, capsys):
    """A release .pth ({"epoch", "model_state_dict"}) runs through ftcl.evaluate with --data-dir (the
    preset's config) and gives exactly the mAP of the same weights in our checkpoint."""
    run = tmp_path / "run"
    assert train_cli.main(["baseline", "--data-dir", str(tiny_data), "--run-dir", str(run), "--epochs", "1",
                           "--batch-size", "4", "--no-progress"]) == 0
    ours = torch.load(run / "best.pt", weights_only=True)
    torch.save({"epoch": 0, "model_state_dict": ours["model_state_dict"]}, tmp_path / "THUMOS_best.pth")
    capsys.readouterr()
    assert ftcl_evaluate.main([str(run / "best.pt"), "--json"]) == 0
    want = json.loads(capsys.readouterr().out)
    assert ftcl_evaluate.main([str(tmp_path / "THUMOS_best.pth"), "--data-dir", str(tiny_data), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got == want and max(got["mAP"]) > 0
    assert ftcl_evaluate.main([str(tmp_path / "THUMOS_best.pth")]) == 2
    assert "names no classes; give the --data-dir" in capsys.readouterr().err


def test_evaluation_reads_the_model_outputs_back_in_one_copy(tiny_data, monkeypatch):
    """Every batch's forward is queued before anything is read back; the only other reads are of the
    lengths, which live on the CPU."""
    dataset = load_dataset(tiny_data)
    config = tiny_config(tiny_data, classes=list(dataset.classes), num_classes=len(dataset.classes), feature_dim=16)
    model = ACMNet.from_config(config)
    batches = inference.eval_batches(dataset.test, config, "cpu", batch_size=3)
    want = inference.model_outputs(model, dataset.test, config, "cpu", batch_size=1)
    reads = HostReads(monkeypatch)
    with reads:
        got = inference.model_outputs(model, dataset.test, config, "cpu", batches=batches)
    assert all(batch.lengths.device.type == "cpu" for batch in batches) and len(batches) == 3
    copy_back = [line for line in reads.lines if "torch.cat(flat)" in line]
    assert len(copy_back) == 2, reads.where  # .cpu() then .numpy() of the one flat tensor
    assert all("lengths" in line for line in reads.lines if "torch.cat(flat)" not in line), reads.where
    assert list(got) == list(want)
    for vid in want:
        for field in ("cas", "attention", "video_scores"):
            np.testing.assert_allclose(getattr(got[vid], field), getattr(want[vid], field), rtol=1e-5, atol=1e-6)
