"""The thresholded LCS as registered PyTorch operators: the only way from kernels.lcs_score to a
backend, eager and compiled (laid out as kernels/fsd/op.py): ftcl::lcs_forward returns (values [B],
table), ftcl::lcs_backward the gradient w.r.t. sim; each checks its arguments first.
"""
from typing import Optional

import torch
from torch import Tensor

from ftcl.kernels.settings import current_settings, use_settings
from ftcl.kernels.shared import checks, dp, launch, registration
from ftcl.kernels.shared.autograd import refuse_second_derivative


def _cpu():
    """The CPU path's module (numba), imported where it first runs: not for `--help` or a GPU run."""
    from ftcl.kernels.lcs import cpu
    return cpu


def check(sim, threshold, gamma, lengths, backend, allowed=checks.OP_BACKENDS):
    """The door of both ops (and of the naive specification): (threshold, gamma, lengths, backend)."""
    checks.table("sim", sim)
    threshold = checks.threshold(threshold)
    gamma = checks.gamma(gamma)
    lengths = checks.lengths(lengths, sim.shape, sim.device)
    resolved = checks.backend(backend, (sim,), allowed)
    checks.gamma_fits(gamma, sim.shape, checks.compute_dtype(sim))
    return threshold, gamma, lengths, resolved


@torch.library.custom_op("ftcl::lcs_forward", mutates_args=())
def lcs_forward(sim: Tensor, threshold: float, gamma: float, lengths: Optional[Tensor],
                backend: str) -> tuple[Tensor, Tensor]:
    """(values [B], table) of the thresholded LCS on sim [B, N, M]."""
    threshold, gamma, lengths, backend = check(sim, threshold, gamma, lengths, backend)
    if backend == "cpu":
        value, table = _cpu().lcs_forward(sim, threshold, gamma, lengths)
        return (registration.returned(value, sim, checks.compute_dtype(sim)),
                registration.returned(table, sim, torch.float64))
    settings = current_settings()
    if launch.skews(sim.shape, settings):
        sim = launch.to_diagonal_major(sim, settings)
    return dp.dp_forward("lcs", sim, sim, gamma, lengths, settings, threshold=threshold,
                         zero_table=lengths is not None)


@lcs_forward.register_fake
def _(sim, threshold, gamma, lengths, backend):
    return registration.fake_forward(backend, (sim,))


@torch.library.custom_op("ftcl::lcs_backward", mutates_args=())
def lcs_backward(grad: Tensor, sim: Tensor, table: Tensor, threshold: float, gamma: float, lengths: Optional[Tensor],
                 backend: str, skew: bool) -> Tensor:
    """Gradient of sum(grad * value) w.r.t. sim: [B, N, M], or (Triton, skew) its diagonal-major
    buffer [B, (N+M-1)*N]."""
    threshold, gamma, lengths, backend = check(sim, threshold, gamma, lengths, backend)
    checks.saved(grad, table, sim.shape, sim.device, backend)
    if backend == "cpu":
        grad_sim = _cpu().lcs_backward(grad, sim, table.cpu().numpy(), threshold, gamma, lengths)
        return registration.returned(grad_sim, sim, sim.dtype)
    settings = current_settings()
    if skew:
        sim = launch.to_diagonal_major(sim, settings)
    outputs, written = registration.triton_gradients(sim, (sim.dtype,), lengths, skew)
    dp.dp_backward("lcs", grad, sim, table.contiguous(), gamma, lengths, settings, written[0], written[0],
                   threshold=threshold)
    return outputs[0]


@lcs_backward.register_fake
def _(grad, sim, table, threshold, gamma, lengths, backend, skew):
    if checks.resolve_backend(backend, (sim,)) == "cpu":
        return sim.new_empty(sim.shape)
    return registration.fake_gradient(sim, skew)


def _setup(ctx, inputs, output):
    sim, threshold, gamma, lengths, backend = inputs
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(sim, output[1], lengths)
    ctx.settings = current_settings()
    ctx.backend = checks.resolve_backend(backend, (sim,))
    ctx.threshold, ctx.gamma = threshold, gamma
    ctx.skew = ctx.backend == "triton" and launch.skews(sim.shape, ctx.settings)


def _backward(ctx, grad_value, _grad_table):
    refuse_second_derivative(f"kernels.lcs_score ({ctx.backend} backend)")
    sim, table, lengths = ctx.saved_tensors
    with use_settings(ctx.settings):
        grad = lcs_backward(grad_value, sim, table, ctx.threshold, ctx.gamma, lengths, ctx.backend, ctx.skew)
    return registration.as_gradient(grad, sim.shape, ctx.skew), None, None, None, None


lcs_forward.register_autograd(_backward, setup_context=_setup)
