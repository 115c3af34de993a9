"""One helper to fix every source of randomness."""
import os
import random

import numpy as np
import torch


def seed_everything(seed):
    """Seed Python, numpy and torch (CPU and CUDA) and ask for deterministic kernels.
    Returns a numpy Generator for the run's own sampling."""
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    return np.random.default_rng(seed)


def resolve_device(name):
    """'auto' -> cuda when available else cpu; 'cuda' without a GPU is a one-line ValueError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available here")
    return torch.device(name)
