"""Ahead-of-time compilation of every Triton kernel for real GPUs, on any machine (no GPU needed).

`python -m bench compile [--json]` compiles fsd_fwd, fsd_bwd, lcs_fwd and lcs_bwd of both kernel
families (chunks and rows; the rows kernels also split into row bands), soft_dtw_fwd and
soft_dtw_bwd (both families; with and without a band) through Triton's own compiler (triton.compile(ASTSource(...), target=GPUTarget("cuda", cc, 32)))
for A100 (80), RTX 30 (86), RTX 40 / L4 (89), H100 / H200 (90) and RTX 50 (120), over the variants
the API can launch: HARD on / off, HAS_LENGTHS on / off, the smallest and the largest BLOCK of each family with their num_warps (the rows kernels also at their
deepest prefetch: rows_configs), float32 and bfloat16 inputs;
and the diagonal-major copy (skew_kernel, its one tile), float32 and bfloat16.
Each cubin's registers, stack, shared and local memory are read with the cuobjdump inside Triton's
wheel. Local memory means register spills. `loop_barriers` counts the block barriers the PTX keeps
inside a loop (each chunk kernel needs one between diagonals; a rows kernel's lane shift across
warps goes through shared memory and needs them too). Must run without TRITON_INTERPRET (the
interpreter replaces the kernels' JIT functions).
"""
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

TARGETS = {80: "A100", 86: "RTX 30", 89: "RTX 40 / L4", 90: "H100 / H200", 120: "RTX 50"}
DTYPES = {"float32": "*fp32", "bfloat16": "*bf16"}
KERNELS = ("fsd_fwd_kernel", "fsd_bwd_kernel", "lcs_fwd_kernel", "lcs_bwd_kernel")
ROWS_KERNELS = ("fsd_fwd_rows_kernel", "fsd_bwd_rows_kernel", "lcs_fwd_rows_kernel", "lcs_bwd_rows_kernel")
SKEW_KERNELS = ("skew_kernel",)
SOFT_DTW_KERNELS = ("soft_dtw_fwd_kernel", "soft_dtw_bwd_kernel", "soft_dtw_fwd_rows_kernel",
                    "soft_dtw_bwd_rows_kernel")


def _soft_dtw_signature(kernel, dtype):
    x = DTYPES[dtype]
    rows = "_rows" in kernel
    kernel = kernel.replace("_rows", "")
    if kernel == "soft_dtw_fwd_kernel":
        sig = {"cost_ptr": x, "table_ptr": "*fp32", "out_ptr": "*fp32", "len_ptr": "*i64",
               **{f"stride_c{axis}": "i32" for axis in "bnm"}, "N": "i32", "M": "i32", "gamma": "fp32",
               "inv_gamma_log2": "fp32", "band": "i32"}
    else:
        sig = {"table_ptr": "*fp32", "grad_out_ptr": "*fp32", "grad_cost_ptr": x, "ring_ptr": "*fp32",
               "len_ptr": "*i64", **{f"stride_d{axis}": "i32" for axis in "bnm"}, "N": "i32", "M": "i32",
               "inv_gamma_log2": "fp32", "band": "i32"}
    if rows:
        sig.pop("ring_ptr", None)  # the rows kernels keep their adjoints in registers
    return {**sig, "HAS_LENGTHS": "constexpr", "HAS_BAND": "constexpr", "HARD": "constexpr", "BLOCK": "constexpr"}


