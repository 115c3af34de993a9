"""python -m ftcl.evaluate CKPT [--data-dir DIR] [--preset thumos14] [--json] [--out FILE] [--plot DIR]

Runs a checkpoint (ours, or the release's .pth with --data-dir) on the test split in batches,
builds proposals with the release's test-time procedure, writes the ActivityNet results JSON
(default: CKPT's name with .results.json, beside it) and prints the detection mAP table at the
preset's tIoUs plus the video classification mAP. The training loop calls the same functions for
its per-epoch evaluation. --save-outputs / --from-outputs store per-video model outputs and
re-evaluate them without the model. Every file written is named on stderr, one line each.
"""
import functools
import json
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ftcl import evaluation
from ftcl import tool
from ftcl.evaluation import ProposalConfig, VideoOutput
from ftcl.evaluation.io import class_names
from ftcl.checkpoint import FORMAT, CheckpointError, load_checkpoint, load_weights, state_dimensions
from ftcl.config import PRESETS, Config, preset
from ftcl.data import (DataError, load_dataset, read_ground_truth, require_same_data, split_ground_truth,
                       uniform_sample)
from ftcl.model import ACMNet
from ftcl.seed import resolve_device


@dataclass
class Evaluation:
    """detection: evaluation.DetectionResult; classification_map: float; detections: the proposals
    (evaluation.pipeline.Detections); outputs: {vid: VideoOutput}; ids: V video ids; labels: [V, C]
    in the order of ids; classes: the ground truth's class names. `results` (the ActivityNet results
    dict) is built on first use: a training epoch never needs it."""

    detection: object
    classification_map: float
    detections: object
    outputs: dict
    ids: list
    labels: np.ndarray
    classes: list

    @functools.cached_property
    def results(self):
        return self.detections.results_json(self.classes)

    def to_dict(self):
        return {**self.detection.to_dict(), "classification_mAP": self.classification_map}


def proposal_config(config, fixed_nms=False):
    """The test-time procedure's settings of a Config."""
    return ProposalConfig(class_threshold=config.cls_threshold, upscale=config.upscale,
                          cas_thresholds=tuple(config.cas_thresholds), att_thresholds=tuple(config.att_thresholds),
                          outer_ratio=config.oic_outer_ratio, video_score_weights=tuple(config.oic_video_score_weights),
                          score_mix=tuple(config.oic_score_mix), nms_iou=config.nms_iou, fixed=fixed_nms,
                          frames_per_snippet=config.frames_per_snippet, fps=config.fps)


@dataclass
class EvalBatch:
    """Test videos run together: indices into the split, zero-padded features [B, T, D] (on the
    model's device) and valid lengths [B] (on the CPU, so the forward needs no read-back for them)."""

    videos: np.ndarray
    features: torch.Tensor
    lengths: torch.Tensor


# Test features kept in memory between epochs up to this size (THUMOS14's 2048-d test split: ~0.6 GB).
EVAL_CACHE_BYTES = 2 * 2**30


def eval_batches(split, config, device, batch_size=16):
    """The test split's uniformly sampled features in padded batches, videos of similar length
    together (little padding), ready for model_outputs(); read once, reusable every epoch."""
    order = np.argsort(split.lengths, kind="stable")
    batches = []
    for start in range(0, len(order), batch_size):
        videos = order[start:start + batch_size]
        feats = [np.asarray(split.features(v)[uniform_sample(split.lengths[v], config.sample_snippets)],
                            dtype=np.float32) for v in videos]
        lengths = torch.tensor([len(f) for f in feats])
        # Stored [B, D, T] and handed over as its [B, T, D] view: the model's first step (the conv)
        # transposes it back, which then costs no copy.
        padded = torch.zeros(len(feats), feats[0].shape[1], int(lengths.max()))
        for k, f in enumerate(feats):
            padded[k, :, :len(f)] = torch.from_numpy(f).T
        batches.append(EvalBatch(videos=videos, features=padded.to(device).transpose(1, 2), lengths=lengths))
    return batches


