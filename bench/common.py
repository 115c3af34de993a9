"""Timing, machine description and CSV output shared by the benchmarks."""
import csv
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine():
    """Where the numbers come from: GPU name or CPU model, versions and commit."""
    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = "none"
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name()
    else:
        device = f"CPU {platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent, check=False).stdout.strip() or "unknown"
    except OSError:
        commit = "unknown"
    return {"device": device, "torch": torch.__version__, "triton": triton_version, "commit": commit,
            "date": time.strftime("%Y-%m-%d")}


def time_cpu(fn, *, repeats=20, min_seconds=0.0, warmup=2):
    """Median wall time of fn() in ms."""
    for _ in range(warmup):
        fn()
    samples = []
    start = time.perf_counter()
    while len(samples) < repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e3


def time_gpu(fn):
    """Median time of fn() in ms through triton.testing.do_bench (CUDA events, warm-up)."""
    import triton.testing
    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")


def time_once(fn):
    """One timed call in ms (for the slow references), synchronising a GPU around it."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1e3


def append_csv(path, rows):
    """Append dict rows (one schema per file) to a CSV, with the header on first write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        if new:
            writer.writeheader()
        writer.writerows(rows)


def print_table(rows, columns):
    """A Markdown table of the given columns."""
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")).ljust(w) for c, w in zip(columns, widths)) + " |")


def fmt(x, digits=3):
    if x is None or x == "":
        return ""
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:,.0f}"
    return str(x)


def cpu_threads():
    return int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads()))
