"""kernels.fsd_score / kernels.lcs_score: every backend against the naive per-cell specification in float64."""
import math

import pytest
import torch

from ftcl import kernels
from ftcl.kernels.shared import launch

SHAPES = [
    pytest.param(2, 1, 6, id="B2-N1-M6"),
    pytest.param(3, 7, 4, id="B3-N7-M4"),
    pytest.param(2, 33, 17, id="B2-N33-M17"),
    pytest.param(2, 30, 30, id="B2-N30-M30"),
]


TINY_SHAPES = [
    pytest.param(3, 1, 6, id="B3-N1-M6"),
    pytest.param(2, 7, 4, id="B2-N7-M4"),
    pytest.param(2, 5, 5, id="B2-N5-M5"),
    pytest.param(1, 4, 9, id="B1-N4-M9"),
]


# Triton runs compiled on a GPU where there is one, else interpreted on the CPU (see conftest).
TRITON_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


GAMMAS = [pytest.param(0.0, id="hard"), pytest.param(0.1, id="g0.1"), pytest.param(1.0, id="g1")]


def _grads(value, inputs, upstream):
    """d(sum(upstream * value)) / d(inputs); zeros where value does not depend on them at all."""
    if not value.requires_grad:
        return [torch.zeros_like(x) for x in inputs]
    return torch.autograd.grad((value * upstream).sum(), inputs, allow_unused=True, materialize_grads=True)


def _device(backend):
    return TRITON_DEVICE if backend == "triton" else "cpu"


def _on(lengths, device):
    return None if lengths is None else lengths.to(device)


def _random_lengths(gen, batch, n_rows, n_cols):
    return torch.stack([torch.randint(1, n_rows + 1, (batch,), generator=gen),
                        torch.randint(1, n_cols + 1, (batch,), generator=gen)], dim=1)