def eval_bytes(split, config):
    """Bytes of the test features eval_batches() would hold."""
    return int(np.minimum(split.lengths, max(config.sample_snippets, 2)).sum()) * split.feature_dim * 4


@torch.inference_mode()
def model_outputs(model, split, config, device, batch_size=16, progress=False, batches=None):
    """Per-video outputs of the model on a split (uniform sampling capped at config.sample_snippets,
    batched with zero padding; `batches` from eval_batches() saves reading the files again).
    Returns {vid: VideoOutput}."""
    model.eval()
    batches = batches if batches is not None else eval_batches(split, config, device, batch_size)
    # Every batch is queued first and all results come back in one copy: on a GPU, a read-back per
    # batch would leave it idle while the host waits.
    flat, shapes = [], []
    for batch in tqdm(batches, desc="evaluate", disable=not progress, leave=False, file=sys.stderr):
        out = model(batch.features, batch.lengths, localization_only=True)
        results = (out.inst_cas[:, :, :-1], out.attention[:, :, 0], out.scores_inst[:, :-1])
        flat += [r.float().flatten() for r in results]
        shapes.append([r.shape for r in results])
    flat = torch.cat(flat).cpu().numpy() if flat else np.zeros(0, np.float32)
    outputs = {}
    start = 0
    for batch, batch_shapes in zip(batches, shapes):
        pieces = []
        for shape in batch_shapes:
            pieces.append(flat[start:start + shape.numel()].reshape(shape))
            start += shape.numel()
        cas, attention, scores = pieces
        for k, (v, n) in enumerate(zip(batch.videos, batch.lengths.tolist())):
            outputs[split.ids[v]] = VideoOutput(cas=cas[k, :n], attention=attention[k, :n], video_scores=scores[k],
                                                original_snippets=int(split.lengths[v]))
    # Split order, not batching order: ties between equal scores of different videos are broken by
    # position in the results, so the order must not depend on the batch size.
    return {vid: outputs[vid] for vid in split.ids}


def score_outputs(outputs, labels, ids, ground_truth, config, fixed_nms=False, workers=1):
    """Detection and classification mAP of saved outputs. labels: [V, C] in the order of ids;
    workers: processes for the proposals (evaluation.workers)."""
    detection, detections = evaluation.score_proposals(outputs, ground_truth, config.tiou,
                                                     proposal_config(config, fixed_nms), workers)
    scores = np.stack([outputs[v].video_scores for v in ids])
    cls_map = evaluation.classification_map(labels, scores, list(ground_truth.classes))
    return Evaluation(detection=detection, classification_map=cls_map, detections=detections, outputs=outputs,
                      ids=list(ids), labels=labels, classes=list(ground_truth.classes))


