"""Launch tuning: BLOCK and num_warps per diagonal length, forward +
backward, each configuration against the default one in the same case: the chunk kernels' BLOCK and
num_warps (kernels.shared.launch.chunks_launch_config), the rows kernels' num_warps (their BLOCK is the
row count rounded up to a power of two; rows_launch_config), set through kernels.configure(chunk_block=,
num_warps=). GPU only; not part of `python -m bench all` (every configuration compiles its own
kernels): `python -m bench tune`, or `bash bench/gpu_check.sh tune`."""
import pytest

from bench.bench_kernels import DEVICE, TUNING_GRID, runner
from bench.common import gpu_ms, synchronized
from ftcl import kernels

WARPS = [2, 4, 8]
ROWS_WARPS = [1, 2, 4, 8, 16]


def _configs(length):
    """(family, default (BLOCK, num_warps), [(BLOCK or None for the rows kernels, num_warps)])."""
    from ftcl.kernels.shared.launch import chunks_launch_config, kernel_family, rows_launch_config
    if kernel_family(length) == "rows":
        block, warps = rows_launch_config(length)
        return "rows", (block, warps), [(None, w) for w in ROWS_WARPS if 32 * w <= max(32, block)]
    max_block = kernels.current_settings().max_chunk_block
    default = chunks_launch_config(length, length, max_block)
    blocks = sorted({default[0], max(32, default[0] // 2), min(max_block, default[0] * 2)})
    return "chunks", default, [(block, warps) for block in blocks for warps in WARPS]


@pytest.mark.parametrize("batch,length", TUNING_GRID, ids=[f"B{b}-L{n}" for b, n in TUNING_GRID])
@pytest.mark.parametrize("op", ["fsd", "lcs"])
def test_launch_config(benchmark, op, batch, length):
    if DEVICE != "cuda":
        pytest.skip("needs a CUDA GPU")
    family, default, configs = _configs(length)
    default_ms = gpu_ms(runner(op, "fwd+bwd", batch, length, "triton", "cuda"))
    rows = []
    for block, warps in configs:
        with kernels.configure(chunk_block=block, num_warps=warps):
            ms = gpu_ms(runner(op, "fwd+bwd", batch, length, "triton", "cuda"))
        rows.append({"block": block or default[0], "num_warps": warps, "ms": ms, "vs_default": default_ms / ms})
    best = max(rows, key=lambda r: r["vs_default"])
    benchmark.extra_info.update(op=op, B=batch, L=length, family=family,
                                default_block=default[0], default_warps=default[1], default_ms=default_ms,
                                best_block=best["block"], best_warps=best["num_warps"], best_ms=best["ms"],
                                best_speedup=best["vs_default"], configs=rows)
    with kernels.configure(chunk_block=best["block"] if family == "chunks" else None, num_warps=best["num_warps"]):
        benchmark.pedantic(synchronized(runner(op, "fwd+bwd", batch, length, "triton", "cuda")), rounds=5,
                           warmup_rounds=1)
