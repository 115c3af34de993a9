"""Configuration: one dataclass whose defaults are the release's THUMOS14 recipe, plus presets.

Every setting lives here and nowhere else: the model, the losses, the data loader, the evaluation
and the synthetic generator read it from a Config. The test-time proposal procedure's settings are
evaluation's own object (ftcl.evaluation.ProposalConfig), held as Config.proposals. A field made
with `option(...)` is also a flag of `python -m ftcl.train` (--lcs-len for lcs_len, unless it names
another), with its help and value check: adding a hyper-parameter is one field here (and its test).
"""
import argparse
import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ftcl import tool
from ftcl.evaluation import ProposalConfig

OBJECTIVES = ("release", "acm")
PAIR_SETS = ("release", "in-batch")
STAGES = ("baseline", "ftcl")


def _arange(start, stop, step):
    """np.arange as the release writes its thresholds, unrounded (0.30000000000000004 included), so
    that a value exactly on a threshold falls on the same side as in the release."""
    return tuple(np.arange(start, stop, step).tolist())


# Far above any useful temperature (the release uses 0.1), far below float32 overflow at any table size
# training builds.
MAX_GAMMA = 1e6


def _branch_weights(text):
    """argparse type: the instance, context and background classification weights, "5,1,1"."""
    parts = text.split(",")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected three comma-separated weights (instance,context,background), "
                                         f"got {text!r}")
    try:
        return tuple(tool.number(0)(part.strip()) for part in parts)
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"{err} (in {text!r})") from None


def _gamma(text):
    """argparse type of a smooth-max temperature: 0, or from the DP ops' smallest (kernels.MIN_GAMMA)
    to MAX_GAMMA."""
    from ftcl.kernels.api import MIN_GAMMA  # imported when a flag is parsed, not with the config
    return tool.temperature(MIN_GAMMA, MAX_GAMMA)(text)


# ActivityNet, where the FTCL release has no code: ACM-Net's recipe (its main_act.py and config; its
# ACMLoss with dataset="ActivityNet": classification weights 5/1/1) with its own test procedure (CAS and
# attention runs at 0.005 ... 0.02 scored on 0.7 CAS + 0.3 attention with 0.15 flanks, the attention
# runs adding 0.25 x the video score; NMS 0.9), evaluated on every second epoch from the first
# (main_act.py: epoch_idx % 2 == 0) for its 1000 epochs (config.py), ACM-Net alone in the baseline stage
# (no release defines in-batch FSD / LCS terms there), batch 64 (the FTCL README's ActivityNet command).
# The FTCL stage keeps the classification weights 1/1/1: the release builds its FTCLLoss with the
# default dataset="THUMOS14" whatever the data.
_ACTIVITYNET = dict(
    sample_snippets=75, embedding_dropout=True, topk_divisors=(2, 10, 10), weight_decay=1e-3,
    branch_weights=(5.0, 1.0, 1.0), lambda_guide=5e-3, lambda_feat=5e-5, lambda_sparse=0.0,
    proposals=ProposalConfig(class_threshold=0.10, cas_thresholds=(0.005, 0.01, 0.015, 0.02),
                             att_thresholds=(0.005, 0.01, 0.015, 0.02), outer_ratio=0.15,
                             video_score_weights=(0.0, 0.25), score_mix=(0.7, 0.3), nms_iou=0.90),
    tiou=_arange(0.5, 1.0, 0.05), selection_average="0.5:0.95",
    eval_every=2, epochs=1000, batch_size=64, objective="acm")

# Each preset: the Config values it changes from the defaults (the release's THUMOS14 recipe).
PRESETS = {
    "thumos14": {},
    "activitynet13": _ACTIVITYNET,
    "activitynet12": _ACTIVITYNET,  # the same recipe
}


# torch.compile's modes that --compile-mode offers ("default" passes none).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs")


def compile_mode_error(compile_mode, compiled):
    """The one-line error for a --compile-mode given without --compile (None when there is none)."""
    if compile_mode not in (None, "default") and not compiled:
        return f"--compile-mode {compile_mode} applies to compiled steps: add --compile"
    return None


