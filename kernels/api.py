"""Public entry points: argument checks and backend dispatch for FSD and LCS."""
import math
import operator

import torch

from ftcl.kernels.cosine import op as cosine_op
from ftcl.kernels.cosine import torch_kernels as cosine_torch
from ftcl.kernels.cosine import triton_kernels as cosine_triton
from ftcl.kernels.fsd import naive as fsd_naive
from ftcl.kernels.fsd import op as fsd_op
from ftcl.kernels.fsd import triton_kernels as fsd_triton
from ftcl.kernels.fsd import wavefront as fsd_wavefront
from ftcl.kernels.lcs import naive as lcs_naive
from ftcl.kernels.lcs import op as lcs_op
from ftcl.kernels.lcs import triton_kernels as lcs_triton
from ftcl.kernels.lcs import wavefront as lcs_wavefront
from ftcl.kernels.settings import settings as current_settings
from ftcl.kernels.shared import launch
from ftcl.kernels.shared.wavefront import compute_dtype, full_lengths
from ftcl.kernels.soft_dtw import naive as soft_dtw_naive
from ftcl.kernels.soft_dtw import op as soft_dtw_op
from ftcl.kernels.soft_dtw import triton_kernels as soft_dtw_triton
from ftcl.kernels.soft_dtw import wavefront as soft_dtw_wavefront

BACKENDS = ("auto", "naive", "torch", "triton")
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _compiling():
    """Whether torch.compile / torch.export is tracing the call: it then goes through the registered
    operators of kernels/*/op.py (one opaque op per pass, with fake implementations). Eager calls take
    the autograd Functions directly, which skips the dispatcher's Python layers (about 90 us per
    forward + backward of a small table on a 2-core CPU); both run the same code."""
    return torch.compiler.is_compiling()


@torch.compiler.assume_constant_result
def _cosine_auto():
    return current_settings().cosine_auto


