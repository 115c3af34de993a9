"""kernels/*/op.py: FSD, LCS and soft-DTW as registered operators, checked by torch.library.opcheck, and
torch.compile(fullgraph=True) of each op and of a whole FTCL training step against eager."""
import pytest
import torch

from ftcl import kernels
from ftcl.kernels.fsd import op as fsd_op
from ftcl.kernels.lcs import op as lcs_op
from ftcl.kernels.soft_dtw import op as soft_dtw_op

# Triton runs compiled on a GPU where there is one, else interpreted on the CPU (see conftest).
TRITON_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _tables(seed, batch, n_rows, n_cols, dtype, device="cpu"):
    gen = torch.Generator().manual_seed(seed)
    made = [torch.randn(batch, n_rows, n_cols, generator=gen, dtype=dtype).to(device).requires_grad_()
            for _ in range(3)]
    lengths = torch.stack([torch.randint(1, n_rows + 1, (batch,), generator=gen),
                           torch.randint(1, n_cols + 1, (batch,), generator=gen)], dim=1).to(device)
    return made, lengths


def _cases(backend):
    device = TRITON_DEVICE if backend == "triton" else "cpu"
    dtypes = [torch.float32] if backend == "triton" else [torch.float32, torch.float64]
    skews = [False, True] if backend == "triton" else [False]
    for dtype in dtypes:
        for with_lengths in (False, True):
            for skew in skews:
                (match, gap, sim), lengths = _tables(3, 2, 5, 4, dtype, device)
                yield match, gap, sim, lengths if with_lengths else None, skew


@pytest.mark.parametrize("backend", ["cpu", pytest.param("triton", marks=pytest.mark.slow)])
def test_opcheck_fsd_and_lcs(backend):
    """Schema, fake (meta) implementation, autograd registration and AOT dispatch of the forward and
    backward ops, on float32 and float64 (torch), with and without lengths, row-major and
    diagonal-major (Triton: the layout of the copies the forward makes past Settings.skew_min_cells,
    and of the gradients the backward writes)."""
    for match, gap, sim, lengths, skew in _cases(backend):
        layout = {"skew_min_cells": 1, "skew_min_diagonals": 0} if skew else {"skew_min_cells": None}
        with kernels.configure(**layout):
            torch.library.opcheck(fsd_op.fsd_forward, (match, gap, 0.1, lengths, backend))
            torch.library.opcheck(lcs_op.lcs_forward, (sim, 0.5, 0.1, lengths, backend))
            value, table = fsd_op.fsd_forward(match.detach(), gap.detach(), 0.1, lengths, backend)
            grad = torch.randn_like(value)
            torch.library.opcheck(fsd_op.fsd_backward, (grad, match.detach(), gap.detach(), table, 0.1, lengths,
                                                        backend, skew))
            value, table = lcs_op.lcs_forward(sim.detach(), 0.5, 0.1, lengths, backend)
            torch.library.opcheck(lcs_op.lcs_backward, (grad, sim.detach(), table, 0.5, 0.1, lengths, backend, skew))


@pytest.mark.parametrize("band", [None, 1])
@pytest.mark.parametrize("backend,dtype", [("cpu", torch.float32), ("cpu", torch.float64),
                                           pytest.param("triton", torch.float32, marks=pytest.mark.slow)])
def test_opcheck_soft_dtw(backend, dtype, band):
    device = TRITON_DEVICE if backend == "triton" else "cpu"
    (cost, _, _), lengths = _tables(4, 3, 6, 5, dtype, device)
    cost = cost.detach().abs().requires_grad_()
    for cut in (None, lengths):
        torch.library.opcheck(soft_dtw_op.soft_dtw_forward, (cost, 0.5, cut, band, backend))
        value, table = soft_dtw_op.soft_dtw_forward(cost.detach(), 0.5, cut, band, backend)
        torch.library.opcheck(soft_dtw_op.soft_dtw_backward,
                              (torch.randn_like(value), cost.detach(), table, 0.5, cut, band, backend))


