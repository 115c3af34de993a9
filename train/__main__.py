"""python -m train {baseline,ftcl} --data-dir DIR --run-dir RUN [options]

baseline: ACM-Net from scratch with the FTCL release's baseline objective (ACM-Net loss + in-batch
          FSD / LCS terms; --objective acm for ACM-Net alone), 500 epochs, Adam 1e-4, batch 16.
ftcl:     fine-tune a baseline checkpoint (--init; ours or the release's .pth) with the FSD and LCS
          contrastive terms for 25 epochs on the label-matched pair set (batch 16 pairs).
Writes RUN/config.json, RUN/metrics.csv, RUN/last.pt (every epoch) and RUN/best.pt (best test
Avg mAP); --resume continues exactly from RUN/last.pt; --seeds trains one run per seed.
"""
import argparse
import math
import sys
from pathlib import Path

from ftcl import tool
from ftcl.evaluation import EvaluationInputError
from ftcl.evaluation.workers import default_workers
from ftcl.checkpoint import CheckpointError
from ftcl.config import OBJECTIVES, PRESETS
from ftcl.data import DataError, load_dataset
from ftcl.seed import resolve_device
from ftcl.train.loggers import EpochLoggers, LoggerError
from ftcl.train.loop import Trainer, TrainingStopped, config_for_run, resumed_config
from ftcl.train.rundir import RunDirectory, RunDirError

# Options that define a run: given with --resume they would be silently ignored, so they are refused.
RUN_DEFINING = ("preset", "init", "seed", "eval_every", "batch_size", "lr", "weight_decay", "sample_snippets",
                "lcs_gamma", "fsd_gamma", "lcs_weight", "fsd_weight", "lcs_threshold", "lcs_len", "fsd_len", "pairs",
                "objective", "without_fsd", "without_lcs", "overwrite")


