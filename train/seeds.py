"""Several baselines, one per seed (ACM-Net training is unstable across seeds): RUN/seed-K runs, a
summary table (RUN/seeds.csv, printed as Markdown) and RUN/best.pt pointing at the best seed."""
import copy
import dataclasses
import os
import sys
from pathlib import Path

import pandas as pd

from ftcl.tool import atomic_write, markdown
from ftcl.checkpoint import CheckpointError
from ftcl.train.launch import shared_dataset, train_one
from ftcl.train.loggers import require_loggers
from ftcl.train.loop import Trainer, resumed_config, stored_config, with_resume_flags
from ftcl.train.rundir import RunDirectory


def _seed_row(seed, trainer):
    best = trainer.best_eval or {}
    # Epochs the run sat at chance (metrics.csv's plateau column): a seed that never left it scores ~0.
    plateau = sum(int(row.get("plateau", 0)) for row in trainer.rows)
    row = {"seed": seed, "best epoch": best.get("epoch"), "plateau epochs": plateau}
    for t, m in zip(best.get("tiou", []), best.get("mAP", [])):
        row[f"mAP@{t:.2f}"] = 100 * m
    for key, value in (best.get("average") or {}).items():
        row[f"avg {key}"] = 100 * value
    return row


def summary_frame(rows):
    """Per-seed rows plus the mean and the (sample) standard deviation of every mAP column."""
    frame = pd.DataFrame(rows)
    numeric = frame.drop(columns=["seed", "best epoch", "plateau epochs"])
    stats = pd.DataFrame([{"seed": "mean", **numeric.mean().to_dict()}, {"seed": "std", **numeric.std(ddof=1).to_dict()}])
    frame = frame.astype({"seed": str, "best epoch": "Int64", "plateau epochs": "Int64"})
    return pd.concat([frame, stats], ignore_index=True)


def _point_best(run_dir, seed_dir):
    """RUN/best.pt -> seed-K/best.pt (a relative symlink, replaced atomically)."""
    link = run_dir / "best.pt"
    tmp = run_dir / ".best.pt.link"
    tmp.unlink(missing_ok=True)
    os.symlink(Path(seed_dir.name) / "best.pt", tmp)
    os.replace(tmp, link)


def _resume_template(run_dir, options):
    """The Config the seeds of a resumed --seeds run share: that of a seed's last.pt, else (no seed
    finished an epoch) of a seed's config.json; what --resume may change applied."""
    started = sorted(run_dir.glob("seed-*/last.pt"))
    if started:
        return resumed_config(started[0].parent, options.kind, options.changes)
    begun = sorted(run_dir.glob("seed-*/config.json"))
    if not begun:
        raise CheckpointError(f"{run_dir}: no seed-K run to resume; start one with --seeds (no --resume)")
    return with_resume_flags(stored_config(begun[0].parent), options.changes)


def train_seeds(options, run_dir, seeds, device):
    """Train (or resume) one baseline per seed in RUN/seed-K (options: train.launch.RunOptions).
    Returns the Markdown summary."""
    rows, trainers, datasets = [], {}, {}
    require_loggers(options.tensorboard, options.wandb)
    with RunDirectory(run_dir) as held:
        if not options.resume:
            held.claim_new(options.overwrite)
            if held.previous:  # --overwrite of a run: remove it only once a new seed's run can start
                check = Trainer(options.kind, options.config, run_dir, device, progress=False,
                                dataset=shared_dataset(options.config, datasets))
                if options.init:
                    check.init_from(options.init)
                held.replace_previous()
        template = _resume_template(run_dir, options) if options.resume else options.config
        for seed in seeds:
            seed_dir = run_dir / f"seed-{seed}"
            print(f"== seed {seed} -> {seed_dir}", file=sys.stderr)
            if options.resume and (seed_dir / "last.pt").is_file():
                trainer = train_one(options, seed_dir, device, resume=True, datasets=datasets)
            else:
                # --resume of a seed that finished no epoch (or never began) starts it over.
                restart = options.resume and seed_dir.exists()
                if restart:
                    print(f"seed {seed}: no finished epoch to resume; starting it over", file=sys.stderr)
                trainer = train_one(dataclasses.replace(options, overwrite=options.overwrite or restart), seed_dir,
                                    device, seed=seed, resume=False, config=copy.deepcopy(template), datasets=datasets)
            trainers[seed] = trainer
            rows.append(_seed_row(seed, trainer))
        frame = summary_frame(rows)
        with atomic_write(run_dir / "seeds.csv") as f:
            frame.to_csv(f, index=False)
        best_seed = max(trainers, key=lambda s: trainers[s].best)
        _point_best(run_dir, run_dir / f"seed-{best_seed}")
    label = trainers[best_seed].config.selection_average
    return (markdown(frame) + f"\n\nbest seed {best_seed}: avg mAP({label}) {trainers[best_seed].best:.2f}; "
            f"{run_dir / 'best.pt'} -> seed-{best_seed}/best.pt; table: {run_dir / 'seeds.csv'}")