def _compiled_equals_eager(fn, inputs, numbers, atol, backend="aot_eager"):
    """fn(*inputs, *numbers) compiled with fullgraph=True and dynamic=True (no graph break; the
    numbers traced as arguments) gives eager's values and gradients, for two sets of numbers."""
    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True, dynamic=True, backend=backend)
    for scale in (1.0, 0.5):
        args = [x * scale for x in numbers]
        eager = fn(*inputs, *args)
        eager_grads = torch.autograd.grad(eager.sum(), inputs)
        value = compiled(*inputs, *args)
        grads = torch.autograd.grad(value.sum(), inputs)
        torch.testing.assert_close(value, eager, rtol=atol, atol=atol)
        for got, want in zip(grads, eager_grads):
            torch.testing.assert_close(got, want, rtol=atol, atol=atol)


def _every_op(backend, lengths):
    def step(match, gap, sim, a, b, gamma, threshold, eps):
        cost = kernels.squared_euclidean(a, b)
        return (kernels.fsd_score(match, gap, gamma=gamma, lengths=lengths, backend=backend)
                + kernels.lcs_score(sim, threshold=threshold, gamma=gamma, backend=backend)
                + kernels.soft_dtw_score(cost, gamma=gamma, band=2, lengths=lengths, backend=backend)
                + kernels.pairwise_cosine(a, b, parts=2, eps=eps).sum((1, 2, 3)))
    return step


def _inputs(backend):
    device = TRITON_DEVICE if backend == "triton" else "cpu"
    (match, gap, sim), lengths = _tables(5, 3, 7, 5, torch.float32, device)
    gen = torch.Generator().manual_seed(6)
    a = torch.randn(3, 7, 4, generator=gen).to(device).requires_grad_()
    b = torch.randn(3, 5, 4, generator=gen).to(device).requires_grad_()
    return (match, gap, sim, a, b), lengths


@pytest.mark.parametrize("backend", ["cpu", pytest.param("triton", marks=pytest.mark.slow)])
def test_every_op_compiles_with_traced_numbers(backend):
    """fullgraph=True, dynamic=True, gamma, threshold and eps passed in as arguments: aot_eager equals
    eager exactly."""
    inputs, lengths = _inputs(backend)
    _compiled_equals_eager(_every_op(backend, lengths), inputs, (0.1, 0.5, 1e-8), atol=0)


@pytest.mark.slow
def test_every_op_compiles_with_inductor():
    """The same under inductor (which reorders the float32 arithmetic around the ops): to 1e-4."""
    inputs, lengths = _inputs("cpu")
    _compiled_equals_eager(_every_op("cpu", lengths), inputs, (0.1, 0.5, 1e-8), atol=1e-4, backend="inductor")


def test_a_compiled_op_refuses_bad_values_when_it_runs():
    """Values are checked when the graph runs, with the eager messages."""
    inputs, lengths = _inputs("cpu")
    torch._dynamo.reset()
    compiled = torch.compile(_every_op("cpu", lengths), fullgraph=True, dynamic=True, backend="aot_eager")
    with pytest.raises(ValueError, match="gamma must be a finite number >= 0, got -0.1"):
        compiled(*inputs, -0.1, 0.5, 1e-8)
    lengths[1] = torch.tensor([9, 1])
    with pytest.raises(ValueError, match=r"lengths\[1\] = \[9, 1\] is outside 1..7 x 1..5"):
        compiled(*inputs, 0.1, 0.5, 1e-8)


def test_a_compiled_op_sees_the_settings_of_its_call():
    """Under compile the Triton op reads the settings when it runs; values do not depend on them."""
    (match, gap, _), _ = _tables(6, 2, 6, 6, torch.float32, TRITON_DEVICE)
    compiled = torch.compile(lambda m, g: kernels.fsd_score(m, g, backend="triton"), fullgraph=True, backend="aot_eager")
    torch._dynamo.reset()
    want = compiled(match, gap)
    with kernels.configure(family="chunks", max_chunk_block=2):
        torch.testing.assert_close(compiled(match, gap), want, rtol=1e-6, atol=1e-6)
