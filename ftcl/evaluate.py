"""python -m ftcl.evaluate CKPT [--data-dir DIR] [--preset thumos14] [--json] [--out FILE] [--plot DIR]

Runs a checkpoint (ours, or the release's .pth with --data-dir) on the test split in batches,
builds proposals with the release's test-time procedure, writes the ActivityNet results JSON
(default: CKPT's name with .results.json, beside it) and prints the detection mAP table at the
preset's tIoUs plus the video classification mAP. The training loop calls the same functions for
its per-epoch evaluation. --save-outputs / --from-outputs store per-video model outputs and
re-evaluate them without the model. Every file written is named on stderr, one line each.
"""
import json
import sys
from pathlib import Path

from ftcl import evaluation, tool
from ftcl.checkpoint import CheckpointError
from ftcl.config import PRESETS
from ftcl.data import DataError, describe_classes, split_ground_truth
from ftcl.inference import evaluate_model, load_model, load_outputs, save_outputs, score_outputs
from ftcl.plots import default_plot_videos, plot_videos
from ftcl.seed import resolve_device


def _refuse_existing(path, flag, overwrite):
    if path is not None and Path(path).exists() and not overwrite:
        raise DataError(f"{path}: exists; {flag} never replaces a file unless you add --overwrite")


def main(argv=None):
    parser = tool.parser("python -m ftcl.evaluate", __doc__)
    parser.add_argument("checkpoint", nargs="?", help="a checkpoint of `python -m ftcl.train` (e.g. runs/synthetic/ftcl/best.pt) "
                                                      "or a release .pth")
    parser.add_argument("--data-dir", help="data directory (default: the one stored in the checkpoint)")
    parser.add_argument("--preset", choices=PRESETS, help="settings for a release .pth (default thumos14)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--batch-size", type=tool.positive_int, default=16)
    parser.add_argument("--json", action="store_true", help="print only the JSON result object on stdout")
    parser.add_argument("--per-class", action="store_true", help="add one row per class to the table")
    parser.add_argument("--out", help="results JSON to write (default: CKPT.results.json beside the checkpoint)")
    parser.add_argument("--plot", metavar="DIR", help="write PNGs of a few videos (CAS, attention, ground truth, detections)")
    parser.add_argument("--plot-videos", metavar="IDS", help="comma list of video ids to plot (default: the first two "
                                                            "and the two with the lowest recall@0.5)")
    parser.add_argument("--save-outputs", metavar="FILE", help="store per-video model outputs (.npz)")
    parser.add_argument("--from-outputs", metavar="FILE", help="re-evaluate stored outputs without the model")
    parser.add_argument("--overwrite", action="store_true", help="replace existing --out / --save-outputs files")
    parser.add_argument("--fixed-nms", action="store_true",
                        help="NMS with the true temporal IoU instead of the release's '+1' lengths")
    args = parser.parse_args(argv)
    if not args.checkpoint and not args.from_outputs:
        parser.error("give a checkpoint, or --from-outputs FILE")
    if args.checkpoint and args.from_outputs:
        parser.error("give a checkpoint or --from-outputs FILE, not both")
    if args.plot_videos and not args.plot:
        parser.error("--plot-videos picks the videos of --plot DIR: give --plot too")
    source = Path(args.checkpoint or args.from_outputs)
    out_path = Path(args.out) if args.out else source.with_name(source.name + ".results.json")
    try:
        _refuse_existing(args.out, "--out", args.overwrite)
        _refuse_existing(args.save_outputs, "--save-outputs", args.overwrite)
        if args.plot and Path(args.plot).exists() and not Path(args.plot).is_dir():
            raise DataError(f"{args.plot}: exists and is not a directory; --plot needs a directory")
        if args.from_outputs:
            outputs, ids, labels, config = load_outputs(args.from_outputs)
            if args.data_dir:
                config.data_dir = args.data_dir
            ground_truth = split_ground_truth(config.data_dir)
            saved, scored = list(config.classes), list(ground_truth.classes)
            if saved != scored or labels.shape[1] != len(scored):
                raise DataError(f"{args.from_outputs}: outputs of {describe_classes(saved)}, but "
                                f"{Path(config.data_dir) / 'gt.json'} has {describe_classes(scored)}")
            result = score_outputs(outputs, labels, ids, ground_truth, config, args.fixed_nms)
        else:
            model, config, dataset = load_model(args.checkpoint, args.data_dir, args.preset)
            device = resolve_device(args.device)
            ground_truth = dataset.test_ground_truth()
            result = evaluate_model(model.to(device), dataset.test, ground_truth, config, device, args.batch_size,
                                    progress=not args.json, fixed_nms=args.fixed_nms)
        plot_ids = None
        if args.plot:
            plot_ids = args.plot_videos.split(",") if args.plot_videos else default_plot_videos(result, ground_truth)
            unknown = [vid for vid in plot_ids if vid not in result.outputs]
            if unknown:
                raise DataError(f"--plot-videos: {unknown[0]} is not a test video of {config.data_dir}")
    except (DataError, CheckpointError, evaluation.EvaluationInputError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    written, created = [], []
    try:
        # A file named by a flag is never replaced without --overwrite, even one another run wrote
        # since the check above; the default results path beside the source is.
        replace_out = args.overwrite or not args.out
        tool.write_json_atomic(out_path, result.results, replace=replace_out)
        written.append(out_path)
        created += [] if replace_out else [out_path]
        if args.save_outputs:
            save_outputs(args.save_outputs, result, config, replace=args.overwrite)
            written.append(Path(args.save_outputs))
            created += [] if args.overwrite else [Path(args.save_outputs)]
        if args.plot:
            written += plot_videos(args.plot, result, ground_truth, config, plot_ids)
    except OSError as err:
        for path in created:  # a refused write leaves no new file of this run behind
            path.unlink(missing_ok=True)
        print(tool.error_line(err), file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(evaluation.detection_table(result.detection, per_class=args.per_class))
        print(f"classification mAP: {100 * result.classification_map:.2f}   "
              f"(ground truth: {len(ground_truth.videos)} test-split videos of {config.data_dir})")
    return 0


run = tool.script(main)  # the console script


if __name__ == "__main__":
    run()
