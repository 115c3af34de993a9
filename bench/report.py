"""Markdown tables (and CSV rows under bench/results/) from a pytest-benchmark JSON file, or from
bench/results/cases.jsonl (one line per finished case, kept even when a run is cut short):
`python -m bench report [PATH]`."""
import json
from pathlib import Path

import pandas as pd

from bench.common import RESULTS_DIR
from ftcl.tool import markdown


def _cases(data):
    rows = []
    for bench in data["benchmarks"]:
        stats = bench["stats"]
        rows.append({"file": bench["fullname"].split("::")[0], "name": bench["name"], "param": bench.get("param"),
                     "median_ms": 1e3 * stats["median"], "mean_ms": 1e3 * stats["mean"], "rounds": stats["rounds"],
                     **bench.get("extra_info", {})})
    return pd.DataFrame(rows)


def case_line(nodeid, median_s, mean_s, rounds, extra_info, machine):
    """One line of cases.jsonl: a finished case's timing, extra_info and machine."""
    return json.dumps({"case": nodeid, "median_ms": 1e3 * median_s, "mean_ms": 1e3 * mean_s, "rounds": rounds,
                       **extra_info, "machine": machine}, default=str) + "\n"


def load(path):
    """(cases DataFrame, machine info {device, torch, triton, commit, date}) of a pytest-benchmark JSON
    or a cases.jsonl file."""
    path = Path(path)
    if path.suffix == ".jsonl":
        rows, info = [], {}
        for line in path.read_text().splitlines():
            case = json.loads(line)
            info = case.pop("machine", info)
            file, name = case.pop("case").split("::")
            param = name[name.index("[") + 1:-1] if "[" in name else None
            rows.append({"file": file, "name": name, "param": param, **case})
        frame = pd.DataFrame(rows)
        if len(frame):  # a case run again (another run appending) counts once, as last measured
            frame = frame.drop_duplicates(subset=["file", "name"], keep="last").reset_index(drop=True)
        return frame, info
    data = json.loads(path.read_text())
    info = {k.removeprefix("ftcl_"): v for k, v in data.get("machine_info", {}).items() if k.startswith("ftcl_")}
    return _cases(data), info


