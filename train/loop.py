"""The ACM-Net baseline and FTCL fine-tuning loops, evaluation each epoch, checkpoints and logs."""
import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ftcl import losses
from ftcl.checkpoint import FORMAT, CheckpointError, load_checkpoint, load_weights, save_checkpoint
from ftcl.config import Config
from ftcl.data import in_batch_pairs, load_dataset, random_sample, release_pairs
from ftcl.evaluate import evaluate_model, ground_truth_of
from ftcl.files import atomic_write
from ftcl.model import ACMNet
from ftcl.seed import seed_everything

LOSS_TERMS = ("loss", "inst", "cont", "back", "guide", "feat", "sparse", "lcs", "fsd")


class TrainingStopped(RuntimeError):
    """The run cannot go on (e.g. a run of NaN losses); the message says why and where."""


def _sampled_batch(split, videos, count, rng):
    """[B, count, D] float32 tensor of the videos' randomly sampled snippets."""
    return torch.from_numpy(np.stack([
        np.asarray(split.features(v)[random_sample(split.lengths[v], count, rng)], dtype=np.float32)
        for v in videos]))


def _all_correct(scores, labels, threshold):
    """[B] bool: every class predicted right at the threshold (the release's train accuracy)."""
    return ((scores[:, :-1] >= threshold).float() == labels).all(dim=1)