def option(default, help, parse=None, *, flag=None, choices=None, stage=None, on_resume=False, negate=False):
    """A Config field that `python -m ftcl.train` sets from the command line.

    parse: argparse type of the value; flag: the flag when not --<field-name>; choices: its allowed
    values; stage: "baseline" or "ftcl" when only that stage takes it (two fields may share a flag,
    one per stage); on_resume: whether --resume takes it: False (it would change what the run
    computes: refused), True (it changes no number: the stage's epochs, where the data lie, the
    checkpoint cadence, the plateau window) or "note" (it changes how a step is computed, which may
    round differently: taken with a note); negate: a boolean field that the flag (e.g. --without-fsd)
    turns off, or for a field off by default, turns on (with --no-... to turn it off again).
    """
    metadata = {"help": help, "parse": parse, "flag": flag, "choices": choices, "stage": stage,
                "on_resume": on_resume, "negate": negate}
    return field(default=default, metadata=metadata)


@dataclass
class Config:
    """Everything a run needs; saved beside the run (config.json) and inside each checkpoint."""

    preset: str = option("thumos14", "hyper-parameters of a data set", choices=tuple(PRESETS))
    data_dir: str = option("", "THUMOS14-format directory (gt.json, split_*.txt, train/, test/)", on_resume=True)
    # Read from the data when a run starts.
    num_classes: int = 0
    feature_dim: int = 0
    classes: list = field(default_factory=list)

    # Data and model (ACM-Net).
    sample_snippets: int = option(750, "snippets sampled per video (training: strided random; test: uniform, "
                                       "capped)", tool.positive_int)
    dropout: float = 0.7
    embedding_dropout: bool = False  # ActivityNet: dropout before the embedding and the attention
    topk_divisors: tuple = (8, 3, 3)  # instance, context, background: k = max(T // divisor, 1)

    # Optimisation.
    lr: float = option(1e-4, "Adam's learning rate", tool.number(0, False))
    weight_decay: float = option(5e-5, "Adam's weight decay", tool.number(0))
    batch_size: int = option(16, "videos (baseline) or pairs (ftcl) per step", tool.positive_int)
    # The FTCL release's baseline command runs 500 epochs (ACM-Net's own 1000).
    epochs: int = option(500, "epochs to train", tool.positive_int, flag="--epochs", stage="baseline",
                         on_resume=True)
    ftcl_epochs: int = option(25, "epochs to train", tool.positive_int, flag="--epochs", stage="ftcl", on_resume=True)
    eval_every: int = option(1, "evaluate the test split on epochs 1, 1 + N, 1 + 2N, ... (ACM-Net's epoch_idx % N == "
                                "0) and after the last", tool.positive_int)
    seed: int = option(0, "seed of every random draw of the run", tool.seed)
    max_nan_steps: int = 20  # consecutive NaN losses before a run stops
    # A run "at chance": training accuracy 0 and the instance loss within plateau_margin of ln(C + 1).
    plateau_epochs: int = option(10, "epochs in a row at chance (training accuracy 0, instance loss within "
                                     "0.05 of ln(C + 1)) before the log says so; training is not changed",
                                 tool.positive_int, on_resume=True)
    plateau_margin: float = 0.05
    precision: str = option("float32", "float32, or bf16: the training steps' model under bfloat16 autocast (the "
                                       "DP ops keep float32 tables; evaluation stays float32)",
                            choices=("float32", "bf16"))
    compile_step: bool = option(False, "compile each training step's model, loss and backward with "
                                       "torch.compile(fullgraph=True) (the DP terms as registered operators)",
                                flag="--compile", negate=True, on_resume="note")
    compile_mode: str = option("default", "torch.compile mode of --compile: default, reduce-overhead (each step "
                                          "replayed from CUDA graphs on a GPU) or max-autotune-no-cudagraphs",
                               choices=COMPILE_MODES, on_resume="note")
    checkpoint_every: int = option(1, "write RUN/last.pt every N epochs (and at the last epoch, on Ctrl-C and when a "
                                      "run stops; best.pt whenever the best improves)", tool.positive_int,
                                 on_resume=True)
    checkpoint_minutes: float = option(0.0, "also write RUN/last.pt once this many minutes passed since the last "
                                            "write (0: by epochs only)", tool.number(0), on_resume=True)

    # ACM-Net losses.
    branch_weights: tuple = option((1.0, 1.0, 1.0), "weights of the instance, context and background classification "
                                                    "losses", _branch_weights, stage="baseline")
    ftcl_branch_weights: tuple = option((1.0, 1.0, 1.0), "weights of the instance, context and background "
                                                         "classification losses", _branch_weights,
                                        flag="--branch-weights", stage="ftcl")
    lambda_guide: float = 2e-3
    lambda_feat: float = 5e-5
    lambda_sparse: float = 2e-4
    feat_margin: float = 50.0

    # The baseline stage: "release" = ACM-Net + in-batch FSD / LCS terms (the FTCL release's
    # baseline, ACMLoss); "acm" = ACM-Net alone (the ACM-Net paper's objective).
    objective: str = option("release", "release (ACM-Net + in-batch FSD/LCS) or acm (ACM-Net alone)",
                            choices=OBJECTIVES, stage="baseline")
    # The release's in-batch LCS runs on max(0, s - offset) * scale of the cosine similarity s.
    inbatch_lcs_offset: float = 0.8
    inbatch_lcs_scale: float = 5.0

    # FTCL (both stages: the baseline's in-batch terms use the same settings).
    lcs_len: int = option(30, "LCS candidates per video", tool.positive_int)
    fsd_len: int = option(5, "FSD action (and background) candidates per video", tool.positive_int)
    fc_dim: int = 1024
    lcs_threshold: float = option(0.92, "similarity a snippet pair must exceed to extend an LCS (the baseline's "
                                        "in-batch LCS compares it with max(0, s - 0.8) x 5 of the cosine s)",
                                  tool.number(-1, True, 1, "a cosine similarity"))
    lcs_gamma: float = option(0.0, "smooth LCS temperature (0: the hard max)", _gamma)
    fsd_gamma: float = option(0.1, "FSD smooth-max temperature", _gamma)
    lambda_lcs: float = option(0.1, "lambda_LCS, the LCS contrast's weight", tool.number(0), flag="--lcs-weight")
    lambda_fsd: float = option(0.8, "lambda_FSD, the FSD contrast's weight", tool.number(0), flag="--fsd-weight")
    use_lcs: bool = option(True, "ablation: drop the LCS term", flag="--without-lcs", negate=True)
    use_fsd: bool = option(True, "ablation: drop the FSD term", flag="--without-fsd", negate=True)
    pairs: str = option("release", "release (the label-matched pair set) or in-batch (the baseline's pairs "
                                   "within each batch of videos)", choices=PAIR_SETS, stage="ftcl")

    # Test-time localisation (the release's procedure, and the features' time scale: evaluation's
    # ProposalConfig); its class_threshold also decides training's accuracy.
    proposals: ProposalConfig = field(default_factory=ProposalConfig)
    tiou: tuple = _arange(0.1, 1.0, 0.1)
    selection_average: str = "0.1:0.7"  # best.pt is chosen on this average mAP

    @property
    def seconds_per_snippet(self):
        return self.proposals.frames_per_snippet / self.proposals.fps

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        """Rebuild a config, ignoring unknown keys (newer or older versions) and restoring tuples."""
        if "branch_weights" in data and "ftcl_branch_weights" not in data:
            # Written before the stages had their own weights: both stages used branch_weights.
            data = {**data, "ftcl_branch_weights": data["branch_weights"]}
        # Written before the proposal settings had their own object, they stood flat under other names.
        proposals = {new: data[old] for old, new in _FLAT_PROPOSAL_KEYS.items() if old in data}
        proposals.update(data.get("proposals") or {})
        return cls(**_json_fields(cls, {key: value for key, value in data.items() if key != "proposals"}),
                   proposals=ProposalConfig(**_json_fields(ProposalConfig, proposals)))


# Config keys of the proposal settings before Config.proposals, and their ProposalConfig names.
_FLAT_PROPOSAL_KEYS = {"cls_threshold": "class_threshold", "upscale": "upscale", "cas_thresholds": "cas_thresholds",
                       "att_thresholds": "att_thresholds", "oic_outer_ratio": "outer_ratio",
                       "oic_video_score_weights": "video_score_weights", "oic_score_mix": "score_mix",
                       "nms_iou": "nms_iou", "frames_per_snippet": "frames_per_snippet", "fps": "fps"}


def _json_fields(cls, data):
    """The arguments of dataclass cls in a JSON dict: unknown keys (newer or older versions) left out,
    lists back to tuples where the field's default is one."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    return {key: tuple(value) if isinstance(fields[key].default, tuple) and isinstance(value, list) else value
            for key, value in data.items() if key in fields}


def options():
    """The Config fields made with option(), in declaration order."""
    return [f for f in dataclasses.fields(Config) if "help" in f.metadata]


def preset(name, **overrides):
    """The release's hyper-parameters for a dataset, with overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return Config(**{**PRESETS[name], "preset": name, **overrides})