def tables(path):
    """{title: DataFrame} of the cases in a pytest-benchmark JSON or cases.jsonl file."""
    frame, _ = load(path)
    out = {}
    if frame.empty:
        return out
    release = frame[frame["name"].str.startswith("test_release_workload")]
    if len(release):
        loops_ms = release[release["param"] == "release-loops"].iloc[0]["median_ms"]
        rows = []
        for _, ours in release[release["param"] != "release-loops"].iterrows():
            ours_ms = ours["gpu_ms"] if pd.notna(ours.get("gpu_ms", float("nan"))) else ours["median_ms"]
            kernels = ours.get("gpu_kernels", float("nan"))
            rows.append({"implementation": ours["param"], "backend": ours["backend"], "ours (ms)": ours_ms,
                         "GPU kernels": kernels if pd.notna(kernels) else None,
                         "release-style loops (ms)": loops_ms, "speed-up": loops_ms / ours_ms})
        out["Release workload (16 pairs, FSD 5x5 + LCS 30x30, similarities, forward + backward)"] = pd.DataFrame(rows)
    cpu = frame[frame["name"].str.startswith("test_torch_backend_cpu")]
    if len(cpu):
        cpu = cpu.assign(**{"Gcell/s": cpu["B"] * cpu["L"] ** 2 / cpu["median_ms"] / 1e6})
        out["torch backend on the CPU (forward + backward)"] = cpu[["op", "B", "L", "median_ms", "Gcell/s"]].rename(
            columns={"median_ms": "ms"})
    grid = frame[frame["name"].str.startswith("test_triton_grid")]
    if len(grid):
        key = ["op", "mode", "B", "L"]
        grid = grid.drop(columns=["torch_ms"], errors="ignore")
        torch_gpu = frame[frame["name"].str.startswith("test_torch_backend_gpu")]
        if len(torch_gpu):
            torch_ms = torch_gpu["torch_ms"].fillna(torch_gpu["median_ms"]) if "torch_ms" in torch_gpu \
                else torch_gpu["median_ms"]
            grid = grid.merge(torch_gpu[key].assign(torch_ms=torch_ms), on=key, how="left")
        else:
            grid = grid.assign(torch_ms=float("nan"))
        grid = grid.assign(vs_torch=grid["torch_ms"] / grid["gpu_ms"])
        # The other kernel family at the fwd+bwd points, and the host's share (cases that have them).
        others = [c for c in ("family", "host_ms", "graph_ms", "vs_cuda_ref_graph", "rows_ms", "chunks_ms")
                  if c in grid and grid[c].notna().any()]
        out["Triton kernels on the GPU (do_bench median)"] = grid[
            key + ["gpu_ms", "gcell_s", "peak_mib", "torch_ms", "vs_torch", "vs_cuda_ref"] + others]
    skew = frame[frame["name"].str.startswith("test_triton_diagonal_major_inputs")]
    if len(skew):
        out["Diagonal-major inputs, forward (do_bench median)"] = skew[
            ["op", "B", "L", "row_major_ms", "diagonal_major_ms", "speedup"]]
    skewed = frame[frame["name"].str.startswith("test_triton_skewed_tables")]
    if len(skewed):
        copies = [c for c in ("copy_ms", "torch_copy_ms") if c in skewed and skewed[c].notna().any()]
        out["Diagonal-major tables inside the API, forward + backward (do_bench median)"] = skewed[
            ["op", "B", "L", "row_major_ms", "skewed_ms", "speedup", "peak_mib"] + copies]
    prefetch = frame[frame["name"].str.startswith("test_rows_prefetch_depth")]
    if len(prefetch):
        columns = [c for c in prefetch.columns if c.startswith("prefetch_") and c.endswith("_ms")]
        out["Rows kernels' prefetch depth, forward + backward (do_bench median)"] = prefetch[
            ["op", "B", "L"] + sorted(columns, key=lambda c: int(c.split("_")[1])) + ["best_prefetch", "best_speedup"]]
    host = frame[frame["name"].str.startswith("test_host_profile")]
    if len(host):
        out["Host time per forward + backward call at B = 16, L = 32 (cProfile, own time)"] = pd.DataFrame(
            [{"op": row["op"], "host_ms": row["host_ms"], "function": function, "us per call": us}
             for _, row in host.iterrows() for function, us in row["top_own_us_per_call"].items()])
    tune = frame[frame["name"].str.startswith("test_launch_config")]
    if len(tune):
        out["Launch configuration sweep, forward + backward (do_bench median)"] = tune[
            ["op", "B", "L", "default_block", "default_warps", "default_ms", "best_block", "best_warps", "best_ms",
             "best_speedup"]]
    stages = frame[frame["file"].str.endswith("bench_eval.py")]
    if len(stages):
        out["Evaluation"] = stages[["stage", "median_ms"]].rename(columns={"median_ms": "ms"})
    steps = frame[frame["name"].str.startswith("test_training_step")]
    if len(steps):
        ms = steps["gpu_ms"] if "gpu_ms" in steps and steps["gpu_ms"].notna().all() else steps["median_ms"]
        acm = float(ms[steps["param"] == "acm-32-videos"].iloc[0])
        table = pd.DataFrame({"step": steps["step"], "ms": ms, "ratio to ACM-Net": ms / acm})
        if "gpu_kernels" in steps and steps["gpu_kernels"].notna().any():
            table = table.assign(**{"GPU kernels": steps["gpu_kernels"]})
        out[f"Training step (750 snippets x {int(steps['feature_dim'].iloc[0])}-d, {steps['device'].iloc[0]})"] = table
    fed = frame[frame["name"].str.startswith("test_host_fed_step")]
    if len(fed) and "gpu_ms" in fed:
        by_loop = fed.pivot_table(index="step", columns="loop", values="gpu_ms").reset_index()
        if {"waits", "no-waits"} <= set(by_loop.columns):
            by_loop = by_loop.assign(speedup=by_loop["waits"] / by_loop["no-waits"])
        out["Steps fed from the host, with and without waiting for the device (do_bench median ms)"] = \
            by_loop.rename_axis(columns=None)
    recipe = frame[frame["name"].str.startswith("test_recipe")]
    if len(recipe):
        row = recipe.iloc[0]
        out[f"Recipe at scale {row['scale']:g} ({row['epochs']}, {int(row['feature_dim'])}-d, {row['device']})"] = \
            pd.DataFrame(row["phases"]).astype(object).fillna("")  # the total row has no calls or runs
    targets = gpu_targets(frame)
    if len(targets):
        out["GPU targets"] = targets
    return out


