"""The baseline and FTCL training loops, evaluation each epoch, checkpoints and logs."""
import json
import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ftcl.evaluation import parse_range
from ftcl.tool import atomic_write
from ftcl.evaluation import workers as eval_workers
from ftcl import losses
from ftcl.checkpoint import (FORMAT, CheckpointError, cpu_copy, link_checkpoint, load_checkpoint, load_weights,
                             save_checkpoint)
from ftcl.config import Config, compile_mode_error
from ftcl.data import DataError, in_batch_pairs, load_dataset, random_sample, release_pairs, require_same_data
from ftcl.inference import EVAL_CACHE_BYTES, eval_batches, eval_bytes, model_outputs, score_outputs
from ftcl.model import ACMNet
from ftcl.seed import seed_everything
from ftcl.train.loggers import EpochLoggers

LOSS_TERMS = ("loss", "inst", "cont", "back", "guide", "feat", "sparse", "lcs", "fsd")


class TrainingStopped(RuntimeError):
    """The run cannot go on (e.g. no finite step); the message says why and where."""


class TrainFeatures:
    """A split's features read once into one [sum T, D] float32 tensor on the training device, so a
    step gathers its snippets there instead of reading files and copying to the device."""

    def __init__(self, split, device):
        rows = [np.asarray(split.features(v), dtype=np.float32) for v in range(len(split))]
        self.offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])[:-1]]).astype(np.int64)
        self.table = torch.from_numpy(np.concatenate(rows)).to(device)

    @staticmethod
    def fits(split, limit):
        return int(split.lengths.sum()) * split.feature_dim * 4 <= limit


def to_device(array, device):
    """A numpy array as a tensor on device. To a GPU through pinned memory without waiting: a plain
    .to("cuda") from pageable memory synchronises the stream, so each step's first copy would wait
    for the previous step's backward to finish and the device would idle while the host queues."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if torch.device(device).type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def finite_when_read(loss):
    """Starts reading whether loss is finite back to the host; returns a function that answers. On a GPU
    the answer waits only for the work queued before this call, so queue the backward before asking."""
    finite = torch.isfinite(loss)
    if not finite.is_cuda:
        return lambda: bool(finite)
    on_host = finite.to("cpu", non_blocking=True)  # into pinned memory
    copied = torch.cuda.Event()
    copied.record(torch.cuda.current_stream(finite.device))  # the loss's device, whichever is current

    def read():
        copied.synchronize()
        return bool(on_host)
    return read


def make_optimizer(model, config):
    """The release's Adam (betas 0.9, 0.999). On a GPU its fused form: two operations per step update
    every parameter, where the multi-tensor form takes about 25 (the same update; the last bits of the
    arithmetic may differ). On the CPU torch's default form, as in every earlier run."""
    on_gpu = next(model.parameters()).is_cuda
    return torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.999), weight_decay=config.weight_decay,
                            fused=on_gpu or None)


def load_optimizer_state(optimizer, state_dict):
    """Load an optimizer state written on any device, keeping this device's form of Adam (a run
    trained on a GPU and resumed on the CPU steps as on the CPU, and the reverse). torch's
    load_state_dict restores the writer's "fused" and "foreach" settings with the moments, and places
    the step counters by them (on the parameters' device for the fused form), so they are set to this
    optimizer's before loading."""
    groups = [{**saved, "fused": current["fused"], "foreach": current["foreach"]}
              for saved, current in zip(state_dict["param_groups"], optimizer.param_groups)]
    optimizer.load_state_dict({**state_dict, "param_groups": groups})


def _sampled_batch(split, videos, count, rng, cache=None, device="cpu"):
    """[B, count, D] float32 tensor (on device) of the videos' randomly sampled snippets; the same
    draws from rng whether the features come from the files or from a TrainFeatures cache."""
    indices = [random_sample(split.lengths[v], count, rng) for v in videos]
    if cache is not None:
        rows = np.concatenate([cache.offsets[v] + idx for v, idx in zip(videos, indices)])
        return cache.table[to_device(rows, cache.table.device)].view(len(videos), count, -1)
    return to_device(np.stack([np.asarray(split.features(v)[idx], dtype=np.float32)
                               for v, idx in zip(videos, indices)]), device)


def _all_correct(scores, labels, threshold):
    """[B] bool: every class predicted right at the threshold (the release's train accuracy)."""
    return ((scores[:, :-1] >= threshold).float() == labels).all(dim=1)


