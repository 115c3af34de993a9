"""Soft-DTW as registered PyTorch operators: the only way from kernels.soft_dtw_score to a backend,
eager and compiled (laid out as kernels/fsd/op.py): ftcl::soft_dtw_forward returns (values [B],
table), ftcl::soft_dtw_backward the gradient w.r.t. the cost; each checks its arguments first.
"""
from typing import Optional

import torch
from torch import Tensor

from ftcl.kernels.settings import current_settings, use_settings
from ftcl.kernels.shared import checks, dp, registration
from ftcl.kernels.shared.autograd import refuse_second_derivative


def _cpu():
    """The CPU path's module (numba), imported where it first runs: not for `--help` or a GPU run."""
    from ftcl.kernels.soft_dtw import cpu
    return cpu


def check(cost, gamma, lengths, band, backend, allowed=checks.OP_BACKENDS):
    """The door of both ops (and of the naive specification): (gamma, lengths, band, backend)."""
    checks.table("cost", cost)
    gamma = checks.gamma(gamma)
    lengths = checks.lengths(lengths, cost.shape, cost.device)
    band = checks.band(band)
    resolved = checks.backend(backend, (cost,), allowed)
    checks.gamma_fits(gamma, cost.shape, checks.compute_dtype(cost))
    return gamma, lengths, band, resolved


@torch.library.custom_op("ftcl::soft_dtw_forward", mutates_args=())
def soft_dtw_forward(cost: Tensor, gamma: float, lengths: Optional[Tensor], band: Optional[int],
                     backend: str) -> tuple[Tensor, Tensor]:
    """(values [B], table) of soft-DTW on cost [B, N, M]."""
    gamma, lengths, band, backend = check(cost, gamma, lengths, band, backend)
    if backend == "cpu":
        value, table = _cpu().soft_dtw_forward(cost, gamma, lengths, band)
        return (registration.returned(value, cost, checks.compute_dtype(cost)),
                registration.returned(table, cost, torch.float64))
    return dp.dp_forward("soft_dtw", cost, cost, gamma, lengths, current_settings(), band=band,
                         zero_table=lengths is not None)


@soft_dtw_forward.register_fake
def _(cost, gamma, lengths, band, backend):
    return registration.fake_forward(backend, (cost,))


@torch.library.custom_op("ftcl::soft_dtw_backward", mutates_args=())
def soft_dtw_backward(grad: Tensor, cost: Tensor, table: Tensor, gamma: float, lengths: Optional[Tensor],
                      band: Optional[int], backend: str) -> Tensor:
    """Gradient of sum(grad * value) w.r.t. the cost (the expected alignments), [B, N, M]."""
    gamma, lengths, band, backend = check(cost, gamma, lengths, band, backend)
    checks.saved(grad, table, cost.shape, cost.device, backend)
    if backend == "cpu":
        grad_cost = _cpu().soft_dtw_backward(grad, table.cpu().numpy(), gamma, lengths, band, cost.shape)
        return registration.returned(grad_cost, cost, cost.dtype)
    (grad_cost,), _ = registration.triton_gradients(cost, (cost.dtype,), lengths, False)
    dp.dp_backward("soft_dtw", grad, grad_cost, table.contiguous(), gamma, lengths, current_settings(), grad_cost,
                   grad_cost, band=band)
    return grad_cost


@soft_dtw_backward.register_fake
def _(grad, cost, table, gamma, lengths, band, backend):
    return cost.new_empty(cost.shape)


def _setup(ctx, inputs, output):
    cost, gamma, lengths, band, backend = inputs
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(cost, output[1], lengths)
    ctx.settings = current_settings()
    ctx.gamma, ctx.band, ctx.backend = gamma, band, checks.resolve_backend(backend, (cost,))


def _backward(ctx, grad_value, _grad_table):
    refuse_second_derivative(f"kernels.soft_dtw_score ({ctx.backend} backend)")
    cost, table, lengths = ctx.saved_tensors
    with use_settings(ctx.settings):
        grad = soft_dtw_backward(grad_value, cost, table, ctx.gamma, lengths, ctx.band, ctx.backend)
    return grad, None, None, None, None


soft_dtw_forward.register_autograd(_backward, setup_context=_setup)
