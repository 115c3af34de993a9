"""python -m ftcl.evaluate CKPT [--data-dir DIR] [--device auto] [--json] [--out results.json] [--plot DIR]

Runs a checkpoint on the test split in batches, builds proposals with the release's test-time
procedure, writes the ActivityNet results JSON (default: beside the checkpoint) and prints the
detection mAP table at the preset's tIoUs plus the video classification mAP. The training loop
calls the same functions for its per-epoch evaluation. --save-outputs / --from-outputs store
per-video model outputs and re-evaluate them without the model.
"""
import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import evaluation
from evaluation import ProposalConfig, VideoOutput
from ftcl.checkpoint import CheckpointError, load_checkpoint, load_weights
from ftcl.config import Config
from ftcl.data import DataError, class_names, load_split, read_ground_truth, test_subset, uniform_sample
from ftcl.files import atomic_write
from ftcl.model import ACMNet
from ftcl.seed import resolve_device


@dataclass
class Evaluation:
    """detection: evaluation.DetectionResult; classification_map: float; results: ActivityNet dict;
    outputs: {vid: VideoOutput}; ids: V video ids; labels: [V, C] in the order of ids."""

    detection: object
    classification_map: float
    results: dict
    outputs: dict
    ids: list
    labels: np.ndarray

    def to_dict(self):
        return {**self.detection.to_dict(), "classification_mAP": self.classification_map}


def proposal_config(config, fixed_nms=False):
    return ProposalConfig(class_threshold=config.cls_threshold, upscale=config.upscale, nms_iou=config.nms_iou,
                          fixed=fixed_nms)


@torch.no_grad()
def model_outputs(model, split, config, device, batch_size=16, progress=False):
    """Per-video outputs of the model on a split (uniform sampling capped at config.sample_snippets,
    batched with zero padding). Returns {vid: VideoOutput}."""
    model.eval()
    outputs = {}
    order = np.argsort(split.lengths, kind="stable")  # similar lengths together: little padding
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc="evaluate", disable=not progress, leave=False, file=sys.stderr):
        feats = [np.asarray(split.features(v)[uniform_sample(split.lengths[v], config.sample_snippets)],
                            dtype=np.float32) for v in batch]
        lengths = torch.tensor([len(f) for f in feats])
        padded = torch.zeros(len(feats), int(lengths.max()), feats[0].shape[1])
        for k, f in enumerate(feats):
            padded[k, :len(f)] = torch.from_numpy(f)
        out = model(padded.to(device), lengths.to(device))
        cas = out.inst_cas[:, :, :-1].float().cpu().numpy()
        attention = out.attention[:, :, 0].float().cpu().numpy()
        scores = out.scores_inst[:, :-1].float().cpu().numpy()
        for k, v in enumerate(batch):
            n = int(lengths[k])
            outputs[split.ids[v]] = VideoOutput(cas=cas[k, :n], attention=attention[k, :n], video_scores=scores[k],
                                                original_snippets=int(split.lengths[v]))
    # Split order, not batching order: ties between equal scores of different videos are broken by
    # position in the results, so the order must not depend on the batch size.
    return {vid: outputs[vid] for vid in split.ids}


def score_outputs(outputs, labels, ids, ground_truth, config, fixed_nms=False):
    """Detection and classification mAP of saved outputs. labels: [V, C] in the order of ids."""
    detection, results = evaluation.evaluate_outputs(outputs, ground_truth, config.tiou,
                                                     proposal_config(config, fixed_nms))
    scores = np.stack([outputs[v].video_scores for v in ids])
    cls_map = evaluation.classification_map(labels, scores, list(ground_truth.classes))
    return Evaluation(detection=detection, classification_map=cls_map, results=results, outputs=outputs,
                      ids=list(ids), labels=labels)


def evaluate_model(model, split, ground_truth, config, device, batch_size=16, progress=False, fixed_nms=False):
    """Run and score a model on a split. Returns an Evaluation."""
    outputs = model_outputs(model, split, config, device, batch_size, progress)
    return score_outputs(outputs, split.labels, split.ids, ground_truth, config, fixed_nms)


def save_outputs(path, evaluation_, config):
    """Per-video outputs as one .npz (concatenated over time with offsets), written atomically."""
    ids = evaluation_.ids
    outs = [evaluation_.outputs[v] for v in ids]
    offsets = np.cumsum([0] + [len(o.attention) for o in outs])
    arrays = {"ids": np.array(ids), "offsets": offsets, "cas": np.concatenate([o.cas for o in outs]),
              "attention": np.concatenate([o.attention for o in outs]),
              "video_scores": np.stack([o.video_scores for o in outs]),
              "original_snippets": np.array([o.original_snippets for o in outs]),
              "labels": evaluation_.labels, "config": np.array(json.dumps(config.to_dict()))}
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def load_outputs(path):
    """(outputs {vid: VideoOutput}, ids, labels [V, C], Config) from save_outputs()."""
    try:
        data = np.load(path, allow_pickle=False)
        ids = [str(v) for v in data["ids"]]
        offsets = data["offsets"]
        outputs = {vid: VideoOutput(cas=data["cas"][offsets[k]:offsets[k + 1]],
                                    attention=data["attention"][offsets[k]:offsets[k + 1]],
                                    video_scores=data["video_scores"][k],
                                    original_snippets=int(data["original_snippets"][k])) for k, vid in enumerate(ids)}
        return outputs, ids, data["labels"], Config.from_dict(json.loads(str(data["config"])))
    except FileNotFoundError:
        raise DataError(f"{path}: outputs file not found") from None
    except (OSError, KeyError, ValueError) as err:
        raise DataError(f"{path}: not an outputs file of ftcl.evaluate ({err.__class__.__name__})") from None


