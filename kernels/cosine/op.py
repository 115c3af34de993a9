"""pairwise_cosine's Triton backend as a registered PyTorch operator (torch.library.custom_op), so
that torch.compile sees one opaque op per pass (the torch backend is plain torch operations and an
autograd Function that dynamo traces as they are)."""
import torch
from torch import Tensor

from ftcl.kernels.cosine import triton_kernels
from ftcl.kernels.shared.autograd import refuse_second_derivative


@torch.library.custom_op("ftcl::cosine_forward", mutates_args=())
def cosine_forward(a: Tensor, b: Tensor, parts: int, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """(sim [B, P, N, M], norm_a [B, P, N], norm_b [B, P, M]) float32."""
    return triton_kernels.cosine_fwd(a, b, parts, eps)


@cosine_forward.register_fake
def _(a, b, parts, eps):
    batch, n_rows, n_cols = a.shape[0], a.shape[1], b.shape[1]
    return (a.new_empty(batch, parts, n_rows, n_cols, dtype=torch.float32),
            a.new_empty(batch, parts, n_rows, dtype=torch.float32),
            a.new_empty(batch, parts, n_cols, dtype=torch.float32))


@torch.library.custom_op("ftcl::cosine_backward", mutates_args=())
def cosine_backward(grad_sim: Tensor, a: Tensor, b: Tensor, sim: Tensor, norm_a: Tensor, norm_b: Tensor, parts: int,
                    eps: float) -> tuple[Tensor, Tensor]:
    """(grad_a [B, N, D], grad_b [B, M, D])."""
    return triton_kernels.cosine_bwd(grad_sim, a, b, sim, norm_a, norm_b, parts, eps)


@cosine_backward.register_fake
def _(grad_sim, a, b, sim, norm_a, norm_b, parts, eps):
    return a.new_empty(a.shape), b.new_empty(b.shape)


def _setup(ctx, inputs, output):
    a, b, parts, eps = inputs
    sim, norm_a, norm_b = output
    ctx.mark_non_differentiable(norm_a, norm_b)
    ctx.save_for_backward(a, b, sim, norm_a, norm_b)
    ctx.parts, ctx.eps = parts, eps


def _grad(ctx, grad_sim, _grad_norm_a, _grad_norm_b):
    refuse_second_derivative("pairwise_cosine (triton backend)")
    a, b, sim, norm_a, norm_b = ctx.saved_tensors
    grad_a, grad_b = cosine_backward(grad_sim, a, b, sim, norm_a, norm_b, ctx.parts, ctx.eps)
    return grad_a, grad_b, None, None


cosine_forward.register_autograd(_grad, setup_context=_setup)


def pairwise_cosine(a, b, parts, eps):
    """[B, P, N, M] float32 through the registered op."""
    return cosine_forward(a, b, parts, eps)[0]
