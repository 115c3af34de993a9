"""GPU-only checks of the Triton kernels: compiled (not interpreted), bf16, long diagonals, races."""
import os

import pytest
import torch

from ftcl import kernels

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1",
    reason="needs a CUDA GPU and compiled (not interpreted) Triton kernels")]


def _case(seed, batch, n_rows, n_cols, device="cuda"):
    gen = torch.Generator(device=device).manual_seed(seed)
    match = torch.randn(batch, n_rows, n_cols, generator=gen, device=device)
    gap = torch.randn(batch, n_rows, n_cols, generator=gen, device=device)
    sim = torch.rand(batch, n_rows, n_cols, generator=gen, device=device) * 1.2 - 0.1
    upstream = torch.randn(batch, generator=gen, device=device)
    return match, gap, sim, upstream


def _fsd_and_grads(match, gap, upstream, backend, **kw):
    inputs = [x.detach().clone().requires_grad_() for x in (match, gap)]
    out = kernels.fsd_score(*inputs, backend=backend, **kw)
    return [out.detach()] + list(torch.autograd.grad((out * upstream).sum(), inputs))


def _lcs_and_grads(sim, upstream, backend, **kw):
    inputs = sim.detach().clone().requires_grad_()
    out = kernels.lcs_score(inputs, backend=backend, **kw)
    grads = torch.autograd.grad((out * upstream).sum(), inputs, allow_unused=True, materialize_grads=True)
    return [out.detach()] + list(grads)


# Rows kernels at BLOCK 16, 32 (1 warp), 64 (2), 128 (4), 1024 and 2048 (16); 3000 rows on the chunks.
@pytest.mark.parametrize("shape", [(16, 5, 5), (16, 30, 30), (7, 33, 17), (4, 100, 120), (2, 700, 650),
                                   (3, 1500, 1100), (2, 3000, 40)],
                         ids=lambda s: "B{}-N{}-M{}".format(*s))