def load_model(checkpoint_path, data_dir=None):
    """(model on CPU, Config) from our checkpoint; data_dir overrides the stored data directory."""
    ckpt = load_checkpoint(checkpoint_path)
    if "config" not in ckpt:
        raise CheckpointError(f"{checkpoint_path}: no stored config (a release .pth): train or fine-tune "
                              f"it with `python -m train ... --init` first")
    config = Config.from_dict(ckpt["config"])
    if data_dir is not None:
        config.data_dir = str(data_dir)
    model = ACMNet.from_config(config)
    load_weights(model, ckpt["model_state_dict"], checkpoint_path)
    return model, config


def plot_videos(path, evaluation_, ground_truth, config, count=4):
    """One PNG per video for the first `count` test videos: predicted classes' CAS, the instance
    attention, and the ground-truth segments."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    gt = ground_truth.segments
    written = []
    for vid in list(evaluation_.outputs)[:count]:
        out = evaluation_.outputs[vid]
        seconds = np.arange(len(out.attention)) * config.frames_per_snippet * out.original_snippets / (
            config.fps * len(out.attention))
        classes = evaluation.proposals.predicted_classes(out.video_scores, config.cls_threshold)
        fig, ax = plt.subplots(figsize=(10, 3))
        ax.plot(seconds, out.attention, color="black", lw=1, label="instance attention")
        for c in classes:
            ax.plot(seconds, out.cas[:, c], lw=1, label=f"CAS {ground_truth.classes[c]}")
        if vid in ground_truth.videos:
            v = ground_truth.videos.index(vid)
            for k in np.flatnonzero(gt.video == v):
                ax.axvspan(gt.start[k], gt.end[k], color="tab:green", alpha=0.2)
        ax.set_xlabel("seconds (green: ground truth)")
        ax.set_ylim(0, 1)
        ax.set_title(vid)
        ax.legend(loc="upper right", fontsize=7)
        fig.tight_layout()
        target = path / f"{vid}.png"
        fig.savefig(target, dpi=100)
        plt.close(fig)
        written.append(target)
    return written


def ground_truth_of(config):
    """Ground truth of the test split, under whatever subset name its videos carry in gt.json
    ("test" for THUMOS14, "validation" for ActivityNet 1.3)."""
    return evaluation.load_ground_truth(Path(config.data_dir) / "gt.json", test_subset(config.data_dir))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ftcl.evaluate", description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="?", help="a checkpoint of `python -m train` (e.g. runs/ftcl/best.pt)")
    parser.add_argument("--data-dir", help="data directory (default: the one stored in the checkpoint)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="print only the JSON result object on stdout")
    parser.add_argument("--per-class", action="store_true", help="add one row per class to the table")
    parser.add_argument("--out", help="results JSON to write (default: results.json beside the checkpoint)")
    parser.add_argument("--plot", metavar="DIR", help="write CAS / attention / ground-truth PNGs of a few videos")
    parser.add_argument("--save-outputs", metavar="FILE", help="store per-video model outputs (.npz)")
    parser.add_argument("--from-outputs", metavar="FILE", help="re-evaluate stored outputs without the model")
    parser.add_argument("--fixed-nms", action="store_true",
                        help="NMS with the true temporal IoU instead of the release's '+1' lengths")
    args = parser.parse_args(argv)
    if not args.checkpoint and not args.from_outputs:
        parser.error("give a checkpoint, or --from-outputs FILE")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    try:
        if args.from_outputs:
            outputs, ids, labels, config = load_outputs(args.from_outputs)
            if args.data_dir:
                config.data_dir = args.data_dir
            ground_truth = ground_truth_of(config)
            result = score_outputs(outputs, labels, ids, ground_truth, config, args.fixed_nms)
        else:
            model, config = load_model(args.checkpoint, args.data_dir)
            device = resolve_device(args.device)
            database = read_ground_truth(config.data_dir)
            split = load_split(config.data_dir, "test", class_names(database), database)
            ground_truth = ground_truth_of(config)
            result = evaluate_model(model.to(device), split, ground_truth, config, device, args.batch_size,
                                    progress=not args.json, fixed_nms=args.fixed_nms)
    except (DataError, CheckpointError, evaluation.EvaluationInputError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out_path = Path(args.out) if args.out else Path(args.checkpoint or args.from_outputs).with_name("results.json")
    try:
        evaluation.write_json_atomic(out_path, result.results)
        if args.save_outputs:
            save_outputs(args.save_outputs, result, config)
        if args.plot:
            plot_videos(args.plot, result, ground_truth, config)
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(evaluation.detection_table(result.detection, per_class=args.per_class))
        print(f"classification mAP: {100 * result.classification_map:.2f}   results: {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
