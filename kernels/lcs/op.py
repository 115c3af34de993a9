"""The thresholded LCS as registered PyTorch operators (torch.library.custom_op): a forward op returning
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
from ftcl.kernels.lcs import triton_kernels as lcs_triton
from ftcl.kernels.lcs import wavefront as lcs_wavefront


@torch.library.custom_op("ftcl::lcs_forward", mutates_args=())
def lcs_forward(sim: Tensor, threshold: float, gamma: float, lengths: Optional[Tensor], backend: str,
                skew: bool) -> tuple[Tensor, Tensor]:
    """(values [B], table) of the thresholded LCS."""
    if backend == "torch":
        value, table, _ = lcs_wavefront.lcs_forward(sim, threshold, gamma, lengths)
        return value, table
    settings = current_settings()
    (sim,) = registration.triton_inputs(skew, settings, sim)
    return lcs_triton.lcs_fwd(sim, threshold, gamma, lengths, settings, zero_table=lengths is not None)


@lcs_forward.register_fake
def _(sim, threshold, gamma, lengths, backend, skew):
    if backend == "torch":
        dtype = shared.compute_dtype(sim)
        return sim.new_empty(sim.shape[0], dtype=dtype), registration.torch_table(sim, dtype)
    batch, n_rows, n_cols = sim.shape
    return sim.new_empty(batch, dtype=torch.float32), sim.new_empty(batch, n_rows * n_cols, dtype=torch.float32)


@torch.library.custom_op("ftcl::lcs_backward", mutates_args=())
def lcs_backward(grad: Tensor, sim: Tensor, table: Tensor, threshold: float, gamma: float, lengths: Optional[Tensor],
                 backend: str, skew: bool) -> Tensor:
    """Gradient of sum(grad * value) w.r.t. sim ([B, N, M], or a diagonal-major buffer)."""
    if backend == "torch":
        order = registration.order(sim.shape, sim.device)
        sim_s = shared._to_skewed(sim, order, lengths, table.dtype)
        grad_s = lcs_wavefront.lcs_backward(grad, table, sim_s, threshold, gamma, lengths, sim.shape)
        return shared._from_skewed(grad_s, order, sim.shape, sim.dtype)
    settings = current_settings()
    (sim,) = registration.triton_inputs(skew, settings, sim)
    outputs, written = registration.triton_gradients(sim, (sim.dtype,), lengths, skew)
    lcs_triton.lcs_bwd(grad, sim, table, threshold, gamma, lengths, skew, settings, out=written[0])
    return outputs[0]


@lcs_backward.register_fake
def _(grad, sim, table, threshold, gamma, lengths, backend, skew):
    return sim.new_empty(sim.shape) if backend == "torch" else registration.fake_gradient(sim, skew)


def _lcs_setup(ctx, inputs, output):
    sim, threshold, gamma, lengths, backend, skew = inputs
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(sim, output[1], lengths)
    ctx.threshold, ctx.gamma, ctx.backend, ctx.skew, ctx.settings = threshold, gamma, backend, skew, current_settings()


def _lcs_grad(ctx, grad_value, _grad_table):
    refuse_second_derivative(f"kernels.lcs ({ctx.backend} backend)")
    sim, table, lengths = ctx.saved_tensors
    with use_settings(ctx.settings):
        grad = lcs_backward(grad_value, sim, table, ctx.threshold, ctx.gamma, lengths, ctx.backend, ctx.skew)
    return registration.as_gradient(grad, sim.shape, ctx.skew), None, None, None, None, None


lcs_forward.register_autograd(_lcs_grad, setup_context=_lcs_setup)


def lcs(sim, threshold, gamma, lengths, backend):
    """LCS values [B] through the registered op (backend "torch" or "triton")."""
    skew = backend == "triton" and registration.skews_now(tuple(sim.shape))
    return lcs_forward(sim, threshold, gamma, lengths, backend, skew)[0]


