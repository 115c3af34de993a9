"""python -m ftcl.train --seeds: one baseline per seed, a summary, the best linked."""
import json

import numpy as np
import pandas as pd
import pytest

from ftcl.train import cli as train_cli


def test_seeds_train_one_baseline_each_and_point_best_at_the_best(tiny_data, tmp_path, capsys):
    run = tmp_path / "seeds"
    code = train_cli.main(["baseline", "--data-dir", str(tiny_data), "--run-dir", str(run), "--seeds", "2",
                           "--epochs", "1", "--sample-snippets", "32", "--batch-size", "4", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    frame = pd.read_csv(run / "seeds.csv", dtype={"seed": str})
    assert frame["seed"].tolist() == ["0", "1", "mean", "std"]
    per_seed = frame.iloc[:2]["avg 0.1:0.7"].astype(float)
    assert frame.iloc[2]["avg 0.1:0.7"] == pytest.approx(per_seed.mean())
    assert frame.iloc[3]["avg 0.1:0.7"] == pytest.approx(per_seed.std(ddof=1))
    best_seed = int(np.argmax(per_seed.to_numpy()))
    assert (run / "best.pt").is_symlink() and (run / "best.pt").resolve() == (run / f"seed-{best_seed}" / "best.pt").resolve()
    assert "| mean" in printed and f"best seed {best_seed}" in printed
    for seed in (0, 1):
        assert json.loads((run / f"seed-{seed}" / "config.json").read_text())["seed"] == seed
        plateau = pd.read_csv(run / f"seed-{seed}" / "metrics.csv")["plateau"].sum()
        assert frame.iloc[seed]["plateau epochs"] == plateau
    code = train_cli.main(["ftcl", "--data-dir", str(tiny_data), "--run-dir", str(tmp_path / "ftcl"), "--init",
                           str(run / "best.pt"), "--epochs", "1", "--sample-snippets", "32", "--batch-size", "4",
                           "--no-progress"])
    assert code == 0
    assert "baseline run, epoch 1, test avg mAP(0.1:0.5)" in capsys.readouterr().err


def test_seeds_read_the_data_once_per_call(tiny_data, tmp_path, monkeypatch):
    """Loading checks every feature file (1.1 GB on THUMOS14): once per call, not once per seed (and
    once more for --overwrite's check)."""
    import ftcl.train.launch
    import ftcl.train.loop
    from ftcl.data import load_dataset
    loads = []

    def counted(*args, **kwargs):
        loads.append(args)
        return load_dataset(*args, **kwargs)

    monkeypatch.setattr(ftcl.train.launch, "load_dataset", counted)
    monkeypatch.setattr(ftcl.train.loop, "load_dataset", counted)
    common = ["--run-dir", str(tmp_path / "seeds"), "--seeds", "0,3", "--no-progress"]
    start = ["--data-dir", str(tiny_data), "--epochs", "1", "--sample-snippets", "32", "--batch-size", "4"]
    for argv in (start, [*start, "--overwrite"], ["--resume", "--epochs", "2"]):
        loads.clear()
        assert train_cli.main(["baseline", *argv, *common]) == 0
        assert len(loads) == 1, argv
    for seed in (0, 3):
        assert len(pd.read_csv(tmp_path / "seeds" / f"seed-{seed}" / "metrics.csv")) == 2


@pytest.mark.parametrize("unfinished", [[1], [0, 1]], ids=["one-seed", "every-seed"])
def test_resume_starts_over_a_seed_that_finished_no_epoch(data, tmp_path, capsys, unfinished):
    """A seed killed in its first epoch leaves only config.json: --seeds --resume starts that seed over
    (the others go on), even when no seed has a checkpoint."""
    from tests.helpers import TRAIN
    run = tmp_path / "seeds"
    assert train_cli.main(["baseline", "--data-dir", str(data), "--run-dir", str(run), "--seeds", "2", *TRAIN]) == 0
    kept = {seed: (run / f"seed-{seed}" / "last.pt").read_bytes() for seed in (0, 1) if seed not in unfinished}
    for seed in unfinished:
        for path in (run / f"seed-{seed}").iterdir():
            if path.name != "config.json":
                path.unlink()
    capsys.readouterr()
    assert train_cli.main(["baseline", "--run-dir", str(run), "--seeds", "2", "--resume", "--epochs", "2",
                           "--no-progress"]) == 0
    err = capsys.readouterr().err
    for seed in (0, 1):
        assert (f"seed {seed}: no finished epoch to resume; starting it over" in err) == (seed in unfinished)
        assert pd.read_csv(run / f"seed-{seed}" / "metrics.csv")["epoch"].tolist() == [1, 2]
        assert json.loads((run / f"seed-{seed}" / "config.json").read_text())["seed"] == seed
    for seed, before in kept.items():
        assert (run / f"seed-{seed}" / "last.pt").read_bytes() != before  # went on to epoch 2


def test_plain_resume_of_unresumable_directories_says_what_to_do(data, tmp_path, capsys):
    from tests.helpers import TRAIN, one_line_error
    run = tmp_path / "seeds"
    assert train_cli.main(["baseline", "--data-dir", str(data), "--run-dir", str(run), "--seeds", "0,2", *TRAIN]) == 0
    capsys.readouterr()
    assert train_cli.main(["baseline", "--run-dir", str(run), "--resume", "--no-progress"]) == 2
    one_line_error(capsys, str(run), "seed-0, seed-2", "--seeds 0,2 --resume")
    unfinished = run / "seed-2"
    for path in unfinished.iterdir():
        if path.name != "config.json":
            path.unlink()
    assert train_cli.main(["baseline", "--run-dir", str(unfinished), "--resume", "--no-progress"]) == 2
    one_line_error(capsys, str(unfinished), "no epoch of this run finished", "--overwrite")
    assert sorted(p.name for p in unfinished.iterdir()) == [".lock", "config.json"]


@pytest.mark.parametrize("seeds,finished", [([], False), ([], True), (["--seeds", "3"], False)],
                         ids=["before-an-epoch", "after-an-epoch", "seeds"])
def test_an_interrupt_says_how_to_go_on(data, tmp_path, capsys, monkeypatch, seeds, finished):
    import ftcl.train.seeds
    run = tmp_path / "run"
    run.mkdir()
    if finished:
        (run / "last.pt").write_bytes(b"")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_cli, "train_one", interrupted)
    monkeypatch.setattr(ftcl.train.seeds, "train_one", interrupted)
    assert train_cli.main(["baseline", "--data-dir", str(data), "--run-dir", str(run), *seeds, "--no-progress"]) == 130
    lines = capsys.readouterr().err.splitlines()
    assert lines[:-1] == ([f"== seed 0 -> {run / 'seed-0'}"] if seeds else []) and "Traceback" not in lines[-1]
    err = lines[-1]
    assert err.startswith("interrupted"), err
    if seeds:
        assert "--seeds 3 --resume" in err and "one with none starts over" in err
    elif finished:
        assert f"{run / 'last.pt'} holds the last finished epoch" in err and "--resume" in err
    else:
        assert "last.pt" not in err and "nothing to resume" in err and "--overwrite" in err
