"""kernels.soft_dtw_score: the torch and Triton backends against the naive loops, and against tslearn in float64."""
import numpy as np
import pytest
import torch

from ftcl import kernels

# (B, N, M): N or M = 1, N != M both ways, long thin tables, square.
SHAPES = [pytest.param(2, 1, 6, id="B2-N1-M6"), pytest.param(2, 6, 1, id="B2-N6-M1"),
          pytest.param(3, 7, 4, id="B3-N7-M4"), pytest.param(2, 4, 9, id="B2-N4-M9"),
          pytest.param(1, 2, 17, id="B1-N2-M17"), pytest.param(2, 8, 8, id="B2-N8-M8")]
GAMMAS = [pytest.param(0.0, id="dtw"), pytest.param(0.01, id="g0.01"), pytest.param(0.1, id="g0.1"),
          pytest.param(1.0, id="g1")]
BANDS = [pytest.param(None, id="no-band"), pytest.param(0, id="band0"), pytest.param(2, id="band2")]


def _case(seed, batch, n_rows, n_cols, dim=3):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n_rows, dim, generator=gen, dtype=torch.float64)
    y = torch.randn(batch, n_cols, dim, generator=gen, dtype=torch.float64)
    lengths = torch.stack([torch.randint(1, n_rows + 1, (batch,), generator=gen),
                           torch.randint(1, n_cols + 1, (batch,), generator=gen)], dim=1)
    return x, y, lengths, torch.randn(batch, generator=gen, dtype=torch.float64)


def _value_and_grad(cost, upstream, **kw):
    cost = cost.detach().requires_grad_()
    value = kernels.soft_dtw_score(cost, **kw)
    (grad,) = torch.autograd.grad((value * upstream).sum(), cost)
    return value, grad


# Triton runs compiled on a GPU where there is one, else interpreted on the CPU (see conftest).
TRITON_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.parametrize("band", BANDS)
@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("batch,n_rows,n_cols", SHAPES)
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_cpu_backend_equals_the_naive_loops(batch, n_rows, n_cols, gamma, band, with_lengths):
    x, y, lengths, upstream = _case(n_rows * 100 + n_cols, batch, n_rows, n_cols)
    cost = kernels.squared_euclidean(x, y)
    if with_lengths:  # padding holds anything: it must not leak into the answer
        inside = ((torch.arange(n_rows)[None, :, None] < lengths[:, :1, None])
                  & (torch.arange(n_cols)[None, None, :] < lengths[:, 1:, None]))
        cost = torch.where(inside, cost, torch.full_like(cost, 1e30))
    kw = dict(gamma=gamma, band=band, lengths=lengths if with_lengths else None)
    value, grad = _value_and_grad(cost, upstream, backend="cpu", **kw)
    want, want_grad = _value_and_grad(cost, upstream, backend="naive", **kw)
    assert torch.isfinite(value).all()
    torch.testing.assert_close(value, want, rtol=0, atol=1e-10)
    torch.testing.assert_close(grad, want_grad, rtol=0, atol=1e-10)


