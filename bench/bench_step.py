"""Benchmark of one training step: FTCL (16 pairs) against ACM-Net on the same 32 videos, and the
release's baseline step (ACM-Net + in-batch FSD / LCS). Forward, backward and optimizer step at the
release's sizes on a GPU (750 snippets x 2048-d); on a CPU at the synthetic set's 256-d."""
import os

import numpy as np
import pytest
import torch

from bench.common import cuda_kernel_count, gpu_ms, on_gpu, synchronized
from ftcl import losses
from ftcl.config import preset
from ftcl.data import in_batch_pairs
from ftcl.model import ACMNet
from ftcl.train.loop import finite_when_read, make_optimizer, to_device

DEVICE = "cuda" if on_gpu() else "cpu"
# The release's 2048-d on a GPU; 256-d (the synthetic set's) on a CPU unless FTCL_BENCH_DIM says otherwise.
DIM = int(os.environ.get("FTCL_BENCH_DIM", 2048 if DEVICE == "cuda" else 256))


def _trained_model(device, feature_dim, num_classes):
    """(config, model in train mode, the trainer's optimizer) of a seeded ACM-Net."""
    config = preset("thumos14", feature_dim=feature_dim, num_classes=num_classes)
    torch.manual_seed(0)
    model = ACMNet.from_config(config).to(device).train()
    return config, model, make_optimizer(model, config)


def step_cases(device, feature_dim, pairs=16, snippets=750, num_classes=20):
    """The benchmarked steps' pieces: (model, optimizer, {step name: (features, loss of the model's
    output)}) at the release's sizes (16 pairs of 750-snippet videos, half of them positive)."""
    config, model, optimizer = _trained_model(device, feature_dim, num_classes)
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


@pytest.mark.parametrize("step", ["acm-32-videos", "ftcl-16-pairs", "release-baseline-16-videos"])
def test_training_step(benchmark, step):
    run = _steps(DEVICE, DIM)[step]
    benchmark.extra_info.update(step=step, device=DEVICE, feature_dim=DIM, snippets=750)
    if DEVICE == "cuda":
        benchmark.extra_info["gpu_ms"] = gpu_ms(run)
        benchmark.extra_info["gpu_kernels"] = cuda_kernel_count(run)  # what `python -m bench ops` counts, on the GPU
    benchmark.pedantic(synchronized(run), rounds=10 if DEVICE == "cuda" else 5, warmup_rounds=1)


def _host_fed_step(kind, loop, device, feature_dim, pairs=16, snippets=750, num_classes=20, videos=200):
    """One training step that takes its batch from the host as the trainer does: the sampled rows'
    indices (into features kept on the device) and the labels, plus the in-batch pairs for the release
    baseline, then the finite check. loop "waits": plain copies to the device and the check read
    before the backward (the trainer before commit aac4aca); "no-waits": the trainer's to_device and
    finite_when_read."""
    config, model, optimizer = _trained_model(device, feature_dim, num_classes)
    rng = np.random.default_rng(0)
    table = torch.relu(torch.randn(videos * snippets, feature_dim, device=device))  # the training features
    labels_table = np.eye(num_classes, dtype=np.float32)[rng.integers(0, num_classes, videos)]
    count = 2 * pairs if kind == "ftcl" else pairs

    def copy(array):
        return to_device(array, device) if loop == "no-waits" else torch.from_numpy(array).to(device)

    def step():
        picked = rng.choice(videos, count, replace=False)
        rows = (picked[:, None] * snippets + np.sort(rng.integers(0, snippets, (count, snippets)), axis=1)).ravel()
        out = model(table[copy(rows)].view(count, snippets, feature_dim))
        labels = copy(labels_table[picked])
        if kind == "ftcl":
            loss = losses.ftcl_loss(out, labels, config)[0]
        else:
            batch_pairs, positive = in_batch_pairs(labels_table[picked], rng)
            loss = losses.in_batch_loss(out, labels, copy(batch_pairs), copy(positive), config,
                                        log_eps=losses.RELEASE_BASELINE_LOG_EPS)[0]
        optimizer.zero_grad(set_to_none=True)
        if loop == "waits":
            if not torch.isfinite(loss):
                return
            loss.backward()
        else:
            is_finite = finite_when_read(loss)
            loss.backward()
            if not is_finite():
                optimizer.zero_grad(set_to_none=True)
                return
        optimizer.step()
    return step


@pytest.mark.parametrize("loop", ["waits", "no-waits"])
@pytest.mark.parametrize("kind", ["ftcl", "release-baseline"])
def test_host_fed_step(benchmark, kind, loop):
    """The trainer's way of feeding a step (GPU only): the same step with its batch copied from the
    host and its finite check, with copies that wait for the device and the check read before the
    backward, or neither (what the trainer does now). do_bench keeps calling without synchronising,
    so a step's waits show as the device idling between its kernels."""
    if DEVICE != "cuda":
        pytest.skip("needs a CUDA GPU")
    run = _host_fed_step(kind, loop, DEVICE, DIM)
    benchmark.extra_info.update(step=kind, loop=loop, device=DEVICE, feature_dim=DIM, gpu_ms=gpu_ms(run))
    benchmark.pedantic(synchronized(run), rounds=5, warmup_rounds=1)