@dataclass(frozen=True)
class Objective:
    """How one kind of run draws its batches and computes a step's loss (chosen once per run).
    batches(trainer) -> list of batches; step(trainer, batch) -> (loss, terms, correct [B] bool), terms
    holding a detached scalar for every name of LOSS_TERMS after "loss"; pairs_in_batch: its pairs are
    drawn inside each batch of videos (a batch needs two videos to hold one)."""

    name: str
    batches: object
    step: object
    pairs_in_batch: bool = False


def _video_batches(trainer):
    order = trainer.rng.permutation(len(trainer.train_split))
    size = trainer.config.batch_size
    return [order[i:i + size] for i in range(0, len(order), size)]


def _release_pair_batches(trainer):
    pairs = release_pairs(trainer.train_split.labels, trainer.rng)
    size = trainer.config.batch_size
    return [pairs[i:i + size] for i in range(0, len(pairs), size)]


# Each objective's step is a host part (sampling, pairs: numpy, the run's random stream) and a device
# part (model, loss, correct) that takes tensors only: what Trainer.device_step compiles under
# --compile.

def _acm_device(model, config, features, labels):
    out = model(features)
    loss, terms = losses.acm_loss(out, labels, config)
    terms.update(lcs=loss.new_zeros(()), fsd=loss.new_zeros(()))
    return loss, terms, _all_correct(out.scores_inst, labels, config.proposals.class_threshold)


def _acm_step(trainer, videos):
    labels = to_device(trainer.train_split.labels[videos], trainer.device)
    return trainer.device_step(_acm_device, trainer.sampled(videos), labels)


def _in_batch_step(log_eps, rescale_lcs, stage):
    def device(model, config, features, labels, pairs, positive):
        out = model(features)
        loss, terms = losses.in_batch_loss(out, labels, pairs, positive, config, log_eps=log_eps,
                                           rescale_lcs=rescale_lcs, stage=stage)
        return loss, terms, _all_correct(out.scores_inst, labels, config.proposals.class_threshold)

    def step(trainer, videos):
        labels = to_device(trainer.train_split.labels[videos], trainer.device)
        features = trainer.sampled(videos)
        pairs, positive = in_batch_pairs(trainer.train_split.labels[videos], trainer.rng)
        return trainer.device_step(device, features, labels, to_device(pairs, trainer.device),
                                   to_device(positive, trainer.device))
    return step


def _release_pair_device(model, config, features, labels):
    out = model(features)
    loss, terms = losses.ftcl_loss(out, labels, config)
    correct_a, correct_b = _all_correct(out.scores_inst, labels, config.proposals.class_threshold).view(2, -1).unbind(0)
    return loss, terms, correct_a & correct_b


def _release_pair_step(trainer, batch):
    videos = np.concatenate([batch[:, 0], batch[:, 1]])  # the pairs' first videos, then their second
    features = trainer.sampled(videos)
    labels = to_device(trainer.train_split.labels[videos], trainer.device)
    return trainer.device_step(_release_pair_device, features, labels)


def evaluated_epoch(epoch, every, total):
    """Whether epoch (1-based) is evaluated: 1, 1 + every, 1 + 2 every, ... (ACM-Net's epoch_idx %
    every == 0 on its 0-based epochs) and the last."""
    return (epoch - 1) % every == 0 or epoch == total


def objective_of(kind, config):
    """The Objective of a run: baseline "release" (ACM-Net + the release's in-batch FSD / LCS terms,
    its log(p + 1e-45)), baseline "acm" (ACM-Net alone), FTCL on the release's pair set, or FTCL on
    the baseline's in-batch pairs (unscaled LCS similarities)."""
    if kind == "baseline":
        if config.objective == "acm":
            return Objective("acm", _video_batches, _acm_step)
        return Objective("release", _video_batches, _in_batch_step(losses.RELEASE_BASELINE_LOG_EPS, True, "baseline"),
                         pairs_in_batch=True)
    if config.pairs == "in-batch":
        return Objective("ftcl-in-batch", _video_batches, _in_batch_step(losses.LOG_EPS, False, "ftcl"), pairs_in_batch=True)
    return Objective("ftcl-release-pairs", _release_pair_batches, _release_pair_step)


