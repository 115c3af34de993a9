"""ACM-Net losses and FTCL's contrastive FSD / LCS terms."""
import torch


class _PairwiseCosine(torch.autograd.Function):
    """S = (a @ b^T) / (|a| |b|^T) with a hand-written backward of one baddbmm per input.

    d S_ij / d a_i = b_j / (|a_i| |b_j|) - S_ij a_i / |a_i|^2, so
    grad_a = (dS / (|a||b|^T)) @ b - a * sum_j(dS_ij S_ij) / |a_i|^2, and symmetrically for b.
    Autograd through normalise-then-multiply costs several times more on [B, L, 2048] inputs.
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


def pairwise_cosine(a, b, eps=1e-8):
    """Cosine similarity of every row of a with every row of b. a: [B, N, D], b: [B, M, D] -> [B, N, M]."""
    return _PairwiseCosine.apply(a, b, eps)
