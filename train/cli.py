"""python -m ftcl.train {baseline,ftcl} --data-dir DIR --run-dir RUN [options]

baseline: ACM-Net from scratch with the FTCL release's baseline objective (ACM-Net loss + in-batch
          FSD / LCS terms; --objective acm for ACM-Net alone), 500 epochs, Adam 1e-4, batch 16.
ftcl:     fine-tune a baseline checkpoint (--init; ours or the release's .pth) with the FSD and LCS
          contrastive terms for 25 epochs on the label-matched pair set (batch 16 pairs).
Writes RUN/config.json, RUN/metrics.csv, RUN/last.pt (every epoch) and RUN/best.pt (best test
Avg mAP); --resume continues exactly from RUN/last.pt; --seeds trains one run per seed.
"""
import argparse
import sys
from pathlib import Path

from ftcl import tool
from ftcl.checkpoint import CheckpointError
from ftcl.config import STAGES, compile_mode_error, options, preset
from ftcl.data import DataError
from ftcl.evaluation import EvaluationInputError
from ftcl.evaluation.workers import default_workers
from ftcl.seed import resolve_device
from ftcl.train.launch import RunOptions, seeds_flag, train_one
from ftcl.train.loggers import LoggerError
from ftcl.train.loop import TrainingStopped
from ftcl.train.rundir import RunDirError

# Flags that are not Config settings but still define a new run: refused with --resume too.
RUN_DEFINING_ACTIONS = ("init", "overwrite")


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


def config_flags():
    """{flag: [Config fields it sets]} of every option() field (two stages' fields may share one)."""
    flags = {}
    for f in options():
        flags.setdefault(f.metadata["flag"] or "--" + f.name.replace("_", "-"), []).append(f)
    return flags


def _dest(flag):
    return flag.lstrip("-").replace("-", "_")


