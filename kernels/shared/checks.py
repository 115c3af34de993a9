"""The door of every DP operator: what a call may pass, checked once where the operator is entered
(kernels/*/op.py, and the naive specification through the same functions), so that the public
functions and torch.ops.ftcl.* refuse the same values with the same one-line messages, and no value
reaches a kernel that could read or write out of bounds.

Each check raises ValueError naming the argument and the value; those that pass return what the
kernels take (a float, a long tensor on the tables' device, a resolved backend).
"""
import math
import numbers

import torch

from ftcl.kernels.shared import launch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# Below this a positive gamma overflows float32 (x / gamma, 1 / gamma): 0 (the hard max) is the limit.
MIN_GAMMA = 1e-4
OP_BACKENDS = ("auto", "cpu", "triton")


def number(name, value):
    """A real Python number (numpy's too), never a bool or a string: what the public functions take
    for gamma, threshold and eps before the operator's schema would turn True into 1.0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return value


def table(name, x, shape="[B, N, M]", empty_sides=False):
    """x must be a 3-D float tensor; `shape` names its axes in the message. Unless empty_sides, N and
    M must be at least 1."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(x.shape)}")
    if x.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be float16, bfloat16, float32 or float64, got {x.dtype}")
    if not empty_sides and (x.shape[1] < 1 or x.shape[2] < 1):
        raise ValueError(f"{name} needs N >= 1 and M >= 1, got {tuple(x.shape)}")


def same_tables(names, tensors):
    """Tables of one op (FSD's match and gap) share a shape and a device."""
    first = tensors[0]
    for name, x in zip(names[1:], tensors[1:]):
        if x.shape != first.shape:
            raise ValueError(f"{names[0]} and {name} must have the same shape, got {tuple(first.shape)} and "
                             f"{tuple(x.shape)}")
        if x.device != first.device:
            raise ValueError(f"{names[0]} and {name} must be on one device, got {first.device} and {x.device}")


def gamma(value):
    """A finite gamma >= 0: 0 (the hard max or min) or at least MIN_GAMMA."""
    value = float(value)
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"gamma must be a finite number >= 0, got {value}")
    if 0 < value < MIN_GAMMA:
        raise ValueError(f"gamma {value:g} is below {MIN_GAMMA:g}, where float32 overflows; use 0 for the hard max")
    return value


def gamma_fits(value, shape, dtype):
    """The smooth max adds at most gamma * ln 3 per step of a path (N + M steps): refuse a gamma whose
    table could overflow the compute dtype (and turn into NaN gradients)."""
    n_rows, n_cols = shape[1], shape[2]
    bound = value * (n_rows + n_cols) * math.log(3)
    if bound > torch.finfo(dtype).max / 4:
        raise ValueError(f"gamma {value:g} is too large for a {n_rows} x {n_cols} table in {dtype}: the smooth max "
                         f"adds up to gamma * (N + M) * ln 3 = {bound:.3g}, past the range of {dtype}")


def threshold(value):
    value = float(value)
    if math.isnan(value):
        raise ValueError("threshold must be a number, got nan")
    return value


def band(value):
    """None, or a whole number >= 0 (the Sakoe-Chiba radius)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"band must be None or a whole number >= 0 (the Sakoe-Chiba radius), got {value!r}")
    return int(value)


def lengths(value, shape, device):
    """None, or an integer [B, 2] tensor of per-pair (n, m) with 1 <= n <= N and 1 <= m <= M; returned
    as int64 on `device`, contiguous (what the kernels read)."""
    if value is None:
        return None
    batch, n_rows, n_cols = shape
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"lengths must be None or an integer tensor [B, 2], got {type(value).__name__}")
    if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
        raise ValueError(f"lengths must be an integer tensor, got {value.dtype}")
    if tuple(value.shape) != (batch, 2):
        raise ValueError(f"lengths must have shape [{batch}, 2], got {tuple(value.shape)}")
    value = value.to(device=device, dtype=torch.long).contiguous()
    if batch:
        n, m = value[:, 0], value[:, 1]
        bad = (n < 1) | (n > n_rows) | (m < 1) | (m > n_cols)
        if bool(bad.any()):
            b = int(bad.nonzero()[0, 0])
            raise ValueError(f"lengths[{b}] = {value[b].tolist()} is outside 1..{n_rows} x 1..{n_cols}")
    return value


def compute_dtype(*tensors):
    """What an op computes in: float64 for float64 inputs, else float32."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def full_lengths(shape, device):
    """[B, 2] (N, M) of every pair: the lengths of a call without them."""
    batch, n_rows, n_cols = shape
    return torch.tensor([[n_rows, n_cols]], device=device).expand(batch, 2)


def resolve_backend(backend, tensors):
    """The backend an op call runs on, without checking it: "auto" is "triton" for CUDA tensors
    without float64, else "cpu"."""
    if backend != "auto":
        return backend
    return "triton" if tensors[0].is_cuda and all(t.dtype != torch.float64 for t in tensors) else "cpu"


def backend(value, tensors, allowed=OP_BACKENDS):
    """The backend an op call runs on ("cpu" or "triton"), refused where it cannot run."""
    if value not in allowed:
        raise ValueError(f"backend must be one of {', '.join(allowed)}; got {value!r}")
    value = resolve_backend(value, tensors)
    if value == "triton":
        if any(t.dtype == torch.float64 for t in tensors):
            raise ValueError("backend 'triton' computes in float32; pass float32/float16/bfloat16 "
                             "or use backend='cpu' for float64")
        if not launch.runs_on(tensors[0]):
            raise ValueError("backend 'triton' needs CUDA tensors (or TRITON_INTERPRET=1 set before import)")
        if launch.triton is None:
            raise RuntimeError("backend 'triton' needs the triton package (pip install triton)")
    return value


def saved(grad, saved_table, shape, device, resolved):
    """The inputs a backward op takes from its forward: grad [B] (any float dtype) and the table of
    the resolved backend (cpu: [B, N+1, M+1] float64; triton: [B, N*M] float32)."""
    batch, n_rows, n_cols = shape
    if not isinstance(grad, torch.Tensor) or tuple(grad.shape) != (batch,) or grad.dtype not in FLOAT_DTYPES:
        raise ValueError(f"grad must be a float tensor of shape [{batch}], got "
                         f"{tuple(grad.shape) if isinstance(grad, torch.Tensor) else type(grad).__name__}")
    want = (batch, n_rows + 1, n_cols + 1) if resolved == "cpu" else (batch, n_rows * n_cols)
    want_dtype = torch.float64 if resolved == "cpu" else torch.float32
    if tuple(saved_table.shape) != want or saved_table.dtype != want_dtype:
        raise ValueError(f"table must be the forward's {want_dtype} table of shape {list(want)} on the {resolved} "
                         f"backend, got {saved_table.dtype} {tuple(saved_table.shape)}")
    for name, x in (("grad", grad), ("table", saved_table)):
        if x.device != device:
            raise ValueError(f"{name} must be on the tables' device {device}, got {x.device}")
