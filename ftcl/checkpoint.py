"""Checkpoints: plain dicts (tensors and primitives) that load with torch.load(weights_only=True),
written atomically; and loading of the release's .pth files."""
import os
import shutil
import tempfile
from pathlib import Path

import torch

from ftcl.tool import atomic_write

FORMAT = "ftcl-checkpoint-v1"
# The release's ACM-Net checkpoints predate FTCL's projection; it starts fresh when absent.
OPTIONAL_PREFIXES = ("feature_trans.",)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message is one line naming the file and the key."""


def save_checkpoint(path, payload):
    """torch.save to a temporary file beside path, then rename (never a half-written checkpoint)."""
    with atomic_write(path, "wb") as f:
        torch.save(payload, f)


def cpu_copy(tree):
    """tree (dicts, lists, tuples of tensors and other values, e.g. a state dict) with every tensor
    detached and copied to the CPU: a snapshot that training can no longer change."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().to("cpu", copy=True)
    if isinstance(tree, dict):
        return {k: cpu_copy(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(cpu_copy(v) for v in tree)
    return tree


def link_checkpoint(source, path):
    """Make path the same file as source, atomically: a hard link (no second write of a checkpoint
    of hundreds of MB), or a copy where the filesystem has no links. A later save_checkpoint onto
    either path writes a new file, so the other keeps its contents."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        os.unlink(tmp)
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path):
    """Our checkpoint dict, or {"model_state_dict": ...} for a release .pth or a bare state dict."""
    path = Path(path)
    if path.is_dir():
        hint = f"; this run's are {path / 'best.pt'} and {path / 'last.pt'}" if (path / "best.pt").is_file() else ""
        raise CheckpointError(f"{path}: a directory, not a checkpoint file{hint}")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling raises many types; the user needs the file named
        raise CheckpointError(f"{path}: not a readable checkpoint ({err.__class__.__name__})") from None
    if isinstance(data, dict) and "model_state_dict" in data:
        return data
    if isinstance(data, dict) and data and all(isinstance(v, torch.Tensor) for v in data.values()):
        return {"model_state_dict": data}
    raise CheckpointError(f"{path}: no 'model_state_dict' (not an ACM-Net / FTCL checkpoint)")


def state_dimensions(state):
    """(classes, feature dimension) an ACM-Net state dict was trained for (its classifier has one
    more row, for the background; its embedding conv is feature_embedding.0 or .1), or None when it
    lacks either weight."""
    classifier = state.get("snippet_cls.weight")
    embedding = state.get("feature_embedding.0.weight", state.get("feature_embedding.1.weight"))
    if classifier is None or embedding is None:
        return None
    return classifier.shape[0] - 1, embedding.shape[0]


def load_weights(model, state, path):
    """Load state into model, checking every key, shape and value first (a one-line CheckpointError
    naming the key otherwise: a NaN or infinite weight would make every score NaN). Keys under
    OPTIONAL_PREFIXES may be missing. Returns the missing keys."""
    expected = model.state_dict()
    for key in state:
        if key not in expected:
            raise CheckpointError(f"{path}: unexpected key {key!r} (a checkpoint of another architecture?)")
        if tuple(state[key].shape) != tuple(expected[key].shape):
            raise CheckpointError(f"{path}: key {key!r} has shape {tuple(state[key].shape)}, the model needs "
                                  f"{tuple(expected[key].shape)} (other feature dimension or class count?)")
        if state[key].is_floating_point() and not torch.isfinite(state[key]).all():
            raise CheckpointError(f"{path}: weight {key!r} holds NaN or infinite values (saved from a diverged "
                                  f"run?); it cannot score anything")
    missing = [k for k in expected if k not in state]
    for key in missing:
        if not key.startswith(OPTIONAL_PREFIXES):
            raise CheckpointError(f"{path}: missing key {key!r} (a checkpoint of another architecture?)")
    model.load_state_dict(state, strict=False)
    return missing
