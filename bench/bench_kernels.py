"""Benchmarks of kernels.fsd_score / kernels.lcs_score: the release workload (any machine) and the GPU grid.

GPU cases time with triton.testing.do_bench (CUDA events) into extra_info["gpu_ms"]; the
pytest-benchmark wall-clock statistics synchronise the device around each call."""
import os
import time

import numpy as np
import pytest
import torch

from ftcl import kernels
from ftcl.kernels.shared import launch
from bench import release_loops
from bench.common import RESULTS_DIR, cuda_graph, cuda_kernel_count, gpu_ms, on_gpu, peak_mib, synchronized

GRID = [(16, 32), (256, 32), (4096, 32), (16, 128), (256, 128), (2048, 128), (16, 512), (256, 512),
        (1024, 512), (64, 2048)]
# Forward+backward ms of the block-per-pair CUDA soft-DTW reference on an H100 (same B and L),
# the project's target: >= 10x faster at every point.
CUDA_REFERENCE_MS = {(16, 32): 1.10, (256, 32): 1.06, (4096, 32): 2.93, (16, 128): 1.36, (256, 128): 1.96,
                     (2048, 128): 30.6, (16, 512): 6.70, (256, 512): 41.8, (1024, 512): 224.0}
CPU_GRID = [(16, 32), (256, 32), (16, 128)]
DEVICE = "cuda" if on_gpu() else "cpu"


def _inputs(op, batch, length, device, requires_grad):
    gen = torch.Generator(device=device).manual_seed(0)
    shape = (batch, length, length)
    if op == "fsd":
        tensors = [torch.randn(shape, generator=gen, device=device) for _ in range(2)]
    else:
        tensors = [torch.rand(shape, generator=gen, device=device) * 0.2 + 0.8]
    return [t.requires_grad_(requires_grad) for t in tensors]


def runner(op, mode, batch, length, backend, device, layout="row-major"):
    """A call of one kernel: forward ("fwd") or forward + backward ("fwd+bwd")."""
    inputs = _inputs(op, batch, length, device, False)
    if layout == "diagonal-major":
        inputs = [launch.to_diagonal_major(x) for x in inputs]
    inputs = [x.requires_grad_(mode == "fwd+bwd") for x in inputs]
    call = (lambda: kernels.fsd_score(*inputs, gamma=0.1, backend=backend)) if op == "fsd" else \
        (lambda: kernels.lcs_score(*inputs, threshold=0.92, backend=backend))
    if mode == "fwd":
        def run():
            with torch.no_grad():
                return call()
        return run
    upstream = torch.ones(batch, device=device)
    return lambda: torch.autograd.grad(call(), inputs, upstream, allow_unused=True)


def release_inputs(device, batch=16, seed=0):
    """The release workload: FSD on 5 x 1024-d candidates per video, LCS on 30 x 2048-d.

    The LCS candidates of b repeat a's (shuffled, with noise), so about one cell per row clears the
    0.92 threshold, as with real ACM-Net embeddings of same-class videos.
    """
    gen = torch.Generator(device=device).manual_seed(seed)
    fsd_a = torch.randn(batch, 5, 1024, generator=gen, device=device)
    fsd_b = torch.randn(batch, 5, 1024, generator=gen, device=device)
    lcs_a = torch.relu(torch.randn(batch, 30, 2048, generator=gen, device=device))
    order = torch.randperm(30, generator=gen, device=device)
    lcs_b = lcs_a[:, order] + 0.15 * torch.relu(torch.randn(batch, 30, 2048, generator=gen, device=device))
    return [t.requires_grad_() for t in (fsd_a, fsd_b, lcs_a, lcs_b)]


def release_terms(fsd_a, fsd_b, lcs_a, lcs_b, backend="auto"):
    """Both terms, similarities included, as the method computes them (match and gap: the two halves
    of the FSD candidates in one call). Returns (fsd [B], lcs [B])."""
    match, gap = kernels.pairwise_cosine(fsd_a, fsd_b, parts=2).unbind(1)
    sim = kernels.pairwise_cosine(lcs_a, lcs_b)[:, 0]
    return (kernels.fsd_score(match, gap, gamma=0.1, backend=backend),
            kernels.lcs_score(sim, threshold=0.92, backend=backend))