# (what, limit, "max" when the measure must stay at or below the limit, "min" when at or above it)
GPU_TARGETS = {
    "release workload, forward + backward (ms)": (0.25, "max"),
    "FSD forward + backward at B·L² ≥ 64 M cells, slowest point (Gcell/s)": (50.0, "min"),
    "LCS forward + backward at B·L² ≥ 64 M cells, slowest point (Gcell/s)": (50.0, "min"),
    "FSD speed-up over the CUDA reference, smallest over the grid": (10.0, "min"),
    "LCS speed-up over the CUDA reference, smallest over the grid": (10.0, "min"),
    "FSD speed-up over the CUDA reference replayed from a CUDA graph, smallest over the grid": (10.0, "min"),
    "LCS speed-up over the CUDA reference replayed from a CUDA graph, smallest over the grid": (10.0, "min"),
    "FTCL step / ACM-Net step (2048-d, 750 snippets)": (1.15, "max"),
    "per-epoch evaluation, 210 test videos (ms)": (300.0, "max"),
}


def gpu_targets(frame):
    """The GPU targets the benchmark cases measure, each with its measured value and whether it is met
    (the recipe's 20 minutes come from `python -m bench recipe`; N = M = 4096 from the GPU tests).
    Empty without GPU cases."""
    if frame.empty:
        return pd.DataFrame()
    measured = {}
    release = frame[frame["name"].str.startswith("test_release_workload") & (frame["param"] != "release-loops")]
    if len(release) and "gpu_ms" in release and release["gpu_ms"].notna().any():
        measured["release workload, forward + backward (ms)"] = release["gpu_ms"].min()
    grid = frame[frame["name"].str.startswith("test_triton_grid")]
    for op in ("fsd", "lcs"):
        rows = grid[(grid["op"] == op) & (grid["mode"] == "fwd+bwd")] if len(grid) else grid
        big = rows[rows["B"] * rows["L"] ** 2 >= 64 * 2**20] if len(rows) else rows
        if len(big):
            measured[f"{op.upper()} forward + backward at B·L² ≥ 64 M cells, slowest point (Gcell/s)"] = \
                big["gcell_s"].min()
        if len(rows) and rows["vs_cuda_ref"].notna().any():
            measured[f"{op.upper()} speed-up over the CUDA reference, smallest over the grid"] = \
                rows["vs_cuda_ref"].min()
        if len(rows) and "vs_cuda_ref_graph" in rows and rows["vs_cuda_ref_graph"].notna().any():
            measured[f"{op.upper()} speed-up over the CUDA reference replayed from a CUDA graph, smallest over the "
                     f"grid"] = rows["vs_cuda_ref_graph"].min()
    steps = frame[frame["name"].str.startswith("test_training_step")]
    if len(steps) and (steps["device"] == "cuda").all():
        by_step = steps.set_index("param")["gpu_ms"]
        if {"acm-32-videos", "ftcl-16-pairs"} <= set(by_step.index):
            measured["FTCL step / ACM-Net step (2048-d, 750 snippets)"] = \
                by_step["ftcl-16-pairs"] / by_step["acm-32-videos"]
    if "stage" in frame:
        epoch = frame[frame["stage"].fillna("").str.startswith("per-epoch evaluation")
                      & frame["stage"].fillna("").str.contains(", cuda,")]
        if len(epoch):  # with the worker processes training uses (the most of the variants)
            measured["per-epoch evaluation, 210 test videos (ms)"] = epoch.sort_values("workers")["median_ms"].iloc[-1]
    rows = [{"target": what, "limit": ("≤ " if kind == "max" else "≥ ") + f"{limit:g}", "measured": measured[what],
             "met": "yes" if (measured[what] <= limit if kind == "max" else measured[what] >= limit) else "NO"}
            for what, (limit, kind) in GPU_TARGETS.items() if what in measured]
    return pd.DataFrame(rows)


def print_targets(path):
    """Print the GPU targets table of a benchmark JSON (or cases.jsonl), without appending CSV rows."""
    targets = gpu_targets(load(path)[0])
    print(markdown(targets, floatfmt=".4g") if len(targets) else f"no GPU target measured in {path}")


def print_report(path, csv_dir=RESULTS_DIR):
    """Print every table of a benchmark JSON (or cases.jsonl) and append its cases to
    csv_dir/benchmarks.csv."""
    frame, info = load(path)
    print(f"# {info.get('device')}, torch {info.get('torch')}, triton {info.get('triton')}, "
          f"commit {info.get('commit')}, {info.get('date')} ({path})")
    for title, table in tables(path).items():
        print(f"\n## {title}\n")
        print(markdown(table, floatfmt=".4g"))
    cases = frame.drop(columns=["phases", "configs"], errors="ignore").assign(**info)
    csv_dir.mkdir(parents=True, exist_ok=True)
    target = csv_dir / "benchmarks.csv"
    cases.to_csv(target, mode="a", index=False, header=not target.exists())
