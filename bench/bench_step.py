"""Benchmark of one training step: FTCL (16 pairs) against ACM-Net on the same 32 videos, and the
release's baseline step (ACM-Net + in-batch FSD / LCS). Forward, backward and optimizer step at the
release's sizes on a GPU (750 snippets x 2048-d); on a CPU at the synthetic set's 256-d."""
import functools
import os

import numpy as np
import pytest
import torch

import kernels
from bench.common import gpu_ms, on_gpu, synchronized
from ftcl import losses
from ftcl.config import preset
from ftcl.data import in_batch_pairs
from ftcl.model import ACMNet
from train.loop import make_optimizer

DEVICE = "cuda" if on_gpu() else "cpu"
# The release's 2048-d on a GPU; 256-d (the synthetic set's) on a CPU unless FTCL_BENCH_DIM says otherwise.
DIM = int(os.environ.get("FTCL_BENCH_DIM", 2048 if DEVICE == "cuda" else 256))


def step_cases(device, feature_dim, pairs=16, snippets=750, num_classes=20):
    """The benchmarked steps' pieces: (model, optimizer, {step name: (features, loss of the model's
    output)}) at the release's sizes (16 pairs of 750-snippet videos, half of them positive)."""
    config = preset("thumos14", feature_dim=feature_dim, num_classes=num_classes)
    torch.manual_seed(0)
    model = ACMNet.from_config(config).to(device).train()
    optimizer = make_optimizer(model, config)
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.relu(torch.randn(2 * pairs, snippets, feature_dim, generator=gen, device=device))
    classes = torch.randint(0, num_classes, (2 * pairs,), generator=gen, device=device)
    classes[pairs:pairs + pairs // 2] = classes[:pairs // 2]  # half of the pairs positive
    labels = torch.nn.functional.one_hot(classes, num_classes).float()
    batch_pairs, positive = in_batch_pairs(labels[:16].cpu().numpy(), np.random.default_rng(0))
    batch_pairs, positive = torch.from_numpy(batch_pairs).to(device), torch.from_numpy(positive).to(device)
    cases = {
        "acm-32-videos": (x, lambda out: losses.acm_loss(out, labels, config)[0]),
        "ftcl-16-pairs": (x, lambda out: losses.ftcl_loss(out, labels, config)[0]),
        "release-baseline-16-videos": (x[:16], lambda out: losses.in_batch_loss(
            out, labels[:16], batch_pairs, positive, config, log_eps=losses.RELEASE_BASELINE_LOG_EPS)[0]),
    }
    return model, optimizer, cases


def _steps(device, feature_dim, **kw):
    """{step name: one training step (forward, loss, backward, optimizer step)}."""
    model, optimizer, cases = step_cases(device, feature_dim, **kw)

    def step_of(features, loss_of):
        def step():
            loss = loss_of(model(features))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return step
    return {name: step_of(*case) for name, case in cases.items()}


@pytest.mark.parametrize("step", ["acm-32-videos", "ftcl-16-pairs", "release-baseline-16-videos",
                                  "ftcl-16-pairs-triton-cosine"])
def test_training_step(benchmark, step, monkeypatch):
    """The last case is the FTCL step with the Triton producer of the similarities (GPU only): whether
    kernels.pairwise_cosine's "auto" should pick it."""
    if step.endswith("triton-cosine"):
        if DEVICE != "cuda":
            pytest.skip("needs a CUDA GPU")
        monkeypatch.setattr(kernels, "pairwise_cosine", functools.partial(kernels.pairwise_cosine, backend="triton"))
    run = _steps(DEVICE, DIM)[step.removesuffix("-triton-cosine")]
    benchmark.extra_info.update(step=step, device=DEVICE, feature_dim=DIM, snippets=750)
    if DEVICE == "cuda":
        benchmark.extra_info["gpu_ms"] = gpu_ms(run)
    benchmark.pedantic(synchronized(run), rounds=10 if DEVICE == "cuda" else 5, warmup_rounds=1)