def _check_float_3d(name, x, shape):
    """x must be a 3-D float tensor; `shape` names its axes in the message ("[B, N, M]")."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(x.shape)}")
    if x.dtype not in _FLOAT_DTYPES:
        raise ValueError(f"{name} must be float16, bfloat16, float32 or float64, got {x.dtype}")


def _check_table(name, x):
    _check_float_3d(name, x, "[B, N, M]")
    if x.shape[1] < 1 or x.shape[2] < 1:
        raise ValueError(f"{name} needs N >= 1 and M >= 1, got {tuple(x.shape)}")


# Below this a positive gamma overflows float32 (x / gamma, 1 / gamma): 0 (the hard max) is the limit.
MIN_GAMMA = 1e-4


def _check_gamma(gamma):
    gamma = float(gamma)
    if not (gamma >= 0 and math.isfinite(gamma)):
        raise ValueError(f"gamma must be a finite number >= 0, got {gamma}")
    if 0 < gamma < MIN_GAMMA:
        raise ValueError(f"gamma {gamma:g} is below {MIN_GAMMA:g}, where float32 overflows; use 0 for the hard max")
    return gamma


def _check_gamma_fits(gamma, shape, dtype):
    """The smooth max adds at most gamma * ln 3 per step of a path (N + M steps): refuse a gamma whose
    table could overflow the compute dtype (and turn into NaN gradients)."""
    n_rows, n_cols = shape[1], shape[2]
    bound = gamma * (n_rows + n_cols) * math.log(3)
    if bound > torch.finfo(dtype).max / 4:
        raise ValueError(f"gamma {gamma:g} is too large for a {n_rows} x {n_cols} table in {dtype}: the smooth max "
                         f"adds up to gamma * (N + M) * ln 3 = {bound:.3g}, past the range of {dtype}")


def _check_lengths(lengths, shape, device):
    """None, or an int64 [B, 2] tensor of (n, m) with 1 <= n <= N, 1 <= m <= M, on `device`."""
    if lengths is None:
        return None
    batch, n_rows, n_cols = shape
    lengths = torch.as_tensor(lengths)
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise ValueError(f"lengths must be an integer tensor, got {lengths.dtype}")
    if tuple(lengths.shape) != (batch, 2):
        raise ValueError(f"lengths must have shape [{batch}, 2], got {tuple(lengths.shape)}")
    lengths = lengths.to(device=device, dtype=torch.long)
    if batch:
        n, m = lengths[:, 0], lengths[:, 1]
        bad = (n < 1) | (n > n_rows) | (m < 1) | (m > n_cols)
        if _compiling():  # a traced graph cannot branch on values: checked when it runs, not named
            torch._assert_async(~bad.any(), f"lengths outside 1..{n_rows} x 1..{n_cols}")
            return lengths
        if bool(bad.any()):
            b = int(bad.nonzero()[0, 0])
            raise ValueError(f"lengths[{b}] = {lengths[b].tolist()} is outside 1..{n_rows} x 1..{n_cols}")
    return lengths


def _pick_backend(backend, tensors):
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    on_cuda = tensors[0].is_cuda
    if backend == "auto":
        has_float64 = any(t.dtype == torch.float64 for t in tensors)
        return "triton" if on_cuda and not has_float64 else "torch"
    if backend == "triton":
        if any(t.dtype == torch.float64 for t in tensors):
            raise ValueError("backend 'triton' computes in float32; pass float32/float16/bfloat16 "
                             "or use backend='torch' for float64")
        if not launch.runs_on(tensors[0]):
            raise ValueError("backend 'triton' needs CUDA tensors (or TRITON_INTERPRET=1 set before import)")
    return backend



def fsd(match, gap, *, gamma=0.1, lengths=None, backend="auto"):
    """Differentiable FSD alignment score of each video pair.

    C[0, .] = C[., 0] = 0 and, 1-indexed, C[i, j] = match[i, j] + max_gamma(C[i-1, j-1],
    gap[i, j] + C[i-1, j], gap[i, j] + C[i, j-1]) with max_gamma(x) = gamma * logsumexp(x / gamma)
    (the hard max, first maximum winning, when gamma = 0).

    Args:
        match, gap: [B, N, M] float16/bfloat16/float32 (float64 on the naive and torch backends).
        gamma: smoothing temperature >= 0 (the release uses 0.1).
        lengths: optional integer [B, 2] of per-pair (n, m); the result is C[n, m] of each pair.
        backend: "auto" | "naive" | "torch" | "triton".

    Returns:
        [B] float32 (float64 for float64 inputs), differentiable w.r.t. match and gap.
    """
    _check_table("match", match)
    _check_table("gap", gap)
    if match.shape != gap.shape:
        raise ValueError(f"match and gap must have the same shape, got {tuple(match.shape)} and {tuple(gap.shape)}")
    if match.device != gap.device:
        raise ValueError(f"match and gap must be on one device, got {match.device} and {gap.device}")
    gamma = _check_gamma(gamma)
    lengths = _check_lengths(lengths, match.shape, match.device)
    backend = _pick_backend(backend, (match, gap))
    dtype = compute_dtype(match, gap)
    _check_gamma_fits(gamma, match.shape, dtype)
    if backend == "naive":
        full = lengths if lengths is not None else full_lengths(match.shape, match.device)
        return fsd_naive.fsd_naive(match.to(dtype), gap.to(dtype), gamma, full.tolist())
    if backend == "torch":
        return fsd_op.fsd(match, gap, gamma, lengths, "torch") if _compiling() else \
            fsd_wavefront.FSDFunction.apply(match, gap, gamma, lengths)
    if _compiling():
        return fsd_op.fsd(match, gap, gamma, lengths, "triton")
    return fsd_triton.FSDTriton.apply(match, gap, gamma, lengths)


def lcs(sim, *, threshold=0.92, gamma=0.0, lengths=None, backend="auto"):
    """Differentiable thresholded longest common subsequence score of each video pair.

    C[0, .] = C[., 0] = 0 and, 1-indexed, C[i, j] = C[i-1, j-1] + sim[i, j] if sim[i, j] > threshold,
    else max_gamma(C[i-1, j], C[i, j-1]); at gamma = 0 a tie takes the upper neighbour C[i-1, j].

    Args:
        sim: [B, N, M] float16/bfloat16/float32 (float64 on the naive and torch backends).
        threshold: strict match threshold on sim (the release uses 0.92).
        gamma: smoothing temperature >= 0 (the release uses 0, the hard max).
        lengths: optional integer [B, 2] of per-pair (n, m); the result is C[n, m] of each pair.
        backend: "auto" | "naive" | "torch" | "triton".

    Returns:
        [B] float32 (float64 for float64 inputs), differentiable w.r.t. sim.
    """
    _check_table("sim", sim)
    threshold = float(threshold)
    if math.isnan(threshold):
        raise ValueError("threshold must be a number, got nan")
    gamma = _check_gamma(gamma)
    lengths = _check_lengths(lengths, sim.shape, sim.device)
    backend = _pick_backend(backend, (sim,))
    _check_gamma_fits(gamma, sim.shape, compute_dtype(sim))
    if backend == "naive":
        full = lengths if lengths is not None else full_lengths(sim.shape, sim.device)
        return lcs_naive.lcs_naive(sim.to(compute_dtype(sim)), threshold, gamma, full.tolist())
    if backend == "torch":
        return lcs_op.lcs(sim, threshold, gamma, lengths, "torch") if _compiling() else \
            lcs_wavefront.LCSFunction.apply(sim, threshold, gamma, lengths)
    if _compiling():
        return lcs_op.lcs(sim, threshold, gamma, lengths, "triton")
    return lcs_triton.LCSTriton.apply(sim, threshold, gamma, lengths)


SOFT_DTW_BACKENDS = BACKENDS


def _check_band(band):
    if band is None:
        return None
    try:  # any integer type (numpy's too), never a bool
        radius = None if isinstance(band, bool) else operator.index(band)
    except TypeError:
        radius = None
    if radius is None or radius < 0:
        raise ValueError(f"band must be None or a whole number >= 0 (the Sakoe-Chiba radius), got {band!r}")
    return radius


def soft_dtw(cost, *, gamma=1.0, lengths=None, band=None, backend="auto"):
    """Soft-DTW (Cuturi & Blondel, 2017) of each pair of a batch of cost matrices.

    R[0, 0] = 0, R[i, 0] = R[0, j] = +inf and, 1-indexed, R[i, j] = cost[i, j] + min_gamma(R[i-1, j-1],
    R[i-1, j], R[i, j-1]) with min_gamma(x) = -gamma * logsumexp(-x / gamma) (the hard min, first
    minimum winning: DTW, at gamma = 0). The value is R[n, m]; its gradient with respect to the cost
    is the expected alignment. Unnormalised, as tslearn.metrics.soft_dtw.

    Args:
        cost: [B, N, M] float16/bfloat16/float32 (float64 on the naive and torch backends).
        gamma: smoothing temperature >= 0 (0: DTW; else at least kernels.api.MIN_GAMMA).
        lengths: optional integer [B, 2] of per-pair (n, m); the value is R[n, m] of each pair.
        band: optional Sakoe-Chiba radius (tslearn's sakoe_chiba_mask on each pair's n x m): cells
            with i - j outside [-band - max(0, m - n), band + max(0, n - m)] are +inf.
        backend: "auto" (triton on CUDA, else torch) | "naive" | "torch" | "triton".

    Returns:
        [B] float32 (float64 for float64 inputs), differentiable w.r.t. cost.
    """
    _check_table("cost", cost)
    gamma = _check_gamma(gamma)
    lengths = _check_lengths(lengths, cost.shape, cost.device)
    band = _check_band(band)
    backend = _pick_backend(backend, (cost,))
    dtype = compute_dtype(cost)
    _check_gamma_fits(gamma, cost.shape, dtype)
    if backend == "naive":
        full = lengths if lengths is not None else full_lengths(cost.shape, cost.device)
        return soft_dtw_naive.soft_dtw_naive(cost.to(dtype), gamma, full.tolist(), band)
    if _compiling():
        return soft_dtw_op.soft_dtw(cost, gamma, lengths, band, backend)
    if backend == "torch":
        return soft_dtw_wavefront.SoftDTWFunction.apply(cost, gamma, lengths, band)
    return soft_dtw_triton.SoftDTWTriton.apply(cost, gamma, lengths, band)


def squared_euclidean(x, y):
    """[B, N, M] squared Euclidean distances |x_i - y_j|^2 of x [B, N, D] and y [B, M, D] (clamped at
    0 against rounding), differentiable."""
    _check_float_3d("x", x, "[B, N, D]")
    _check_float_3d("y", y, "[B, M, D]")
    if x.shape[0] != y.shape[0] or x.shape[2] != y.shape[2]:
        raise ValueError(f"x and y must agree in B and D, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.device != y.device or x.dtype != y.dtype:
        raise ValueError(f"x and y must share a device and a dtype, got {x.device}/{x.dtype} and {y.device}/{y.dtype}")
    squares = x.pow(2).sum(dim=2, keepdim=True) + y.pow(2).sum(dim=2).unsqueeze(1)  # [B, N, M]
    return torch.baddbmm(squares, x, y.mT, alpha=-2).clamp_min(0)


def soft_dtw_sequences(x, y, *, gamma=1.0, lengths=None, band=None, backend="auto"):
    """soft_dtw of the squared Euclidean cost between sequences x [B, N, D] and y [B, M, D] (what
    tslearn.metrics.soft_dtw computes for one pair). Returns [B], differentiable w.r.t. x and y."""
    return soft_dtw(squared_euclidean(x, y), gamma=gamma, lengths=lengths, band=band, backend=backend)


COSINE_BACKENDS = ("auto", "torch", "triton")


def pairwise_cosine(a, b, *, parts=1, eps=1e-8, backend="auto"):
    """Cosine similarity of every row of a with every row of b, separately on each of `parts` equal
    column chunks (FSD's match and gap are the two halves of its candidates).

    Args:
        a: [B, N, D], b: [B, M, D] float tensors on one device; D divisible by parts.
        parts: number of column chunks.
        eps: lower bound of |a_i| |b_j| (as the release's cosine similarity).
        backend: "auto" (CUDA tensors: Settings.cosine_auto, torch until the Triton producer has been
            measured faster on a GPU: bench/RESULTS.md; else torch), "torch" (one bmm forward, one
            baddbmm per input backward), "triton" (one launch forward, one backward; CUDA, or CPU
            under TRITON_INTERPRET=1; N, M <= 32; computes in float32).

    Returns:
        [B, parts, N, M], differentiable w.r.t. a and b (float32 on triton, else a's dtype).
    """
    given = parts
    _check_float_3d("a", a, "[B, N, D]")
    _check_float_3d("b", b, "[B, M, D]")
    if a.shape[0] != b.shape[0] or a.shape[2] != b.shape[2]:
        raise ValueError(f"a and b must agree in B and D, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.device != b.device:
        raise ValueError(f"a and b must be on one device, got {a.device} and {b.device}")
    try:  # any integer type (numpy's too), never a bool
        parts = None if isinstance(parts, bool) else operator.index(parts)
    except TypeError:
        parts = None
    if parts is None or parts < 1 or a.shape[2] % parts:
        raise ValueError(f"parts must be a whole number >= 1 dividing D = {a.shape[2]}, got {given!r}")
    eps = float(eps)
    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a finite number > 0, got {eps}")
    if backend not in COSINE_BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(COSINE_BACKENDS)}; got {backend!r}")
    if backend == "auto" and a.is_cuda:
        backend = _cosine_auto()
    if backend == "triton":
        if max(a.shape[1], b.shape[1]) > cosine_triton.MAX_ROWS:
            raise ValueError(f"backend 'triton' takes at most {cosine_triton.MAX_ROWS} rows per side, got "
                             f"{a.shape[1]} and {b.shape[1]}; use backend='torch'")
        _pick_backend("triton", (a, b))
        if cosine_triton.triton is None:
            raise RuntimeError("backend 'triton' needs the triton package (pip install triton)")
        if _compiling():
            return cosine_op.pairwise_cosine(a, b, parts, eps)
        return cosine_triton.CosineTriton.apply(a, b, parts, eps)
    if a.dtype != b.dtype:
        raise ValueError(f"a and b must have one dtype on the torch backend, got {a.dtype} and {b.dtype}")
    return cosine_torch.cosine_torch(a, b, parts, eps)
