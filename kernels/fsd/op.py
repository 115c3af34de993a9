"""FSD as registered PyTorch operators: the only way from kernels.fsd_score to a backend, eager and
compiled. ftcl::fsd_forward returns (values [B], table), the table being what the backward
recomputes its weights from; ftcl::fsd_backward returns the input gradients. Each checks its
arguments first (kernels.shared.checks), has a fake (meta) implementation for tracing, and the two
are joined by register_autograd; a backward runs under the kernel settings its forward saw.
"""
from typing import Optional

import torch
from torch import Tensor

from ftcl.kernels.settings import current_settings, use_settings
from ftcl.kernels.shared import checks, dp, launch, registration
from ftcl.kernels.shared.autograd import refuse_second_derivative


def _cpu():
    """The CPU path's module (numba), imported where it first runs: not for `--help` or a GPU run."""
    from ftcl.kernels.fsd import cpu
    return cpu


def check(match, gap, gamma, lengths, backend, allowed=checks.OP_BACKENDS):
    """The door of both ops (and of the naive specification): (gamma, lengths, resolved backend)."""
    checks.table("match", match)
    checks.table("gap", gap)
    checks.same_tables(("match", "gap"), (match, gap))
    gamma = checks.gamma(gamma)
    lengths = checks.lengths(lengths, match.shape, match.device)
    resolved = checks.backend(backend, (match, gap), allowed)
    checks.gamma_fits(gamma, match.shape, checks.compute_dtype(match, gap))
    return gamma, lengths, resolved


@torch.library.custom_op("ftcl::fsd_forward", mutates_args=())
def fsd_forward(match: Tensor, gap: Tensor, gamma: float, lengths: Optional[Tensor],
                backend: str) -> tuple[Tensor, Tensor]:
    """(values [B], table) of FSD on match, gap [B, N, M]."""
    gamma, lengths, backend = check(match, gap, gamma, lengths, backend)
    if backend == "cpu":
        value, table = _cpu().fsd_forward(match, gap, gamma, lengths)
        return (registration.returned(value, match, checks.compute_dtype(match, gap)),
                registration.returned(table, match, torch.float64))
    settings = current_settings()
    if launch.skews(match.shape, settings):
        match, gap = launch.to_diagonal_major(match, settings), launch.to_diagonal_major(gap, settings)
    return dp.dp_forward("fsd", match, gap, gamma, lengths, settings, zero_table=lengths is not None)


@fsd_forward.register_fake
def _(match, gap, gamma, lengths, backend):
    return registration.fake_forward(backend, (match, gap))


@torch.library.custom_op("ftcl::fsd_backward", mutates_args=())
def fsd_backward(grad: Tensor, match: Tensor, gap: Tensor, table: Tensor, gamma: float, lengths: Optional[Tensor],
                 backend: str, skew: bool) -> tuple[Tensor, Tensor]:
    """Gradients of sum(grad * value) w.r.t. match and gap: [B, N, M], or (Triton, skew) their
    diagonal-major buffers [B, (N+M-1)*N]."""
    gamma, lengths, backend = check(match, gap, gamma, lengths, backend)
    checks.saved(grad, table, match.shape, match.device, backend)
    if backend == "cpu":
        grad_match, grad_gap = _cpu().fsd_backward(grad, gap, table.cpu().numpy(), gamma, lengths)
        return (registration.returned(grad_match, match, match.dtype),
                registration.returned(grad_gap, gap, gap.dtype))
    settings = current_settings()
    if skew:
        gap = launch.to_diagonal_major(gap, settings)
    outputs, written = registration.triton_gradients(gap, (match.dtype, gap.dtype), lengths, skew)
    dp.dp_backward("fsd", grad, gap, table.contiguous(), gamma, lengths, settings, *written)
    return outputs[0], outputs[1]


@fsd_backward.register_fake
def _(grad, match, gap, table, gamma, lengths, backend, skew):
    if checks.resolve_backend(backend, (match, gap)) == "cpu":
        return match.new_empty(match.shape), gap.new_empty(gap.shape)
    return registration.fake_gradient(match, skew), registration.fake_gradient(gap, skew)


def _setup(ctx, inputs, output):
    match, gap, gamma, lengths, backend = inputs
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(match, gap, output[1], lengths)
    ctx.settings = current_settings()
    ctx.backend = checks.resolve_backend(backend, (match, gap))
    ctx.gamma, ctx.skew = gamma, ctx.backend == "triton" and launch.skews(match.shape, ctx.settings)


def _backward(ctx, grad_value, _grad_table):
    refuse_second_derivative(f"kernels.fsd_score ({ctx.backend} backend)")
    match, gap, table, lengths = ctx.saved_tensors
    with use_settings(ctx.settings):
        grad_match, grad_gap = fsd_backward(grad_value, match, gap, table, ctx.gamma, lengths, ctx.backend, ctx.skew)
    return (registration.as_gradient(grad_match, match.shape, ctx.skew),
            registration.as_gradient(grad_gap, gap.shape, ctx.skew), None, None, None)


fsd_forward.register_autograd(_backward, setup_context=_setup)