def _check_pairs_exist(kind, config, labels, data_dir):
    """FTCL needs positive pairs; refuse a training split that has none (zero steps otherwise)."""
    labels = np.asarray(labels) > 0
    first, second = np.triu_indices(len(labels), k=1)
    identical = (labels[first] == labels[second]).all(axis=1)
    if kind == "ftcl" and config.pairs == "release" and not identical.any():
        raise DataError(f"{data_dir}: no two training videos have identical labels, so FTCL has no positive pair "
                        f"to train on")
    single = identical & (labels[first].sum(axis=1) == 1)
    if kind == "ftcl" and config.pairs == "in-batch" and not single.any():
        raise DataError(f"{data_dir}: no two training videos share one single label, so --pairs in-batch has no "
                        f"positive pair to train on")


class Trainer:
    """One run: `kind` is "baseline" (ACM-Net, by default with the release's in-batch terms) or
    "ftcl" (fine-tuning with the FSD / LCS terms). dataset: an already loaded ftcl.data.Dataset of
    config.data_dir (optional)."""

    def __init__(self, kind, config, run_dir, device, progress=True, dataset=None, loggers=None):
        self.kind, self.config, self.run_dir, self.device = kind, config, Path(run_dir), device
        self.progress = progress
        self.rng = seed_everything(config.seed)
        dataset = dataset or load_dataset(config.data_dir, config.seconds_per_snippet)
        self.objective = objective_of(kind, config)
        self._adopt_dataset(dataset)
        self.model = ACMNet.from_config(config).to(device)
        self.optimizer = make_optimizer(self.model, config)
        self.selection = parse_range(config.selection_average)
        self.loggers = loggers or EpochLoggers()
        self.epoch = 0
        self.best = -math.inf
        self.best_eval = None
        self.nan_steps = 0
        self.nan_streak = 0
        self.plateau_streak = 0  # epochs in a row at chance (train_acc 0, instance loss ~ ln(C + 1))
        self._unsaved = None  # the last finished epoch's checkpoint payload, when the cadence skipped it
        self._compiled = {}  # device step -> its torch.compile'd form (config.compile_step)
        self._last_write = time.monotonic()
        self.rows = []
        self._eval_batches = None
        self._train_cache = None
        self.eval_workers = eval_workers.default_workers()  # processes for the proposals of every evaluation
        # An epoch's end (proposals, mAP, checkpoint, logs) runs in a thread beside the next epoch's
        # training; False runs it in line, as the release (the same files either way).
        self.overlap = True
        self.last_eval = None

    def device_step(self, fn, *tensors):
        """fn(model, config, *tensors) -> (loss, terms, correct): a step's device part, compiled with
        torch.compile(fullgraph=True) once per objective when config.compile_step, under bfloat16
        autocast when config.precision is "bf16"."""
        if self.config.compile_step:
            mode = None if self.config.compile_mode == "default" else self.config.compile_mode
            if fn not in self._compiled:
                self._compiled[fn] = torch.compile(fn, fullgraph=True, mode=mode)
            fn = self._compiled[fn]
            if mode == "reduce-overhead":
                # A new step: the last step's graph outputs (read already) may be overwritten.
                torch.compiler.cudagraph_mark_step_begin()
        if self.config.precision != "bf16":
            return fn(self.model, self.config, *tensors)
        # The model's matmuls and convolutions in bfloat16 (autocast); the DP ops take bfloat16
        # similarities and keep float32 tables.
        with torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16):
            return fn(self.model, self.config, *tensors)

    def sampled(self, videos):
        """[B, sample_snippets, D] training snippets of the videos on the device (features read once
        per run and kept there while they fit in EVAL_CACHE_BYTES)."""
        if self._train_cache is None and TrainFeatures.fits(self.train_split, EVAL_CACHE_BYTES):
            self._train_cache = TrainFeatures(self.train_split, self.device)
        return _sampled_batch(self.train_split, videos, self.config.sample_snippets, self.rng, self._train_cache,
                              self.device)

    def _adopt_dataset(self, dataset):
        cfg = self.config
        if cfg.classes:
            require_same_data(dataset, cfg.classes, cfg.feature_dim, "the run")
        cfg.classes, cfg.num_classes, cfg.feature_dim = dataset.classes, len(dataset.classes), dataset.feature_dim
        cfg.data_dir = str(Path(dataset.data_dir).resolve())
        if cfg.sample_snippets < 2 * cfg.fsd_len:
            raise ValueError(f"--sample-snippets {cfg.sample_snippets}: must be >= {2 * cfg.fsd_len} "
                             f"(FSD takes {cfg.fsd_len} action and {cfg.fsd_len} background candidates per video)")
        if self.objective.pairs_in_batch and cfg.batch_size < 2:
            raise ValueError(f"--batch-size {cfg.batch_size}: a batch of one video holds no pair, so the in-batch "
                             f"FSD and LCS terms would be 0 in every step; use 2 or more (FTCL's release pair set "
                             f"counts its batch in pairs and takes 1)")
        _check_pairs_exist(self.kind, cfg, dataset.train.labels, dataset.data_dir)
        self.dataset, self.train_split, self.test_split = dataset, dataset.train, dataset.test
        self.ground_truth = dataset.test_ground_truth()

    @property
    def total_epochs(self):
        return self.config.ftcl_epochs if self.kind == "ftcl" else self.config.epochs

    def init_from(self, path):
        """Start from another run's weights (ours or a release .pth); the optimizer starts fresh.
        Returns a one-line description of the checkpoint (its recorded test mAP when it has one)."""
        ckpt = load_checkpoint(path)
        try:
            missing = load_weights(self.model, ckpt["model_state_dict"], path)
        except CheckpointError:
            trained = (ckpt.get("config") or {}).get("preset") if ckpt.get("format") == FORMAT else None
            if isinstance(trained, str) and trained != self.config.preset:
                raise CheckpointError(f"{path}: trained with --preset {trained}, this run has --preset "
                                      f"{self.config.preset}; add --preset {trained}") from None
            raise
        if missing:
            print(f"note: {path} has no {', '.join(sorted({k.split('.')[0] for k in missing}))}; "
                  f"initialised fresh", file=sys.stderr)
        if ckpt.get("format") == FORMAT:
            where = f"{ckpt.get('kind')} run, epoch {ckpt.get('epoch')}"
            best_eval = ckpt.get("best_eval") or {}
            if best_eval.get("average"):
                where += ", test " + ", ".join(f"avg mAP({k}) {100 * v:.2f}" for k, v in best_eval["average"].items())
            elif isinstance(ckpt.get("best"), float) and math.isfinite(ckpt["best"]):
                where += f", best test avg mAP {ckpt['best']:.2f}"
            return f"{path}: {where}"
        epoch = ckpt.get("epoch")
        return f"{path}: release checkpoint" + (f" (epoch {epoch})" if epoch is not None else "") + ", no recorded mAP"

    def resume(self):
        """Continue exactly from RUN/last.pt: weights, optimizer, epoch, best, RNG states, logs."""
        path = self.run_dir / "last.pt"
        ckpt = load_checkpoint(path)
        if ckpt.get("format") != FORMAT or ckpt.get("kind") != self.kind:
            raise CheckpointError(f"{path}: not a {self.kind} checkpoint of this tool; cannot resume")
        load_weights(self.model, ckpt["model_state_dict"], path)
        load_optimizer_state(self.optimizer, ckpt["optimizer_state_dict"])
        self.epoch, self.best, self.nan_steps = ckpt["epoch"], ckpt["best"], ckpt["nan_steps"]
        self.nan_streak = ckpt.get("nan_streak", 0)
        self.plateau_streak = ckpt.get("plateau_streak", 0)
        self.best_eval = ckpt.get("best_eval")
        torch.set_rng_state(ckpt["rng"]["torch"])
        if torch.cuda.is_available() and ckpt["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
        self.rng.bit_generator.state = ckpt["rng"]["numpy"]
        metrics = self.run_dir / "metrics.csv"
        if metrics.is_file():
            frame = pd.read_csv(metrics, dtype=str, keep_default_na=False)
            self.rows = [row for row in frame.to_dict("records") if int(row["epoch"]) <= self.epoch]

    def _payload(self, copy=False):
        """The checkpoint dict of the state now; copy: its tensors copied to the CPU, so that training
        can go on while it is written. `best` and `best_eval` are filled in by the epoch's end."""
        state = {"model_state_dict": self.model.state_dict(), "optimizer_state_dict": self.optimizer.state_dict()}
        if copy:
            state = cpu_copy(state)
        return {"format": FORMAT, "kind": self.kind, "epoch": self.epoch, "best": None, "best_eval": None,
                "nan_steps": self.nan_steps, "nan_streak": self.nan_streak,
                "plateau_streak": self.plateau_streak, "config": self.config.to_dict(), **state,
                "rng": {"torch": torch.get_rng_state(), "numpy": self.rng.bit_generator.state,
                        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}}

    def train_epoch(self):
        """One pass over the batches; returns the epoch's mean loss terms and train accuracy.

        A step reads one value back from the device (whether its loss is finite, which decides
        whether to step, as the release does), after its backward is queued, so the device keeps
        working while the host waits; the loss terms and accuracy are summed on the device and read
        once per epoch (and about once a second for the progress bar). A non-finite step's gradients
        are dropped."""
        self.model.train()
        sums = None  # [1 + len(LOSS_TERMS)] float64 on the device: correct videos, then the terms
        steps = total = 0
        batches = self.objective.batches(self)
        bar = tqdm(batches, desc=f"{self.kind} epoch {self.epoch + 1}/{self.total_epochs}", leave=False,
                   disable=not self.progress, file=sys.stderr)
        shown = time.monotonic()
        for step, batch in enumerate(bar):
            loss, terms, ok = self.objective.step(self, batch)
            self.optimizer.zero_grad(set_to_none=True)
            is_finite = finite_when_read(loss)
            loss.backward()
            if not is_finite():
                self.optimizer.zero_grad(set_to_none=True)
                # As the release: a NaN step is skipped; a run of them (across epochs) means divergence.
                self.nan_steps += 1
                self.nan_streak += 1
                if self.nan_streak >= self.config.max_nan_steps:
                    raise TrainingStopped(f"{self.nan_streak} consecutive non-finite losses up to epoch "
                                          f"{self.epoch + 1}, step {step + 1}; the last good state is "
                                          f"{self.run_dir / 'last.pt'}")
                continue
            self.nan_streak = 0
            self.optimizer.step()
            steps += 1
            total += len(ok)
            with torch.no_grad():
                row = torch.stack([ok.sum().to(loss.dtype), loss] + [terms[key] for key in LOSS_TERMS[1:]])
                sums = row.double() if sums is None else sums + row.double()
            if not bar.disable and time.monotonic() - shown >= 1.0:
                shown = time.monotonic()
                bar.set_postfix(loss=f"{sums[1].item() / steps:.3f}")
        if steps == 0:
            raise TrainingStopped(f"epoch {self.epoch + 1} took no finite step ({len(batches)} batches, every loss "
                                  f"non-finite); the last good state is {self.run_dir / 'last.pt'}")
        params = list(self.model.named_parameters())
        finite = torch.stack([torch.isfinite(p).all() for _, p in params]).tolist()
        bad = [name for (name, _), ok_param in zip(params, finite) if not ok_param]
        if bad:
            raise TrainingStopped(f"epoch {self.epoch + 1} left non-finite weights ({bad[0]}); nothing saved; "
                                  f"lower --lr (now {self.config.lr:g}); the last good state is "
                                  f"{self.run_dir / 'last.pt'}")
        correct, *term_sums = sums.tolist()
        return {k: v / steps for k, v in zip(LOSS_TERMS, term_sums)}, correct / max(total, 1)

    def eval_outputs(self):
        """{vid: VideoOutput} of the model on the test split: the device part of an evaluation. The
        sampled test features are read once and kept (on the training device) while they fit in
        EVAL_CACHE_BYTES."""
        if self._eval_batches is None and eval_bytes(self.test_split, self.config) <= EVAL_CACHE_BYTES:
            self._eval_batches = eval_batches(self.test_split, self.config, self.device)
        return model_outputs(self.model, self.test_split, self.config, self.device, progress=self.progress,
                             batches=self._eval_batches)

    def score(self, outputs):
        """The Evaluation of eval_outputs(): proposals (over self.eval_workers processes) and mAP."""
        return score_outputs(outputs, self.test_split.labels, self.test_split.ids, self.ground_truth, self.config,
                             workers=self.eval_workers)

    def run(self):
        """Train up to the configured epoch count; returns the last evaluation (or None). The caller
        holds the run directory (train.rundir.RunDirectory).

        Each epoch ends with the model's test outputs (on the device) and a copy of the state; the
        rest (proposals, mAP, best.pt / last.pt, metrics.csv, loggers) runs beside the next epoch's
        training when self.overlap, one epoch's end at a time and in order. The run waits for the
        last one, and an error in one is raised here, in the training thread."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.run_dir / "config.json") as f:
            f.write(json.dumps(self.config.to_dict(), indent=2) + "\n")
        if self.overlap:
            # Worker processes are forked now, from this thread, not later from the epoch-end thread
            # while this one trains.
            eval_workers.start(self.eval_workers)
        ends = _EpochEnds(threaded=self.overlap)
        self._last_write = time.monotonic()
        try:
            while self.epoch < self.total_epochs:
                t0 = time.perf_counter()
                means, accuracy = self.train_epoch()
                self.epoch += 1
                row = {"epoch": self.epoch, **means, "weighted_lcs": self.config.lambda_lcs * means["lcs"],
                       "weighted_fsd": self.config.lambda_fsd * means["fsd"], "train_acc": accuracy,
                       "nan_steps": self.nan_steps, "plateau": int(self._on_plateau(means["inst"], accuracy))}
                evaluating = evaluated_epoch(self.epoch, self.config.eval_every, self.total_epochs)
                outputs = self.eval_outputs() if evaluating else None
                seconds = time.perf_counter() - t0
                ends.submit(self._end_epoch, row, outputs, self._payload(copy=self.overlap), seconds)
        finally:
            try:
                ends.close()
            finally:
                # Ctrl-C, a stop or an error: last.pt still gets the last finished epoch (not a kill -9).
                self._write_unsaved()
        return self.last_eval

    def _checkpoint_due(self, epoch):
        """Whether last.pt is written after epoch: every config.checkpoint_every epochs, the last
        one, or config.checkpoint_minutes after the last write."""
        minutes = self.config.checkpoint_minutes
        return (epoch % self.config.checkpoint_every == 0 or epoch == self.total_epochs
                or (minutes > 0 and time.monotonic() - self._last_write >= 60 * minutes))

    def _write_unsaved(self):
        """Write the last finished epoch's state that the cadence left unwritten, if any."""
        unsaved, self._unsaved = self._unsaved, None
        if unsaved is not None:
            save_checkpoint(self.run_dir / "last.pt", unsaved)
            self._last_write = time.monotonic()

    def _on_plateau(self, instance_loss, accuracy):
        """Whether the run has sat at chance for config.plateau_epochs epochs in a row: training
        accuracy 0 and the instance classification loss within config.plateau_margin of ln(C + 1),
        its value while the attention is flat. Says so once per plateau; training is not changed."""
        chance = math.log(self.config.num_classes + 1)
        at_chance = accuracy == 0 and abs(instance_loss - chance) <= self.config.plateau_margin
        self.plateau_streak = self.plateau_streak + 1 if at_chance else 0
        if self.plateau_streak == self.config.plateau_epochs:
            self._say(f"plateau: {self.plateau_streak} epochs up to epoch {self.epoch} at chance (training accuracy 0, "
                      f"instance loss {instance_loss:.3f} ~ ln({self.config.num_classes} + 1) = {chance:.3f}): the "
                      f"attention is still flat; training goes on unchanged, and runs often leave it later; to get "
                      f"out sooner try --seeds, more epochs, a larger --lr, or --objective acm (metrics.csv: plateau)")
        return self.plateau_streak >= self.config.plateau_epochs

    def _end_epoch(self, row, outputs, payload, seconds):
        """Score the epoch's outputs (None: no evaluation this epoch), then write its checkpoint(s),
        metrics.csv row and logger scalars. seconds: its training and forward time."""
        t0 = time.perf_counter()
        epoch, label = row["epoch"], self.config.selection_average
        improved = False
        if outputs is not None:
            self.last_eval = self.score(outputs)
            det = self.last_eval.detection
            row.update({f"mAP@{t:g}": 100 * m for t, m in zip(det.tiou, det.mAP)})
            selected = 100 * det.average(*self.selection)
            row[f"avg{label}"] = selected
            row.update({f"avg{k}": 100 * v for k, v in det.averages().items() if k != label})
            row["cls_mAP"] = 100 * self.last_eval.classification_map
            improved = selected > self.best
            if improved:
                self.best = selected
                self.best_eval = {"epoch": epoch, **det.to_dict(), "per_class": None,
                                  "classification_mAP": self.last_eval.classification_map}
            self._log(f"epoch {epoch}: loss {row['loss']:.4f}, test avg mAP({label}) "
                      f"{selected:.2f} (best {self.best:.2f})")
        row["seconds"] = seconds + time.perf_counter() - t0
        self.rows.append({k: _cell(v) for k, v in row.items()})
        payload.update(best=self.best, best_eval=self.best_eval)
        if improved:
            # best.pt first, so a run stopped between the two never has a last.pt ahead of it.
            save_checkpoint(self.run_dir / "best.pt", payload)
            link_checkpoint(self.run_dir / "best.pt", self.run_dir / "last.pt")
            self._unsaved, self._last_write = None, time.monotonic()
        elif self._checkpoint_due(epoch):
            save_checkpoint(self.run_dir / "last.pt", payload)
            self._unsaved, self._last_write = None, time.monotonic()
        else:  # kept (a snapshot: without overlap the payload holds the live state) until due or stopped
            self._unsaved = payload if self.overlap else cpu_copy(payload)
        self._write_metrics()
        self.loggers.log(epoch, row)

    def _write_metrics(self):
        frame = pd.DataFrame(self.rows)
        with atomic_write(self.run_dir / "metrics.csv") as f:
            frame.to_csv(f, index=False)

    def _log(self, message):
        if self.progress:
            tqdm.write(message, file=sys.stderr)

    def _say(self, message):
        """A line the user must see, progress bars or not."""
        if self.progress:
            tqdm.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)


