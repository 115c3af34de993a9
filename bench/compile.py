"""Ahead-of-time compilation of every Triton kernel for real GPUs, on any machine (no GPU needed).

`python -m bench compile [--json]` compiles the kernels of every op through Triton's own compiler
(triton.compile(ASTSource(...), target=GPUTarget("cuda", cc, 32))) for A100 (80), RTX 30 (86),
RTX 40 / L4 (89), H100 / H200 (90) and RTX 50 (120), over the variants the API can launch: FSD,
soft-DTW and LCS (the shared kernels of kernels.shared.dp, the constexpr OP each op) in both families, HARD on / off,
HAS_LENGTHS on / off (and HAS_BAND for soft-DTW), the smallest and the largest BLOCK of each family
with their num_warps, the rows kernels at each op's prefetch depth and the deepest the API launches,
FSD's and LCS's rows kernels also split into row bands, float32 and bfloat16 inputs; and the
diagonal-major copy (skew_kernel, its one tile). Each kernel's signature is read off the kernel
itself (its parameter names and constexprs: `signature`), not copied here. Each cubin's registers,
stack, shared and local memory are read with the cuobjdump inside Triton's wheel. Local memory means
register spills. `loop_barriers` counts the block barriers the PTX keeps inside a loop (each chunk
kernel needs one between diagonals; a rows kernel's lane shift across warps goes through shared
memory and needs them too). Must run without TRITON_INTERPRET (the interpreter replaces the
kernels' JIT functions).
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
# The kernels compiled: (display name, module, kernel, fixed constexprs). The display names keep
# one row per op and pass (fsd_bwd_rows, soft_dtw_fwd, ...).
DP = "ftcl.kernels.shared.dp"
KERNELS = [(f"{op}_{pass_}{suffix}", DP, f"dp_{pass_}{suffix}_kernel", {"OP": op, **fixed})
           for op, fixed in (("fsd", {"HAS_BAND": False}), ("soft_dtw", {}), ("lcs", {"HAS_BAND": False}))
           for suffix in ("", "_rows") for pass_ in ("fwd", "bwd")]
SKEW = ("skew", "ftcl.kernels.shared.triton", "skew_kernel", {})
# What a parameter's name says of its type: pointers to float32 scratch and results, to integers,
# floating-point scalars; every other pointer takes the variant's dtype, every other scalar int32.
FP32_POINTERS = {"table_ptr", "out_ptr", "ring_ptr", "edge_ptr", "grad_out_ptr"}
INT_POINTERS = {"len_ptr": "*i64", "sync_ptr": "*i32"}
FLOAT_SCALARS = {"gamma", "inv_gamma_log2", "threshold"}


def kernel_of(module, name):
    import importlib
    return getattr(importlib.import_module(module), name)


def signature(kernel, dtype):
    """The Triton signature of a JIT kernel, read off its parameters (names and constexprs), with its
    input and input-gradient pointers of `dtype`."""
    import inspect
    sig = {}
    # The Python function's parameters (a JITFunction and the interpreter's wrapper both keep it).
    for param in inspect.signature(kernel.fn).parameters.values():
        if "constexpr" in str(param.annotation):
            sig[param.name] = "constexpr"
        elif param.name.endswith("_ptr"):
            sig[param.name] = INT_POINTERS.get(param.name, "*fp32" if param.name in FP32_POINTERS else DTYPES[dtype])
        else:
            sig[param.name] = "fp32" if param.name in FLOAT_SCALARS else "i32"
    return sig


def rows_configs(op):
    """(BLOCK, num_warps, PREFETCH) of op's rows kernels to compile: the smallest and the largest
    block at the op's default prefetch depth, and (FSD, LCS) the deepest the API launches at 1024 and
    at the largest block, where extra registers are likeliest to spill."""
    from ftcl.kernels.settings import PREFETCH_DEPTHS, ROWS_BLOCK_LIMIT, Settings
    from ftcl.kernels.shared.launch import rows_launch_config, rows_prefetch
    configs = []
    depths = sorted({Settings().fsd_prefetch, Settings().lcs_prefetch}) if op != "soft_dtw" else [1]
    deepest = [(1024, max(PREFETCH_DEPTHS)), (ROWS_BLOCK_LIMIT, max(PREFETCH_DEPTHS))] if op != "soft_dtw" else []
    for rows, depth in [(rows, d) for rows in (1, ROWS_BLOCK_LIMIT) for d in depths] + deepest:
        block, warps = rows_launch_config(rows)
        config = (block, warps, rows_prefetch(block, Settings().prefetch(op) if op == "soft_dtw" else depth))
        if config not in configs:
            configs.append(config)
    return configs


def banded_configs(op):
    """(BLOCK, num_warps, PREFETCH) of the banded rows kernels to compile (FSD and LCS): the smallest
    band the "auto" rule makes and half the tallest table, at the op's default prefetch."""
    from ftcl.kernels.settings import ROWS_BLOCK_LIMIT, Settings
    from ftcl.kernels.shared.launch import AUTO_BAND_MIN_ROWS, rows_launch_config, rows_prefetch
    depth = Settings().prefetch(op)
    return [rows_launch_config(rows) + (rows_prefetch(rows_launch_config(rows)[0], depth),)
            for rows in (AUTO_BAND_MIN_ROWS, ROWS_BLOCK_LIMIT // 2)]


def variants():
    """Every variant the API can launch, at the smallest and the largest block: dicts of the display
    name, the kernel (module, name), cc, dtype, constexprs and num_warps."""
    from ftcl.kernels.settings import Settings
    from ftcl.kernels.shared.launch import chunks_launch_config
    largest = Settings().max_chunk_block
    chunk_blocks = [chunks_launch_config(1, 1, largest), chunks_launch_config(largest, largest, largest)]
    out = []
    for name, module, kernel, fixed in KERNELS:
        op = name.split("_fwd")[0].split("_bwd")[0]
        flags = [{"HAS_LENGTHS": lengths, "HAS_BAND": band} if op == "soft_dtw" else {"HAS_LENGTHS": lengths}
                 for lengths in (True, False) for band in ((True, False) if op == "soft_dtw" else (None,))]
        if name.endswith("_rows"):
            launches = [dict(BLOCK=block, PREFETCH=prefetch, BANDED=False, PUBLISH=Settings().band_publish,
                             num_warps=warps) for block, warps, prefetch in rows_configs(op)]
            if op != "soft_dtw":
                launches += [dict(BLOCK=block, PREFETCH=prefetch, BANDED=True, PUBLISH=Settings().band_publish,
                                  num_warps=warps) for block, warps, prefetch in banded_configs(op)]
        else:
            launches = [dict(BLOCK=block, num_warps=warps) for block, warps in chunk_blocks]
        for cc, dtype, hard, flag, launch in itertools.product(TARGETS, DTYPES, (True, False), flags, launches):
            constexprs = {**fixed, **flag, "HARD": hard, **{k: v for k, v in launch.items() if k != "num_warps"}}
            out.append({"name": name, "module": module, "kernel": kernel, "cc": cc, "dtype": dtype,
                        "constexprs": constexprs, "num_warps": launch["num_warps"]})
    tile_i, tile_d = Settings().skew_tile
    out += [{"name": SKEW[0], "module": SKEW[1], "kernel": SKEW[2], "cc": cc, "dtype": dtype,
             "constexprs": {"TILE_I": tile_i, "TILE_D": tile_d}, "num_warps": 4}
            for cc, dtype in itertools.product(TARGETS, DTYPES)]
    return out


def _cuobjdump():
    import triton
    return Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"


def compile_one(variant):
    """Compile one variant; returns a row with the cubin's resource usage."""
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    kernel = kernel_of(variant["module"], variant["kernel"])
    constexprs = variant["constexprs"]
    source = ASTSource(kernel, signature(kernel, variant["dtype"]), constexprs=constexprs)
    compiled = triton.compile(source, target=GPUTarget("cuda", variant["cc"], 32),
                              options={"num_warps": variant["num_warps"]})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(compiled.asm["cubin"])
        usage = subprocess.run([str(_cuobjdump()), "--dump-resource-usage", str(path)], capture_output=True,
                               text=True, check=True).stdout
    function = usage[usage.index(f"Function {variant['kernel']}"):]
    fields = {key: int(value) for key, value in re.findall(r"(REG|STACK|SHARED|LOCAL):(\d+)", function)}
    block = f"{constexprs['TILE_I']}x{constexprs['TILE_D']}" if "TILE_I" in constexprs else constexprs["BLOCK"]
    return {"kernel": variant["name"], "cc": variant["cc"], "gpu": TARGETS[variant["cc"]], "dtype": variant["dtype"],
            "hard": constexprs.get("HARD"), "lengths": constexprs.get("HAS_LENGTHS"),
            "band": constexprs.get("HAS_BAND"),
            "block": block, "num_warps": variant["num_warps"], "prefetch": constexprs.get("PREFETCH"),
            "banded": constexprs.get("BANDED"), "registers": fields["REG"], "stack": fields["STACK"],
            "shared": fields["SHARED"], "local": fields["LOCAL"], "loop_barriers": loop_barriers(compiled.asm["ptx"])}


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
          f"({len(KERNELS) + 1} kernels x {len(TARGETS)} targets)\n")
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
