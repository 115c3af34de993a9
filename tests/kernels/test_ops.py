"""kernels/*/op.py: FSD, LCS and soft-DTW as registered operators, checked by torch.library.opcheck, and
torch.compile(fullgraph=True) of each op and of a whole FTCL training step against eager."""
import pytest
import torch

from ftcl import kernels
from ftcl.kernels.cosine import op as cosine_op
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


@pytest.mark.parametrize("backend", ["torch", pytest.param("triton", marks=pytest.mark.slow)])
def test_opcheck_fsd_and_lcs(backend):
    """Schema, fake (meta) implementation, autograd registration and AOT dispatch of the forward and
    backward ops, on float32 and float64 (torch), with and without lengths, row-major and
    diagonal-major (Triton)."""
    for match, gap, sim, lengths, skew in _cases(backend):
        torch.library.opcheck(fsd_op.fsd_forward, (match, gap, 0.1, lengths, backend, skew))
        torch.library.opcheck(lcs_op.lcs_forward, (sim, 0.5, 0.1, lengths, backend, skew))
        value, table = fsd_op.fsd_forward(match.detach(), gap.detach(), 0.1, lengths, backend, skew)
        grad = torch.randn_like(value)
        torch.library.opcheck(fsd_op.fsd_backward, (grad, match.detach(), gap.detach(), table, 0.1, lengths, backend,
                                                 skew))
        value, table = lcs_op.lcs_forward(sim.detach(), 0.5, 0.1, lengths, backend, skew)
        torch.library.opcheck(lcs_op.lcs_backward, (grad, sim.detach(), table, 0.5, 0.1, lengths, backend, skew))


@pytest.mark.parametrize("band", [None, 1])
@pytest.mark.parametrize("backend,dtype", [("torch", torch.float32), ("torch", torch.float64),
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


def _compiled_equals_eager(fn, inputs, atol):
    """fn compiled with fullgraph=True (no graph break) gives eager's values and gradients."""
    torch._dynamo.reset()
    eager = fn(*inputs)
    eager_grads = torch.autograd.grad(eager.sum(), inputs)
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    value = compiled(*inputs)
    grads = torch.autograd.grad(value.sum(), inputs)
    torch.testing.assert_close(value, eager, rtol=0, atol=atol)
    for got, want in zip(grads, eager_grads):
        torch.testing.assert_close(got, want, rtol=0, atol=atol)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_each_op_compiles_without_a_graph_break(backend):
    device = TRITON_DEVICE if backend == "triton" else "cpu"
    (match, gap, sim), lengths = _tables(5, 3, 7, 5, torch.float32, device)
    _compiled_equals_eager(lambda m, g: kernels.fsd(m, g, gamma=0.1, lengths=lengths, backend=backend),
                           (match, gap), atol=0)
    _compiled_equals_eager(lambda s: kernels.lcs(s, threshold=0.5, gamma=0.0, backend=backend), (sim,), atol=0)
    cost = sim.detach().abs().requires_grad_()
    _compiled_equals_eager(lambda c: kernels.soft_dtw(c, gamma=0.5, band=2, lengths=lengths, backend=backend),
                           (cost,), atol=0)


def test_a_compiled_op_sees_the_settings_of_its_call():
    """Under compile the Triton op reads the settings when it runs; values do not depend on them."""
    (match, gap, _), _ = _tables(6, 2, 6, 6, torch.float32, TRITON_DEVICE)
    compiled = torch.compile(lambda m, g: kernels.fsd(m, g, backend="triton"), fullgraph=True, backend="aot_eager")
    torch._dynamo.reset()
    want = compiled(match, gap)
    with kernels.configure(family="chunks", max_chunk_block=2):
        torch.testing.assert_close(compiled(match, gap), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("parts", [1, 2])
def test_opcheck_and_compile_the_triton_cosine(parts):
    """pairwise_cosine's Triton backend as a registered op (opcheck), and compiled with fullgraph;
    its torch backend (torch operations and a traceable autograd Function) compiles too."""
    gen = torch.Generator().manual_seed(parts)
    a = torch.randn(3, 5, 8, generator=gen).to(TRITON_DEVICE).requires_grad_()
    b = torch.randn(3, 7, 8, generator=gen).to(TRITON_DEVICE).requires_grad_()
    torch.library.opcheck(cosine_op.cosine_forward, (a, b, parts, 1e-8))
    sim, norm_a, norm_b = cosine_op.cosine_forward(a.detach(), b.detach(), parts, 1e-8)
    torch.library.opcheck(cosine_op.cosine_backward, (torch.randn_like(sim), a.detach(), b.detach(), sim, norm_a,
                                                      norm_b, parts, 1e-8))
    for backend in ("triton", "torch"):
        _compiled_equals_eager(lambda x, y: kernels.pairwise_cosine(x, y, parts=parts, backend=backend), (a, b),
                               atol=1e-6)
