"""Public entry points. Each DP function takes the Python conveniences (lengths as nested lists, any
real number for gamma), then enters its registered operator (kernels/*/op.py), which checks every
argument and runs the backend; backend="naive" runs the per-cell specification behind the same
checks."""
import operator

import torch

from ftcl.kernels.cosine import torch_kernels as cosine_torch
from ftcl.kernels.fsd import naive as fsd_naive
from ftcl.kernels.fsd import op as fsd_op
from ftcl.kernels.lcs import naive as lcs_naive
from ftcl.kernels.lcs import op as lcs_op
from ftcl.kernels.shared import checks
from ftcl.kernels.shared.checks import compute_dtype, full_lengths
from ftcl.kernels.soft_dtw import naive as soft_dtw_naive
from ftcl.kernels.soft_dtw import op as soft_dtw_op

BACKENDS = ("auto", "naive", "cpu", "triton")
MIN_GAMMA = checks.MIN_GAMMA


def _lengths(lengths):
    """lengths as the operators take them: None, or a tensor (nested lists and arrays converted)."""
    if lengths is None or isinstance(lengths, torch.Tensor):
        return lengths
    try:
        return torch.as_tensor(lengths)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"lengths must be None or an integer tensor [B, 2], got {type(lengths).__name__}") from None


def _naive_lengths(lengths, shape, device):
    return (lengths if lengths is not None else full_lengths(shape, device)).tolist()


def fsd_score(match, gap, *, gamma=0.1, lengths=None, backend="auto"):
    """Differentiable FSD alignment score of each video pair.

    C[0, .] = C[., 0] = 0 and, 1-indexed, C[i, j] = match[i, j] + max_gamma(C[i-1, j-1],
    gap[i, j] + C[i-1, j], gap[i, j] + C[i, j-1]) with max_gamma(x) = gamma * logsumexp(x / gamma)
    (the hard max, first maximum winning, when gamma = 0).

    Args:
        match, gap: [B, N, M] float16/bfloat16/float32 (float64 on the naive and cpu backends).
        gamma: smoothing temperature >= 0 (the release uses 0.1).
        lengths: optional integer [B, 2] of per-pair (n, m); the result is C[n, m] of each pair.
        backend: "auto" | "naive" | "cpu" | "triton".

    Returns:
        [B] float32 (float64 for float64 inputs), differentiable w.r.t. match and gap.
    """
    gamma, lengths = checks.number("gamma", gamma), _lengths(lengths)
    if backend == "naive":
        gamma, lengths, _ = fsd_op.check(match, gap, gamma, lengths, "cpu")
        dtype = compute_dtype(match, gap)
        return fsd_naive.fsd_naive(match.to(dtype), gap.to(dtype), gamma,
                                   _naive_lengths(lengths, match.shape, match.device))
    return fsd_op.fsd_forward(match, gap, gamma, lengths, _op_backend(backend))[0]


def lcs_score(sim, *, threshold=0.92, gamma=0.0, lengths=None, backend="auto"):
    """Differentiable thresholded longest common subsequence score of each video pair.

    C[0, .] = C[., 0] = 0 and, 1-indexed, C[i, j] = C[i-1, j-1] + sim[i, j] if sim[i, j] > threshold,
    else max_gamma(C[i-1, j], C[i, j-1]); at gamma = 0 a tie takes the upper neighbour C[i-1, j].
    A NaN similarity never clears the threshold (as the release's comparison).

    Args:
        sim: [B, N, M] float16/bfloat16/float32 (float64 on the naive and cpu backends).
        threshold: strict match threshold on sim (the release uses 0.92).
        gamma: smoothing temperature >= 0 (the release uses 0, the hard max).
        lengths: optional integer [B, 2] of per-pair (n, m); the result is C[n, m] of each pair.
        backend: "auto" | "naive" | "cpu" | "triton".

    Returns:
        [B] float32 (float64 for float64 inputs), differentiable w.r.t. sim.
    """
    threshold, gamma = checks.number("threshold", threshold), checks.number("gamma", gamma)
    lengths = _lengths(lengths)
    if backend == "naive":
        threshold, gamma, lengths, _ = lcs_op.check(sim, threshold, gamma, lengths, "cpu")
        return lcs_naive.lcs_naive(sim.to(compute_dtype(sim)), threshold, gamma,
                                   _naive_lengths(lengths, sim.shape, sim.device))
    return lcs_op.lcs_forward(sim, threshold, gamma, lengths, _op_backend(backend))[0]


