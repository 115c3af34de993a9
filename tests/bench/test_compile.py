"""Every Triton kernel compiles ahead of time for five GPU generations, without a GPU, and uses no
local memory: what the interpreter cannot check (the real compiler, registers, spills) checked here."""
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

triton = pytest.importorskip("triton")


NVIDIA_BIN = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"


# Slow: over a thousand cubins, minutes on two cores when Triton's cache is cold.
pytestmark = [pytest.mark.slow, pytest.mark.compiles_every_kernel, pytest.mark.skipif(
    not (NVIDIA_BIN / "ptxas").is_file() or not (NVIDIA_BIN / "cuobjdump").is_file(),
    reason="Triton's wheel has no NVIDIA ptxas / cuobjdump on this platform")]


# ptxas caps fsd_bwd at 80 registers for 256 threads on sm_86 / sm_89 and spills 8 bytes there, in
# this variant only (bfloat16, soft max, no lengths, BLOCK 1024). Any other spill, or a larger
# one, fails the test.
KNOWN_SPILLS = {("fsd_bwd", cc, "bfloat16", False, False, 1024): 8 for cc in (86, 89)}
# Likewise an 8-byte frame at 64 registers for the rows LCS forward on sm_120 (bfloat16, soft max,
# no lengths, BLOCK 2048), seen with the prefetch depth 2 variant, with no local memory.
KNOWN_SPILLS[("lcs_fwd_rows", 120, "bfloat16", False, False, 2048)] = 8
# The banded rows kernels at 1024-row bands (16 warps): ptxas gives some of them an 8-byte stack
# frame at 40-64 registers (fsd_fwd on sm_80 and sm_120, lcs_bwd on sm_90), no local memory.
BANDED_1024_STACK = 8


@pytest.fixture(scope="session")
def rows(tmp_path_factory):
    """Every variant's row of `python -m bench compile --json`, compiled once per test run: under
    pytest-xdist the first worker to ask compiles (holding a lock) and the others read its file."""
    base = tmp_path_factory.getbasetemp()
    # Under xdist each worker's base is a child of the run's; alone, the base is the run's own.
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    with open(shared / "compile.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = shared / "compile.json"
        if not done.is_file():
            env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
            out = subprocess.run([sys.executable, "-m", "bench.compile", "--json"], capture_output=True, text=True,
                                 env=env, timeout=600, cwd=Path(__file__).resolve().parents[2])
            assert out.returncode == 0, out.stderr[-3000:]
            done.write_text(out.stdout)
        return json.loads(done.read_text())


def test_every_kernel_compiles_for_every_target_and_variant(rows):
    from bench.compile import KERNELS, TARGETS, banded_configs, rows_configs
    per_kernel = {"fsd": 8, "lcs": 8, "soft_dtw": 16}  # 2 dtypes x hard x lengths (x band)
    want = 0
    for name, *_ in KERNELS:
        op = name.split("_fwd")[0].split("_bwd")[0]
        launches = (len(rows_configs(op)) + (len(banded_configs(op)) if op != "soft_dtw" else 0)
                    if name.endswith("_rows") else 2)
        want += per_kernel[op] * launches * len(TARGETS)
    assert len(rows) == want + 2 * len(TARGETS)  # and the skew copy in 2 dtypes
    # The deepest prefetch (4 diagonals ahead) where the API launches it, 2 at the largest block.
    assert {(r["block"], r["prefetch"]) for r in rows if r["kernel"].startswith(("fsd", "lcs"))
            and "_rows" in r["kernel"]} >= {(1024, 4), (2048, 2)}
    # FSD's and LCS's rows kernels also split into bands, at the smallest band "auto" makes and at 1024 rows.
    assert {(r["kernel"], r["block"]) for r in rows if r["banded"]} == {
        (f"{op}_{p}_rows", block) for op in ("fsd", "lcs") for p in ("fwd", "bwd") for block in (256, 1024)}
    assert {(r["kernel"], r["cc"]) for r in rows} == {(k[0], cc) for k in [*KERNELS, ("skew",)] for cc in TARGETS}
    assert {r["block"] for r in rows} == {1, 16, 256, 1024, 2048, "32x64"}  # 1024: rows and chunks; 256: bands
    assert {r["dtype"] for r in rows} == {"float32", "bfloat16"}


def test_signatures_are_read_off_the_kernels():
    """Every parameter of every compiled kernel gets a type from its name, pointers of the variant's
    dtype only where the kernel reads or writes inputs or their gradients."""
    from bench.compile import KERNELS, SKEW, kernel_of, signature
    for _, module, name, fixed in [*KERNELS, SKEW]:
        kernel = kernel_of(module, name)
        sig = signature(kernel, "bfloat16")
        assert list(sig) == kernel.arg_names and set(fixed) <= {k for k, v in sig.items() if v == "constexpr"}
        assert {k for k, v in sig.items() if v == "*bf16"} <= {"x_ptr", "y_ptr", "grad_x_ptr", "grad_y_ptr", "sim_ptr",
                                                               "grad_sim_ptr", "skewed_ptr"}


def test_no_local_memory_no_shared_memory_and_no_unexpected_spill(rows):
    for r in rows:
        key = (r["kernel"], r["cc"], r["dtype"], r["hard"], r["lengths"], r["block"])
        assert r["local"] == 0, r
        # The chunk kernels keep everything in registers; the rows kernels' lane shift across warps
        # may stage in shared memory (at most one float per row), and the diagonal-major copy
        # transposes its 32 x 64 tile through it (8 KiB of float32).
        limit = 8192 if r["kernel"].startswith("skew") else 4 * r["block"] if "_rows" in r["kernel"] else 0
        assert r["shared"] <= limit, r
        known = BANDED_1024_STACK if r["banded"] and r["block"] == 1024 else KNOWN_SPILLS.get(key, 0)
        assert r["stack"] <= known, r
        assert 16 <= r["registers"] <= 255, r


def test_every_wavefront_loop_keeps_a_block_barrier(rows):
    """Lanes of one program share a pair's table: each diagonal must be stored by all of them before
    any reads it. The compiled code must keep the barrier inside the loop (the interpreter runs one
    program as a whole array and cannot show the race). The rows kernels exchange nothing through
    global memory; with several warps their lane shift goes through shared memory and must be
    fenced the same way (one warp shifts with shuffles)."""
    for r in rows:
        if r["kernel"].startswith("skew") or ("_rows" in r["kernel"] and r["num_warps"] == 1):
            continue
        assert r["loop_barriers"] >= 1, r