@pytest.mark.parametrize("band", BANDS)
@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("batch,n_rows,n_cols", SHAPES)
def test_triton_backend_equals_the_naive_loops(batch, n_rows, n_cols, gamma, band):
    """The Triton kernels (float32; the rows family, the default up to 2048 rows) against the float64
    loops, with and without lengths (padding 1e30, which must not leak)."""
    x, y, lengths, upstream = _case(n_rows * 10 + n_cols, batch, n_rows, n_cols)
    cost = kernels.squared_euclidean(x, y)
    for cut in (None, lengths):
        padded = cost
        if cut is not None:
            inside = ((torch.arange(n_rows)[None, :, None] < cut[:, :1, None])
                      & (torch.arange(n_cols)[None, None, :] < cut[:, 1:, None]))
            padded = torch.where(inside, cost, torch.full_like(cost, 1e30))
        want, want_grad = _value_and_grad(padded, upstream, gamma=gamma, band=band, lengths=cut, backend="naive")
        device_cost = padded.float().to(TRITON_DEVICE)
        value, grad = _value_and_grad(device_cost, upstream.float().to(TRITON_DEVICE), gamma=gamma, band=band,
                                      lengths=None if cut is None else cut.to(TRITON_DEVICE), backend="triton")
        assert value.dtype == torch.float32 and torch.isfinite(grad).all()
        torch.testing.assert_close(value.double().cpu(), want, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(grad.double().cpu(), want_grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("gamma", [pytest.param(0.0, id="dtw"), pytest.param(0.1, id="g0.1")])
def test_both_triton_families_compute_the_same_bits(gamma):
    """The chunks kernels (lanes across the diagonal, whole or BLOCK 2 at a time) compute every cell
    from the same operands in the same order as the rows kernels: values and gradients equal bit for
    bit, on a single row, a single column and a taller table, with and without a band and lengths."""
    for seed, shape in enumerate([(2, 1, 6), (2, 6, 1), (3, 7, 4)]):
        x, y, lengths, upstream = _case(100 + seed, *shape)
        cost = kernels.squared_euclidean(x, y).float().to(TRITON_DEVICE)
        upstream = upstream.float().to(TRITON_DEVICE)
        for band in (None, 2):
            for cut in (None, lengths.to(TRITON_DEVICE)):
                runs = []
                for family, block in (("rows", 1024), ("chunks", 1024), ("chunks", 2)):
                    with kernels.configure(family=family, max_chunk_block=block):
                        runs.append(_value_and_grad(cost, upstream, gamma=gamma, band=band, lengths=cut,
                                                    backend="triton"))
                for value, grad in runs[1:]:
                    assert torch.equal(value, runs[0][0]) and torch.equal(grad, runs[0][1]), (shape, band, cut)


def _tslearn():
    return pytest.importorskip("tslearn.metrics", reason="tslearn (a test extra) is not installed")


def _tslearn_band_cost(cost, radius):
    """cost with the cells outside tslearn's Sakoe-Chiba mask priced out (1e8: exp(-1e8 / gamma)
    underflows to 0, so no alignment through them counts)."""
    metrics = _tslearn()
    n, m = cost.shape
    mask = np.asarray(metrics.sakoe_chiba_mask(n, m, radius))  # True inside (older tslearn: 0 inside, inf out)
    return np.where(mask if mask.dtype == bool else np.isfinite(mask), cost, 1e8)


@pytest.mark.parametrize("band", BANDS)
@pytest.mark.parametrize("gamma", [g for g in GAMMAS if g.values[0] > 0])
@pytest.mark.parametrize("batch,n_rows,n_cols", SHAPES)
def test_values_and_alignments_equal_tslearns(batch, n_rows, n_cols, gamma, band):
    """Per pair (and per-pair lengths: tslearn on the sequences cut to them): the value equals
    tslearn.metrics.soft_dtw and the gradient with respect to the cost its expected alignment
    (SoftDTW.grad), to 1e-10. (The naive loops equal the cpu backend: the test above.)"""
    metrics = _tslearn()
    from tslearn.metrics.softdtw_variants import SoftDTW
    x, y, lengths, _ = _case(7 * n_rows + n_cols, batch, n_rows, n_cols)
    for backend in ("cpu",):
        for cut in (None, lengths):
            cost = kernels.squared_euclidean(x, y).detach().requires_grad_()
            value = kernels.soft_dtw_score(cost, gamma=gamma, band=band, lengths=cut, backend=backend)
            grads = [torch.autograd.grad(value[b], cost, retain_graph=True)[0][b] for b in range(batch)]
            for b in range(batch):
                n, m = (n_rows, n_cols) if cut is None else cut[b].tolist()
                xb, yb = x[b, :n].numpy(), y[b, :m].numpy()
                pair_cost = cost[b, :n, :m].detach().numpy()
                if band is None:
                    assert abs(value[b].item() - metrics.soft_dtw(xb, yb, gamma=gamma)) <= 1e-10
                    alignment, _ = metrics.soft_dtw_alignment(xb, yb, gamma=gamma)
                else:
                    reference = SoftDTW(_tslearn_band_cost(pair_cost, band), gamma=gamma)
                    assert abs(value[b].item() - reference.compute()) <= 1e-10
                    alignment = reference.grad()
                np.testing.assert_allclose(grads[b][:n, :m].numpy(), alignment, rtol=0, atol=1e-10)
                assert not grads[b][n:].any() and not grads[b][:, m:].any()


@pytest.mark.parametrize("band", BANDS)
@pytest.mark.parametrize("batch,n_rows,n_cols", SHAPES)
def test_gamma_zero_is_dtw(batch, n_rows, n_cols, band):
    """At gamma = 0 the value is DTW's: tslearn.metrics.dtw squared (tslearn takes the root), with
    its Sakoe-Chiba constraint for a band."""
    metrics = _tslearn()
    x, y, _, _ = _case(3 * n_rows + n_cols, batch, n_rows, n_cols)
    value = kernels.SoftDTW(gamma=0.0, band=band)(x, y)
    for b in range(batch):
        constraint = {} if band is None else dict(global_constraint="sakoe_chiba", sakoe_chiba_radius=band)
        want = metrics.dtw(x[b].numpy(), y[b].numpy(), **constraint) ** 2
        assert abs(value[b].item() - want) <= 1e-10 * max(1.0, want)


@pytest.mark.parametrize("backend", ["naive", "cpu"])
@pytest.mark.parametrize("band", [None, 1])
def test_gradcheck_through_the_sequences(backend, band):
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, 5, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: kernels.SoftDTW(gamma=0.5, band=band, backend=backend)(a, b), (x, y))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_low_precision_inputs_compute_in_float32(dtype):
    x, y, lengths, upstream = _case(11, 3, 9, 6)
    cost64 = kernels.squared_euclidean(x, y)
    want, want_grad = _value_and_grad(cost64, upstream, gamma=0.1, lengths=lengths)
    cost = cost64.to(dtype)
    value, grad = _value_and_grad(cost, upstream, gamma=0.1, lengths=lengths)
    assert value.dtype == torch.float32 and grad.dtype == dtype
    # Against float64 on the inputs as rounded to `dtype`: only float32's arithmetic differs.
    want, want_grad = _value_and_grad(cost.double(), upstream, gamma=0.1, lengths=lengths)
    torch.testing.assert_close(value.double(), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad.double(), want_grad, rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_second_derivatives_are_refused(backend):
    x, y, _, _ = _case(2, 2, 4, 5)
    x = x.float().to(TRITON_DEVICE if backend == "triton" else "cpu").requires_grad_()
    cost = kernels.squared_euclidean(x, y.float().to(x.device))
    value = kernels.soft_dtw_score(cost, gamma=0.1, backend=backend)
    with pytest.raises(RuntimeError, match=f"no second derivative.*{backend}|{backend}.*no second derivative"):
        torch.autograd.grad(value.sum(), x, create_graph=True)


@pytest.mark.parametrize("kwargs,message", [
    (dict(band=-1), "band must be None or a whole number >= 0"), (dict(band=1.5), "band must be"),
    (dict(band=True), "band must be"), (dict(backend="cuda"), "backend must be one of auto, naive, cpu, triton"),
    (dict(gamma=-1.0), "gamma must be a finite number >= 0"), (dict(gamma=1e-9), "is below"),
    (dict(gamma=1e300), "too large"),
])
def test_bad_arguments_are_one_line_errors(kwargs, message):
    cost = torch.rand(2, 3, 4)
    with pytest.raises(ValueError, match=message):
        kernels.soft_dtw_score(cost, **kwargs)


def test_sequences_must_agree():
    with pytest.raises(ValueError, match="agree in B and D"):
        kernels.SoftDTW()(torch.rand(2, 3, 4), torch.rand(2, 5, 3))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_cuda_op_equals_pysdtw():
    """On a GPU, against the CUDA peer that imports there (pysdtw: its default cost is the squared
    Euclidean one), values and gradients w.r.t. the sequences."""
    pysdtw = pytest.importorskip("pysdtw", reason="pysdtw (a CUDA soft-DTW peer) is not installed")
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(6, 40, 5, generator=gen).cuda().requires_grad_()
    y = torch.randn(6, 33, 5, generator=gen).cuda()
    ours = kernels.SoftDTW(gamma=0.1)(x, y)
    (ours_grad,) = torch.autograd.grad(ours.sum(), x)
    peer = pysdtw.SoftDTW(gamma=0.1, use_cuda=True)(x, y)
    (peer_grad,) = torch.autograd.grad(peer.sum(), x)
    torch.testing.assert_close(ours, peer.float(), rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(ours_grad, peer_grad.float(), rtol=1e-3, atol=1e-3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_compiled_families_agree_with_float64_at_length():
    """Compiled on a GPU, at the rows kernels' full height (16 warps, several rows per thread) and on
    the chunks: both families equal bit for bit, and the cpu backend in float64 within float32's
    error, with a band and with lengths."""
    gen = torch.Generator().manual_seed(10)
    x, y = torch.randn(3, 1500, 4, generator=gen).cuda(), torch.randn(3, 1100, 4, generator=gen).cuda()
    cost = kernels.squared_euclidean(x, y) / 4
    lengths = torch.tensor([[1500, 1100], [900, 1000], [1200, 37]]).cuda()
    upstream = torch.randn(3, generator=gen).cuda()
    for band, cut in ((None, None), (64, lengths)):
        runs = []
        for family in ("rows", "chunks"):
            with kernels.configure(family=family):
                runs.append(_value_and_grad(cost, upstream, gamma=1.0, band=band, lengths=cut, backend="triton"))
        assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
        want, want_grad = _value_and_grad(cost.double(), upstream.double(), gamma=1.0, band=band, lengths=cut,
                                          backend="cpu")
        torch.testing.assert_close(runs[0][0].double(), want, rtol=1e-4, atol=1e-2)
        torch.testing.assert_close(runs[0][1].double(), want_grad, rtol=1e-3, atol=1e-3)


def test_float32_sequences_far_from_the_origin_keep_their_digits():
    """Sequences around 100 and 1000 with a spread of 0.01: the float32 value is the float64 one to
    float32's precision (the cost is not |x|^2 + |y|^2 - 2 x.y at the offset, which cancels)."""
    gen = torch.Generator().manual_seed(5)
    for offset in (100.0, 1000.0):
        x = offset + 0.01 * torch.randn(4, 30, 3, generator=gen, dtype=torch.float64)
        y = offset + 0.01 * torch.randn(4, 23, 3, generator=gen, dtype=torch.float64)
        want = kernels.SoftDTW(gamma=0.01)(x, y)
        got = kernels.SoftDTW(gamma=0.01)(x.float(), y.float())
        torch.testing.assert_close(got.double(), want, rtol=1e-3, atol=1e-6)


def _divergence_reference(x, y, gamma, lengths, band):
    """The three-call formula, pair by pair on the sequences cut to their lengths, float64."""
    out = []
    for b in range(x.shape[0]):
        n, m = lengths[b].tolist()
        xb, yb = x[b:b + 1, :n], y[b:b + 1, :m]

        def sdtw(p, q):
            return kernels.soft_dtw_score(kernels.squared_euclidean(p, q), gamma=gamma, band=band, backend="naive")
        out.append(sdtw(xb, yb) - (sdtw(xb, xb) + sdtw(yb, yb)) / 2)
    return torch.cat(out)


@pytest.mark.parametrize("band", [None, 2])
def test_the_divergence_is_the_three_call_formula_zero_at_x_and_non_negative(band):
    """normalize=True: equal to sdtw(x, y) - (sdtw(x, x) + sdtw(y, y)) / 2 to 1e-12 in float64 for
    N != M with per-pair lengths and a band (values and gradients); 0 for x = y; non-negative on random
    squared-Euclidean inputs (without a band)."""
    gen = torch.Generator().manual_seed(31)
    x = torch.randn(3, 7, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.randn(3, 5, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([[7, 5], [4, 2], [1, 5]])
    loss = kernels.SoftDTW(gamma=0.3, normalize=True, band=band)
    got = loss(x, y, lengths)
    want = _divergence_reference(x, y, 0.3, lengths, band)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    upstream = torch.randn(3, generator=gen, dtype=torch.float64)
    for g, w in zip(torch.autograd.grad((got * upstream).sum(), (x, y)),
                    torch.autograd.grad((want * upstream).sum(), (x, y))):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-12)
    assert loss(x, x).abs().max() <= 1e-12
    if band is None:
        for seed in range(5):
            gen.manual_seed(seed)
            a = torch.randn(8, 6, 3, generator=gen, dtype=torch.float64)
            b = torch.randn(8, 9, 3, generator=gen, dtype=torch.float64) * 2
            assert (kernels.SoftDTW(gamma=1.0, normalize=True)(a, b) >= -1e-12).all()


def test_the_module_takes_any_cost_and_compiles_whole():
    """A cost callable [B, N, D] x [B, M, D] -> [B, N, M] (here the L1 distance); a wrong shape is a
    one-line error; the divergence compiles with fullgraph=True and equals eager."""
    def l1(a, b):
        return (a[:, :, None] - b[:, None]).abs().sum(-1)

    gen = torch.Generator().manual_seed(32)
    x = torch.randn(2, 6, 3, generator=gen, requires_grad=True)
    y = torch.randn(2, 4, 3, generator=gen)
    loss = kernels.SoftDTW(gamma=0.5, normalize=True, cost=l1)
    want = loss(x, y)
    torch.testing.assert_close(want, kernels.soft_dtw_score(l1(x, y), gamma=0.5) - (
        kernels.soft_dtw_score(l1(x, x), gamma=0.5) + kernels.soft_dtw_score(l1(y, y), gamma=0.5)) / 2)
    torch._dynamo.reset()
    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x, y), want, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"cost\(x, y\) must be a tensor of shape \[B, N, M\] = \[2, 6, 4\]"):
        kernels.SoftDTW(cost=lambda a, b: a.sum(-1))(x, y)
    with pytest.raises(ValueError, match="cost must be None or a callable"):
        kernels.SoftDTW(cost="l1")
    with pytest.raises(ValueError, match="gamma must be a number, got True"):
        kernels.SoftDTW(gamma=True)
