"""FSD as registered PyTorch operators (torch.library.custom_op): a forward op returning
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
from ftcl.kernels.fsd import triton_kernels as fsd_triton
from ftcl.kernels.fsd import wavefront as fsd_wavefront


@torch.library.custom_op("ftcl::fsd_forward", mutates_args=())
def fsd_forward(match: Tensor, gap: Tensor, gamma: float, lengths: Optional[Tensor], backend: str,
                skew: bool) -> tuple[Tensor, Tensor]:
    """(values [B], table) of FSD; skew: copy the inputs diagonal-major first (Triton only)."""
    if backend == "torch":
        value, table, _, _ = fsd_wavefront.fsd_forward(match, gap, gamma, lengths)
        return value, table
    settings = current_settings()
    match, gap = registration.triton_inputs(skew, settings, match, gap)
    return fsd_triton.fsd_fwd(match, gap, gamma, lengths, settings, zero_table=lengths is not None)


@fsd_forward.register_fake
def _(match, gap, gamma, lengths, backend, skew):
    if backend == "torch":
        dtype = shared.compute_dtype(match, gap)
        return match.new_empty(match.shape[0], dtype=dtype), registration.torch_table(match, dtype)
    batch, n_rows, n_cols = match.shape
    return match.new_empty(batch, dtype=torch.float32), match.new_empty(batch, n_rows * n_cols, dtype=torch.float32)


@torch.library.custom_op("ftcl::fsd_backward", mutates_args=())
def fsd_backward(grad: Tensor, match: Tensor, gap: Tensor, table: Tensor, gamma: float, lengths: Optional[Tensor],
                 backend: str, skew: bool) -> tuple[Tensor, Tensor]:
    """Gradients of sum(grad * value) w.r.t. match and gap ([B, N, M], or diagonal-major buffers)."""
    if backend == "torch":
        order = registration.order(gap.shape, gap.device)
        gap_s = shared._to_skewed(gap, order, lengths, table.dtype)
        grad_match_s, grad_gap_s = fsd_wavefront.fsd_backward(grad, table, gap_s, gamma, lengths, gap.shape)
        return (shared._from_skewed(grad_match_s, order, gap.shape, match.dtype),
                shared._from_skewed(grad_gap_s, order, gap.shape, gap.dtype))
    settings = current_settings()
    (gap,) = registration.triton_inputs(skew, settings, gap)
    outputs, written = registration.triton_gradients(gap, (match.dtype, gap.dtype), lengths, skew)
    fsd_triton.fsd_bwd(grad, gap, table, gamma, lengths, match.dtype, skew, settings, out=written)
    return outputs[0], outputs[1]


@fsd_backward.register_fake
def _(grad, match, gap, table, gamma, lengths, backend, skew):
    if backend == "torch":
        return match.new_empty(match.shape), gap.new_empty(gap.shape)
    return registration.fake_gradient(match, skew), registration.fake_gradient(gap, skew)


def _fsd_setup(ctx, inputs, output):
    match, gap, gamma, lengths, backend, skew = inputs
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(match, gap, output[1], lengths)
    ctx.gamma, ctx.backend, ctx.skew, ctx.settings = gamma, backend, skew, current_settings()


def _fsd_grad(ctx, grad_value, _grad_table):
    refuse_second_derivative(f"kernels.fsd ({ctx.backend} backend)")
    match, gap, table, lengths = ctx.saved_tensors
    with use_settings(ctx.settings):
        grad_match, grad_gap = fsd_backward(grad_value, match, gap, table, ctx.gamma, lengths, ctx.backend, ctx.skew)
    return (registration.as_gradient(grad_match, match.shape, ctx.skew),
            registration.as_gradient(grad_gap, gap.shape, ctx.skew),
            None, None, None, None)


fsd_forward.register_autograd(_fsd_grad, setup_context=_fsd_setup)


def fsd(match, gap, gamma, lengths, backend):
    """FSD values [B] through the registered op (backend "torch" or "triton")."""
    skew = backend == "triton" and registration.skews_now(tuple(match.shape))
    return fsd_forward(match, gap, gamma, lengths, backend, skew)[0]


