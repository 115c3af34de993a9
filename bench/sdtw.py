"""python -m bench sdtw [--threads N] [--repeats R] [--grid B,N ...]: soft-DTW forward + backward on the
CPU, ours beside the field's CPU peers, on the same sequences (D = 8, gamma = 1, float64).

- ours: kernels.SoftDTW (the cpu backend: compiled loops, the batch split across threads);
- tslearn: tslearn.metrics.SoftDTWLossPyTorch (numba, a parallel loop over the batch);
- pysdtw: pysdtw.SoftDTW(use_cuda=False) (numba, a parallel loop over the batch);
- loop: tslearn's compiled per-pair loops (SoftDTW(D).compute() and .grad() on numpy costs), the
  floor a compiled scalar loop sets (no torch, no cost, no autograd).

Each implementation's values and gradients are checked against ours first (to 1e-3 of the largest
entry: the peers' losses pass their tables through float32; ours equals tslearn's float64 SoftDTW
class to 1e-12). Times are the minimum over R repetitions of each implementation, run back to back
(with more than one thread, a run right after another implementation's shares the cores with that
one's worker threads, which keep spinning a while after their parallel loops); torch's and numba's
threads are both set to N (default: torch's). A peer that is not installed is left out. Prints a Markdown
table and writes bench/results/sdtw-cpu-<N>-threads.json.
"""
import argparse
import json
import sys
import time

GRID = [(batch, length) for batch in (1, 16, 256) for length in (32, 128, 512)]
DIM, GAMMA = 8, 1.0


def _sequences(batch, length):
    import torch
    gen = torch.Generator().manual_seed(batch * 1000 + length)
    return (torch.randn(batch, length, DIM, generator=gen, dtype=torch.float64),
            torch.randn(batch, length, DIM, generator=gen, dtype=torch.float64))


def implementations():
    """{name: make(x, y) -> run() -> (values [B], d values.sum() / d x [B, N, D])} of what is installed."""
    import torch

    from ftcl import kernels

    def autograd(loss):
        def make(x, y):
            def run():
                leaf = x.detach().requires_grad_()
                value = loss(leaf, y)
                return value.detach(), torch.autograd.grad(value.sum(), leaf)[0]
            return run
        return make

    found = {"ours": autograd(kernels.SoftDTW(gamma=GAMMA, backend="cpu"))}
    try:
        from tslearn.metrics import SoftDTWLossPyTorch
        from tslearn.metrics.softdtw_variants import SoftDTW
        found["tslearn"] = autograd(SoftDTWLossPyTorch(gamma=GAMMA))

        def loop(x, y):
            costs = kernels.squared_euclidean(x, y).numpy()

            def run():
                values, grads = [], []
                for cost in costs:
                    sdtw = SoftDTW(cost, gamma=GAMMA)
                    values.append(sdtw.compute())
                    grads.append(sdtw.grad())
                return torch.tensor(values), None  # the gradient w.r.t. the cost, not x
            return run
        found["loop"] = loop
    except ImportError:
        pass
    try:
        import pysdtw
        found["pysdtw"] = autograd(pysdtw.SoftDTW(gamma=GAMMA, use_cuda=False))
    except ImportError:
        pass
    return found


def measure(grid, threads, repeats):
    """Rows {B, N, <implementation> ms, ...} of forward + backward times, values checked first."""
    import numba
    import torch
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    made = implementations()
    rows = []
    for batch, length in grid:
        x, y = _sequences(batch, length)
        runs = {name: make(x, y) for name, make in made.items()}
        want_value, want_grad = runs["ours"]()
        for name, run in runs.items():  # also the warm-up (numba compiles on first use)
            # The peers' losses pass their tables through float32: equal to 1e-3 of the largest entry.
            for got, want, what in zip(run(), (want_value, want_grad), ("value", "gradient")):
                if got is not None and (got.double() - want).abs().max() > 1e-3 * max(1.0, want.abs().max()):
                    raise AssertionError(f"{name}: its {what} differs from ours at B = {batch}, N = {length}")
        best = {name: float("inf") for name in runs}
        for name, run in runs.items():
            for _ in range(repeats):
                start = time.perf_counter()
                run()
                best[name] = min(best[name], 1e3 * (time.perf_counter() - start))
        peers = [best[p] for p in ("tslearn", "pysdtw") if p in best]
        row = {"B": batch, "N": length, **{f"{name} ms": ms for name, ms in best.items()}}
        if peers:
            row["ours / fastest peer"] = best["ours"] / min(peers)
        if "loop" in best:
            row["ours / loop"] = best["ours"] / best["loop"]
        rows.append(row)
        print(row, file=sys.stderr, flush=True)
    return rows


def add_arguments(parser):
    parser.add_argument("--threads", type=int, help="torch's and numba's threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=7, help="repetitions; the minimum counts (default 7)")
    parser.add_argument("--grid", nargs="+", metavar="B,N", help="points of the grid (default: B in 1, 16, 256 "
                                                                 "x N in 32, 128, 512)")


def run(args, parser):
    import torch

    from bench.common import RESULTS_DIR, machine
    from ftcl.tool import markdown
    args.threads = torch.get_num_threads() if args.threads is None else args.threads
    if args.threads < 1 or args.repeats < 1:
        parser.error("--threads and --repeats must be at least 1")
    try:
        grid = [tuple(int(v) for v in point.split(",")) for point in args.grid] if args.grid else GRID
        if any(len(point) != 2 or min(point) < 1 for point in grid):
            raise ValueError
    except ValueError:
        parser.error(f"--grid takes points B,N of whole numbers >= 1, got {' '.join(args.grid)}")
    import pandas as pd
    rows = measure(grid, args.threads, args.repeats)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"sdtw-cpu-{args.threads}-threads.json"
    path.write_text(json.dumps({"machine": machine(), "threads": args.threads, "repeats": args.repeats,
                                "rows": rows}, indent=1))
    print(f"# soft-DTW forward + backward on the CPU, D = {DIM}, gamma = {GAMMA}, float64, {args.threads} "
          f"thread(s), minimum of {args.repeats}\n")
    print(markdown(pd.DataFrame(rows), floatfmt=".3g"))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench sdtw", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv), parser)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