def evaluate_model(model, split, ground_truth, config, device, batch_size=16, progress=False, fixed_nms=False,
                   batches=None, workers=1):
    """Run and score a model on a split (batches: see model_outputs; workers: see score_outputs).
    Returns an Evaluation."""
    outputs = model_outputs(model, split, config, device, batch_size, progress, batches)
    return score_outputs(outputs, split.labels, split.ids, ground_truth, config, fixed_nms, workers)


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
    with tool.atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def load_outputs(path):
    """(outputs {vid: VideoOutput}, ids, labels [V, C], Config) from save_outputs(); a missing,
    empty, truncated or foreign file is a one-line DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: outputs file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            ids = [str(v) for v in data["ids"]]
            offsets = data["offsets"]
            cas, attention = data["cas"], data["attention"]
            video_scores, original = data["video_scores"], data["original_snippets"]
            labels, config = data["labels"], Config.from_dict(json.loads(str(data["config"])))
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, TypeError) as err:
        raise DataError(f"{path}: not an outputs file of ftcl.evaluate ({err.__class__.__name__})") from None
    videos = len(ids)
    if (offsets.shape != (videos + 1,) or video_scores.shape[0] != videos or original.shape != (videos,)
            or labels.shape[0] != videos or len(cas) != offsets[-1] or len(attention) != offsets[-1]
            or (np.diff(offsets) < 1).any()):
        raise DataError(f"{path}: inconsistent outputs file ({videos} videos, offsets {offsets.shape}, "
                        f"cas {cas.shape}, scores {video_scores.shape})")
    outputs = {vid: VideoOutput(cas=cas[offsets[k]:offsets[k + 1]], attention=attention[offsets[k]:offsets[k + 1]],
                                video_scores=video_scores[k], original_snippets=int(original[k]))
               for k, vid in enumerate(ids)}
    return outputs, ids, labels, config


def checkpoint_config(checkpoint_path, data_dir=None, preset_name=None):
    """(checkpoint dict, Config, ours) of a checkpoint. Ours carries its config (--preset is refused);
    a release .pth ({"epoch", "model_state_dict"}) carries none and takes the preset's (default
    thumos14) with the classes of data_dir's gt.json and the feature dimension of its weights."""
    ckpt = load_checkpoint(checkpoint_path)
    if ckpt.get("format") == FORMAT and "config" in ckpt:
        if preset_name is not None:
            raise CheckpointError(f"{checkpoint_path}: carries its own config; --preset applies to release checkpoints")
        return ckpt, Config.from_dict(ckpt["config"]), True
    if data_dir is None:
        raise CheckpointError(f"{checkpoint_path}: a release checkpoint names no classes; give the --data-dir whose "
                              f"gt.json it was trained on (and --preset when it is not thumos14)")
    trained = state_dimensions(ckpt["model_state_dict"])
    if trained is None:
        raise CheckpointError(f"{checkpoint_path}: no feature_embedding / snippet_cls weights")
    classes = class_names(read_ground_truth(data_dir))
    if trained[0] != len(classes):
        raise DataError(f"{Path(data_dir) / 'gt.json'}: {len(classes)} classes, but {checkpoint_path} has {trained[0]}")
    config = preset(preset_name or "thumos14", data_dir=str(data_dir), classes=classes, num_classes=len(classes),
                    feature_dim=trained[1])
    return ckpt, config, False


def load_model(checkpoint_path, data_dir=None, preset_name=None):
    """(model on CPU, Config, Dataset with the test split) from a checkpoint (see checkpoint_config).
    For ours, data_dir points at the same data elsewhere: it must have the same classes and feature
    dimension."""
    ckpt, config, ours = checkpoint_config(checkpoint_path, data_dir, preset_name)
    if ours and data_dir is not None:
        config.data_dir = str(data_dir)
    dataset = load_dataset(config.data_dir, config.seconds_per_snippet, splits=("test",))
    require_same_data(dataset, config.classes, config.feature_dim, checkpoint_path)
    model = ACMNet.from_config(config)
    load_weights(model, ckpt["model_state_dict"], checkpoint_path)
    return model, config, dataset


def _video_recall(result, ground_truth, threshold=0.5):
    """{vid: fraction of its ground-truth instances met by a same-class detection of tIoU >= threshold}."""
    gt = ground_truth.segments
    recall = {}
    for vid in result.ids:
        if vid not in ground_truth.videos:
            continue
        v = ground_truth.videos.index(vid)
        instances = np.flatnonzero(gt.video == v)
        if not len(instances):
            continue
        found = 0
        for k in instances:
            name = ground_truth.classes[gt.label[k]]
            segs = np.array([d["segment"] for d in result.results["results"].get(vid, []) if d["label"] == name])
            if len(segs) and (evaluation.segment_iou(segs[:, 0], segs[:, 1], gt.start[k], gt.end[k]) >= threshold).any():
                found += 1
        recall[vid] = found / len(instances)
    return recall