@pytest.mark.parametrize("implementation", ["ours", "ours-cuda-graph", "release-loops"])
def test_release_workload(benchmark, implementation):
    """16 pairs, FSD 5 x 5 + LCS 30 x 30, similarities included, forward + backward. On a GPU also
    replayed from a CUDA graph (one launch instead of one per kernel: how much of the step is launch
    overhead), checked against the eager gradients."""
    if implementation == "ours-cuda-graph" and DEVICE != "cuda":
        pytest.skip("needs a CUDA GPU")
    inputs = release_inputs(DEVICE)
    with torch.no_grad():
        ours = release_terms(*inputs)
        release = (release_loops.fsd_release(inputs[0], inputs[1]), release_loops.lcs_release(inputs[2], inputs[3]))
    for got, want in zip(ours, release):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)

    def ours_step():
        fsd, lcs = release_terms(*inputs)
        return torch.autograd.grad(fsd.sum() + lcs.sum(), inputs)

    def release_step():
        fsd = release_loops.fsd_release(inputs[0], inputs[1])
        lcs = release_loops.lcs_release(inputs[2], inputs[3])
        torch.autograd.grad(fsd.sum() + lcs.sum(), inputs, allow_unused=True)

    benchmark.extra_info.update(device=DEVICE, backend="triton" if DEVICE == "cuda" else "cpu",
                                matched_cells_per_pair=float((ours[1] > 0).float().mean()))
    if implementation == "ours":
        if DEVICE == "cuda":
            benchmark.extra_info["gpu_ms"] = gpu_ms(ours_step)
            benchmark.extra_info["gpu_kernels"] = cuda_kernel_count(ours_step)
        benchmark.pedantic(synchronized(ours_step), rounds=30, warmup_rounds=3)
    elif implementation.endswith("cuda-graph"):
        eager = ours_step()
        replay, captured = cuda_graph(ours_step)
        replay()
        for got, want in zip(captured, eager):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        benchmark.extra_info["gpu_ms"] = gpu_ms(replay)
        benchmark.pedantic(synchronized(replay), rounds=30, warmup_rounds=3)
    else:
        benchmark.pedantic(synchronized(release_step), rounds=2, warmup_rounds=0)


@pytest.mark.parametrize("batch,length", CPU_GRID, ids=[f"B{b}-L{n}" for b, n in CPU_GRID])
@pytest.mark.parametrize("op", ["fsd", "lcs"])
def test_cpu_backend(benchmark, op, batch, length):
    """The CPU path (compiled loops), forward + backward."""
    if DEVICE == "cuda":
        pytest.skip("CPU grid: run on a machine without a GPU")
    benchmark.extra_info.update(op=op, mode="fwd+bwd", B=batch, L=length, backend="cpu")
    benchmark.pedantic(runner(op, "fwd+bwd", batch, length, "cpu", "cpu"), rounds=5, warmup_rounds=1)


SOFT_DTW_IMPLEMENTATIONS = ["ours-triton", "ours-cpu", "ours-naive", "tslearn", "pysdtw"]


def _soft_dtw_costs(batch, length, device, dtype):
    """Squared Euclidean costs [B, L, L] of random 8-d sequences (the same for every implementation)."""
    gen = torch.Generator(device=device).manual_seed(0)
    x, y = (torch.randn(batch, length, 8, generator=gen, device=device, dtype=dtype) for _ in range(2))
    return kernels.squared_euclidean(x, y)


