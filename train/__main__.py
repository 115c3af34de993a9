"""python -m train {baseline,ftcl} --data-dir DIR --run-dir RUN [options]

baseline: ACM-Net from scratch (the release's recipe: Adam 1e-4, weight decay 5e-5, batch 16).
ftcl:     fine-tune an ACM-Net checkpoint (--init; ours or the release's .pth) with the FSD and LCS
          contrastive terms for 25 epochs on the label-matched pair set (batch 16 pairs).
Writes RUN/config.json, RUN/metrics.csv, RUN/last.pt (every epoch) and RUN/best.pt (best test
Avg mAP); --resume continues exactly from RUN/last.pt.
"""
import argparse
import sys

from ftcl.checkpoint import CheckpointError
from ftcl.config import PRESETS
from ftcl.data import DataError
from ftcl.seed import resolve_device
from train.loop import Trainer, TrainingStopped, config_for_run, resumed_config


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m train", description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["baseline", "ftcl"])
    parser.add_argument("--data-dir", help="THUMOS14-format directory (gt.json, split_*.txt, train/, test/)")
    parser.add_argument("--run-dir", required=True, help="where checkpoints and logs go")
    parser.add_argument("--preset", choices=PRESETS, default="thumos14")
    parser.add_argument("--init", help="checkpoint to start from (required for ftcl)")
    parser.add_argument("--resume", action="store_true", help="continue from RUN/last.pt exactly")
    parser.add_argument("--epochs", type=_positive_int, help="epochs (default: 1000 baseline, 25 ftcl)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=_positive_int, default=1, help="evaluate every N epochs")
    parser.add_argument("--batch-size", type=_positive_int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--sample-snippets", type=_positive_int, help="snippets sampled per video (default 750)")
    parser.add_argument("--without-fsd", action="store_true", help="ablation: drop the FSD term")
    parser.add_argument("--without-lcs", action="store_true", help="ablation: drop the LCS term")
    parser.add_argument("--lcs-gamma", type=float, help="smooth LCS temperature (default 0: the hard max)")
    parser.add_argument("--fsd-gamma", type=float, help="FSD smooth-max temperature (default 0.1)")
    parser.add_argument("--pairs", choices=["release", "in-batch"], default="release",
                        help="release: label-matched pair set; in-batch: all pairs among each video batch")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.resume and not args.data_dir:
        parser.error("--data-dir is required (except with --resume)")
    if args.kind == "ftcl" and not args.init and not args.resume:
        parser.error("ftcl fine-tunes a baseline: give --init CKPT (e.g. runs/baseline/best.pt)")
    for name in ("lcs_gamma", "fsd_gamma"):
        if getattr(args, name) is not None and not getattr(args, name) >= 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0")
    try:
        device = resolve_device(args.device)
        config = resumed_config(args.run_dir, args) if args.resume else config_for_run(args.kind, args)
        trainer = Trainer(args.kind, config, args.run_dir, device, progress=not args.no_progress)
        if args.resume:
            trainer.resume()
        elif args.init:
            trainer.init_from(args.init)
        trainer.run()
    except (DataError, CheckpointError, TrainingStopped, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2 if not isinstance(err, TrainingStopped) else 3
    print(f"done: {trainer.epoch} epochs, best test avg mAP({config.selection_average}) {trainer.best:.2f} "
          f"-> {args.run_dir}/best.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
