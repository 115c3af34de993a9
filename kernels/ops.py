"""FSD, LCS and soft-DTW as registered PyTorch operators (torch.library.custom_op): torch.compile
(fullgraph=True), torch.export and CUDA-graph capture see one opaque op per pass, with a fake (meta)
implementation for shapes, instead of tracing into the kernels.

Each op is a forward op returning (value [B], table), the table being what its backward recomputes
the soft weights from, and a backward op returning the input gradients; register_autograd joins
them. backend is "torch" (the anti-diagonal wavefront) or "triton" (kernels.triton_dp). The Triton
launch rules come from kernels.settings() when an op runs; an eager backward runs under the settings
its forward saw. Whether a Triton gradient is written diagonal-major (skew) is decided by the forward
and passed to the backward op, whose output is then the diagonal-major buffer [B, (N+M-1)*N] (an
op's output may not be a view); the autograd formula views it as [B, N, M].
"""
from typing import Optional

import torch
from torch import Tensor

from ftcl.kernels import triton_dp, wavefront
from ftcl.kernels.autograd import refuse_second_derivative
from ftcl.kernels.settings import settings as current_settings
from ftcl.kernels.settings import use_settings
from ftcl.kernels.soft_dtw import wavefront as soft_dtw_wavefront


def _order(shape, device):
    _, order = wavefront._diagonals(shape[1], shape[2])
    return order.to(device)


def _torch_table(x, dtype):
    batch, n_rows, n_cols = x.shape
    return x.new_empty(batch, n_rows + n_cols + 1, n_rows + 1, dtype=dtype)


def _span(shape):
    return (shape[1] + shape[2] - 1) * shape[1]


def _fake_gradient(x, skew):
    """The fake of a Triton gradient of x: [B, N, M], or its diagonal-major buffer when skew."""
    return x.new_empty(x.shape[0], _span(x.shape)) if skew else x.new_empty(x.shape)


def _triton_gradients(like, dtypes, lengths, skew):
    """(what the op returns, what the kernel writes): [B, N, M] tensors, or diagonal-major buffers
    [B, (N+M-1)*N] and their [B, N, M] views; zeros where lengths leave cells out, and in the
    buffers' padding (an op's outputs are fully defined)."""
    if not skew:
        made = [(torch.empty if lengths is None else torch.zeros)(like.shape, dtype=dtype, device=like.device)
                for dtype in dtypes]
        return made, made
    buffers = [triton_dp.diagonal_major_buffer(like.shape, dtype, like.device, zero=True)
               for dtype in dtypes]
    return buffers, [triton_dp.diagonal_major_view(buffer, like.shape) for buffer in buffers]


def _as_gradient(output, shape, skew):
    """An op's Triton gradient as [B, N, M]: the diagonal-major view of its buffer when skew."""
    return triton_dp.diagonal_major_view(output, shape) if skew else output


def _triton_inputs(skew, settings, *tables):
    return [triton_dp.to_diagonal_major(x, settings) for x in tables] if skew else list(tables)


# ---- FSD -------------------------------------------------------------------------------------------

@torch.library.custom_op("ftcl::fsd_forward", mutates_args=())
def fsd_forward(match: Tensor, gap: Tensor, gamma: float, lengths: Optional[Tensor], backend: str,
                skew: bool) -> tuple[Tensor, Tensor]:
    """(values [B], table) of FSD; skew: copy the inputs diagonal-major first (Triton only)."""
    if backend == "torch":
        value, table, _, _ = wavefront.fsd_forward(match, gap, gamma, lengths)
        return value, table
    settings = current_settings()
    match, gap = _triton_inputs(skew, settings, match, gap)
    return triton_dp.fsd_fwd(match, gap, gamma, lengths, settings, zero_table=lengths is not None)


@fsd_forward.register_fake
def _(match, gap, gamma, lengths, backend, skew):
    if backend == "torch":
        dtype = wavefront.compute_dtype(match, gap)
        return match.new_empty(match.shape[0], dtype=dtype), _torch_table(match, dtype)
    batch, n_rows, n_cols = match.shape
    return match.new_empty(batch, dtype=torch.float32), match.new_empty(batch, n_rows * n_cols, dtype=torch.float32)


@torch.library.custom_op("ftcl::fsd_backward", mutates_args=())
def fsd_backward(grad: Tensor, match: Tensor, gap: Tensor, table: Tensor, gamma: float, lengths: Optional[Tensor],
                 backend: str, skew: bool) -> tuple[Tensor, Tensor]:
    """Gradients of sum(grad * value) w.r.t. match and gap ([B, N, M], or diagonal-major buffers)."""
    if backend == "torch":
        order = _order(gap.shape, gap.device)
        gap_s = wavefront._to_skewed(gap, order, lengths, table.dtype)
        grad_match_s, grad_gap_s = wavefront.fsd_backward(grad, table, gap_s, gamma, lengths, gap.shape)
        return (wavefront._from_skewed(grad_match_s, order, gap.shape, match.dtype),
                wavefront._from_skewed(grad_gap_s, order, gap.shape, gap.dtype))
    settings = current_settings()
    (gap,) = _triton_inputs(skew, settings, gap)
    outputs, written = _triton_gradients(gap, (match.dtype, gap.dtype), lengths, skew)
    triton_dp.fsd_bwd(grad, gap, table, gamma, lengths, match.dtype, skew, settings, out=written)
    return outputs[0], outputs[1]