def _soft_dtw_call(implementation, cost, gamma):
    """forward + backward of soft-DTW on cost [B, L, L]: returns (values [B], gradients [B, L, L])."""
    if implementation.startswith("ours"):
        backend = implementation.removeprefix("ours-")
        leaf = cost.detach().requires_grad_()

        def run():
            value = kernels.soft_dtw_score(leaf, gamma=gamma, backend=backend)
            return value, torch.autograd.grad(value.sum(), leaf)[0]
        return run
    if implementation == "tslearn":
        from tslearn.metrics.softdtw_variants import SoftDTW
        tables = cost.double().cpu().numpy()

        def run():
            values, grads = [], []
            for table in tables:
                sdtw = SoftDTW(table, gamma=gamma)
                values.append(sdtw.compute())
                grads.append(sdtw.grad())
            return torch.tensor(values), torch.from_numpy(np.stack(grads))
        return run
    import pysdtw  # the CUDA peer: its loss takes the sequences' cost through a distance function
    leaf = cost.detach().requires_grad_()
    loss = pysdtw.SoftDTW(gamma=gamma, dist_func=lambda x, y: x, use_cuda=leaf.is_cuda)

    def run():
        value = loss(leaf, leaf)  # dist_func returns the cost itself
        return value, torch.autograd.grad(value.sum(), leaf)[0]
    return run


@pytest.mark.parametrize("batch,length", GRID, ids=[f"B{b}-L{n}" for b, n in GRID])
@pytest.mark.parametrize("implementation", SOFT_DTW_IMPLEMENTATIONS)
def test_soft_dtw(benchmark, implementation, batch, length):
    """Soft-DTW forward + backward (gamma 1) on the same costs, ours beside the field's: tslearn
    (float64, numba, one pair at a time; CPU) and pysdtw (CUDA) where they import; ours on every
    backend (Triton on CUDA). Each checks its values and gradients against the cpu backend's. On the
    CPU only CPU_GRID (the naive loops only at 16 x 32)."""
    if DEVICE == "cpu" and (batch, length) not in CPU_GRID:
        pytest.skip("CPU: the CPU grid only")
    if implementation == "ours-naive" and (batch, length) != (16, 32):
        pytest.skip("the per-cell loops: the smallest point only")
    if implementation == "tslearn" and DEVICE == "cuda":
        pytest.skip("tslearn runs on the CPU")
    if implementation in ("pysdtw", "ours-triton") and DEVICE != "cuda":
        pytest.skip("a CUDA implementation")
    pytest.importorskip(implementation) if implementation in ("tslearn", "pysdtw") else None
    dtype = torch.float64 if implementation in ("tslearn", "ours-naive") or DEVICE == "cpu" else torch.float32
    cost = _soft_dtw_costs(batch, length, DEVICE, dtype)
    run = _soft_dtw_call(implementation, cost, 1.0)
    got = run()
    want = _soft_dtw_call("ours-cpu", cost, 1.0)()
    for g, w in zip(got, want):
        torch.testing.assert_close(g.to(w), w, rtol=1e-5, atol=1e-5)
    benchmark.extra_info.update(implementation=implementation, B=batch, L=length, dtype=str(dtype).removeprefix("torch."),
                                device=DEVICE)
    if DEVICE == "cuda":
        benchmark.extra_info["gpu_ms"] = gpu_ms(run)
        if implementation == "ours-triton" and length <= kernels.current_settings().max_rows:
            # The rows kernels run by default up to max_rows; the chunks kernels, same costs, beside them.
            with kernels.configure(family="chunks"):
                chunks = _soft_dtw_call(implementation, cost, 1.0)
                assert all(torch.equal(g, w) for g, w in zip(chunks(), got))
                benchmark.extra_info["chunks_ms"] = gpu_ms(chunks)
    benchmark.pedantic(synchronized(run), rounds=3 if implementation == "ours-naive" else 5, warmup_rounds=1)