def _float(low, low_inclusive):
    """A finite float >= low (or > low)."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < low or (value == low and not low_inclusive):
            raise argparse.ArgumentTypeError(f"must be a finite number {'>=' if low_inclusive else '>'} {low:g}, "
                                             f"got {text}")
        return value
    return parse


def _cosine(text):
    """A cosine similarity threshold in [-1, 1]."""
    value = _float(-1, True)(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in [-1, 1] (a cosine similarity), got {text}")
    return value


def _gamma(text):
    """0 (the hard max) or a finite temperature >= kernels.MIN_GAMMA."""
    from ftcl.kernels.api import MIN_GAMMA
    value = _float(0, True)(text)
    if 0 < value < MIN_GAMMA:
        raise argparse.ArgumentTypeError(f"must be 0 (the hard max) or >= {MIN_GAMMA:g}, got {text}")
    return value


def _seeds(text):
    """'0,1,2,3' -> [0, 1, 2, 3]; '4' -> [0, 1, 2, 3] (a count)."""
    try:
        values = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or a comma list of seeds, got {text!r}") from None
    if len(values) == 1:
        if values[0] < 1:
            raise argparse.ArgumentTypeError(f"a seed count must be >= 1, got {values[0]}")
        return list(range(values[0]))
    if len(set(values)) != len(values) or min(values) < 0 or max(values) > tool.MAX_SEED:
        raise argparse.ArgumentTypeError(f"seeds must be distinct and in [0, {tool.MAX_SEED}], got {text!r}")
    return values


def build_parser():
    parser = tool.parser("python -m train", __doc__)
    parser.add_argument("kind", choices=["baseline", "ftcl"])
    parser.add_argument("--data-dir", help="THUMOS14-format directory (gt.json, split_*.txt, train/, test/)")
    parser.add_argument("--run-dir", required=True, help="where checkpoints and logs go")
    parser.add_argument("--preset", choices=PRESETS, help="hyper-parameters of a data set (default thumos14)")
    parser.add_argument("--init", help="checkpoint to start from (required for ftcl)")
    parser.add_argument("--resume", action="store_true", help="continue from RUN/last.pt exactly")
    parser.add_argument("--overwrite", action="store_true", help="start over in a run directory that holds a run")
    parser.add_argument("--epochs", type=tool.positive_int, help="epochs (default: 500 baseline, 25 ftcl)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--seed", type=tool.seed)
    parser.add_argument("--seeds", type=_seeds, help="one run per seed under RUN/seed-K: a count (4) or a list (0,1,2,3)")
    parser.add_argument("--eval-every", type=tool.positive_int, help="evaluate every N epochs (default 1)")
    parser.add_argument("--batch-size", type=tool.positive_int)
    parser.add_argument("--lr", type=_float(0, False))
    parser.add_argument("--weight-decay", type=_float(0, True))
    parser.add_argument("--sample-snippets", type=tool.positive_int, help="snippets sampled per video (default 750)")
    parser.add_argument("--objective", choices=OBJECTIVES,
                        help="baseline: release (ACM-Net + in-batch FSD/LCS, default) or acm (ACM-Net alone)")
    parser.add_argument("--without-fsd", action="store_true", help="ablation: drop the FSD term")
    parser.add_argument("--without-lcs", action="store_true", help="ablation: drop the LCS term")
    parser.add_argument("--lcs-gamma", type=_gamma, help="smooth LCS temperature (default 0: the hard max)")
    parser.add_argument("--fsd-gamma", type=_gamma, help="FSD smooth-max temperature (default 0.1)")
    parser.add_argument("--lcs-weight", type=_float(0, True), help="lambda_LCS, the LCS contrast's weight (default 0.1)")
    parser.add_argument("--fsd-weight", type=_float(0, True), help="lambda_FSD, the FSD contrast's weight (default 0.8)")
    parser.add_argument("--lcs-threshold", type=_cosine,
                        help="similarity a snippet pair must exceed to extend an LCS (default 0.92; the baseline's "
                             "in-batch LCS compares it with max(0, s - 0.8) x 5 of the cosine s)")
    parser.add_argument("--lcs-len", type=tool.positive_int, help="LCS candidates per video (default 30)")
    parser.add_argument("--fsd-len", type=tool.positive_int,
                        help="FSD action (and background) candidates per video (default 5)")
    parser.add_argument("--pairs", choices=["release", "in-batch"],
                        help="ftcl: release (label-matched pair set, default) or in-batch (the baseline's pairs)")
    parser.add_argument("--tensorboard", action="store_true", help="also log scalars to RUN/tb (needs tensorboard)")
    parser.add_argument("--wandb", action="store_true", help="also log to Weights & Biases (needs wandb)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _check_args(parser, args):
    if args.resume:
        given = [name for name in RUN_DEFINING if getattr(args, name) not in (None, False)]
        if given:
            flag = "--" + given[0].replace("_", "-")
            parser.error(f"{flag} cannot change a run on --resume; its settings are in "
                         f"{Path(args.run_dir) / 'config.json'} (only --epochs, --data-dir and --device apply)")
    elif not args.data_dir:
        parser.error("--data-dir is required (except with --resume)")
    if args.kind == "ftcl" and not args.init and not args.resume:
        parser.error("ftcl fine-tunes a baseline: give --init CKPT (e.g. runs/synthetic/baseline/best.pt)")
    if args.kind == "ftcl" and args.seeds:
        parser.error("--seeds trains baselines; fine-tune the best one with --init RUN/best.pt")
    if args.seeds and args.seed is not None:
        parser.error("give --seed or --seeds, not both")
    if args.kind == "baseline" and args.pairs:
        parser.error("--pairs applies to ftcl (the baseline's pairs are in-batch, see --objective)")
    if args.kind == "ftcl" and args.objective:
        parser.error("--objective applies to the baseline")


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


def train_one(kind, args, run_dir, device, seed=None, resume=None, config=None, datasets=None):
    """Train one run in run_dir: resume it (resume=True, default args.resume), or start it from the
    CLI's settings or from `config`, with `seed` when given; `datasets` as in shared_dataset.
    Returns the Trainer."""
    resume = args.resume if resume is None else resume
    with RunDirectory(run_dir) as held:
        if resume:
            config = resumed_config(run_dir, kind, args.epochs, args.data_dir)
        else:
            held.claim_new(args.overwrite)
            config = config or config_for_run(kind, args)
            if seed is not None:
                config.seed = seed
        trainer = Trainer(kind, config, run_dir, device, progress=not args.no_progress,
                          dataset=shared_dataset(config, datasets))
        if resume:
            trainer.resume()
        else:
            if args.init:
                print(f"init: {trainer.init_from(args.init)}", file=sys.stderr)
            held.replace_previous()  # --overwrite: the old run goes only now that the new one can start
        trainer.loggers = EpochLoggers(Path(run_dir), tensorboard=args.tensorboard, wandb=args.wandb,
                                       name=Path(run_dir).name, config=config.to_dict(), resume_epoch=trainer.epoch)
        try:
            trainer.run()
        finally:
            trainer.loggers.close()
    return trainer


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    try:
        device = resolve_device(args.device)
        default_workers()  # FTCL_EVAL_WORKERS checked before anything starts
        if args.seeds:
            from ftcl.train.seeds import train_seeds
            summary = train_seeds(args, device)
        else:
            trainer = train_one(args.kind, args, args.run_dir, device)
    except (DataError, CheckpointError, RunDirError, LoggerError, EvaluationInputError, ValueError, OSError) as err:
        print(tool.error_line(err), file=sys.stderr)
        return 2
    except TrainingStopped as err:
        print(f"stopped: {err}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        # The run waited for the epoch end in progress: last.pt holds the last finished epoch.
        where = Path(args.run_dir) / "seed-K" / "last.pt" if args.seeds else Path(args.run_dir) / "last.pt"
        again = f"--seeds {','.join(map(str, args.seeds))} " if args.seeds else ""
        print(f"interrupted: {where} holds the last finished epoch; continue with "
              f"`python -m train {args.kind} --run-dir {args.run_dir} {again}--resume`", file=sys.stderr)
        return 130
    if args.seeds:
        print(summary)  # outside the try: a closed stdout is the reader's doing, not a failed run
        return 0
    config = trainer.config
    print(f"done: {trainer.epoch} epochs, best test avg mAP({config.selection_average}) {trainer.best:.2f} "
          f"-> {Path(args.run_dir) / 'best.pt'}")
    return 0


if __name__ == "__main__":
    tool.run(main)
