"""Benchmark of the evaluation: proposals + mAP on a THUMOS14-sized test split, and the mAP CLI's
work on ~35,000 predictions. Inputs come from ../shared/data/thumos14 when present (real ids,
durations and instances), else from the synthetic generator's test split."""
import tempfile
from pathlib import Path

import numpy as np

import evaluation
from bench.common import RESULTS_DIR, append_csv, fmt, machine, print_table, time_cpu
from evaluation import VideoOutput
from evaluation.proposals import ProposalConfig
from ftcl.config import Config

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "thumos14"
TIOU = np.round(np.arange(0.1, 1.0, 0.1), 2)


def _ground_truth():
    """(GroundTruth of the test subset, test video ids, source description)."""
    if (SHARED / "gt.json").is_file():
        ids = (SHARED / "split_test.txt").read_text().split()
        return evaluation.load_ground_truth(SHARED / "gt.json", "test"), ids, "THUMOS14 test annotations"
    from ftcl import synthetic
    out = synthetic.generate(Path(tempfile.mkdtemp()) / "syn", feature_dim=4)
    ids = (out / "split_test.txt").read_text().split()
    return evaluation.load_ground_truth(out / "gt.json", "test"), ids, "synthetic test split"


def model_like_outputs(gt, ids, seed=0, sample=750):
    """Per-video outputs resembling a trained model's: CAS and attention rise over the ground-truth
    instances (with noise, misses and false alarms), video scores favour the true classes."""
    rng = np.random.default_rng(seed)
    segs = gt.segments
    n_cls = len(gt.classes)
    outputs = {}
    for vid in ids:
        duration = gt.durations.get(vid, 120.0)
        original = max(2, int(duration / Config().seconds_per_snippet))
        length = min(original, sample)
        seconds = (np.arange(length) + 0.5) * duration / length
        v = gt.videos.index(vid) if vid in gt.videos else -1
        logits = rng.normal(0, 1.0, (length, n_cls + 1))
        logits[:, -1] += 2.5
        attention = np.clip(rng.normal(0.15, 0.1, length), 0.01, 0.99)
        truth = np.zeros(n_cls)
        for k in np.flatnonzero(segs.video == v):
            inside = (seconds >= segs.start[k]) & (seconds <= segs.end[k])
            if rng.random() < 0.85:
                logits[inside, segs.label[k]] += rng.uniform(2.5, 5.0)
                attention[inside] = np.clip(attention[inside] + rng.uniform(0.4, 0.8), 0, 0.99)
            truth[segs.label[k]] = 1
        for _ in range(rng.poisson(3)):
            s = rng.integers(length)
            logits[s:s + rng.integers(2, 20), rng.integers(n_cls)] += 3.0
        cas = np.exp(logits - logits.max(1, keepdims=True))
        cas = (cas / cas.sum(1, keepdims=True))[:, :n_cls]
        scores = rng.dirichlet(np.ones(n_cls) * 0.3) * 0.4 + truth / max(truth.sum(), 1) * 0.6
        outputs[vid] = VideoOutput(cas=cas.astype(np.float32), attention=attention.astype(np.float32),
                                   video_scores=scores, original_snippets=original)
    return outputs


def many_predictions(gt, ids, count=35_000, seed=1):
    """An ActivityNet results dict of ~count predictions: jittered instances plus false alarms."""
    rng = np.random.default_rng(seed)
    segs = gt.segments
    per_video = {vid: [] for vid in ids}
    known = [vid for vid in ids if vid in gt.videos]
    for k in range(len(segs)):
        vid = gt.videos[segs.video[k]]
        if vid not in per_video:
            continue
        for _ in range(6):
            s, e = segs.start[k] + rng.normal(0, 1.5), segs.end[k] + rng.normal(0, 1.5)
            s, e = max(0.0, min(s, e)), max(0.0, s, e)
            per_video[vid].append((gt.classes[segs.label[k]], float(rng.random()), s, e))
    missing = count - sum(len(p) for p in per_video.values())
    for _ in range(max(0, missing)):
        vid = known[rng.integers(len(known))]
        s = float(rng.uniform(0, gt.durations[vid]))
        per_video[vid].append((gt.classes[rng.integers(len(gt.classes))], float(rng.random()), s,
                               s + float(rng.exponential(4))))
    return evaluation.results_json(per_video)


def main(csv_dir=RESULTS_DIR):
    info = machine()
    gt, ids, source = _ground_truth()
    print(f"# evaluation benchmark: {info['device']}, commit {info['commit']}, {info['date']}; inputs: {source}")
    outputs = model_like_outputs(gt, ids)
    config = ProposalConfig()
    per_video = evaluation.localize(outputs, gt.classes, config)
    results = evaluation.results_json(per_video)
    pred = evaluation.predictions_from_results(results["results"], gt)
    detection = evaluation.evaluate_detection(gt.segments, pred, gt.classes, TIOU)
    rows = [
        {"stage": f"proposals ({len(ids)} videos)", "ms": time_cpu(lambda: evaluation.localize(outputs, gt.classes, config), repeats=5)},
        {"stage": f"mAP ({len(pred)} proposals, 9 tIoUs)",
         "ms": time_cpu(lambda: evaluation.evaluate_detection(gt.segments, pred, gt.classes, TIOU), repeats=5)},
        {"stage": "proposals + mAP (the per-epoch evaluation)",
         "ms": time_cpu(lambda: evaluation.evaluate_outputs(outputs, gt, TIOU, config), repeats=5)},
    ]
    big = many_predictions(gt, ids)
    big_path = Path(tempfile.mkdtemp()) / "pred.json"
    evaluation.write_json_atomic(big_path, big)
    n_big = sum(len(v) for v in big["results"].values())

    def cli_work():
        pred_big = evaluation.load_predictions(big_path, gt)
        evaluation.evaluate_detection(gt.segments, pred_big, gt.classes, TIOU)

    rows.append({"stage": f"python -m evaluation work: read + mAP of {n_big} predictions", "ms": time_cpu(cli_work, repeats=5)})
    print(f"\nmodel-like outputs give avg mAP(0.1:0.7) {100 * detection.average(0.1, 0.7):.1f} "
          f"(a sanity check that proposals are realistic, not a result)\n")
    print_table([{k: fmt(v) for k, v in r.items()} for r in rows], ["stage", "ms"])
    append_csv(csv_dir / "eval.csv", [{**info, "inputs": source, **r} for r in rows])