@pytest.mark.parametrize("batch,length", GRID, ids=[f"B{b}-L{n}" for b, n in GRID])
@pytest.mark.parametrize("mode", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("op", ["fsd", "lcs"])
def test_triton_grid(benchmark, op, mode, batch, length):
    """The Triton kernels on the GPU: do_bench median ms, Gcell/s, peak memory and speed-up over the
    block-per-pair CUDA reference; forward + backward also replayed from a CUDA graph (graph_ms: what
    the kernels take once the host's Python call is out of the way, as in a captured training step);
    with FTCL_BENCH_FAMILIES=1 also the other kernel family at each
    forward + backward point (measured on an H100: rows beat chunks, bench/RESULTS.md; off by default,
    so the stage's time goes to the open tuning questions)."""
    if DEVICE != "cuda":
        pytest.skip("needs a CUDA GPU")
    run = runner(op, mode, batch, length, "triton", "cuda")
    ms = gpu_ms(run)
    reference = CUDA_REFERENCE_MS.get((batch, length)) if mode == "fwd+bwd" else None
    benchmark.extra_info.update({"op": op, "mode": mode, "B": batch, "L": length, "gpu_ms": ms,
                                 "gcell_s": batch * length * length / ms / 1e6, "peak_mib": peak_mib(run),
                                 "vs_cuda_ref": reference / ms if reference else None,
                                 "family": launch.kernel_family(length), "host_ms": host_ms(run)})
    if mode == "fwd+bwd":  # the same call replayed from a CUDA graph: the kernels' time without the host's
        replay, _ = cuda_graph(run)
        graph_ms = gpu_ms(replay)
        benchmark.extra_info.update(graph_ms=graph_ms, vs_cuda_ref_graph=reference / graph_ms if reference else None)
    if os.environ.get("FTCL_BENCH_FAMILIES") == "1" and mode == "fwd+bwd":  # the other family, same point
        other = "chunks" if kernels.current_settings().family == "rows" else "rows"
        with kernels.configure(family=other):
            if launch.kernel_family(length) == other:
                other_ms = gpu_ms(runner(op, mode, batch, length, "triton", "cuda"))
                benchmark.extra_info.update({f"{other}_ms": other_ms})
    benchmark.pedantic(synchronized(run), rounds=10, warmup_rounds=2)


# Long sweeps with few pairs, where one program per pair leaves most SMs idle.
BANDS_GRID = [(16, 512), (256, 512), (16, 2048), (64, 2048)]
BAND_COUNTS = [1, 2, 4, 8, "auto"]
BAND_PUBLISH = [4, 64]  # beside the default 16, at the longest sweeps only (each value compiles its own kernels)


@pytest.mark.parametrize("batch,length", BANDS_GRID, ids=[f"B{b}-L{n}" for b, n in BANDS_GRID])
@pytest.mark.parametrize("op", ["fsd", "lcs"])
def test_row_bands(benchmark, op, batch, length):
    """Several programs per pair (Settings.row_bands: bands of rows handing their edge on) against one
    per pair, forward + backward on the tables as the API lays them out, in the same case: every band
    count, then at the longest sweeps the hand-over cadence (band_publish) at the fastest count.
    Results must be identical bit for bit (each cell's operands and order are the same)."""
    if DEVICE != "cuda":
        pytest.skip("needs a CUDA GPU")
    cells = batch * length * length
    times, want = {}, None
    for bands in BAND_COUNTS:
        with kernels.configure(family="rows", row_bands=bands):
            run = runner(op, "fwd+bwd", batch, length, "triton", "cuda")
            got = run()
            want = want or got
            assert all(torch.equal(g, w) for g, w in zip(got, want)), bands
            times[bands] = gpu_ms(run)
    best = min(times, key=times.get)
    publish = {kernels.Settings().band_publish: times[best]}
    for cadence in BAND_PUBLISH if length >= 2048 and best != 1 else []:
        with kernels.configure(family="rows", row_bands=best, band_publish=cadence):
            publish[cadence] = gpu_ms(runner(op, "fwd+bwd", batch, length, "triton", "cuda"))
    auto = launch.row_bands((batch, length, length), torch.device("cuda"), kernels.Settings(row_bands="auto"))
    fastest = min(min(times.values()), min(publish.values()))
    benchmark.extra_info.update(op=op, mode="fwd+bwd", B=batch, L=length, auto_bands=auto[0], best_bands=best,
                                **{f"bands_{b}_ms": t for b, t in times.items()},
                                **{f"publish_{c}_ms": t for c, t in publish.items()},
                                one_band_gcell_s=cells / times[1] / 1e6, best_gcell_s=cells / fastest / 1e6,
                                best_speedup=times[1] / fastest)
    with kernels.configure(family="rows", row_bands=best):
        benchmark.pedantic(synchronized(runner(op, "fwd+bwd", batch, length, "triton", "cuda")), rounds=5,
                           warmup_rounds=1)


@pytest.mark.parametrize("op", ["fsd", "lcs"])
def test_host_profile(benchmark, op):
    """Where the host's time per forward + backward call goes at a small, host-bound point (B = 16,
    L = 32): cProfile of 200 calls, the functions with the most own time into extra_info and the full
    listing into bench/results/host-profile-<op>.txt. The backward's Python runs on autograd's CUDA
    device thread, which cProfile does not follow: it shows as the own time of run_backward."""
    if DEVICE != "cuda":
        pytest.skip("needs a CUDA GPU")
    import cProfile
    import io
    import pstats
    run = runner(op, "fwd+bwd", 16, 32, "triton", "cuda")
    run()
    torch.cuda.synchronize()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(200):
        run()
    profiler.disable()
    torch.cuda.synchronize()
    listing = io.StringIO()
    stats = pstats.Stats(profiler, stream=listing).sort_stats("tottime")
    stats.print_stats(25)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"host-profile-{op}.txt").write_text(listing.getvalue())
    top = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:8]  # (file, line, name): (cc, nc, tt, ct, ...)
    benchmark.extra_info.update(op=op, B=16, L=32, host_ms=host_ms(run), top_own_us_per_call={
        f"{name} ({file.rsplit('/', 1)[-1]}:{line})": round(1e6 * own / 200, 1)
        for (file, line, name), (_, _, own, _, _) in top})
    benchmark.pedantic(synchronized(run), rounds=5, warmup_rounds=1)


