"""Tuning lead (c) of the kernels issue: BLOCK and num_warps per diagonal length, forward +
backward, each configuration against the default one in the same case: the chunk kernels' BLOCK and
num_warps (kernels.triton_dp._launch_config), the rows kernels' num_warps (their BLOCK is the row
count rounded up to a power of two; _rows_launch_config). GPU only; not part of `python -m bench
all` (every configuration compiles its own kernels): `python -m bench tune`, or
`bash bench/gpu_check.sh tune`."""
import pytest

from bench.bench_kernels import DEVICE, TUNING_GRID, runner
from bench.common import gpu_ms, synchronized

WARPS = [2, 4, 8]
ROWS_WARPS = [1, 2, 4, 8, 16]


def _configs(length):
    from ftcl.kernels.triton_dp import _MAX_BLOCK, _launch_config, _rows_launch_config, kernel_family
    if kernel_family(length) == "rows":
        block, _ = _rows_launch_config(length)
        return "_rows_launch_config", [(block, warps) for warps in ROWS_WARPS if 32 * warps <= max(32, block)]
    default_block, _ = _launch_config(length, length)
    blocks = sorted({default_block, max(32, default_block // 2), min(_MAX_BLOCK, default_block * 2)})
    return "_launch_config", [(block, warps) for block in blocks for warps in WARPS]


@pytest.mark.parametrize("batch,length", TUNING_GRID, ids=[f"B{b}-L{n}" for b, n in TUNING_GRID])
@pytest.mark.parametrize("op", ["fsd", "lcs"])
def test_launch_config(benchmark, monkeypatch, op, batch, length):
    if DEVICE != "cuda":
        pytest.skip("needs a CUDA GPU")
    from ftcl.kernels import triton_dp
    config_name, configs = _configs(length)
    default_config = getattr(triton_dp, config_name)
    default = default_config(length, length) if config_name == "_launch_config" else default_config(length)
    default_ms = gpu_ms(runner(op, "fwd+bwd", batch, length, "triton", "cuda"))
    rows = []
    for block, warps in configs:
        monkeypatch.setattr(triton_dp, config_name, lambda *shape, _c=(block, warps): _c)
        ms = gpu_ms(runner(op, "fwd+bwd", batch, length, "triton", "cuda"))
        rows.append({"block": block, "num_warps": warps, "ms": ms, "vs_default": default_ms / ms})
    best = max(rows, key=lambda r: r["vs_default"])
    benchmark.extra_info.update(op=op, B=batch, L=length, family=triton_dp.kernel_family(length),
                                default_block=default[0], default_warps=default[1], default_ms=default_ms,
                                best_block=best["block"], best_warps=best["num_warps"], best_ms=best["ms"],
                                best_speedup=best["vs_default"], configs=rows)
    monkeypatch.setattr(triton_dp, config_name, lambda *shape: (best["block"], best["num_warps"]))
    benchmark.pedantic(synchronized(runner(op, "fwd+bwd", batch, length, "triton", "cuda")), rounds=5,
                       warmup_rounds=1)
