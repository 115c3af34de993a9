"""Optional experiment loggers beside metrics.csv: TensorBoard (RUN/tb) and Weights & Biases.

Neither package is a dependency: asking for one that is not installed is a one-line LoggerError.
Both receive, once per epoch, every numeric column of the metrics.csv row (each loss term, the
weighted contrastive terms, train accuracy, mAP per tIoU, the averages, classification mAP,
seconds per epoch).
"""
import importlib
import math


class LoggerError(ValueError):
    """A logger that was asked for cannot run; the message is one line saying what to install."""


def _require(module, flag, package):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise LoggerError(f"{flag} needs the {package} package, which is not installed here "
                          f"(pip install {package})") from None


def require_loggers(tensorboard=False, wandb=False):
    """Refuse (LoggerError) a logger whose package is not installed: called before a run removes or
    writes anything."""
    if tensorboard:
        _require("tensorboard", "--tensorboard", "tensorboard")
        _require("torch.utils.tensorboard", "--tensorboard", "tensorboard")
    if wandb:
        _require("wandb", "--wandb", "wandb")


class EpochLoggers:
    """Per-epoch scalars to the loggers asked for. run_dir: where TensorBoard writes (RUN/tb) and
    wandb keeps its files; name: the run's name for wandb; config: a dict logged once."""

    def __init__(self, run_dir=None, tensorboard=False, wandb=False, name=None, config=None, resume_epoch=0):
        self.writers = []
        if tensorboard:
            _require("tensorboard", "--tensorboard", "tensorboard")
            summary = _require("torch.utils.tensorboard", "--tensorboard", "tensorboard")
            writer = summary.SummaryWriter(log_dir=str(run_dir / "tb"), purge_step=resume_epoch + 1 if resume_epoch else None)
            self.writers.append(_TensorBoard(writer))
        if wandb:
            module = _require("wandb", "--wandb", "wandb")
            run = module.init(project="ftcl", name=name, config=config, dir=str(run_dir), resume="allow")
            self.writers.append(_WandB(run))

    def log(self, epoch, row):
        scalars = {k: float(v) for k, v in row.items()
                   if k != "epoch" and isinstance(v, (int, float)) and math.isfinite(float(v))}
        for writer in self.writers:
            writer.log(epoch, scalars)

    def close(self):
        for writer in self.writers:
            writer.close()
        self.writers = []


class _TensorBoard:
    def __init__(self, writer):
        self.writer = writer

    def log(self, epoch, scalars):
        for key, value in scalars.items():
            self.writer.add_scalar(_tag(key), value, epoch)
        self.writer.flush()

    def close(self):
        self.writer.close()


class _WandB:
    def __init__(self, run):
        self.run = run

    def log(self, epoch, scalars):
        self.run.log({_tag(k): v for k, v in scalars.items()}, step=epoch)

    def close(self):
        self.run.finish()


def _tag(key):
    """Group the scalars: loss/..., test/..., train/..., time/..."""
    if key.startswith(("mAP@", "avg", "cls_mAP")):
        return f"test/{key}"
    if key in ("train_acc", "nan_steps"):
        return f"train/{key}"
    if key == "seconds":
        return "time/seconds_per_epoch"
    return f"loss/{key}"
