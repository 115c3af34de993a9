"""pairwise_cosine: one bmm forward and one baddbmm per input backward (autograd
through normalise-then-multiply costs several times more on [B, L, 2048] inputs); dynamo traces it
as it is."""
import torch

from ftcl.kernels.shared.autograd import refuse_second_derivative


class CosineTorch(torch.autograd.Function):
    """S = (a @ b^T) / (|a| |b|^T) with a hand-written backward of one baddbmm per input.

    d S_ij / d a_i = b_j / (|a_i| |b_j|) - S_ij a_i / |a_i|^2, so
    grad_a = (dS / (|a||b|^T)) @ b - a * sum_j(dS_ij S_ij) / |a_i|^2, and symmetrically for b.
    a: [B, N, D], b: [B, M, D] -> [B, N, M].
    """

    @staticmethod
    def forward(ctx, a, b, eps):
        norm_a, norm_b = a.norm(dim=-1), b.norm(dim=-1)  # [B, N], [B, M]
        inv = 1.0 / (norm_a.unsqueeze(2) * norm_b.unsqueeze(1)).clamp_min(eps)  # [B, N, M]
        sim = torch.bmm(a, b.transpose(1, 2)) * inv
        ctx.save_for_backward(a, b, norm_a, norm_b, inv, sim)
        ctx.eps = eps
        return sim

    @staticmethod
    def backward(ctx, grad_sim):
        refuse_second_derivative("kernels.pairwise_cosine")
        a, b, norm_a, norm_b, inv, sim = ctx.saved_tensors
        grad_dots = grad_sim * inv
        weighted = grad_sim * sim
        tiny = ctx.eps * ctx.eps
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            scale_a = weighted.sum(2) / (norm_a * norm_a).clamp_min(tiny)  # [B, N]
            grad_a = torch.baddbmm(a * -scale_a.unsqueeze(2), grad_dots, b)
        if ctx.needs_input_grad[1]:
            scale_b = weighted.sum(1) / (norm_b * norm_b).clamp_min(tiny)  # [B, M]
            grad_b = torch.baddbmm(b * -scale_b.unsqueeze(2), grad_dots.transpose(1, 2), a)
        return grad_a, grad_b, None


def cosine_torch(a, b, parts, eps):
    """[B, parts, N, M] through CosineTorch (the parts as extra batch entries)."""
    batch, n_rows, dim = a.shape
    n_cols = b.shape[1]
    if parts == 1:
        return CosineTorch.apply(a, b, eps).unsqueeze(1)
    width = dim // parts

    def split(x, rows):  # [B, rows, D] -> [B * parts, rows, D / parts]
        return x.reshape(batch, rows, parts, width).transpose(1, 2).reshape(batch * parts, rows, width)

    return CosineTorch.apply(split(a, n_rows), split(b, n_cols), eps).view(batch, parts, n_rows, n_cols)