def _signature(kernel, dtype):
    """Triton signature of a kernel with its input (and input-gradient) pointers of `dtype`."""
    if kernel in SOFT_DTW_KERNELS:
        return _soft_dtw_signature(kernel, dtype)
    if kernel in SKEW_KERNELS:
        return {"x_ptr": DTYPES[dtype], "out_ptr": DTYPES[dtype], "stride_xb": "i32", "stride_xn": "i32", "N": "i32",
                "M": "i32", "TILE_I": "constexpr", "TILE_D": "constexpr"}
    x = DTYPES[dtype]
    rows = kernel in ROWS_KERNELS
    kernel = kernel.replace("_rows", "")
    strides = lambda prefix: {f"stride_{prefix}{axis}": "i32" for axis in "bnm"}  # noqa: E731
    if kernel == "fsd_fwd_kernel":
        sig = {"match_ptr": x, "gap_ptr": x, "table_ptr": "*fp32", "out_ptr": "*fp32", "len_ptr": "*i64",
               **strides("m"), **strides("g"), "N": "i32", "M": "i32", "gamma": "fp32", "inv_gamma_log2": "fp32"}
    elif kernel == "fsd_bwd_kernel":
        sig = {"gap_ptr": x, "table_ptr": "*fp32", "grad_out_ptr": "*fp32", "grad_match_ptr": x, "grad_gap_ptr": x,
               "ring_ptr": "*fp32", "len_ptr": "*i64", **strides("g"), **strides("d"), "N": "i32", "M": "i32",
               "inv_gamma_log2": "fp32"}
    elif kernel == "lcs_fwd_kernel":
        sig = {"sim_ptr": x, "table_ptr": "*fp32", "out_ptr": "*fp32", "len_ptr": "*i64", **strides("s"), "N": "i32",
               "M": "i32", "threshold": "fp32", "gamma": "fp32", "inv_gamma_log2": "fp32"}
    else:
        sig = {"sim_ptr": x, "table_ptr": "*fp32", "grad_out_ptr": "*fp32", "grad_sim_ptr": x, "ring_ptr": "*fp32",
               "len_ptr": "*i64", **strides("s"), **strides("d"), "N": "i32", "M": "i32", "threshold": "fp32",
               "inv_gamma_log2": "fp32"}
    sig = {**sig, "HAS_LENGTHS": "constexpr", "HARD": "constexpr", "BLOCK": "constexpr"}
    if rows:
        sig.pop("ring_ptr", None)  # the rows kernels keep their adjoints in registers
        # ... and take the row bands' buffers after the lengths and their sizes after N, M.
        ordered = {}
        for name, kind in sig.items():
            ordered[name] = kind
            if name == "len_ptr":
                ordered.update({"sync_ptr": "*i32", "edge_ptr": "*fp32"})
            if name == "M":
                ordered.update({"band_rows": "i32", "n_bands": "i32"})
        sig = {**ordered, "PREFETCH": "constexpr", "BANDED": "constexpr", "PUBLISH": "constexpr"}
    return sig


def rows_configs():
    """(BLOCK, num_warps, PREFETCH) of the rows kernels to compile: the smallest and the largest block
    at each op's default prefetch depth, and the deepest the API launches at 1024 and at the largest
    block, where extra registers are likeliest to spill."""
    from ftcl.kernels.settings import ROWS_BLOCK_LIMIT, Settings
    from ftcl.kernels.shared.launch import rows_launch_config, rows_prefetch
    configs = []
    defaults = sorted({Settings().fsd_prefetch, Settings().lcs_prefetch})
    deepest = [(1024, 4), (ROWS_BLOCK_LIMIT, 4)]
    for rows, depth in [(rows, d) for rows in (1, ROWS_BLOCK_LIMIT) for d in defaults] + deepest:
        block, warps = rows_launch_config(rows)
        config = (block, warps, rows_prefetch(block, depth))
        if config not in configs:
            configs.append(config)
    return configs