def soft_dtw_score(cost, *, gamma=1.0, lengths=None, band=None, backend="auto"):
    """Soft-DTW (Cuturi & Blondel, 2017) of each pair of a batch of cost matrices.

    R[0, 0] = 0, R[i, 0] = R[0, j] = +inf and, 1-indexed, R[i, j] = cost[i, j] + min_gamma(R[i-1, j-1],
    R[i-1, j], R[i, j-1]) with min_gamma(x) = -gamma * logsumexp(-x / gamma) (the hard min, first
    minimum winning: DTW, at gamma = 0). The value is R[n, m]; its gradient with respect to the cost
    is the expected alignment. Unnormalised, as tslearn.metrics.soft_dtw.

    Args:
        cost: [B, N, M] float16/bfloat16/float32 (float64 on the naive and cpu backends).
        gamma: smoothing temperature >= 0 (0: DTW; else at least kernels.MIN_GAMMA).
        lengths: optional integer [B, 2] of per-pair (n, m); the value is R[n, m] of each pair.
        band: optional Sakoe-Chiba radius (tslearn's sakoe_chiba_mask on each pair's n x m): cells
            with i - j outside [-band - max(0, m - n), band + max(0, n - m)] are +inf.
        backend: "auto" (triton on CUDA, else cpu) | "naive" | "cpu" | "triton".

    Returns:
        [B] float32 (float64 for float64 inputs), differentiable w.r.t. cost.
    """
    gamma, lengths = checks.number("gamma", gamma), _lengths(lengths)
    checks.band(band)  # here too: the operator's schema would take True as 1
    if backend == "naive":
        gamma, lengths, band, _ = soft_dtw_op.check(cost, gamma, lengths, band, "cpu")
        return soft_dtw_naive.soft_dtw_naive(cost.to(compute_dtype(cost)), gamma,
                                             _naive_lengths(lengths, cost.shape, cost.device), band)
    return soft_dtw_op.soft_dtw_forward(cost, gamma, lengths, band, _op_backend(backend))[0]


def _op_backend(backend):
    """The backend argument as the operators' schema takes it (a str): anything else is refused here,
    by the same message."""
    if not isinstance(backend, str):
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    return backend


