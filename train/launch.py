"""Starting or continuing one run in its directory (held, checked, logged), for the command line and
for `--seeds`; nothing here reads command-line flags."""
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ftcl.checkpoint import CheckpointError
from ftcl.config import Config
from ftcl.data import load_dataset
from ftcl.train.loggers import EpochLoggers, require_loggers
from ftcl.train.loop import Trainer, resumed_config
from ftcl.train.rundir import RunDirectory


@dataclass
class RunOptions:
    """How to start or continue runs, apart from their Config.

    kind: "baseline" or "ftcl"; config: a new run's settings (None when resuming); resume: continue
    RUN/last.pt; overwrite: replace a run already in the directory (its files go only once the new
    run is ready to train); init: checkpoint to start from; changes: {Config field: value} that a
    resumed run takes (the fields whose flags --resume accepts: ftcl.config.option's on_resume);
    progress: progress bars; tensorboard, wandb: the optional loggers."""

    kind: str
    config: Config | None = None
    resume: bool = False
    overwrite: bool = False
    init: str | None = None
    changes: dict = field(default_factory=dict)
    progress: bool = True
    tensorboard: bool = False
    wandb: bool = False


def shared_dataset(config, datasets):
    """The Dataset of config's data directory from `datasets` ({(directory, seconds per snippet):
    Dataset}), loaded into it the first time: the runs of one `--seeds` call read and check every
    feature file once, not once per seed. None when datasets is None (the Trainer loads it)."""
    if datasets is None:
        return None
    key = (str(Path(config.data_dir).resolve()), config.seconds_per_snippet)
    if key not in datasets:
        datasets[key] = load_dataset(*key)
    return datasets[key]


def seeds_flag(seeds):
    """The --seeds value that names these seeds: a count for 0 ... n-1, else a comma list."""
    return str(len(seeds)) if list(seeds) == list(range(len(seeds))) else ",".join(map(str, seeds))


def refuse_unresumable(run_dir):
    """A one-line CheckpointError when RUN has no last.pt for a plain --resume, saying what to do."""
    run_dir = Path(run_dir)
    if (run_dir / "last.pt").exists():
        return
    seeds = sorted(int(p.name.removeprefix("seed-")) for p in run_dir.glob("seed-*")
                   if p.is_dir() and p.name.removeprefix("seed-").isdigit())
    if seeds:
        raise CheckpointError(f"{run_dir}: holds the runs of --seeds (seed-{', seed-'.join(map(str, seeds))}), not one "
                              f"run; resume them with --seeds {seeds_flag(seeds)} --resume")
    if (run_dir / "config.json").is_file():
        raise CheckpointError(f"{run_dir}: no epoch of this run finished, so there is nothing to resume; "
                              f"start it again with --overwrite")


def train_one(options, run_dir, device, seed=None, resume=None, config=None, datasets=None):
    """Train one run in run_dir: resume it (resume=True, default options.resume), or start it from
    `config` (default options.config), with `seed` when given; `datasets` as in shared_dataset.
    Returns the Trainer."""
    resume = options.resume if resume is None else resume
    require_loggers(options.tensorboard, options.wandb)
    with RunDirectory(run_dir) as held:
        if resume:
            refuse_unresumable(run_dir)
            config = resumed_config(run_dir, options.kind, options.changes)
        else:
            held.claim_new(options.overwrite)
            config = config or options.config
            if seed is not None:
                config.seed = seed
        trainer = Trainer(options.kind, config, run_dir, device, progress=options.progress,
                          dataset=shared_dataset(config, datasets))
        if resume:
            trainer.resume()
        else:
            if options.init:
                print(f"init: {trainer.init_from(options.init)}", file=sys.stderr)
            held.replace_previous()  # --overwrite: the old run goes only now that the new one can start
        trainer.loggers = EpochLoggers(Path(run_dir), tensorboard=options.tensorboard, wandb=options.wandb,
                                       name=Path(run_dir).name, config=config.to_dict(), resume_epoch=trainer.epoch)
        try:
            trainer.run()
        finally:
            trainer.loggers.close()
    return trainer
