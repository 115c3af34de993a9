"""Soft-DTW as registered PyTorch operators (torch.library.custom_op): a forward op returning
(values [B], table), the table being what the backward recomputes its weights from, and a backward
op returning the input gradients, each with a fake (meta) implementation, joined by
register_autograd. torch.compile and torch.export trace kernels' public functions to these ops;
an eager backward runs under the kernel settings its forward saw.
"""
from typing import Optional

import torch
from torch import Tensor

from ftcl.kernels.shared import registration
from ftcl.kernels.shared import wavefront as shared
from ftcl.kernels.shared.autograd import refuse_second_derivative
from ftcl.kernels.soft_dtw import wavefront as soft_dtw_wavefront


@torch.library.custom_op("ftcl::soft_dtw_forward", mutates_args=())
def soft_dtw_forward(cost: Tensor, gamma: float, lengths: Optional[Tensor],
                     band: Optional[int]) -> tuple[Tensor, Tensor]:
    """(values [B], table) of soft-DTW on the torch wavefront."""
    value, table, _ = soft_dtw_wavefront.soft_dtw_forward(cost, gamma, lengths, band)
    return value, table


@soft_dtw_forward.register_fake
def _(cost, gamma, lengths, band):
    dtype = shared.compute_dtype(cost)
    return cost.new_empty(cost.shape[0], dtype=dtype), registration.torch_table(cost, dtype)


@torch.library.custom_op("ftcl::soft_dtw_backward", mutates_args=())
def soft_dtw_backward(grad: Tensor, cost: Tensor, table: Tensor, gamma: float,
                      lengths: Optional[Tensor]) -> Tensor:
    """Gradient of sum(grad * value) w.r.t. the cost (the expected alignments), [B, N, M]."""
    grad_s = soft_dtw_wavefront.soft_dtw_backward(grad, table, gamma, lengths, cost.shape)
    return shared._from_skewed(grad_s, registration.order(cost.shape, cost.device), cost.shape, cost.dtype)


@soft_dtw_backward.register_fake
def _(grad, cost, table, gamma, lengths):
    return cost.new_empty(cost.shape)


def _soft_dtw_setup(ctx, inputs, output):
    cost, gamma, lengths, _ = inputs
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(cost, output[1], lengths)
    ctx.gamma = gamma


def _soft_dtw_grad(ctx, grad_value, _grad_table):
    refuse_second_derivative("kernels.soft_dtw (torch backend)")
    cost, table, lengths = ctx.saved_tensors
    return soft_dtw_backward(grad_value, cost, table, ctx.gamma, lengths), None, None, None


soft_dtw_forward.register_autograd(_soft_dtw_grad, setup_context=_soft_dtw_setup)


def soft_dtw(cost, gamma, lengths, band):
    """Soft-DTW values [B] through the registered op (torch backend)."""
    return soft_dtw_forward(cost, gamma, lengths, band)[0]
