"""Soft-DTW as registered PyTorch operators (torch.library.custom_op): a forward op returning
(values [B], table), the table being what the backward recomputes its weights from, and a backward
op returning the input gradients, each with a fake (meta) implementation, joined by
register_autograd. torch.compile and torch.export trace kernels' public functions to these ops;
an eager backward runs under the kernel settings its forward saw.
"""
from typing import Optional

import torch
from torch import Tensor

from ftcl.kernels.settings import settings as current_settings
from ftcl.kernels.settings import use_settings
from ftcl.kernels.shared import registration
from ftcl.kernels.shared import wavefront as shared
from ftcl.kernels.shared.autograd import refuse_second_derivative
from ftcl.kernels.soft_dtw import triton_kernels as soft_dtw_triton
from ftcl.kernels.soft_dtw import wavefront as soft_dtw_wavefront


@torch.library.custom_op("ftcl::soft_dtw_forward", mutates_args=())
def soft_dtw_forward(cost: Tensor, gamma: float, lengths: Optional[Tensor], band: Optional[int],
                     backend: str) -> tuple[Tensor, Tensor]:
    """(values [B], table) of soft-DTW on the backend ("torch" or "triton")."""
    if backend == "torch":
        value, table, _ = soft_dtw_wavefront.soft_dtw_forward(cost, gamma, lengths, band)
        return value, table
    return soft_dtw_triton.soft_dtw_fwd(cost, gamma, lengths, band, current_settings(),
                                        zero_table=lengths is not None)


@soft_dtw_forward.register_fake
def _(cost, gamma, lengths, band, backend):
    if backend == "torch":
        dtype = shared.compute_dtype(cost)
        return cost.new_empty(cost.shape[0], dtype=dtype), registration.torch_table(cost, dtype)
    batch, n_rows, n_cols = cost.shape
    return cost.new_empty(batch, dtype=torch.float32), cost.new_empty(batch, n_rows * n_cols, dtype=torch.float32)


@torch.library.custom_op("ftcl::soft_dtw_backward", mutates_args=())
def soft_dtw_backward(grad: Tensor, cost: Tensor, table: Tensor, gamma: float, lengths: Optional[Tensor],
                      band: Optional[int], backend: str) -> Tensor:
    """Gradient of sum(grad * value) w.r.t. the cost (the expected alignments), [B, N, M]."""
    if backend == "torch":
        grad_s = soft_dtw_wavefront.soft_dtw_backward(grad, table, gamma, lengths, cost.shape)
        return shared._from_skewed(grad_s, registration.order(cost.shape, cost.device), cost.shape, cost.dtype)
    return soft_dtw_triton.soft_dtw_bwd(grad, table, gamma, lengths, band, cost.shape, cost.dtype, current_settings())


@soft_dtw_backward.register_fake
def _(grad, cost, table, gamma, lengths, band, backend):
    return cost.new_empty(cost.shape)


def _soft_dtw_setup(ctx, inputs, output):
    cost, gamma, lengths, band, backend = inputs
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(cost, output[1], lengths)
    ctx.gamma, ctx.band, ctx.backend, ctx.settings = gamma, band, backend, current_settings()


def _soft_dtw_grad(ctx, grad_value, _grad_table):
    refuse_second_derivative(f"kernels.soft_dtw ({ctx.backend} backend)")
    cost, table, lengths = ctx.saved_tensors
    with use_settings(ctx.settings):
        grad = soft_dtw_backward(grad_value, cost, table, ctx.gamma, lengths, ctx.band, ctx.backend)
    return grad, None, None, None, None


soft_dtw_forward.register_autograd(_soft_dtw_grad, setup_context=_soft_dtw_setup)


def soft_dtw(cost, gamma, lengths, band, backend):
    """Soft-DTW values [B] through the registered op (backend "torch" or "triton")."""
    return soft_dtw_forward(cost, gamma, lengths, band, backend)[0]
