"""Machine description, GPU timing and result files shared by the benchmarks."""
import os
import platform
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


def on_gpu():
    return torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1"


def synchronized(fn):
    """fn followed by a device synchronisation (so wall-clock timers see the GPU work)."""
    if not torch.cuda.is_available():
        return fn

    def run():
        out = fn()
        torch.cuda.synchronize()
        return out
    return run


def gpu_ms(fn):
    """Median time of fn() in ms through triton.testing.do_bench (CUDA events, warm-up)."""
    import triton.testing
    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")


def peak_mib(fn):
    """Peak extra GPU memory of one fn() call, MiB."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def cuda_graph(fn, warmup=3):
    """fn captured in a CUDA graph (after warm-up calls on a side stream, as capture requires).
    Returns (replay, captured): replay() reruns the captured work on the same input tensors, and
    captured is what the captured call returned, refreshed by each replay."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = fn()
    return graph.replay, captured


def cuda_kernel_count(fn):
    """GPU kernels (and memsets / copies) one fn() call launches, counted by the profiler; None where
    the profiler cannot count them."""
    try:
        from torch.profiler import ProfilerActivity, profile
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            fn()
            torch.cuda.synchronize()
        return sum(1 for event in prof.events() if event.device_type == torch.autograd.DeviceType.CUDA)
    except Exception as err:  # a count is a nicety: never lose the timing to it
        print(f"kernel count unavailable: {err.__class__.__name__}: {err}")
        return None