class _EpochEnds:
    """Runs epochs' ends one at a time: in one thread beside the training (threaded), else at once.
    An epoch end's error is raised by the next wait(), submit() or close()."""

    def __init__(self, threaded):
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="epoch-end") if threaded else None
        self.pending = None

    def submit(self, fn, *args):
        self.wait()
        if self.executor is None:
            fn(*args)
        else:
            self.pending = self.executor.submit(fn, *args)

    def wait(self):
        pending = self.pending
        if pending is None:
            return
        try:
            pending.result()
        except BaseException:
            # The end's own error is raised once; an interrupt of this wait leaves the end pending,
            # so close() still waits for it.
            if pending.done():
                self.pending = None
            raise
        self.pending = None

    def close(self):
        """Wait for the last end (on an error in training too: its checkpoint is the state to go back to)."""
        try:
            self.wait()
        finally:
            if self.executor is not None:
                self.executor.shutdown()


def _cell(value):
    """A metrics.csv cell: integers as they are, floats with 6 significant digits (text, so a row
    read back on --resume is written again unchanged)."""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, str):
        return value
    return f"{float(value):.6g}"


def resumed_config(run_dir, kind, changes=None):
    """The stored Config of RUN/last.pt with `changes` applied ({Config field: value} of the flags
    --resume takes: the stage's epochs, to extend a run, never below what is done; the data moved
    elsewhere; the checkpoint cadence; compiled steps)."""
    path = Path(run_dir) / "last.pt"
    ckpt = load_checkpoint(path)
    if "config" not in ckpt or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: no stored config; cannot resume")
    if ckpt.get("kind") != kind:
        raise CheckpointError(f"{path}: a {ckpt.get('kind')} run, not {kind}; resume it with `python -m ftcl.train "
                              f"{ckpt.get('kind')} --resume`")
    changes = changes or {}
    epochs = changes.get("ftcl_epochs" if kind == "ftcl" else "epochs")
    if epochs is not None and epochs < ckpt["epoch"]:
        raise ValueError(f"--epochs {epochs}: below the {ckpt['epoch']} epochs {run_dir} has done already")
    return with_resume_flags(Config.from_dict(ckpt["config"]), changes)


def with_resume_flags(config, changes=None):
    """config with `changes` ({Config field: value}: what --resume may change) applied."""
    changes = changes or {}
    for name, value in changes.items():
        setattr(config, name, str(value) if name == "data_dir" else value)
    if changes.get("compile_step") is False and "compile_mode" not in changes:
        config.compile_mode = "default"  # --no-compile: no mode of compiled steps either
    error = compile_mode_error(config.compile_mode, config.compile_step)
    if error:
        raise ValueError(error)
    return config


def stored_config(run_dir):
    """The Config of RUN/config.json (written when a run starts, before its first epoch)."""
    path = Path(run_dir) / "config.json"
    try:
        return Config.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: not a readable run config ({err.__class__.__name__})") from None
