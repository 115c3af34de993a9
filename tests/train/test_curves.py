"""python -m ftcl.train.curves: the plotted lines are the runs' metrics.csv values; bad input is one line."""
import numpy as np
import pandas as pd
import pytest

from ftcl.train import curves

PNG = b"\x89PNG\r\n\x1a\n"


def _run(directory, losses, maps):
    directory.mkdir(parents=True)
    pd.DataFrame({"epoch": np.arange(1, len(losses) + 1), "loss": losses, "avg0.1:0.7": maps,
                  "cls_mAP": np.linspace(10, 20, len(losses))}).to_csv(directory / "metrics.csv", index=False)
    return directory


def test_each_panel_plots_every_run_as_recorded(tmp_path):
    """Two runs and a --seeds directory (two seeds): one line per run in each panel, holding exactly
    its epochs and values; epochs without an evaluation (NaN mAP) are left out, not drawn as 0."""
    a = _run(tmp_path / "a", [3.0, 2.5, 2.0, 1.0], [0.0, np.nan, 5.0, 7.5])
    b = _run(tmp_path / "b", [4.0, 1.0], [1.0, 2.0])
    _run(tmp_path / "seeds" / "seed-0", [9.0], [3.0])
    _run(tmp_path / "seeds" / "seed-1", [8.0, 7.0], [np.nan, 4.0])
    runs = curves.run_metrics([a, b, tmp_path / "seeds"])
    assert list(runs) == [str(a), str(b), str(tmp_path / "seeds" / "seed-0"), str(tmp_path / "seeds" / "seed-1")]
    fig = curves.curves_figure(runs, ["loss", "avg0.1:0.7"])
    loss_ax, map_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == list(runs)
    np.testing.assert_array_equal(loss_ax.lines[0].get_xydata(), [[1, 3.0], [2, 2.5], [3, 2.0], [4, 1.0]])
    np.testing.assert_array_equal(map_ax.lines[0].get_xydata(), [[1, 0.0], [3, 5.0], [4, 7.5]])
    np.testing.assert_array_equal(map_ax.lines[3].get_xydata(), [[2, 4.0]])
    assert (loss_ax.get_ylabel(), map_ax.get_ylabel()) == ("loss", "avg0.1:0.7")


def test_epochs_at_chance_are_marked_on_every_panel(tmp_path):
    run = _run(tmp_path / "run", [3.0, 2.9, 2.8, 1.0], [0.0, np.nan, 0.0, 9.0])
    frame = pd.read_csv(run / "metrics.csv")
    frame["plateau"] = [0, 1, 1, 0]
    frame.to_csv(run / "metrics.csv", index=False)
    fig = curves.curves_figure(curves.run_metrics([run]), ["loss", "avg0.1:0.7"])
    loss_ax, map_ax = fig.axes
    line, marks = loss_ax.lines
    assert marks.get_marker() == "x" and marks.get_color() == line.get_color() and "at chance" in marks.get_label()
    np.testing.assert_array_equal(marks.get_xydata(), [[2, 2.9], [3, 2.8]])
    np.testing.assert_array_equal(map_ax.lines[1].get_xydata(), [[3, 0.0]])  # epoch 2 was not evaluated


def test_cli_writes_the_png_and_never_replaces_a_named_file(tmp_path, capsys):
    run = _run(tmp_path / "run", [3.0, 2.0], [1.0, 2.0])
    assert curves.main([str(run)]) == 0
    assert (run / "curves.png").read_bytes().startswith(PNG)
    assert capsys.readouterr().err == f"wrote {run / 'curves.png'}\n"
    other = _run(tmp_path / "other", [1.0], [0.5])
    out = tmp_path / "both.png"
    out.write_bytes(b"mine")
    assert curves.main([str(run), str(other), "--out", str(out)]) == 2
    assert "exists; --out never replaces a file" in capsys.readouterr().err and out.read_bytes() == b"mine"
    assert curves.main([str(run), str(other), "--out", str(out), "--overwrite"]) == 0
    assert out.read_bytes().startswith(PNG)


@pytest.mark.parametrize("case,message", [
    ("not-a-run", "no metrics.csv (not a run directory of python -m ftcl.train)"),
    ("header-only", "no epochs recorded yet"),
    ("unknown-column", "--columns: 'nope' is not a column of"),
])
def test_bad_runs_and_columns_are_one_line_errors(tmp_path, capsys, case, message):
    run = tmp_path / "run"
    args = [str(run)]
    if case == "header-only":
        run.mkdir()
        (run / "metrics.csv").write_text("epoch,loss\n")
    elif case == "unknown-column":
        _run(run, [1.0], [1.0])
        args += ["--columns", "loss,nope"]
    assert curves.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not (run / "curves.png").exists()


def test_several_runs_need_out(tmp_path, capsys):
    runs = [str(_run(tmp_path / name, [1.0], [1.0])) for name in ("a", "b")]
    with pytest.raises(SystemExit) as stop:
        curves.main(runs)
    assert stop.value.code == 2 and "name the PNG with --out" in capsys.readouterr().err
