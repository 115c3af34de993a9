"""python -m evaluation GT.json PRED.json [--subset test] [--tiou 0.1:0.9:0.1] [--json] [--per-class]

Detection mAP of an ActivityNet results file against ActivityNet-style ground truth. Prints a table
(one column per tIoU, plus the averages), or with --json only the result object on stdout.
Exit status 2 with a one-line message for unreadable or malformed input.
"""
import argparse
import json
import sys

import numpy as np

from evaluation.detection import evaluate_detection
from evaluation.io import EvaluationInputError, load_ground_truth, load_predictions
from evaluation.report import detection_table


def parse_tiou(text):
    """'0.1:0.9:0.1' (inclusive range) or '0.3,0.5,0.7' -> sorted array of thresholds in (0, 1]."""
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if step <= 0:
                raise ValueError
            values = np.arange(start, stop + step / 2, step)
        else:
            values = np.array([float(x) for x in text.split(",")])
    except ValueError:
        raise argparse.ArgumentTypeError(f"--tiou {text!r}: expected start:stop:step or a comma list") from None
    values = np.round(values, 10)
    if len(values) == 0 or (values <= 0).any() or (values > 1).any():
        raise argparse.ArgumentTypeError(f"--tiou {text!r}: thresholds must lie in (0, 1]")
    return values


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m evaluation", description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ground_truth", help="ActivityNet-style ground truth (e.g. gt.json)")
    parser.add_argument("predictions", help="ActivityNet results JSON ({'results': {vid: [...]}})")
    parser.add_argument("--subset", default="test", help="ground-truth subset to evaluate (default: test)")
    parser.add_argument("--tiou", type=parse_tiou, default=parse_tiou("0.1:0.9:0.1"),
                        help="tIoU thresholds, start:stop:step or comma list (default: 0.1:0.9:0.1)")
    parser.add_argument("--json", action="store_true", help="print only the JSON result object")
    parser.add_argument("--per-class", action="store_true", help="add one row per class to the table")
    args = parser.parse_args(argv)
    try:
        gt = load_ground_truth(args.ground_truth, args.subset)
        pred = load_predictions(args.predictions, gt)
    except EvaluationInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result = evaluate_detection(gt.segments, pred, gt.classes, args.tiou)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(f"{len(pred)} predictions, {len(gt.segments)} ground-truth instances, "
              f"{len(result.classes)} classes, subset '{args.subset}'")
        print(detection_table(result, per_class=args.per_class))
    return 0


if __name__ == "__main__":
    sys.exit(main())