def _fsd_case(seed, batch, n_rows, n_cols, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    match = torch.randn(batch, n_rows, n_cols, generator=gen, dtype=torch.float64) * scale
    gap = torch.randn(batch, n_rows, n_cols, generator=gen, dtype=torch.float64) * scale
    return match, gap, torch.randn(batch, generator=gen, dtype=torch.float64), gen


def _lcs_case(seed, batch, n_rows, n_cols):
    gen = torch.Generator().manual_seed(seed)
    sim = torch.rand(batch, n_rows, n_cols, generator=gen, dtype=torch.float64) * 1.2 - 0.1
    return sim, torch.randn(batch, generator=gen, dtype=torch.float64), gen


def _fsd_check(match, gap, upstream, gamma, lengths, backend, dtype, rtol, atol):
    ref_in = [x.clone().requires_grad_() for x in (match, gap)]
    ref = kernels.fsd_score(*ref_in, gamma=gamma, lengths=lengths, backend="naive")
    ref_grads = _grads(ref, ref_in, upstream)
    device = _device(backend)
    test_in = [x.to(device, dtype).requires_grad_() for x in (match, gap)]
    out = kernels.fsd_score(*test_in, gamma=gamma, lengths=_on(lengths, device), backend=backend)
    assert out.shape == ref.shape
    torch.testing.assert_close(out.cpu().double(), ref.detach(), rtol=rtol, atol=atol)
    for got, want in zip(_grads(out, test_in, upstream.to(device, out.dtype)), ref_grads):
        assert got.dtype == dtype
        torch.testing.assert_close(got.cpu().double(), want, rtol=rtol, atol=atol)


def _lcs_check(sim, upstream, threshold, gamma, lengths, backend, dtype, rtol, atol):
    ref_in = sim.clone().requires_grad_()
    ref = kernels.lcs_score(ref_in, threshold=threshold, gamma=gamma, lengths=lengths, backend="naive")
    (ref_grad,) = _grads(ref, [ref_in], upstream)
    device = _device(backend)
    test_in = sim.to(device, dtype).requires_grad_()
    out = kernels.lcs_score(test_in, threshold=threshold, gamma=gamma, lengths=_on(lengths, device), backend=backend)
    torch.testing.assert_close(out.cpu().double(), ref.detach(), rtol=rtol, atol=atol)
    (got,) = _grads(out, [test_in], upstream.to(device, out.dtype))
    assert got.dtype == dtype
    torch.testing.assert_close(got.cpu().double(), ref_grad, rtol=rtol, atol=atol)


def _gradcheck_inputs(seed):
    gen = torch.Generator().manual_seed(seed)
    match = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    gap = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    # Keep every similarity 0.05 away from the threshold so finite differences never cross it.
    sim = torch.rand(2, 3, 4, generator=gen, dtype=torch.float64)
    sim = torch.where(sim > 0.5, 0.97 + sim * 0.1, sim * 0.8).requires_grad_()
    return match, gap, sim


def test_naive_lcs_stays_differentiable_and_tiny_gamma_is_refused():
    sim = torch.full((2, 3, 4), 0.1, dtype=torch.float64, requires_grad=True)  # nothing clears 0.92
    value = kernels.lcs_score(sim, backend="naive")
    assert value.grad_fn is not None
    (grad,) = torch.autograd.grad(value.sum(), sim)
    assert torch.equal(grad, torch.zeros_like(sim))
    for call in (lambda: kernels.lcs_score(sim, gamma=1e-40), lambda: kernels.fsd_score(sim, sim, gamma=1e-40)):
        with pytest.raises(ValueError, match="gamma 1e-40 is below"):
            call()


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("batch,n_rows,n_cols", SHAPES)
def test_cpu_backend_fsd_matches_naive(batch, n_rows, n_cols, gamma, with_lengths):
    match, gap, upstream, gen = _fsd_case(1, batch, n_rows, n_cols)
    lengths = _random_lengths(gen, batch, n_rows, n_cols) if with_lengths else None
    _fsd_check(match, gap, upstream, gamma, lengths, "cpu", torch.float64, 1e-10, 1e-10)
    _fsd_check(match, gap, upstream, gamma, lengths, "cpu", torch.float32, 2e-4, 2e-4)


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("batch,n_rows,n_cols", SHAPES)
def test_cpu_backend_lcs_matches_naive(batch, n_rows, n_cols, gamma, with_lengths):
    sim, upstream, gen = _lcs_case(2, batch, n_rows, n_cols)
    lengths = _random_lengths(gen, batch, n_rows, n_cols) if with_lengths else None
    _lcs_check(sim, upstream, 0.92, gamma, lengths, "cpu", torch.float64, 1e-10, 1e-10)
    _lcs_check(sim, upstream, 0.92, gamma, lengths, "cpu", torch.float32, 2e-4, 2e-4)


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("gamma", [0.0, 0.1], ids=["hard", "g0.1"])
@pytest.mark.parametrize("batch,n_rows,n_cols", TINY_SHAPES)
def test_triton_fsd_matches_naive(batch, n_rows, n_cols, gamma, with_lengths, family):
    match, gap, upstream, gen = _fsd_case(3, batch, n_rows, n_cols)
    lengths = _random_lengths(gen, batch, n_rows, n_cols) if with_lengths else None
    _fsd_check(match, gap, upstream, gamma, lengths, "triton", torch.float32, 1e-5, 1e-5)


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("gamma", [0.0, 0.1], ids=["hard", "g0.1"])
@pytest.mark.parametrize("batch,n_rows,n_cols", TINY_SHAPES)
def test_triton_lcs_matches_naive(batch, n_rows, n_cols, gamma, with_lengths, family):
    sim, upstream, gen = _lcs_case(4, batch, n_rows, n_cols)
    lengths = _random_lengths(gen, batch, n_rows, n_cols) if with_lengths else None
    _lcs_check(sim, upstream, 0.92, gamma, lengths, "triton", torch.float32, 1e-5, 1e-5)


@pytest.mark.parametrize("gamma", [0.0, 0.1], ids=["hard", "g0.1"])
def test_triton_chunks_long_diagonals(gamma):
    """Diagonals longer than the block are processed in several chunks (BLOCK at most 2)."""
    with kernels.configure(family="chunks", max_chunk_block=2):
        match, gap, upstream, gen = _fsd_case(5, 2, 7, 6)
        lengths = torch.tensor([[7, 6], [5, 6]])
        _fsd_check(match, gap, upstream, gamma, lengths, "triton", torch.float32, 1e-5, 1e-5)
        sim, upstream, _ = _lcs_case(6, 2, 6, 7)
        _lcs_check(sim, upstream, 0.92, gamma, None, "triton", torch.float32, 1e-5, 1e-5)


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_triton_skewed_tables_match_naive(family, with_lengths):
    """Past Settings.skew_min_cells the inputs are copied diagonal-major and the gradients are written
    in that layout: values and gradients still equal the specification's."""
    with kernels.configure(skew_min_cells=1, skew_min_diagonals=0):
        _skewed_tables_match_naive(with_lengths)


def _skewed_tables_match_naive(with_lengths):
    for seed, (batch, n_rows, n_cols) in enumerate([(2, 7, 4), (3, 5, 9), (2, 1, 6)]):
        match, gap, upstream, gen = _fsd_case(20 + seed, batch, n_rows, n_cols)
        lengths = _random_lengths(gen, batch, n_rows, n_cols) if with_lengths else None
        _fsd_check(match, gap, upstream, 0.1, lengths, "triton", torch.float32, 1e-5, 1e-5)
        sim, upstream, gen = _lcs_case(30 + seed, batch, n_rows, n_cols)
        lengths = _random_lengths(gen, batch, n_rows, n_cols) if with_lengths else None
        _lcs_check(sim, upstream, 0.92, 0.0, lengths, "triton", torch.float32, 1e-5, 1e-5)


@pytest.mark.parametrize("depth", [2, 4])
def test_rows_kernels_prefetching_further_ahead_match_naive(depth):
    """Inputs loaded 2 or 4 diagonals ahead (Settings.fsd_prefetch / lcs_prefetch) are consumed on the
    right diagonal, also at the ends of short tables (fewer diagonals than the depth) and with per-pair
    lengths."""
    with kernels.configure(family="rows", fsd_prefetch=depth, lcs_prefetch=depth):
        _prefetching_matches_naive()


def _prefetching_matches_naive():
    for seed, (batch, n_rows, n_cols) in enumerate([(2, 7, 4), (3, 1, 2), (2, 2, 9)]):
        match, gap, upstream, gen = _fsd_case(40 + seed, batch, n_rows, n_cols)
        lengths = _random_lengths(gen, batch, n_rows, n_cols)
        _fsd_check(match, gap, upstream, 0.1, lengths, "triton", torch.float32, 1e-5, 1e-5)
        _fsd_check(match, gap, upstream, 0.0, None, "triton", torch.float32, 1e-5, 1e-5)
        sim, upstream, gen = _lcs_case(50 + seed, batch, n_rows, n_cols)
        _lcs_check(sim, upstream, 0.92, 0.1, _random_lengths(gen, batch, n_rows, n_cols), "triton", torch.float32,
                   1e-5, 1e-5)


def test_rows_prefetch_depth_is_capped_where_threads_hold_several_rows():
    assert [launch.rows_prefetch(block, 4) for block in (16, 512, 1024, 2048)] == [4, 4, 4, 2]
    assert [launch.rows_prefetch(block, 1) for block in (16, 2048)] == [1, 1]


def test_launch_sizes_round_up_to_powers_of_two_as_triton_does():
    triton = pytest.importorskip("triton")
    assert [launch.next_power_of_2(n) for n in range(1, 5000)] == [triton.next_power_of_2(n) for n in range(1, 5000)]


def test_skewed_tables_are_the_wide_enough_ones_past_the_threshold():
    """Diagonal-major copies are made from Settings.skew_min_cells cells per pair on, for tables at most twice
    as tall as wide (taller ones would pad each diagonal to N rows: up to N times the memory), and
    there only for long sweeps or big batches; the backward then writes its gradient in that layout
    (strides (N + 1, N))."""
    assert not launch.skews((4096, 64, 64))  # too few cells per pair
    assert not launch.skews((16, 128, 128)) and not launch.skews((511, 128, 128))  # short, small
    assert launch.skews((512, 128, 128)) and launch.skews((1, 128, 385))  # 8M cells; 512 diagonals
    assert not launch.skews((1, 128, 384)) and not launch.skews((1024, 1000, 128))  # 511; too tall
    with kernels.configure(skew_min_cells=None):
        assert not launch.skews((64, 2048, 2048))
    settings = kernels.Settings(skew_min_cells=28, skew_min_diagonals=0)
    assert launch.skews((2, 7, 4), settings) and launch.skews((2, 4, 7), settings)
    assert not launch.skews((2, 9, 4), settings) and not launch.skews((2, 3, 9), settings)
    sim = torch.rand(2, 7, 4, device=TRITON_DEVICE)
    skewed = launch.to_diagonal_major(sim)
    assert skewed.stride() == (70, 8, 7) and torch.equal(skewed, sim)
    with kernels.configure(skew_min_cells=28, skew_min_diagonals=0):
        value = kernels.lcs_score(sim.requires_grad_(), threshold=0.5, backend="triton")
        (grad,) = torch.autograd.grad(value.sum(), sim)
    assert grad.stride() == (70, 8, 7)
    (want,) = torch.autograd.grad(kernels.lcs_score(sim, threshold=0.5, backend="triton").sum(), sim)
    assert want.is_contiguous() and torch.equal(grad, want)


@pytest.mark.parametrize("shape", [(3, 7, 5), (2, 5, 9), (1, 1, 1), (2, 1, 70), (1, 40, 1), (2, 33, 65)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_skew_kernel_places_every_cell_on_its_diagonal(shape, dtype):
    """Cell (i, j) of pair b at b * (N + M - 1) * N + (i + j) * N + i of the buffer, for tiles smaller
    than the table (several tiles per direction) and larger; inputs with a strided last dimension are
    copied first. The reference places the cells one by one."""
    batch, n_rows, n_cols = shape
    gen = torch.Generator().manual_seed(n_rows * 100 + n_cols)
    x = torch.randn(batch, n_cols, n_rows, generator=gen).to(dtype).transpose(1, 2)  # last dim strided
    span = (n_rows + n_cols - 1) * n_rows
    want = torch.full((batch, span), float("nan"), dtype=dtype)
    for b in range(batch):
        for i in range(n_rows):
            for j in range(n_cols):
                want[b, (i + j) * n_rows + i] = x[b, i, j]
    for tile in [(2, 4), kernels.Settings().skew_tile]:
        for source in (x, x.contiguous()):
            got = launch.to_diagonal_major(source.to(TRITON_DEVICE), kernels.Settings(skew_tile=tile))
            assert launch.is_diagonal_major(got) and torch.equal(got.cpu(), x)
            assert launch.to_diagonal_major(got) is got  # already diagonal-major: no copy
            buffer = got.as_strided((batch, span), (got.stride(0), 1), got.storage_offset()).cpu()
            cells = ~want.isnan()
            assert torch.equal(buffer[cells], want[cells])


def test_diagonal_major_layout_is_recognised_only_where_it_holds():
    """Inputs a producer already wrote diagonal-major are read as they are; any other layout is
    copied, including transposed and overlapping ones. Size-1 dimensions have no stride to check."""
    skewed = launch.diagonal_major_empty((3, 5, 4), torch.float32, "cpu")
    assert launch.is_diagonal_major(skewed) and skewed.stride() == (40, 6, 5)
    assert not launch.is_diagonal_major(torch.empty(3, 5, 4))
    assert not launch.is_diagonal_major(torch.empty(3, 4, 5).transpose(1, 2))
    assert not launch.is_diagonal_major(torch.empty(200).as_strided((3, 5, 4), (20, 6, 5)))  # pairs overlap
    assert launch.is_diagonal_major(torch.empty(3, 1, 4))  # one row: row-major is diagonal-major
    assert not launch.is_diagonal_major(torch.empty(3, 2, 1))


def test_rows_family_leaves_taller_tables_to_the_chunks():
    """Above Settings.max_rows rows (one lane per row would not fit) the chunk kernels take over."""
    settings = kernels.Settings(family="rows", max_rows=4)
    assert launch.kernel_family(4, settings) == "rows" and launch.kernel_family(5, settings) == "chunks"
    with kernels.configure(family="rows", max_rows=4):
        for seed, (n_rows, n_cols) in enumerate([(7, 3), (3, 7)]):  # chunks, then rows
            match, gap, upstream, _ = _fsd_case(8 + seed, 2, n_rows, n_cols)
            _fsd_check(match, gap, upstream, 0.1, None, "triton", torch.float32, 1e-5, 1e-5)


def test_settings_are_checked_and_restored():
    before = kernels.current_settings()
    with kernels.configure(family="chunks", lcs_prefetch=2) as inside:
        assert kernels.current_settings() is inside and (inside.family, inside.lcs_prefetch, inside.fsd_prefetch) == (
            "chunks", 2, before.fsd_prefetch)
    assert kernels.current_settings() is before
    for bad, message in ((dict(family="columns"), "family must be"), (dict(max_rows=4096), "max_rows"),
                         (dict(max_chunk_block=3), "power of two"), (dict(fsd_prefetch=5), "fsd_prefetch")):
        with pytest.raises(ValueError, match=message):
            with kernels.configure(**bad):
                pass
    with pytest.raises(TypeError, match="unknown kernel setting 'implementation'"):
        with kernels.configure(implementation="rows"):
            pass
    assert kernels.current_settings() is before


def test_a_backward_launches_what_its_forward_chose():
    """The settings are read when the op is called; a backward run after the block still uses them."""
    match, gap, upstream, _ = _fsd_case(12, 2, 5, 6)
    match, gap = (x.float().to(TRITON_DEVICE).requires_grad_() for x in (match, gap))
    with kernels.configure(family="chunks", max_chunk_block=2):
        value = kernels.fsd_score(match, gap, backend="triton")
    assert value.grad_fn.settings.family == "chunks" and kernels.current_settings().family == "rows"
    (grad_chunks,) = torch.autograd.grad(value.sum(), match)
    value = kernels.fsd_score(match, gap, backend="triton")
    (grad_rows,) = torch.autograd.grad(value.sum(), match)
    torch.testing.assert_close(grad_chunks, grad_rows, rtol=1e-5, atol=1e-6)


def test_triton_reads_strided_inputs_and_half_precision(family):
    match, gap, upstream, _ = _fsd_case(7, 2, 6, 5)
    # Transposed storage: the kernels read any strides.
    match_t = match.transpose(1, 2).contiguous().transpose(1, 2)
    _fsd_check(match_t, gap, upstream, 0.1, None, "triton", torch.float32, 1e-5, 1e-5)
    _fsd_check(match, gap, upstream, 0.1, None, "triton", torch.float16, 2e-2, 2e-2)
    sim, upstream, _ = _lcs_case(8, 2, 5, 6)
    _lcs_check(sim.transpose(1, 2).contiguous().transpose(1, 2), upstream, 0.92, 0.0, None, "triton",
               torch.float32, 1e-5, 1e-5)


def test_triton_reads_diagonal_major_inputs_exactly(family):
    """to_diagonal_major's layout (anti-diagonals contiguous, strides (N + 1, N) over a buffer with
    gaps) gives the row-major inputs' values and gradients bit for bit."""
    diagonal_major = launch.to_diagonal_major
    match, gap, upstream, _ = _fsd_case(11, 3, 7, 5)
    sim, _, _ = _lcs_case(12, 3, 6, 9)
    for op, tensors in (("fsd", (match, gap)), ("lcs", (sim,))):
        results = []
        for layout in (lambda x: x, diagonal_major):
            inputs = [layout(x.to(TRITON_DEVICE, torch.float32)).requires_grad_() for x in tensors]
            if layout is diagonal_major:
                assert inputs[0].stride()[1:] == (tensors[0].shape[1] + 1, tensors[0].shape[1])
            value = kernels.fsd_score(*inputs, gamma=0.1, backend="triton") if op == "fsd" else \
                kernels.lcs_score(*inputs, threshold=0.92, backend="triton")
            results.append([value, *_grads(value, inputs, upstream.to(TRITON_DEVICE, torch.float32))])
        for got, want in zip(*results):
            assert torch.equal(got, want), op


@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_lcs_ties_take_the_upper_neighbour(backend, family):
    """Integer-valued similarities make many equal table entries; the path (and gradient) must
    follow the upper neighbour on every tie, exactly as the naive loops do."""
    gen = torch.Generator().manual_seed(9)
    sim = torch.randint(0, 2, (3, 6, 7), generator=gen).double()
    sim[2] = 0.5  # nothing matches: every cell is a tie of zeros
    upstream = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    _lcs_check(sim, upstream, 0.92, 0.0, None, backend, torch.float32, 0, 0)


@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_fsd_hard_max_ties_take_the_first_candidate(backend, family):
    match = torch.zeros(2, 4, 3, dtype=torch.float64)
    gap = torch.zeros(2, 4, 3, dtype=torch.float64)
    gap[1] = 1.0
    upstream = torch.tensor([1.0, 0.5], dtype=torch.float64)
    _fsd_check(match, gap, upstream, 0.0, None, backend, torch.float32, 0, 0)


@pytest.mark.parametrize("backend", ["naive", "cpu", "triton"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_a_gamma_that_would_overflow_is_refused(backend, dtype):
    """A gamma whose table could pass the compute dtype's range (values inf, gradients NaN) is
    refused; the largest accepted one gives finite values and gradients on a full-size table."""
    if backend == "triton" and dtype == torch.float64:
        pytest.skip("the Triton backend computes in float32")
    n_rows, n_cols = 7, 5
    gen = torch.Generator().manual_seed(3)
    match, gap, sim = (torch.rand(2, n_rows, n_cols, generator=gen, dtype=dtype) for _ in range(3))
    compute = torch.float64 if dtype == torch.float64 and backend != "triton" else torch.float32
    # The bound the check uses, from first principles: ln 3 per step of the longest path.
    largest = torch.finfo(compute).max / 4 / ((n_rows + n_cols) * math.log(3))
    for op in (lambda g: kernels.fsd_score(match, gap, gamma=g, backend=backend),
               lambda g: kernels.lcs_score(sim, threshold=0.5, gamma=g, backend=backend)):
        with pytest.raises(ValueError, match=f"too large for a {n_rows} x {n_cols} table in {compute}"):
            op(largest * 1.01)
        inputs = [t.detach().requires_grad_() for t in (match, gap, sim)]
        match, gap, sim = inputs
        value = op(largest * 0.99)
        value.sum().backward()
        assert torch.isfinite(value).all()
        assert all(t.grad is None or torch.isfinite(t.grad).all() for t in inputs)


@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_large_magnitudes_with_small_gamma_stay_finite(backend, family):
    gen = torch.Generator().manual_seed(10)
    match = (torch.rand(2, 5, 6, generator=gen, dtype=torch.float64) * 2 - 1) * 50
    gap = (torch.rand(2, 5, 6, generator=gen, dtype=torch.float64) * 2 - 1) * 50
    upstream = torch.randn(2, generator=gen, dtype=torch.float64)
    _fsd_check(match, gap, upstream, 0.01, None, backend, torch.float32, 1e-5, 1e-4)
    sim = (torch.rand(2, 5, 6, generator=gen, dtype=torch.float64) * 2 - 1) * 50
    _lcs_check(sim, upstream, 0.92, 0.01, None, backend, torch.float32, 1e-5, 1e-4)


@pytest.mark.parametrize("backend", ["naive", "cpu"])
@pytest.mark.parametrize("gamma", [0.0, 0.1, 1.0], ids=["hard", "g0.1", "g1"])
def test_gradcheck(backend, gamma):
    match, gap, sim = _gradcheck_inputs(11)
    lengths = torch.tensor([[3, 4], [2, 3]])
    for lens in (None, lengths):
        assert torch.autograd.gradcheck(
            lambda m, g: kernels.fsd_score(m, g, gamma=gamma, lengths=lens, backend=backend), (match, gap))
        assert torch.autograd.gradcheck(
            lambda s: kernels.lcs_score(s, threshold=0.92, gamma=gamma, lengths=lens, backend=backend), (sim,))


@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_non_finite_input_stays_in_its_own_pair(backend, family):
    match, gap, upstream, _ = _fsd_case(12, 3, 4, 5)
    sim, _, _ = _lcs_case(13, 3, 4, 5)
    device = _device(backend)
    match, gap, sim = match.to(device), gap.to(device), sim.to(device)
    clean_fsd = kernels.fsd_score(match.float(), gap.float(), backend=backend)
    clean_lcs = kernels.lcs_score(sim.float(), backend=backend)
    match[1, 2, 3] = float("nan")
    gap[1, 0, 0] = float("inf")
    sim[1, 1, 1] = float("nan")
    dirty = [x.float().requires_grad_() for x in (match, gap, sim)]
    lengths = torch.tensor([[4, 5], [4, 5], [3, 2]], device=device)
    fsd_out = kernels.fsd_score(dirty[0], dirty[1], lengths=lengths, backend=backend)
    lcs_out = kernels.lcs_score(dirty[2], backend=backend)
    assert not torch.isfinite(fsd_out[1])
    for b in (0, 2):
        assert torch.isfinite(fsd_out[b]) and torch.isfinite(lcs_out[b])
    torch.testing.assert_close(fsd_out[0], clean_fsd[0])
    torch.testing.assert_close(lcs_out[[0, 2]], clean_lcs[[0, 2]])
    grads = _grads(fsd_out.sum() + lcs_out.sum(), dirty, torch.ones((), device=device))
    for grad in grads:
        assert torch.isfinite(grad[[0, 2]]).all()


def test_auto_backend_on_cpu_is_the_cpu_loops():
    match, gap, _, _ = _fsd_case(14, 2, 5, 5)
    torch.testing.assert_close(kernels.fsd_score(match, gap), kernels.fsd_score(match, gap, backend="cpu"))
    assert kernels.fsd_score(match.float(), gap.float()).dtype == torch.float32
    assert kernels.lcs_score(match.half()).dtype == torch.float32


@pytest.mark.parametrize("backend", ["naive", "cpu", "triton"])
def test_empty_batch(backend, family):
    empty = torch.zeros(0, 3, 4, device=_device(backend))
    assert kernels.fsd_score(empty, empty, backend=backend).shape == (0,)
    assert kernels.lcs_score(empty, backend=backend).shape == (0,)


@pytest.mark.parametrize("call,message", [
    (lambda: kernels.fsd_score(torch.zeros(3, 4), torch.zeros(3, 4)), "match must have shape"),
    (lambda: kernels.fsd_score(torch.zeros(2, 3, 4), torch.zeros(2, 4, 3)), "same shape"),
    (lambda: kernels.fsd_score(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), gamma=-0.1), "gamma"),
    (lambda: kernels.lcs_score(torch.zeros(2, 3, 4), gamma=float("inf")), "gamma"),
    (lambda: kernels.lcs_score(torch.zeros(2, 3, 4), lengths=torch.tensor([[3, 4], [0, 2]])), r"lengths\[1\]"),
    (lambda: kernels.lcs_score(torch.zeros(2, 3, 4), lengths=torch.tensor([[3, 5], [1, 2]])), r"lengths\[0\]"),
    (lambda: kernels.lcs_score(torch.zeros(2, 3, 4), lengths=torch.tensor([[3, 4]])), "lengths must have shape"),
    (lambda: kernels.lcs_score(torch.zeros(2, 3, 4), lengths=torch.ones(2, 2)), "integer"),
    (lambda: kernels.lcs_score(torch.zeros(2, 3, 4), backend="cuda"), "backend"),
    (lambda: kernels.lcs_score(torch.zeros(2, 3, 4, dtype=torch.int32)), "float"),
    (lambda: kernels.lcs_score(torch.zeros(2, 0, 4)), "N >= 1"),
    (lambda: kernels.lcs_score(torch.zeros(2, 3, 4, dtype=torch.float64), backend="triton"), "float64"),
])
def test_bad_input_raises_value_error_naming_the_argument(call, message, monkeypatch):
    # As on a GPU machine, where nothing sets it: the message must not depend on the interpreter.
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match=message):
        call()


def test_triton_on_cpu_without_interpreter_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="CUDA"):
        kernels.lcs_score(torch.zeros(2, 3, 4), backend="triton")


def test_second_derivatives_are_exact_on_naive_and_refused_elsewhere(family):
    """The naive ops are differentiable twice (float64 gradgradcheck); the torch and Triton backends
    and the cosine producers compute their gradients without a graph, so asking for a second
    derivative through them is an error, not a silently missing term."""
    match, gap, sim = _gradcheck_inputs(13)
    assert torch.autograd.gradgradcheck(lambda m, g: kernels.fsd_score(m, g, gamma=0.1, backend="naive"), (match, gap))
    assert torch.autograd.gradgradcheck(lambda s: kernels.lcs_score(s, threshold=0.5, gamma=0.1, backend="naive"), (sim,))
    calls = [(lambda b, x: kernels.fsd_score(x, x.detach() * 0.5, gamma=0.1, backend=b), ("cpu", "triton")),
             (lambda b, x: kernels.lcs_score(x, threshold=0.5, gamma=0.1, backend=b), ("cpu", "triton")),
             (lambda b, x: kernels.pairwise_cosine(x, x.detach() + 1), ("cpu",))]
    for call, backends in calls:
        for backend in backends:
            x = sim.detach().float().clone().requires_grad_()
            with pytest.raises(RuntimeError, match="has no second derivative"):
                torch.autograd.grad(call(backend, x).sum(), x, create_graph=True)
            (grad,) = torch.autograd.grad(call(backend, x).sum(), x)  # a first derivative as before
            assert torch.isfinite(grad).all()


@pytest.mark.parametrize("gamma", [0.0, 0.1], ids=["hard", "g0.1"])
def test_nan_and_overflow_give_one_answer_on_every_backend(gamma):
    """A NaN anywhere in a pair's FSD or soft-DTW table makes its value NaN on every backend (as
    torch.maximum / minimum); a NaN similarity never clears LCS's threshold (its value stays finite);
    costs near float32's range with a small gamma give the same finite values everywhere."""
    gen = torch.Generator().manual_seed(21)
    cost, match, gap, sim = (torch.rand(3, 4, 5, generator=gen) for _ in range(4))
    for where in ((0, 0, 0), (1, 2, 3), (2, 3, 4)):
        cost[where] = match[where] = sim[where] = float("nan")
    gap[1, 1, 1] = float("nan")
    huge = torch.rand(2, 3, 4, generator=gen) * 1e35
    results = {}
    for backend in ("naive", "cpu", "triton"):
        device = _device(backend)
        results[backend] = [
            kernels.soft_dtw_score(cost.to(device), gamma=gamma, backend=backend).cpu(),
            kernels.fsd_score(match.to(device), gap.to(device), gamma=gamma, backend=backend).cpu(),
            kernels.lcs_score(sim.to(device), threshold=0.5, gamma=gamma, backend=backend).cpu(),
            kernels.soft_dtw_score(huge.to(device), gamma=gamma and 1e-4, backend=backend).cpu(),
            kernels.fsd_score(huge.to(device), huge.to(device) * 0, gamma=gamma and 1e-4, backend=backend).cpu()]
        sdtw, fsd, lcs, sdtw_huge, fsd_huge = results[backend]
        assert sdtw.isnan().all() and fsd.isnan().all(), backend
        assert torch.isfinite(lcs).all() and torch.isfinite(sdtw_huge).all() and torch.isfinite(fsd_huge).all()
    for backend in ("cpu", "triton"):
        for got, want in zip(results[backend][2:], results["naive"][2:]):
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-5)