def default_plot_videos(result, ground_truth, count=4):
    """The first count // 2 test videos and the count - count // 2 with the lowest recall@0.5."""
    first = list(result.ids[:count // 2])
    recall = _video_recall(result, ground_truth)
    worst = [vid for vid in sorted(recall, key=lambda v: (recall[v], v)) if vid not in first]
    return first + worst[:count - len(first)]


def plot_videos(path, evaluation_, ground_truth, config, videos, top=5):
    """One PNG per video id: the instance attention and each predicted class's CAS over time, the
    ground-truth instances (shaded, with class names) and the top detections (bars with scores).
    Returns the paths written."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    gt = ground_truth.segments
    written = []
    for vid in videos:
        out = evaluation_.outputs[vid]
        seconds = np.arange(len(out.attention)) * config.seconds_per_snippet * out.original_snippets / len(out.attention)
        classes = evaluation.proposals.predicted_classes(out.video_scores, config.cls_threshold)
        fig, (ax, ax_det) = plt.subplots(2, 1, figsize=(11, 4.6), sharex=True, height_ratios=[3, 1.4])
        ax.plot(seconds, out.attention, color="black", lw=1, label="instance attention")
        for c in classes:
            ax.plot(seconds, out.cas[:, c], lw=1, label=f"CAS {ground_truth.classes[c]} "
                                                        f"(video score {out.video_scores[c]:.2f})")
        if vid in ground_truth.videos:
            v = ground_truth.videos.index(vid)
            for k in np.flatnonzero(gt.video == v):
                ax.axvspan(gt.start[k], gt.end[k], color="tab:green", alpha=0.18)
                ax.text((gt.start[k] + gt.end[k]) / 2, 1.01, ground_truth.classes[gt.label[k]], ha="center",
                        va="bottom", fontsize=6, color="tab:green", rotation=90)
        ax.set_ylabel("score")
        ax.set_ylim(0, 1)
        ax.set_title(f"{vid} (green: ground truth)", fontsize=9, pad=40)
        ax.legend(loc="upper right", fontsize=7)
        detections = sorted(evaluation_.results["results"].get(vid, []), key=lambda d: -d["score"])[:top]
        for row, det in enumerate(detections):
            start, end = det["segment"]
            ax_det.barh(row, end - start, left=start, height=0.7, color="tab:blue", alpha=0.6)
            ax_det.text(end, row, f" {det['label']} {det['score']:.2f}", va="center", fontsize=7)
        ax_det.set_yticks(range(len(detections)), [f"#{r + 1}" for r in range(len(detections))], fontsize=7)
        ax_det.invert_yaxis()
        ax_det.set_ylabel(f"top {top}\ndetections", fontsize=8)
        ax_det.set_xlabel("time (s)")
        fig.tight_layout()
        target = path / f"{vid}.png"
        with tool.atomic_write(target, "wb") as f:
            fig.savefig(f, dpi=100, format="png")
        plt.close(fig)
        written.append(target)
    return written


def _refuse_existing(path, flag, overwrite):
    if path is not None and Path(path).exists() and not overwrite:
        raise DataError(f"{path}: exists; {flag} never replaces a file unless you add --overwrite")


def main(argv=None):
    parser = tool.parser("python -m ftcl.evaluate", __doc__)
    parser.add_argument("checkpoint", nargs="?", help="a checkpoint of `python -m train` (e.g. runs/synthetic/ftcl/best.pt) "
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
    try:
        written = [out_path]
        tool.write_json_atomic(out_path, result.results)
        if args.save_outputs:
            save_outputs(args.save_outputs, result, config)
            written.append(Path(args.save_outputs))
        if args.plot:
            written += plot_videos(args.plot, result, ground_truth, config, plot_ids)
    except OSError as err:
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


if __name__ == "__main__":
    tool.run(main)
