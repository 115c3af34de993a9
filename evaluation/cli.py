"""python -m ftcl.evaluation GT.json PRED.json [--subset test] [--tiou 0.1:0.9:0.1] [--json] [--per-class]

Detection mAP of an ActivityNet results file against ActivityNet-style ground truth. Prints a table
(one column per tIoU, plus the averages), or with --json only the result object on stdout.
Exit status 2 with a one-line message for unreadable or malformed input.
"""
import argparse
import json
import sys

import numpy as np

from ftcl import tool
from ftcl.evaluation.detection import evaluate_detection
from ftcl.evaluation.io import EvaluationInputError, load_ground_truth, predictions_from_results, read_results
from ftcl.evaluation.report import detection_table


MAX_THRESHOLDS = 100


def parse_tiou(text):
    """'0.1:0.9:0.1' (inclusive range) or '0.3,0.5,0.7' -> sorted array of distinct thresholds in
    (0, 1], at most MAX_THRESHOLDS of them. Raises argparse.ArgumentTypeError naming the text."""
    def fail(why):
        return argparse.ArgumentTypeError(f"--tiou {text!r}: {why}")

    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if not all(np.isfinite([start, stop, step])) or step <= 0 or stop < start:
                raise fail("start:stop:step needs finite numbers, step > 0 and stop >= start")
            if (stop - start) / step + 1 > MAX_THRESHOLDS:
                raise fail(f"more than {MAX_THRESHOLDS} thresholds")
            values = np.arange(start, stop + step / 2, step)
        else:
            values = np.array([float(x) for x in text.split(",")])
    except ValueError:
        raise fail("expected start:stop:step or a comma list of numbers") from None
    # Ranges keep np.arange's values (0.30000000000000004), as the release's thresholds.
    values = np.unique(values)
    if len(values) == 0 or not np.isfinite(values).all() or (values <= 0).any() or (values > 1).any():
        raise fail("thresholds must be numbers in (0, 1]")
    if len(values) > MAX_THRESHOLDS:
        raise fail(f"more than {MAX_THRESHOLDS} thresholds")
    return values


def outside_note(results, ground_truth, source, subset):
    """A line on the predictions of videos outside the subset (they count as false positives, as in
    the ActivityNet evaluation, which is easy to miss with a results file of a whole data set), or None."""
    subset_videos = set(ground_truth.videos)
    outside = [vid for vid, entries in results.items() if vid not in subset_videos and entries]
    if not outside:
        return None
    count = sum(len(results[vid]) for vid in outside)
    return (f"note: {source}: {count} prediction{'s' * (count != 1)} on {len(outside)} "
            f"video{'s' * (len(outside) != 1)} outside subset '{subset}' (e.g. {outside[0]}) count as false positives")


def main(argv=None):
    parser = tool.parser("python -m ftcl.evaluation", __doc__)
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
        results = read_results(args.predictions)
        pred = predictions_from_results(results, gt, source=args.predictions)
    except EvaluationInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    note = outside_note(results, gt, args.predictions, args.subset)
    if note:
        print(note, file=sys.stderr)
    result = evaluate_detection(gt.segments, pred, gt.classes, args.tiou)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(f"{len(pred)} predictions, {len(gt.segments)} ground-truth instances, "
              f"{len(result.classes)} classes, subset '{args.subset}'")
        print(detection_table(result, per_class=args.per_class))
    return 0


run = tool.script(main)  # the console script
