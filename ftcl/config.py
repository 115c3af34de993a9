"""Configuration: one dataclass whose defaults are the release's THUMOS14 recipe, plus presets.

Every setting lives here and nowhere else: the model, the losses, the data loader, the test-time
proposal procedure, the evaluation and the synthetic generator read it from a Config.
"""
import dataclasses
from dataclasses import dataclass, field

import numpy as np

PRESETS = ("thumos14", "activitynet13", "activitynet12")
OBJECTIVES = ("release", "acm")


def _arange(start, stop, step):
    """np.arange as the release writes its thresholds, unrounded (0.30000000000000004 included), so
    that a value exactly on a threshold falls on the same side as in the release."""
    return tuple(np.arange(start, stop, step).tolist())


@dataclass
class Config:
    """Everything a run needs; saved beside the run (config.json) and inside each checkpoint."""

    preset: str = "thumos14"
    data_dir: str = ""
    # Read from the data when a run starts.
    num_classes: int = 0
    feature_dim: int = 0
    classes: list = field(default_factory=list)

    # Data and model (ACM-Net).
    sample_snippets: int = 750  # snippets sampled per video (training: strided random; test: uniform, capped)
    frames_per_snippet: int = 16  # the features' time scale: one row per 16 frames ...
    fps: int = 25  # ... of video decoded at 25 fps
    dropout: float = 0.7
    embedding_dropout: bool = False  # ActivityNet: dropout before the embedding and the attention
    topk_divisors: tuple = (8, 3, 3)  # instance, context, background: k = max(T // divisor, 1)

    # Optimisation.
    lr: float = 1e-4
    weight_decay: float = 5e-5
    batch_size: int = 16  # videos for the baseline, pairs for FTCL
    epochs: int = 500  # baseline epochs (the FTCL release's baseline command; ACM-Net's own is 1000)
    ftcl_epochs: int = 25
    eval_every: int = 1
    seed: int = 0
    max_nan_steps: int = 20  # consecutive NaN losses before a run stops

    # ACM-Net losses.
    branch_weights: tuple = (1.0, 1.0, 1.0)  # instance, context, background classification
    lambda_guide: float = 2e-3
    lambda_feat: float = 5e-5
    lambda_sparse: float = 2e-4
    feat_margin: float = 50.0

    # The baseline stage: "release" = ACM-Net + in-batch FSD / LCS terms (the FTCL release's
    # baseline, ACMLoss); "acm" = ACM-Net alone (the ACM-Net paper's objective).
    objective: str = "release"
    # The release's in-batch LCS runs on max(0, s - offset) * scale of the cosine similarity s.
    inbatch_lcs_offset: float = 0.8
    inbatch_lcs_scale: float = 5.0

    # FTCL.
    lcs_len: int = 30
    fsd_len: int = 5
    fc_dim: int = 1024
    lcs_threshold: float = 0.92
    lcs_gamma: float = 0.0
    fsd_gamma: float = 0.1
    lambda_lcs: float = 0.1
    lambda_fsd: float = 0.8
    use_lcs: bool = True
    use_fsd: bool = True
    pairs: str = "release"  # "release": label-matched pair set; "in-batch": the baseline's pairs within each video batch

    # Test-time localisation (the release's procedure; see evaluation/proposals.py).
    cls_threshold: float = 0.25
    upscale: int = 20
    cas_thresholds: tuple = _arange(0.15, 0.25, 0.05)  # 0.15, 0.20
    att_thresholds: tuple = _arange(0.15, 1.00, 0.05)  # 0.15 ... 0.95
    oic_outer_ratio: float = 0.2  # outer flank length / proposal length, each side
    oic_video_score_weights: tuple = (0.0, 0.0)  # gamma of the CAS runs, of the attention runs
    oic_score_mix: tuple = (1.0, 0.0)  # runs are scored on mix[0] * CAS + mix[1] * attention
    nms_iou: float = 0.55
    tiou: tuple = _arange(0.1, 1.0, 0.1)
    selection_average: str = "0.1:0.7"  # best.pt is chosen on this average mAP

    @property
    def seconds_per_snippet(self):
        return self.frames_per_snippet / self.fps

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        """Rebuild a config, ignoring unknown keys (newer or older versions) and restoring tuples."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in data.items():
            if key in names:
                default = names[key].default
                kwargs[key] = tuple(value) if isinstance(default, tuple) and isinstance(value, list) else value
        return cls(**kwargs)


def _activitynet(**values):
    """ACM-Net's ActivityNet recipe (its main_act.py and config): 75 snippets, strong regularisation,
    and its own test procedure: CAS and attention runs at 0.005 ... 0.02 scored on 0.7 CAS + 0.3
    attention with 0.15 flanks, the attention runs adding 0.25 x the video score; NMS 0.9."""
    values.update(
        sample_snippets=75, embedding_dropout=True, topk_divisors=(2, 10, 10), weight_decay=1e-3,
        branch_weights=(5.0, 1.0, 1.0), lambda_guide=5e-3, lambda_feat=5e-5, lambda_sparse=0.0,
        cls_threshold=0.10, cas_thresholds=(0.005, 0.01, 0.015, 0.02), att_thresholds=(0.005, 0.01, 0.015, 0.02),
        oic_outer_ratio=0.15, oic_video_score_weights=(0.0, 0.25), oic_score_mix=(0.7, 0.3), nms_iou=0.90,
        tiou=_arange(0.5, 1.0, 0.05), selection_average="0.5:0.95")
    return values


def preset(name, **overrides):
    """The release's hyper-parameters for a dataset, with overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    values = {"preset": name}
    if name.startswith("activitynet"):
        values = _activitynet(**values)
    values.update(overrides)
    return Config(**values)
