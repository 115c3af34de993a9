"""bench.recipe: the recipe's phase projection, its arguments and its data set."""
import pandas as pd
import pytest


def _timer(stage_ends=True):
    from bench.recipe import PhaseTimer
    timer = PhaseTimer()
    timer.seconds.update({"data": 2.0, "training steps (baseline)": 3.0, "training steps (ftcl)": 8.0,
                          "evaluation: forward": 1.5, "checkpoints": 4.0, "logs": 2.0})
    timer.counts.update({"data": 2, "training steps (baseline)": 2, "training steps (ftcl)": 1,
                         "evaluation: forward": 4, "checkpoints": 4, "logs": 5})
    timer.starts.update({"training steps (baseline)": [10.0, 14.0, 16.5], "training steps (ftcl)": [20.0]})
    timer.counts["training steps (baseline)"] = 3
    if stage_ends:
        timer.stage_ends.update({"baseline": 19.0, "ftcl": 30.0})
    return timer


def test_recipe_projection_from_epoch_walls():
    """Training steps project per call (x 500 or 25), epoch ends per epoch run (x 525: 4 epochs ran,
    with 9 checkpoint and log writes among them); the total is data plus
    each stage's epoch walls (start to next start, the last to the run's end): the first epoch once,
    the mean of the others for the rest."""
    from bench.recipe import phase_frame
    frame = phase_frame(_timer()).set_index("phase")
    assert frame.loc["training steps (baseline)", "full recipe (s)"] == pytest.approx(1.0 * 500)
    assert frame.loc["training steps (ftcl)", "full recipe (s)"] == pytest.approx(8.0 * 25)
    assert frame.loc["evaluation: forward", "full recipe (s)"] == pytest.approx(1.5 / 4 * 525)
    assert frame.loc["checkpoints", "full recipe (s)"] == pytest.approx(4.0 / 4 * 525)
    assert frame.loc["logs", "full recipe (s)"] == pytest.approx(2.0 / 4 * 525)
    assert frame.loc["epoch wall (baseline)", "calls"] == 3
    assert frame.loc["epoch wall (baseline)", "seconds"] == pytest.approx(9.0)
    assert frame.loc["epoch wall (baseline)", "seconds per call"] == pytest.approx(2.5)  # (19 - 14) / 2
    assert frame.loc["epoch wall (baseline)", "full recipe (s)"] == pytest.approx(4.0 + 2.5 * 499)
    assert frame.loc["epoch wall (ftcl)", "seconds per call"] == pytest.approx(10.0)
    # The first epoch beyond the others (the compilation of a --compile run), counted in its wall.
    one_time = frame.loc["first epoch's one-time costs (baseline: compilation, first reads)"]
    assert one_time["seconds"] == pytest.approx(4.0 - 2.5) and pd.isna(one_time["full recipe (s)"])
    assert not any(name.startswith("first epoch's") and "ftcl" in name for name in frame.index)  # one epoch only
    assert frame.loc["total", "seconds"] == pytest.approx(2.0 + 9.0 + 10.0)
    assert frame.loc["total", "full recipe (s)"] == pytest.approx(2.0 + 4.0 + 2.5 * 499 + 10.0 * 25)
    # Checkpoint writes against the cadence's limit (5 % of the wall): 525 s of the 1503.5 s total.
    from bench.recipe import checkpoint_share_line
    line = checkpoint_share_line(phase_frame(_timer()))
    assert f"525.0 s, {100 * 525 / 1503.5:.1f} % of the full recipe's wall (limit 5 %: NOT met" in line, line
    assert checkpoint_share_line(phase_frame(_timer(stage_ends=False))) is None  # no total: no share


def test_a_recipe_cut_short_reports_whole_epochs_and_no_total():
    from bench.recipe import phase_frame
    frame = phase_frame(_timer(stage_ends=False)).set_index("phase")
    assert frame.loc["epoch wall (baseline)", "calls"] == 2
    assert frame.loc["epoch wall (baseline)", "seconds per call"] == pytest.approx(2.5)  # 16.5 - 14
    assert frame.loc["epoch wall (baseline)", "full recipe (s)"] == pytest.approx(4.0 + 2.5 * 499)
    assert "epoch wall (ftcl)" not in frame.index and "total" not in frame.index