# The large points, where the GPU (not the host) sets the time: the tuning comparisons run there.
TUNING_GRID = [(2048, 128), (256, 512), (1024, 512), (64, 2048)]
PREFETCH_DEPTHS = [1, 2, 4]


@pytest.mark.parametrize("batch,length", TUNING_GRID, ids=[f"B{b}-L{n}" for b, n in TUNING_GRID])
@pytest.mark.parametrize("op", ["fsd", "lcs"])
def test_rows_prefetch_depth(benchmark, op, batch, length):
    """The rows kernels with their inputs loaded 1, 2 or 4 diagonals ahead (Settings.fsd_prefetch /
    lcs_prefetch; 2 at most past 1024 rows), forward + backward on the tables as the API lays them out
    (diagonal-major past Settings.skew_min_cells), in the same case; results must be identical."""
    if DEVICE != "cuda":
        pytest.skip("needs a CUDA GPU")
    times, want = {}, None
    for depth in PREFETCH_DEPTHS:
        with kernels.configure(family="rows", **{f"{op}_prefetch": depth}):
            run = runner(op, "fwd+bwd", batch, length, "triton", "cuda")
            got = run()
            if want is None:
                want = got
            for g, w in zip(got, want):
                torch.testing.assert_close(g, w, rtol=0, atol=0)
            times[depth] = gpu_ms(run)
    best = min(times, key=times.get)
    benchmark.extra_info.update(op=op, mode="fwd+bwd", B=batch, L=length, **{f"prefetch_{d}_ms": t for d, t in
                                                                               times.items()},
                                best_prefetch=best, best_speedup=times[1] / times[best])
    with kernels.configure(family="rows", **{f"{op}_prefetch": best}):
        benchmark.pedantic(synchronized(runner(op, "fwd+bwd", batch, length, "triton", "cuda")), rounds=5,
                           warmup_rounds=1)


