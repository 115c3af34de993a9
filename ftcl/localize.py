"""python -m ftcl.localize CKPT FEATURES [FEATURES ...] [--out FILE] [--device auto]

Localizes actions in videos that have no annotations: runs a checkpoint on feature files ([T, D]
.npy, one per video, named <video id>.npy; a directory stands for every .npy in it) with the test-time
procedure of `python -m ftcl.evaluate` and writes the detections as an ActivityNet results JSON
(to --out, never replacing a file unless --overwrite; else to stdout). A release .pth carries no
class names: give the --data-dir whose gt.json it was trained on (and --preset if not thumos14).
"""
import json
import sys
from pathlib import Path

import numpy as np

from ftcl import evaluation
from ftcl import tool
from ftcl.evaluation.workers import default_workers
from ftcl.checkpoint import CheckpointError, load_weights
from ftcl.config import PRESETS
from ftcl.data import DataError, Split, check_features
from ftcl.inference import checkpoint_config, model_outputs, proposal_config
from ftcl.model import ACMNet
from ftcl.seed import resolve_device


def feature_split(paths, seconds_per_snippet):
    """A Split (no labels) of feature files and directories of them; video ids are the file stems."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(path.glob("*.npy"))
            if not found:
                raise DataError(f"{path}: no .npy feature files in this directory")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: feature file not found")
    ids, lengths, feature_dim, seen = [], [], None, set()
    for path in files:
        if path.stem in seen:
            raise DataError(f"{path}: video id {path.stem} given twice")
        seen.add(path.stem)
        shape = check_features(path, f"video {path.stem}")
        if feature_dim is not None and shape[1] != feature_dim:
            raise DataError(f"{path}: feature dimension {shape[1]} differs from {feature_dim} of {files[0]}")
        feature_dim = shape[1]
        ids.append(path.stem)
        lengths.append(shape[0])
    lengths = np.array(lengths)
    return Split(name="localize", ids=ids, labels=np.zeros((len(ids), 0), dtype=np.float32), lengths=lengths,
                 durations=lengths * seconds_per_snippet, paths=files, feature_dim=feature_dim, subset=None)


def inference_model(checkpoint_path, data_dir=None, preset_name=None):
    """(model on CPU, Config) of a checkpoint (see ftcl.evaluate.checkpoint_config): ours carries its
    classes, so --data-dir applies only to a release .pth, which names none."""
    ckpt, config, ours = checkpoint_config(checkpoint_path, data_dir, preset_name)
    if ours and data_dir is not None:
        raise CheckpointError(f"{checkpoint_path}: carries its own config and classes; --data-dir and --preset "
                              f"apply to release checkpoints")
    model = ACMNet.from_config(config)
    load_weights(model, ckpt["model_state_dict"], checkpoint_path)
    return model, config


def localize_files(model, config, split, device, batch_size=16, workers=1):
    """{"results": {vid: [{"label", "score", "segment"}]}} of every video of the split (proposals over
    `workers` processes, see evaluation.workers: the same detections for any count)."""
    outputs = model_outputs(model.to(device), split, config, device, batch_size)
    return evaluation.Detections(list(outputs), *evaluation.pipeline.proposals(
        outputs, proposal_config(config), workers)).results_json(list(config.classes))


def main(argv=None):
    parser = tool.parser("python -m ftcl.localize", __doc__)
    parser.add_argument("checkpoint", help="a checkpoint of `python -m ftcl.train` or a release .pth")
    parser.add_argument("features", nargs="+", metavar="FEATURES", help=".npy files or directories of them")
    parser.add_argument("--out", help="results JSON to write (default: stdout)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument("--data-dir", help="for a release .pth: the data directory whose classes it predicts")
    parser.add_argument("--preset", choices=PRESETS, help="for a release .pth (default thumos14)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--batch-size", type=tool.positive_int, default=16)
    args = parser.parse_args(argv)
    try:
        if args.out and Path(args.out).exists() and not args.overwrite:
            raise DataError(f"{args.out}: exists; --out never replaces a file unless you add --overwrite")
        device = resolve_device(args.device)
        model, config = inference_model(args.checkpoint, args.data_dir, args.preset)
        split = feature_split(args.features, config.seconds_per_snippet)
        if split.feature_dim != config.feature_dim:
            raise DataError(f"{split.paths[0]}: {split.feature_dim}-d features, but {args.checkpoint} takes "
                            f"{config.feature_dim}-d")
        results = localize_files(model, config, split, device, args.batch_size, default_workers())
        if args.out:
            tool.write_json_atomic(args.out, results, replace=args.overwrite)
    except (DataError, CheckpointError, evaluation.EvaluationInputError, ValueError, OSError) as err:
        print(tool.error_line(err), file=sys.stderr)
        return 2
    if args.out:
        print(f"wrote {args.out}: {sum(map(len, results['results'].values()))} detections in {len(split)} videos",
              file=sys.stderr)
    else:
        print(json.dumps(results))
    return 0


run = tool.script(main)  # the console script


if __name__ == "__main__":
    run()