@pytest.mark.parametrize("argv,message", [
    (["--scale", "abc"], "--scale: expected a number in (0, 1], got 'abc'"),
    (["--scale", "0"], "--scale: expected a number in (0, 1], got '0'"),
    (["--scale", "1.5"], "--scale: expected a number in (0, 1], got '1.5'"),
    (["--feature-dim", "0"], "--feature-dim: must be >= 1, got 0"),
    (["--device", "tpu"], "--device must be auto, cpu or cuda, got 'tpu'"),
])
def test_recipe_arguments_are_checked_before_anything_runs(argv, message, capsys, monkeypatch):
    from bench import recipe

    def never(*args, **kwargs):
        raise AssertionError("built data despite a bad argument")

    monkeypatch.setattr(recipe, "recipe_data", never)
    with pytest.raises(SystemExit) as stop:
        recipe.main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and message in err, err


def test_recipe_target_line_only_with_a_total():
    from bench.recipe import phase_frame, target_line
    # 2 + 4 + 2.5 * 499 + 10 * 25 = 1503.5 s projected: 25.06 minutes
    assert target_line(phase_frame(_timer())) == "full recipe projected: 25.1 min (target on one H100: <= 20 min: NOT met)"
    assert target_line(phase_frame(_timer(stage_ends=False))) is None


def test_thumos14_annotations_come_from_the_setting(tmp_path, monkeypatch):
    """FTCL_THUMOS14_ANNOTATIONS names the annotations (unset or empty: none; a directory without
    gt.json: an error, not "none"), and the recipe's data set is named by where its lengths come from."""
    from bench import eval_data, recipe
    named = tmp_path / "thumos14"
    assert eval_data.annotations_dir({}) is None
    assert eval_data.annotations_dir({eval_data.ANNOTATIONS_VARIABLE: ""}) is None
    with pytest.raises(FileNotFoundError, match="no gt.json there"):
        eval_data.annotations_dir({eval_data.ANNOTATIONS_VARIABLE: str(named)})
    named.mkdir()
    (named / "gt.json").write_text("{}")
    assert eval_data.annotations_dir({eval_data.ANNOTATIONS_VARIABLE: str(named)}) == named
    built = []
    monkeypatch.setattr(recipe.synthetic, "generate", lambda target, **kwargs: built.append((target, kwargs)))
    for lengths, name in (([[3, 4], [5]], "thumos14-lengths-8d"), (None, "generated-lengths-8d")):
        monkeypatch.setattr(recipe, "thumos_lengths", lambda: lengths)
        assert recipe.recipe_data(8, root=tmp_path / "data") == tmp_path / "data" / name
        assert built[-1] == (tmp_path / "data" / name, {"feature_dim": 8, "lengths": lengths})


def test_the_recipe_passes_the_training_toggles_to_both_stages(monkeypatch, tmp_path):
    """`python -m bench recipe --compile --precision bf16 --checkpoint-every 25` trains both stages
    with those settings (what bench/gpu_check.sh's recipe-new stage measures)."""
    import argparse

    from bench import recipe
    seen = {}

    def fake_run(data_dir, scale, device, run_root, overlap=True, timer=None, **settings):
        seen.update(settings)
        return timer, recipe.recipe_epochs(scale), {}

    monkeypatch.setattr(recipe, "run_recipe", fake_run)
    monkeypatch.setattr(recipe, "recipe_data", lambda dim: tmp_path / "data")
    monkeypatch.setattr(recipe, "RESULTS_DIR", tmp_path / "results")
    parser = argparse.ArgumentParser()
    recipe.add_arguments(parser)
    args = parser.parse_args(["--scale", "0.01", "--device", "cpu", "--compile", "--precision", "bf16",
                              "--checkpoint-every", "25"])
    recipe.run(args, parser)
    assert seen == {"compile_step": True, "precision": "bf16", "checkpoint_every": 25}
    # recipe-graphs: the steps replayed from CUDA graphs; the mode alone is refused in one line.
    seen.clear()
    recipe.run(parser.parse_args(["--scale", "0.01", "--device", "cpu", "--compile", "--compile-mode",
                                  "reduce-overhead"]), parser)
    assert seen == {"compile_step": True, "compile_mode": "reduce-overhead"}
    with pytest.raises(SystemExit):
        recipe.run(parser.parse_args(["--device", "cpu", "--compile-mode", "reduce-overhead"]), parser)