def _shown(value):
    if isinstance(value, tuple):
        return ",".join(map(_shown, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _help(fields):
    """A flag's help: its field's, with the default (per stage where two stages' fields share it)."""
    meta = fields[0].metadata
    if meta["negate"] or fields[0].default == "":
        return meta["help"].replace("%", "%%")
    if len(fields) > 1:
        default = ", ".join(f"{_shown(f.default)} {f.metadata['stage']}" for f in fields)
    else:
        default = _shown(fields[0].default)
    only = f"; {meta['stage']} only" if meta["stage"] and len(fields) == 1 else ""
    return f"{meta['help']} (default {default}{only})".replace("%", "%%")  # argparse formats help with %


def build_parser():
    parser = tool.parser("python -m ftcl.train", __doc__)
    parser.add_argument("kind", choices=STAGES)
    parser.add_argument("--run-dir", required=True, help="where checkpoints and logs go")
    parser.add_argument("--init", help="checkpoint to start from (required for ftcl)")
    parser.add_argument("--resume", action="store_true", help="continue from RUN/last.pt exactly")
    parser.add_argument("--overwrite", action="store_true", help="start over in a run directory that holds a run")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--seeds", type=_seeds, help="one run per seed under RUN/seed-K: a count (4) or a list (0,1,2,3)")
    for flag, fields in config_flags().items():
        meta = fields[0].metadata
        if meta["negate"] and fields[0].default is False:  # --compile and --no-compile
            parser.add_argument(flag, dest=_dest(flag), action=argparse.BooleanOptionalAction, help=meta["help"])
        elif meta["negate"]:
            parser.add_argument(flag, dest=_dest(flag), action="store_const", const=not fields[0].default,
                                help=meta["help"])
        else:
            parser.add_argument(flag, dest=_dest(flag), type=meta["parse"], choices=meta["choices"],
                                help=_help(fields))
    parser.add_argument("--tensorboard", action="store_true", help="also log scalars to RUN/tb (needs tensorboard)")
    parser.add_argument("--wandb", action="store_true", help="also log to Weights & Biases (needs wandb)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def config_overrides(kind, args):
    """{Config field: value} of the settings flags given for a `kind` run (None: not given)."""
    overrides = {}
    for flag, fields in config_flags().items():
        value = getattr(args, _dest(flag))
        if value is None:
            continue
        for f in fields:
            if f.metadata["stage"] in (None, kind):
                overrides[f.name] = value
    return overrides


def _check_args(parser, args):
    given = {flag: fields for flag, fields in config_flags().items() if getattr(args, _dest(flag)) is not None}
    for flag, fields in given.items():
        if not any(f.metadata["stage"] in (None, args.kind) for f in fields):
            parser.error(f"{flag} applies to {fields[0].metadata['stage']} runs, not to {args.kind}")
    if args.resume:
        refused = [flag for flag, fields in given.items() if not fields[0].metadata["on_resume"]]
        refused += [f"--{name}" for name in RUN_DEFINING_ACTIONS if getattr(args, name) not in (None, False)]
        if refused:
            taken = [flag for flag, fields in config_flags().items() if fields[0].metadata["on_resume"]]
            parser.error(f"{refused[0]} cannot change a run on --resume; its settings are in "
                         f"{Path(args.run_dir) / 'config.json'} (only {', '.join(taken)} and --device apply)")
        for flag in (flag for flag, fields in given.items() if fields[0].metadata["on_resume"] == "note"):
            if getattr(args, _dest(flag)) is False:
                flag = "--no-" + flag.removeprefix("--")
            print(f"note: {flag} on --resume changes how the steps are computed from here on, which may round "
                  f"differently from the epochs before (not bit for bit the run it would have been)", file=sys.stderr)
    elif not args.data_dir:
        parser.error("--data-dir is required (except with --resume)")
    if args.kind == "ftcl" and not args.init and not args.resume:
        parser.error("ftcl fine-tunes a baseline: give --init CKPT (e.g. runs/synthetic/baseline/best.pt)")
    if args.kind == "ftcl" and args.seeds:
        parser.error("--seeds trains baselines; fine-tune the best one with --init RUN/best.pt")
    if args.seeds and args.seed is not None:
        parser.error("give --seed or --seeds, not both")
    error = compile_mode_error(getattr(args, _dest("--compile-mode")), getattr(args, _dest("--compile")))
    if error and not args.resume:  # a resumed run's stored --compile counts: checked with its config
        parser.error(error)


def run_options(args):
    """The RunOptions of parsed arguments: a new run's Config from the preset and the flags given."""
    overrides = config_overrides(args.kind, args)
    config = None if args.resume else preset(overrides.pop("preset", "thumos14"), **overrides)
    return RunOptions(kind=args.kind, config=config, resume=args.resume, overwrite=args.overwrite, init=args.init,
                      changes=overrides if args.resume else {}, progress=not args.no_progress,
                      tensorboard=args.tensorboard, wandb=args.wandb)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    run = run_options(args)
    try:
        device = resolve_device(args.device)
        default_workers()  # FTCL_EVAL_WORKERS checked before anything starts
        if args.seeds:
            from ftcl.train.seeds import train_seeds
            summary = train_seeds(run, Path(args.run_dir), args.seeds, device)
        else:
            trainer = train_one(run, args.run_dir, device)
    except (DataError, CheckpointError, RunDirError, LoggerError, EvaluationInputError, ValueError, OSError) as err:
        print(tool.error_line(err), file=sys.stderr)
        return 2
    except TrainingStopped as err:
        print(f"stopped: {err}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        # The run waited for the epoch end in progress: last.pt holds the last finished epoch.
        again = f"`python -m ftcl.train {args.kind} --run-dir {args.run_dir}"
        if args.seeds:
            print(f"interrupted: continue with {again} --seeds {seeds_flag(args.seeds)} --resume` (each seed goes on "
                  f"from its last finished epoch; one with none starts over)", file=sys.stderr)
        elif (Path(args.run_dir) / "last.pt").is_file():
            print(f"interrupted: {Path(args.run_dir) / 'last.pt'} holds the last finished epoch; continue with "
                  f"{again} --resume`", file=sys.stderr)
        else:
            print(f"interrupted before the first epoch ended: nothing to resume; start again with {again} "
                  f"--overwrite ...` and the run's flags", file=sys.stderr)
        return 130
    if args.seeds:
        print(summary)  # outside the try: a closed stdout is the reader's doing, not a failed run
        return 0
    config = trainer.config
    print(f"done: {trainer.epoch} epochs, best test avg mAP({config.selection_average}) {trainer.best:.2f} "
          f"-> {Path(args.run_dir) / 'best.pt'}")
    return 0


run = tool.script(main)  # the console script
