"""The release's THUMOS14 recipe end to end, timed phase by phase: `python -m bench recipe [--scale F]`.

Builds a THUMOS14-sized generated set once (200 train + 210 test videos with THUMOS14's real lengths
from ../shared when present, else 200 + 200 synthetic ones; 2048-d on a GPU, 256-d on a CPU unless
--feature-dim), then runs the recipe: the baseline objective (ACM-Net + in-batch FSD / LCS) for
500 x F epochs and FTCL for 25 x F epochs (at least one each), evaluating the test split after every
epoch. Prints the wall time split into data loading, training steps (baseline, FTCL), evaluation and
checkpoint / log writing, and, when scaled, the projection to the full 500 + 25 epochs.
"""
import argparse
import json
import shutil
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch

from bench.common import RESULTS_DIR, machine, on_gpu
from bench.eval_data import SHARED
from ftcl import synthetic
from ftcl.config import Config, preset
from train import loop
from train.loop import Trainer

FULL_EPOCHS = {"baseline": 500, "ftcl": 25}


def thumos_lengths():
    """(train, test) snippet counts of THUMOS14's videos (durations / 0.64 s), or None without ../shared."""
    if not (SHARED / "gt.json").is_file():
        return None
    database = json.loads((SHARED / "gt.json").read_text())["database"]
    seconds = Config().seconds_per_snippet
    return tuple([max(2, int(database[vid]["duration"] / seconds)) for vid in (SHARED / f"split_{name}.txt").read_text().split()]
                 for name in ("train", "test"))


def recipe_data(feature_dim, root=RESULTS_DIR / "recipe-data"):
    """The generated THUMOS14-sized set for this feature dimension (built on first use)."""
    target = Path(root) / f"thumos14-sized-{feature_dim}d"
    if not (target / "gt.json").is_file():
        synthetic.generate(target, feature_dim=feature_dim, lengths=thumos_lengths())
    return target


class PhaseTimer:
    """Wall seconds per phase, the device synchronised at each phase's end."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.counts = defaultdict(int)

    @contextmanager
    def phase(self, name):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.seconds[name] += time.perf_counter() - t0
            self.counts[name] += 1

    def wrap(self, name, fn):
        def timed(*args, **kwargs):
            with self.phase(name):
                return fn(*args, **kwargs)
        return timed


def run_recipe(data_dir, scale, device, run_root, progress=False):
    """Run both stages at `scale` in run_root; returns (PhaseTimer, epochs {stage: n}, best {stage: mAP})."""
    timer = PhaseTimer()
    epochs = {stage: max(1, round(full * scale)) for stage, full in FULL_EPOCHS.items()}
    best = {}
    shutil.rmtree(run_root, ignore_errors=True)
    real_save, real_link, real_metrics = loop.save_checkpoint, loop.link_checkpoint, Trainer._write_metrics
    loop.save_checkpoint = timer.wrap("checkpoints + logs", real_save)
    loop.link_checkpoint = timer.wrap("checkpoints + logs", real_link)
    Trainer._write_metrics = timer.wrap("checkpoints + logs", real_metrics)
    try:
        init = None
        for stage in ("baseline", "ftcl"):
            config = preset("thumos14", data_dir=str(data_dir), epochs=epochs["baseline"], ftcl_epochs=epochs["ftcl"])
            with timer.phase("data"):
                trainer = Trainer(stage, config, run_root / stage, device, progress=progress)
            if init is not None:
                trainer.init_from(init)
            trainer.train_epoch = timer.wrap(f"training steps ({stage})", trainer.train_epoch)
            trainer.evaluate = timer.wrap("evaluation", trainer.evaluate)
            trainer.run()
            best[stage] = trainer.best
            init = run_root / stage / "best.pt"
    finally:
        loop.save_checkpoint, loop.link_checkpoint, Trainer._write_metrics = real_save, real_link, real_metrics
    return timer, epochs, best


def phase_frame(timer, epochs):
    """Measured seconds per phase, per call, and projected to the full 500 + 25 epochs."""
    rows = []
    for name, seconds in timer.seconds.items():
        count = timer.counts[name]
        if name.startswith("training steps"):
            stage = name[name.index("(") + 1:-1]
            full = seconds / epochs[stage] * FULL_EPOCHS[stage]
        elif name == "data":
            full = seconds
        else:  # evaluation and checkpoints happen once per epoch of either stage
            full = seconds / count * sum(FULL_EPOCHS.values())
        rows.append({"phase": name, "calls": count, "seconds": seconds, "seconds per call": seconds / count,
                     "full recipe (s)": full})
    frame = pd.DataFrame(rows)
    total = {"phase": "total", "calls": None, "seconds": frame["seconds"].sum(), "seconds per call": None,
             "full recipe (s)": frame["full recipe (s)"].sum()}
    return pd.concat([frame, pd.DataFrame([total])], ignore_index=True)


def main(argv=None):
    from evaluation import markdown
    parser = argparse.ArgumentParser(prog="python -m bench recipe", description=__doc__.split("\n\n")[1])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the 500 + 25 epochs to run")
    parser.add_argument("--feature-dim", type=int, help="default: 2048 with a GPU, 256 without")
    parser.add_argument("--device", default="cuda" if on_gpu() else "cpu")
    args = parser.parse_args(argv)
    dim = args.feature_dim or (2048 if args.device == "cuda" else 256)
    info = machine()
    with PhaseTimer().phase("build"):
        data_dir = recipe_data(dim)
    timer, epochs, best = run_recipe(data_dir, args.scale, torch.device(args.device), RESULTS_DIR / "recipe-runs")
    frame = phase_frame(timer, epochs)
    print(f"# recipe: {info['device']}, torch {info['torch']}, commit {info['commit']}, {info['date']}; "
          f"{data_dir.name}; {epochs['baseline']} baseline + {epochs['ftcl']} FTCL epochs (scale {args.scale:g})\n")
    print(markdown(frame, floatfmt=".1f"))
    print(f"\nbest test avg mAP(0.1:0.7): baseline {best['baseline']:.2f}, FTCL {best['ftcl']:.2f} "
          f"(generated data: a timing run, not a result)")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    frame.assign(**info, scale=args.scale, feature_dim=dim).to_csv(
        RESULTS_DIR / "recipe.csv", mode="a", index=False, header=not (RESULTS_DIR / "recipe.csv").exists())
    return 0


if __name__ == "__main__":
    sys.exit(main())
