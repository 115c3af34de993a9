"""Running a model on a split and scoring it: the library behind `python -m ftcl.evaluate`,
`python -m ftcl.localize` and the training loop's evaluation after every epoch.

Test videos are run in padded batches (videos of similar length together); the outputs come back
in one copy; proposals, NMS and mAP are ftcl.evaluation's. Outputs can be saved per video (.npz) and
scored again without the model.
"""
import dataclasses
import functools
import json
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ftcl import evaluation, tool
from ftcl.checkpoint import FORMAT, CheckpointError, load_checkpoint, load_weights, state_dimensions
from ftcl.config import Config, preset
from ftcl.data import DataError, load_dataset, read_ground_truth, require_same_data, uniform_sample
from ftcl.evaluation import VideoOutput
from ftcl.evaluation.io import class_names
from ftcl.model import ACMNet


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
    return dataclasses.replace(config.proposals, fixed=fixed_nms)


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


def save_outputs(path, evaluation_, config, replace=True):
    """Per-video outputs as one .npz (concatenated over time with offsets), written atomically;
    replace=False never replaces an existing file (tool.atomic_write)."""
    ids = evaluation_.ids
    outs = [evaluation_.outputs[v] for v in ids]
    offsets = np.cumsum([0] + [len(o.attention) for o in outs])
    arrays = {"ids": np.array(ids), "offsets": offsets, "cas": np.concatenate([o.cas for o in outs]),
              "attention": np.concatenate([o.attention for o in outs]),
              "video_scores": np.stack([o.video_scores for o in outs]),
              "original_snippets": np.array([o.original_snippets for o in outs]),
              "labels": evaluation_.labels, "config": np.array(json.dumps(config.to_dict()))}
    with tool.atomic_write(path, "wb", replace=replace) as f:
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
