"""Configuration: one dataclass whose defaults are the release's THUMOS14 recipe, plus presets."""
import dataclasses
from dataclasses import dataclass, field

import numpy as np

PRESETS = ("thumos14", "activitynet13")


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
    dropout: float = 0.7
    embedding_dropout: bool = False  # ActivityNet: dropout before the embedding and the attention
    topk_divisors: tuple = (8, 3, 3)  # instance, context, background: k = max(T // divisor, 1)

    # Optimisation.
    lr: float = 1e-4
    weight_decay: float = 5e-5
    batch_size: int = 16  # videos for the baseline, pairs for FTCL
    epochs: int = 1000  # the ACM-Net release's count; FTCL fine-tuning uses ftcl_epochs
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
    pairs: str = "release"  # "release": label-matched pair set; "in-batch": all pairs among a video batch

    # Test-time localisation.
    cls_threshold: float = 0.25
    upscale: int = 20
    nms_iou: float = 0.55
    tiou: tuple = tuple(np.round(np.arange(0.1, 1.0, 0.1), 2).tolist())
    selection_average: str = "0.1:0.7"  # best.pt is chosen on this average mAP
    frames_per_snippet: int = 16
    fps: int = 25

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        """Rebuild a config, ignoring unknown keys (newer or older versions) and restoring tuples."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in data.items():
            if key in names:
                kwargs[key] = tuple(value) if isinstance(names[key].default, tuple) else value
        return cls(**kwargs)


def preset(name, **overrides):
    """The release's hyper-parameters for a dataset, with overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    values = {"preset": name}
    if name == "activitynet13":
        values.update(
            sample_snippets=75, embedding_dropout=True, topk_divisors=(2, 10, 10), weight_decay=1e-3,
            branch_weights=(5.0, 1.0, 1.0), lambda_guide=5e-3, lambda_feat=5e-5, lambda_sparse=0.0,
            cls_threshold=0.10, nms_iou=0.90, tiou=tuple(np.round(np.arange(0.5, 1.0, 0.05), 2).tolist()),
            selection_average="0.5:0.95")
    values.update(overrides)
    return Config(**values)