def squared_euclidean(x, y):
    """[B, N, M] squared Euclidean distances |x_i - y_j|^2 of x [B, N, D] and y [B, M, D] (clamped at
    0 against rounding), differentiable.

    Computed as |x'|^2 + |y'|^2 - 2 x'.y' (one batched matrix product) on x' = x - x_0, y' = y - x_0,
    both sequences shifted by x's first step: distances do not change, and the terms stay of the size
    of the data's spread rather than of its offset, which float32 would cancel away."""
    checks.table("x", x, "[B, N, D]", empty_sides=True)
    checks.table("y", y, "[B, M, D]", empty_sides=True)
    if x.shape[0] != y.shape[0] or x.shape[2] != y.shape[2]:
        raise ValueError(f"x and y must agree in B and D, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.device != y.device or x.dtype != y.dtype:
        raise ValueError(f"x and y must share a device and a dtype, got {x.device}/{x.dtype} and {y.device}/{y.dtype}")
    return _SquaredEuclidean.apply(x, y)


class _SquaredEuclidean(torch.autograd.Function):
    """|x_i - y_j|^2 [B, N, M] in one baddbmm forward and one bmm per input backward (the gradient of
    the distances themselves, 2 (x_i - y_j), summed: as cheap at small sizes as one autograd node)."""

    @staticmethod
    def forward(ctx, x, y):
        if x.shape[1]:
            origin = x[:, :1]  # [B, 1, D]; the distances do not depend on it
            x, y = x - origin, y - origin
        squares = (x * x).sum(dim=2, keepdim=True) + (y * y).sum(dim=2).unsqueeze(1)  # [B, N, M]
        ctx.save_for_backward(x, y)
        return torch.baddbmm(squares, x, y.mT, alpha=-2).clamp_min(0)

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        grad_x = grad_y = None
        if ctx.needs_input_grad[0]:  # 2 sum_j g_ij (x_i - y_j)
            grad_x = torch.baddbmm(x * grad.sum(2, keepdim=True), grad, y, alpha=-1) * 2
        if ctx.needs_input_grad[1]:  # 2 sum_i g_ij (y_j - x_i)
            grad_y = torch.baddbmm(y * grad.sum(1).unsqueeze(2), grad.mT, x, alpha=-1) * 2
        return grad_x, grad_y


class SoftDTW(torch.nn.Module):
    """Soft-DTW between batches of sequences, as a loss module.

    SoftDTW(gamma=1.0, normalize=False, band=None, cost=None, backend="auto")(x, y, lengths=None) -> [B]

    x [B, N, D], y [B, M, D]; lengths an optional integer [B, 2] of per-pair (n, m). The value is
    soft_dtw_score of cost(x, y) ([B, N, M]; squared Euclidean distances by default, as tslearn's
    soft_dtw; any callable of that shape), differentiable w.r.t. x and y. With normalize, the soft-DTW
    divergence of Blondel, Mensch & Vert (2021): sdtw(x, y) - (sdtw(x, x) + sdtw(y, y)) / 2, 0 for
    x = y and non-negative for the squared Euclidean cost (without a band), for any N, M and lengths
    (each self-term on its own sequence's length). band: the Sakoe-Chiba radius of every table.
    """

    def __init__(self, gamma=1.0, normalize=False, band=None, cost=None, backend="auto"):
        super().__init__()
        self.gamma = checks.gamma(checks.number("gamma", gamma))
        self.band = checks.band(band)
        if cost is not None and not callable(cost):
            raise ValueError(f"cost must be None or a callable (x [B, N, D], y [B, M, D]) -> [B, N, M], got "
                             f"{type(cost).__name__}")
        self.normalize, self.cost, self.backend = bool(normalize), cost or squared_euclidean, _op_backend(backend)

    def extra_repr(self):
        return f"gamma={self.gamma}, normalize={self.normalize}, band={self.band}, backend={self.backend!r}"

    def _score(self, x, y, lengths):
        cost = self.cost(x, y)
        want = (x.shape[0], x.shape[1], y.shape[1])
        if not isinstance(cost, torch.Tensor) or tuple(cost.shape) != want:
            got = tuple(cost.shape) if isinstance(cost, torch.Tensor) else type(cost).__name__
            raise ValueError(f"cost(x, y) must be a tensor of shape [B, N, M] = {list(want)}, got {got}")
        return soft_dtw_score(cost, gamma=self.gamma, lengths=lengths, band=self.band, backend=self.backend)

    def forward(self, x, y, lengths=None):
        checks.table("x", x, "[B, N, D]")
        checks.table("y", y, "[B, M, D]")
        value = self._score(x, y, lengths)
        if not self.normalize:
            return value
        lengths = _lengths(lengths)
        own_x = own_y = None
        if lengths is not None:  # checked against [B, N, M] by the first call
            own_x, own_y = lengths[:, [0, 0]], lengths[:, [1, 1]]
        return value - (self._score(x, x, own_x) + self._score(y, y, own_y)) / 2


def pairwise_cosine(a, b, *, parts=1, eps=1e-8):
    """Cosine similarity of every row of a with every row of b, separately on each of `parts` equal
    column chunks (FSD's match and gap are the two halves of its candidates).

    Args:
        a: [B, N, D], b: [B, M, D] float tensors of one dtype on one device; D divisible by parts.
        parts: number of column chunks.
        eps: lower bound of |a_i| |b_j| (as the release's cosine similarity).

    Returns:
        [B, parts, N, M] in a's dtype, differentiable w.r.t. a and b (one bmm forward, one baddbmm
        per input backward).
    """
    checks.table("a", a, "[B, N, D]", empty_sides=True)
    checks.table("b", b, "[B, M, D]", empty_sides=True)
    if a.shape[0] != b.shape[0] or a.shape[2] != b.shape[2]:
        raise ValueError(f"a and b must agree in B and D, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.device != b.device:
        raise ValueError(f"a and b must be on one device, got {a.device} and {b.device}")
    if a.dtype != b.dtype:
        raise ValueError(f"a and b must have one dtype, got {a.dtype} and {b.dtype}")
    given = parts
    try:  # any integer type (numpy's too), never a bool
        parts = None if isinstance(parts, bool) else operator.index(parts)
    except TypeError:
        parts = None
    if parts is None or parts < 1 or a.shape[2] % parts:
        raise ValueError(f"parts must be a whole number >= 1 dividing D = {a.shape[2]}, got {given!r}")
    checks.number("eps", eps)
    # Comparisons, not math.isfinite: eps may be a traced number under torch.compile.
    if not (eps > 0 and eps < float("inf")):
        raise ValueError(f"eps must be a finite number > 0, got {eps}")
    return cosine_torch.cosine_torch(a, b, parts, eps)