class Trainer:
    """One run: `kind` is "baseline" (ACM-Net) or "ftcl" (fine-tuning with the FSD / LCS terms)."""

    def __init__(self, kind, config, run_dir, device, progress=True):
        self.kind, self.config, self.run_dir, self.device = kind, config, Path(run_dir), device
        self.progress = progress
        self.rng = seed_everything(config.seed)
        classes, self.train_split, self.test_split, dim = load_dataset(config.data_dir)
        config.classes, config.num_classes, config.feature_dim = classes, len(classes), dim
        config.data_dir = str(Path(config.data_dir).resolve())
        self.ground_truth = ground_truth_of(config)
        self.model = ACMNet.from_config(config).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, betas=(0.9, 0.999),
                                          weight_decay=config.weight_decay)
        self.epoch = 0
        self.best = -math.inf
        self.nan_steps = 0
        self.rows = []

    @property
    def total_epochs(self):
        return self.config.ftcl_epochs if self.kind == "ftcl" else self.config.epochs

    def init_from(self, path):
        """Start from another run's weights (ours or a release .pth); the optimizer starts fresh."""
        state = load_checkpoint(path)["model_state_dict"]
        missing = load_weights(self.model, state, path)
        if missing:
            print(f"note: {path} has no {', '.join(sorted({k.split('.')[0] for k in missing}))}; "
                  f"initialised fresh", file=sys.stderr)

    def resume(self):
        """Continue exactly from RUN/last.pt: weights, optimizer, epoch, best, RNG states, logs."""
        path = self.run_dir / "last.pt"
        ckpt = load_checkpoint(path)
        if ckpt.get("format") != FORMAT or ckpt.get("kind") != self.kind:
            raise CheckpointError(f"{path}: not a {self.kind} checkpoint of this tool; cannot resume")
        load_weights(self.model, ckpt["model_state_dict"], path)
        self.optimizer.load_state_dict(ckpt["optimizer_state_dict"])
        self.epoch, self.best, self.nan_steps = ckpt["epoch"], ckpt["best"], ckpt["nan_steps"]
        torch.set_rng_state(ckpt["rng"]["torch"])
        if torch.cuda.is_available() and ckpt["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
        self.rng.bit_generator.state = ckpt["rng"]["numpy"]
        metrics = self.run_dir / "metrics.csv"
        if metrics.is_file():
            with metrics.open() as f:
                self.rows = [r for r in csv.DictReader(f) if int(r["epoch"]) <= self.epoch]

    def _payload(self):
        return {"format": FORMAT, "kind": self.kind, "epoch": self.epoch, "best": self.best,
                "nan_steps": self.nan_steps, "config": self.config.to_dict(),
                "model_state_dict": self.model.state_dict(), "optimizer_state_dict": self.optimizer.state_dict(),
                "rng": {"torch": torch.get_rng_state(), "numpy": self.rng.bit_generator.state,
                        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}}

    def _batches(self):
        """Per step: (videos [B] or pairs [P, 2] of train indices, positive [P] bool or None)."""
        cfg = self.config
        if self.kind == "ftcl" and cfg.pairs == "release":
            pairs = release_pairs(self.train_split.labels, self.rng)
            return [(pairs[i:i + cfg.batch_size], None) for i in range(0, len(pairs), cfg.batch_size)]
        order = self.rng.permutation(len(self.train_split))
        return [(order[i:i + cfg.batch_size], None) for i in range(0, len(order), cfg.batch_size)]

    def _step_loss(self, batch):
        """(loss, terms, correct [B] bool) of one batch."""
        cfg, split, device = self.config, self.train_split, self.device
        labels_all = torch.from_numpy(split.labels)
        if self.kind == "ftcl" and cfg.pairs == "release":
            videos = np.concatenate([batch[:, 0], batch[:, 1]])
            out = self.model(_sampled_batch(split, videos, cfg.sample_snippets, self.rng).to(device))
            a, b = out.select(slice(0, len(batch))), out.select(slice(len(batch), None))
            labels_a, labels_b = labels_all[batch[:, 0]].to(device), labels_all[batch[:, 1]].to(device)
            loss, terms = losses.ftcl_loss(a, b, labels_a, labels_b, cfg)
            correct = (_all_correct(a.scores_inst, labels_a, cfg.cls_threshold)
                       & _all_correct(b.scores_inst, labels_b, cfg.cls_threshold))
            return loss, terms, correct
        labels = labels_all[batch].to(device)
        out = self.model(_sampled_batch(split, batch, cfg.sample_snippets, self.rng).to(device))
        loss, terms = losses.acm_loss(out, labels, cfg)
        terms.update(lcs=loss.new_zeros(()), fsd=loss.new_zeros(()))
        pairs, positive = in_batch_pairs(split.labels[batch]) if self.kind == "ftcl" else ([], None)
        if len(pairs):
            pairs = torch.from_numpy(pairs).to(device)
            weighted, lcs_term, fsd_term = losses.contrastive_terms(
                out.select(pairs[:, 0]), out.select(pairs[:, 1]), torch.from_numpy(positive).to(device), cfg)
            loss = loss + weighted
            terms.update(lcs=lcs_term.detach(), fsd=fsd_term.detach())
        return loss, terms, _all_correct(out.scores_inst, labels, cfg.cls_threshold)

    def train_epoch(self):
        """One pass over the batches; returns the epoch's mean loss terms and train accuracy."""
        self.model.train()
        sums = dict.fromkeys(LOSS_TERMS, 0.0)
        steps = correct = total = 0
        streak = 0
        batches = self._batches()
        bar = tqdm(batches, desc=f"{self.kind} epoch {self.epoch + 1}/{self.total_epochs}", leave=False,
                   disable=not self.progress, file=sys.stderr)
        for step, batch in enumerate(bar):
            t0 = time.perf_counter()
            loss, terms, ok = self._step_loss(batch[0])
            self.optimizer.zero_grad(set_to_none=True)
            if not torch.isfinite(loss):
                # As the release: a NaN step is skipped; a run of them means the run has diverged.
                self.nan_steps += 1
                streak += 1
                if streak >= self.config.max_nan_steps:
                    raise TrainingStopped(f"{streak} consecutive non-finite losses at epoch {self.epoch + 1}, "
                                          f"step {step + 1}; the last good state is {self.run_dir / 'last.pt'}")
                continue
            streak = 0
            loss.backward()
            self.optimizer.step()
            steps += 1
            sums["loss"] += loss.item()
            for key, value in terms.items():
                sums[key] += float(value)
            correct += int(ok.sum())
            total += len(ok)
            bar.set_postfix(loss=f"{sums['loss'] / steps:.3f}", ms_step=f"{1e3 * (time.perf_counter() - t0):.0f}")
        return {k: v / max(steps, 1) for k, v in sums.items()}, correct / max(total, 1)

    def evaluate(self):
        return evaluate_model(self.model, self.test_split, self.ground_truth, self.config, self.device,
                              progress=self.progress)

    def run(self):
        """Train up to the configured epoch count; returns the last evaluation (or None)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.run_dir / "config.json") as f:
            f.write(json.dumps(self.config.to_dict(), indent=2) + "\n")
        last_eval = None
        low, high = (float(x) for x in self.config.selection_average.split(":"))
        while self.epoch < self.total_epochs:
            t0 = time.perf_counter()
            means, accuracy = self.train_epoch()
            self.epoch += 1
            row = {"epoch": self.epoch, **{k: f"{v:.6g}" for k, v in means.items()},
                   "train_acc": f"{accuracy:.4f}", "nan_steps": self.nan_steps}
            if self.epoch % self.config.eval_every == 0 or self.epoch == self.total_epochs:
                last_eval = self.evaluate()
                det = last_eval.detection
                row.update({f"mAP@{t:g}": f"{100 * m:.4f}" for t, m in zip(det.tiou, det.mAP)})
                selected = 100 * det.average(low, high)
                row[f"avg{self.config.selection_average}"] = f"{selected:.4f}"
                row["cls_mAP"] = f"{100 * last_eval.classification_map:.4f}"
                if selected > self.best:
                    self.best = selected
                    save_checkpoint(self.run_dir / "best.pt", self._payload())
                self._log(f"epoch {self.epoch}: loss {means['loss']:.4f}, test avg mAP({self.config.selection_average}) "
                          f"{selected:.2f} (best {self.best:.2f})")
            row["seconds"] = f"{time.perf_counter() - t0:.2f}"
            self.rows.append(row)
            save_checkpoint(self.run_dir / "last.pt", self._payload())
            self._write_metrics()
        return last_eval

    def _write_metrics(self):
        columns = []
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        with atomic_write(self.run_dir / "metrics.csv") as f:
            writer = csv.DictWriter(f, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(self.rows)

    def _log(self, message):
        if self.progress:
            tqdm.write(message, file=sys.stderr)


def config_for_run(kind, args):
    """The resolved Config of a new run from parsed CLI arguments (see train/__main__.py)."""
    from ftcl.config import preset
    overrides = {"data_dir": args.data_dir, "seed": args.seed, "eval_every": args.eval_every,
                 "pairs": args.pairs, "use_fsd": not args.without_fsd, "use_lcs": not args.without_lcs}
    for name in ("batch_size", "lr", "weight_decay", "sample_snippets", "lcs_gamma", "fsd_gamma"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.epochs is not None:
        overrides["ftcl_epochs" if kind == "ftcl" else "epochs"] = args.epochs
    return preset(args.preset, **overrides)


def resumed_config(run_dir, args):
    """The stored Config of RUN/last.pt, with --epochs (to extend a run) applied."""
    ckpt = load_checkpoint(Path(run_dir) / "last.pt")
    if "config" not in ckpt:
        raise CheckpointError(f"{Path(run_dir) / 'last.pt'}: no stored config; cannot resume")
    config = Config.from_dict(ckpt["config"])
    if args.epochs is not None:
        setattr(config, "ftcl_epochs" if ckpt.get("kind") == "ftcl" else "epochs", args.epochs)
    return config