@fsd_backward.register_fake
def _(grad, match, gap, table, gamma, lengths, backend, skew):
    if backend == "torch":
        return match.new_empty(match.shape), gap.new_empty(gap.shape)
    return _fake_gradient(match, skew), _fake_gradient(gap, skew)


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
    return (_as_gradient(grad_match, match.shape, ctx.skew), _as_gradient(grad_gap, gap.shape, ctx.skew),
            None, None, None, None)


fsd_forward.register_autograd(_fsd_grad, setup_context=_fsd_setup)


@torch.compiler.assume_constant_result
def skews_now(shape):
    """Whether the Triton op copies a table of this shape diagonal-major under the settings in force
    (decided when a graph is traced, so a compiled graph keeps its layout)."""
    return triton_dp.skews(tuple(shape))


def fsd(match, gap, gamma, lengths, backend):
    """FSD values [B] through the registered op (backend "torch" or "triton")."""
    skew = backend == "triton" and skews_now(tuple(match.shape))
    return fsd_forward(match, gap, gamma, lengths, backend, skew)[0]


# ---- LCS -------------------------------------------------------------------------------------------

@torch.library.custom_op("ftcl::lcs_forward", mutates_args=())
def lcs_forward(sim: Tensor, threshold: float, gamma: float, lengths: Optional[Tensor], backend: str,
                skew: bool) -> tuple[Tensor, Tensor]:
    """(values [B], table) of the thresholded LCS."""
    if backend == "torch":
        value, table, _ = wavefront.lcs_forward(sim, threshold, gamma, lengths)
        return value, table
    settings = current_settings()
    (sim,) = _triton_inputs(skew, settings, sim)
    return triton_dp.lcs_fwd(sim, threshold, gamma, lengths, settings, zero_table=lengths is not None)


@lcs_forward.register_fake
def _(sim, threshold, gamma, lengths, backend, skew):
    if backend == "torch":
        dtype = wavefront.compute_dtype(sim)
        return sim.new_empty(sim.shape[0], dtype=dtype), _torch_table(sim, dtype)
    batch, n_rows, n_cols = sim.shape
    return sim.new_empty(batch, dtype=torch.float32), sim.new_empty(batch, n_rows * n_cols, dtype=torch.float32)


@torch.library.custom_op("ftcl::lcs_backward", mutates_args=())
def lcs_backward(grad: Tensor, sim: Tensor, table: Tensor, threshold: float, gamma: float, lengths: Optional[Tensor],
                 backend: str, skew: bool) -> Tensor:
    """Gradient of sum(grad * value) w.r.t. sim ([B, N, M], or a diagonal-major buffer)."""
    if backend == "torch":
        order = _order(sim.shape, sim.device)
        sim_s = wavefront._to_skewed(sim, order, lengths, table.dtype)
        grad_s = wavefront.lcs_backward(grad, table, sim_s, threshold, gamma, lengths, sim.shape)
        return wavefront._from_skewed(grad_s, order, sim.shape, sim.dtype)
    settings = current_settings()
    (sim,) = _triton_inputs(skew, settings, sim)
    outputs, written = _triton_gradients(sim, (sim.dtype,), lengths, skew)
    triton_dp.lcs_bwd(grad, sim, table, threshold, gamma, lengths, skew, settings, out=written[0])
    return outputs[0]


@lcs_backward.register_fake
def _(grad, sim, table, threshold, gamma, lengths, backend, skew):
    return sim.new_empty(sim.shape) if backend == "torch" else _fake_gradient(sim, skew)


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
    return _as_gradient(grad, sim.shape, ctx.skew), None, None, None, None, None


lcs_forward.register_autograd(_lcs_grad, setup_context=_lcs_setup)


def lcs(sim, threshold, gamma, lengths, backend):
    """LCS values [B] through the registered op (backend "torch" or "triton")."""
    skew = backend == "triton" and skews_now(tuple(sim.shape))
    return lcs_forward(sim, threshold, gamma, lengths, backend, skew)[0]


# ---- soft-DTW --------------------------------------------------------------------------------------

@torch.library.custom_op("ftcl::soft_dtw_forward", mutates_args=())
def soft_dtw_forward(cost: Tensor, gamma: float, lengths: Optional[Tensor], band: Optional[int]) -> tuple[Tensor, Tensor]:
    """(values [B], table) of soft-DTW on the torch wavefront."""
    value, table, _ = soft_dtw_wavefront.soft_dtw_forward(cost, gamma, lengths, band)
    return value, table


@soft_dtw_forward.register_fake
def _(cost, gamma, lengths, band):
    dtype = wavefront.compute_dtype(cost)
    return cost.new_empty(cost.shape[0], dtype=dtype), _torch_table(cost, dtype)


@torch.library.custom_op("ftcl::soft_dtw_backward", mutates_args=())
def soft_dtw_backward(grad: Tensor, cost: Tensor, table: Tensor, gamma: float, lengths: Optional[Tensor]) -> Tensor:
    """Gradient of sum(grad * value) w.r.t. the cost (the expected alignments), [B, N, M]."""
    grad_s = soft_dtw_wavefront.soft_dtw_backward(grad, table, gamma, lengths, cost.shape)
    return wavefront._from_skewed(grad_s, _order(cost.shape, cost.device), cost.shape, cost.dtype)


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