def banded_configs(kernel):
    """(BLOCK, num_warps, PREFETCH) of the banded rows kernels to compile: the smallest band the
    "auto" rule makes and half the tallest table, at the op's default prefetch."""
    from ftcl.kernels.settings import ROWS_BLOCK_LIMIT, Settings
    from ftcl.kernels.shared.launch import AUTO_BAND_MIN_ROWS, rows_launch_config, rows_prefetch
    depth = Settings().prefetch(kernel.split("_")[0])
    return [rows_launch_config(rows) + (rows_prefetch(rows_launch_config(rows)[0], depth),)
            for rows in (AUTO_BAND_MIN_ROWS, ROWS_BLOCK_LIMIT // 2)]


def variants():
    """Every (kernel, cc, dtype, hard, has_lengths, block, num_warps, prefetch, banded) the API can
    launch, at the smallest and the largest block (banded: None outside the rows kernels)."""
    from ftcl.kernels.settings import ROWS_BLOCK_LIMIT, Settings
    from ftcl.kernels.shared.launch import chunks_launch_config, rows_launch_config
    largest, skew_tile = Settings().max_chunk_block, Settings().skew_tile
    blocks = [chunks_launch_config(1, 1, largest) + (None,), chunks_launch_config(largest, largest, largest) + (None,)]
    rows_blocks = rows_configs()
    dp = [(kernel, cc, dtype, hard, lengths, block, warps, prefetch, None if family is KERNELS else False)
          for family, family_blocks in ((KERNELS, blocks), (ROWS_KERNELS, rows_blocks))
          for kernel, cc, dtype, hard, lengths, (block, warps, prefetch) in itertools.product(
              family, TARGETS, DTYPES, (True, False), (True, False), family_blocks)]
    dp += [(kernel, cc, dtype, hard, lengths, block, warps, prefetch, True)
           for kernel in ROWS_KERNELS
           for cc, dtype, hard, lengths, (block, warps, prefetch) in itertools.product(
               TARGETS, DTYPES, (True, False), (True, False), banded_configs(kernel))]
    skew = [(kernel, cc, dtype, None, None, skew_tile, 4, None, None)
            for kernel, cc, dtype in itertools.product(SKEW_KERNELS, TARGETS, DTYPES)]
    # Soft-DTW's "lengths" entry is (HAS_LENGTHS, HAS_BAND); its rows kernels prefetch nothing beyond
    # the next diagonal (no PREFETCH), at the rows family's smallest and largest block.
    rows_ends = [rows_launch_config(1) + (None,), rows_launch_config(ROWS_BLOCK_LIMIT) + (None,)]
    soft_dtw = [(kernel, cc, dtype, hard, flags, block, warps, None, None)
                for kernel in SOFT_DTW_KERNELS
                for cc, dtype, hard, flags, (block, warps, _) in itertools.product(
                    TARGETS, DTYPES, (True, False), itertools.product((True, False), repeat=2),
                    rows_ends if "_rows" in kernel else blocks)]
    return dp + skew + soft_dtw


def _cuobjdump():
    import triton
    return Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"


def compile_one(variant):
    """Compile one variant; returns a row with the cubin's resource usage."""
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from ftcl.kernels.settings import Settings
    from ftcl.kernels.fsd import triton_kernels as fsd_triton
    from ftcl.kernels.lcs import triton_kernels as lcs_triton
    from ftcl.kernels.shared import triton as shared_triton
    from ftcl.kernels.soft_dtw import triton_kernels as soft_dtw_triton
    kernel, cc, dtype, hard, lengths, block, warps, prefetch, banded = variant
    module = {"fsd": fsd_triton, "lcs": lcs_triton, "skew": shared_triton,
              "soft": soft_dtw_triton}[kernel.split("_")[0]]
    if kernel in SKEW_KERNELS:
        constexprs = {"TILE_I": block[0], "TILE_D": block[1]}
        block = f"{block[0]}x{block[1]}"
        source = ASTSource(getattr(module, kernel), _signature(kernel, dtype), constexprs=constexprs)
    elif kernel in SOFT_DTW_KERNELS:
        constexprs = {"HAS_LENGTHS": lengths[0], "HAS_BAND": lengths[1], "HARD": hard, "BLOCK": block}
        source = ASTSource(getattr(module, kernel), _signature(kernel, dtype), constexprs=constexprs)
    else:
        constexprs = {"HAS_LENGTHS": lengths, "HARD": hard, "BLOCK": block}
        if prefetch is not None:
            constexprs.update(PREFETCH=prefetch, BANDED=banded, PUBLISH=Settings().band_publish)
        source = ASTSource(getattr(module, kernel), _signature(kernel, dtype), constexprs=constexprs)
    compiled = triton.compile(source, target=GPUTarget("cuda", cc, 32), options={"num_warps": warps})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(compiled.asm["cubin"])
        usage = subprocess.run([str(_cuobjdump()), "--dump-resource-usage", str(path)], capture_output=True,
                               text=True, check=True).stdout
    function = usage[usage.index(f"Function {kernel}"):]
    fields = {key: int(value) for key, value in re.findall(r"(REG|STACK|SHARED|LOCAL):(\d+)", function)}
    band = None
    if kernel in SOFT_DTW_KERNELS:
        lengths, band = lengths
    return {"kernel": kernel.removesuffix("_kernel"), "cc": cc, "gpu": TARGETS[cc], "dtype": dtype, "hard": hard,
            "lengths": lengths, "band": band, "block": block, "num_warps": warps, "prefetch": prefetch, "banded": banded, "registers": fields["REG"],
            "stack": fields["STACK"], "shared": fields["SHARED"], "local": fields["LOCAL"],
            "loop_barriers": loop_barriers(compiled.asm["ptx"])}


def loop_barriers(ptx):
    """Block-wide barriers (bar.sync / barrier.sync) of a PTX listing that sit inside a loop: between
    a label and a later branch back to it. A wavefront kernel needs one in its diagonal loop, or a
    thread may read a cell of the previous diagonal before another thread has stored it (a race
    that the interpreter, one thread at a time, never shows)."""
    lines = ptx.splitlines()
    labels = {match.group(1): k for k, line in enumerate(lines) if (match := re.match(r"^\s*(\$\w+):", line))}
    back_edges = [(labels[target], k) for k, line in enumerate(lines)
                  for target in re.findall(r"\bbra(?:\.uni)?\s+(\$\w+)", line) if labels.get(target, k) < k]
    barriers = [k for k, line in enumerate(lines) if re.search(r"\b(?:bar|barrier)\.sync\b", line)]
    return sum(any(start < k < end for start, end in back_edges) for k in barriers)


def compile_all(workers=None):
    """Rows of compile_one() over every variant, compiled in parallel processes."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise RuntimeError("ahead-of-time compilation needs TRITON_INTERPRET unset")
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        return list(pool.map(compile_one, variants()))


def main(argv=None, as_json=None):
    """Compile everything and print the summary (or, as_json, every row as JSON); exit status 1 when
    any variant spills."""
    import pandas as pd

    import triton
    from ftcl.tool import markdown
    as_json = "--json" in (argv or []) if as_json is None else as_json
    rows = compile_all()
    if as_json:
        print(json.dumps(rows))
        return 0
    frame = pd.DataFrame(rows)
    print(f"# ahead-of-time compile: Triton {triton.__version__}, {len(rows)} cubins "
          f"({len(KERNELS + ROWS_KERNELS + SKEW_KERNELS + SOFT_DTW_KERNELS)} kernels x "
          f"{len(TARGETS)} targets)\n")
    frame["kernel"] = [f"{kernel} (banded)" if banded is True else kernel
                       for kernel, banded in zip(frame["kernel"], frame["banded"])]
    summary = frame.groupby(["kernel", "cc", "gpu"]).agg(
        variants=("registers", "size"), registers_min=("registers", "min"), registers_max=("registers", "max"),
        stack_max=("stack", "max"), shared_max=("shared", "max"), local_max=("local", "max"),
        loop_barriers_min=("loop_barriers", "min")).reset_index()
    print(markdown(summary, floatfmt="g"))
    spills = frame[frame["local"] > 0]
    print(f"\n{len(spills)} variants with local memory (register spills)")
    if len(spills):
        print(markdown(spills, floatfmt="g"))
    return 1 if len(spills) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