@pytest.mark.parametrize("gamma", [0.0, 0.1], ids=["hard", "g0.1"])
def test_compiled_kernels_match_float64_cpu_loops(shape, gamma, family):
    match, gap, sim, upstream = _case(0, *shape)
    lengths = torch.stack([torch.randint(1, shape[1] + 1, (shape[0],)),
                           torch.randint(1, shape[2] + 1, (shape[0],))], dim=1).cuda()
    for lens in (None, lengths):
        got = _fsd_and_grads(match, gap, upstream, "triton", gamma=gamma, lengths=lens)
        want = _fsd_and_grads(match.double(), gap.double(), upstream.double(), "cpu", gamma=gamma, lengths=lens)
        for g, w in zip(got, want):
            torch.testing.assert_close(g.double(), w, rtol=1e-3, atol=1e-3)
        got = _lcs_and_grads(sim, upstream, "triton", gamma=gamma, lengths=lens)
        want = _lcs_and_grads(sim.double(), upstream.double(), "cpu", gamma=gamma, lengths=lens)
        for g, w in zip(got, want):
            torch.testing.assert_close(g.double(), w, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("depth,skew", [(2, False), (4, False), (1, True), (4, True)],
                         ids=["prefetch2", "prefetch4", "skewed", "prefetch4-skewed"])
def test_compiled_rows_options_match_float64_cpu_loops(depth, skew):
    """The options measured by the benchmarks before becoming defaults: inputs loaded further ahead
    (Settings.fsd_prefetch / lcs_prefetch; 2 at most past 1024 rows) and diagonal-major tables
    (Settings.skew_min_cells)."""
    with kernels.configure(family="rows", fsd_prefetch=depth, lcs_prefetch=depth,
                           skew_min_cells=1 if skew else None, skew_min_diagonals=0):
        _rows_options_match(depth)


def _rows_options_match(depth):
    for shape in [(7, 33, 17), (4, 257, 300), (2, 1500, 1100)]:
        match, gap, sim, upstream = _case(5, *shape)
        lengths = torch.stack([torch.randint(1, shape[1] + 1, (shape[0],)),
                               torch.randint(1, shape[2] + 1, (shape[0],))], dim=1).cuda()
        got = _fsd_and_grads(match, gap, upstream, "triton", gamma=0.1, lengths=lengths)
        want = _fsd_and_grads(match.double(), gap.double(), upstream.double(), "cpu", gamma=0.1, lengths=lengths)
        for g, w in zip(got, want):
            torch.testing.assert_close(g.double(), w, rtol=1e-3, atol=1e-3)
        got = _lcs_and_grads(sim, upstream, "triton", gamma=0.0)
        want = _lcs_and_grads(sim.double(), upstream.double(), "cpu", gamma=0.0)
        for g, w in zip(got, want):
            torch.testing.assert_close(g.double(), w, rtol=1e-3, atol=1e-3)


def test_bfloat16_inputs(family):
    match, gap, sim, upstream = _case(1, 8, 30, 30)
    match, gap, sim = match.bfloat16(), gap.bfloat16(), sim.bfloat16()
    got = _fsd_and_grads(match, gap, upstream, "triton", gamma=0.1)
    want = _fsd_and_grads(match.float(), gap.float(), upstream, "triton", gamma=0.1)
    assert got[1].dtype == torch.bfloat16 and got[0].dtype == torch.float32
    for g, w in zip(got, want):
        torch.testing.assert_close(g.float(), w, rtol=1e-2, atol=1e-2)
    got = _lcs_and_grads(sim, upstream, "triton")
    want = _lcs_and_grads(sim.float(), upstream, "triton")
    for g, w in zip(got, want):
        torch.testing.assert_close(g.float(), w, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("size", [2048, 4096])
def test_square_tables_up_to_4096_work(size):
    """2048 is the tallest table of the rows kernels (BLOCK 2048, 16 warps); 4096 runs on the chunks."""
    match, gap, sim, upstream = _case(2, 1, size, size)
    fsd = _fsd_and_grads(match, gap, upstream, "triton", gamma=0.1)
    lcs = _lcs_and_grads(sim * 0.1 + 0.85, upstream, "triton")
    for t in fsd + lcs:
        assert torch.isfinite(t).all()
    # Cheap independent check of the value: a square hard LCS of a constant table is its length
    # times the constant when everything matches.
    ones = torch.full((1, size, size), 0.95, device="cuda")
    assert kernels.lcs_score(ones).item() == pytest.approx(size * 0.95, rel=1e-3)


def test_repeated_runs_are_bitwise_identical(family):
    """No races: the wavefront's barriers make every run give exactly the same bits."""
    match, gap, sim, upstream = _case(3, 64, 257, 300)
    first = _fsd_and_grads(match, gap, upstream, "triton", gamma=0.1) + _lcs_and_grads(sim, upstream, "triton")
    for _ in range(5):
        again = _fsd_and_grads(match, gap, upstream, "triton", gamma=0.1) + _lcs_and_grads(sim, upstream, "triton")
        for a, b in zip(first, again):
            assert torch.equal(a, b)


@pytest.mark.parametrize("bands", [2, 4, 8, 33, "auto"], ids=lambda b: f"bands-{b}")
def test_row_bands_equal_one_program_per_pair_bit_for_bit_every_run(bands):
    """Bands hand their edges over through global memory while they run side by side: a missing
    fence, a count published early or a stale cache line would change some bits in some runs. Every
    run, at every band count, equals one program per pair exactly; at 33 bands of 64 rows more
    programs run than fit on the SMs at once (the ticket order keeps them from waiting forever)."""
    shapes = [(3, 2048, 1500), (64, 700, 650)] if bands != 33 else [(512, 2048, 300)]
    for shape in shapes:
        match, gap, sim, upstream = _case(6, *shape)
        lengths = torch.stack([torch.randint(1, shape[1] + 1, (shape[0],)),
                               torch.randint(1, shape[2] + 1, (shape[0],))], dim=1).cuda()
        with kernels.configure(family="rows", row_bands=1):
            want = (_fsd_and_grads(match, gap, upstream, "triton", gamma=0.1, lengths=lengths)
                    + _lcs_and_grads(sim, upstream, "triton", gamma=0.1))
        with kernels.configure(family="rows", row_bands=bands):
            for _ in range(3):
                got = (_fsd_and_grads(match, gap, upstream, "triton", gamma=0.1, lengths=lengths)
                       + _lcs_and_grads(sim, upstream, "triton", gamma=0.1))
                for g, w in zip(got, want):
                    assert torch.equal(g, w), shape