@pytest.mark.parametrize("batch,length", TUNING_GRID, ids=[f"B{b}-L{n}" for b, n in TUNING_GRID])
@pytest.mark.parametrize("op", ["fsd", "lcs"])
def test_triton_skewed_tables(benchmark, op, batch, length):
    """Tuning lead (a) inside the API: forward + backward with the tables copied diagonal-major and
    the gradients written diagonal-major (Settings.skew_min_cells and the thresholds beside it
    reached), against row-major tables (skew_min_cells None) in the same case; the copies are
    included. Results must be identical.
    copy_ms: the inputs' copies alone (skew_kernel), torch_copy_ms: the same by torch's strided copy."""
    if DEVICE != "cuda":
        pytest.skip("needs a CUDA GPU")
    inputs = _inputs(op, batch, length, "cuda", False)
    copy_ms = gpu_ms(lambda: [launch.to_diagonal_major(x) for x in inputs])
    torch_copy_ms = gpu_ms(lambda: [launch.diagonal_major_empty(x.shape, x.dtype, x.device).copy_(x)
                                    for x in inputs])
    with kernels.configure(skew_min_cells=None):
        row_major = runner(op, "fwd+bwd", batch, length, "triton", "cuda")
        want = row_major()
        row_ms = gpu_ms(row_major)
    with kernels.configure(skew_min_cells=1, skew_min_diagonals=0):
        skewed = runner(op, "fwd+bwd", batch, length, "triton", "cuda")
        for got, expected in zip(skewed(), want):
            torch.testing.assert_close(got, expected, rtol=0, atol=0)
        skewed_ms = gpu_ms(skewed)
        benchmark.extra_info.update(op=op, mode="fwd+bwd", B=batch, L=length, row_major_ms=row_ms,
                                    skewed_ms=skewed_ms, speedup=row_ms / skewed_ms, peak_mib=peak_mib(skewed),
                                    copy_ms=copy_ms, torch_copy_ms=torch_copy_ms)
        benchmark.pedantic(synchronized(skewed), rounds=5, warmup_rounds=1)


def host_ms(fn, calls=20):
    """Host (Python) ms per fn() call: back-to-back calls without synchronising, while the GPU queue
    absorbs them. Near gpu_ms, the step waits on the host, not on the kernels."""
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    elapsed = time.perf_counter() - start
    torch.cuda.synchronize()
    return 1e3 * elapsed / calls


SKEW_GRID = [(2048, 128), (256, 512), (64, 2048)]


@pytest.mark.parametrize("batch,length", SKEW_GRID, ids=[f"B{b}-L{n}" for b, n in SKEW_GRID])
@pytest.mark.parametrize("op", ["fsd", "lcs"])
def test_triton_diagonal_major_inputs(benchmark, op, batch, length):
    """Tuning lead (a), its load side: the forward pass on inputs stored diagonal-major (every
    anti-diagonal one contiguous run) against the same values row-major, where a diagonal's lanes
    read M - 1 elements apart (skew_min_cells None: no copy; the diagonal-major inputs are read as
    they are). A ratio well above 1 says the producer should write them skewed."""
    if DEVICE != "cuda":
        pytest.skip("needs a CUDA GPU")
    with kernels.configure(skew_min_cells=None):
        row_major = runner(op, "fwd", batch, length, "triton", "cuda")
        skewed = runner(op, "fwd", batch, length, "triton", "cuda", layout="diagonal-major")
        torch.testing.assert_close(skewed(), row_major(), rtol=0, atol=0)
        row_ms, skewed_ms = gpu_ms(row_major), gpu_ms(skewed)
        benchmark.extra_info.update(op=op, mode="fwd", B=batch, L=length, row_major_ms=row_ms,
                                    diagonal_major_ms=skewed_ms, speedup=row_ms / skewed_ms)
        benchmark.pedantic(synchronized(skewed), rounds=5, warmup_rounds=1)
