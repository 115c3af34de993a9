"""python -m train --seeds: one baseline per seed, a summary, the best linked."""
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
