"""Markdown tables (and CSV rows under bench/results/) from a pytest-benchmark JSON file, or from
bench/results/cases.jsonl (one line per finished case, kept even when a run is cut short):
`python -m bench report [PATH]`."""
import json
from collections.abc import Callable
from dataclasses import dataclass
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


class ReportError(ValueError):
    """A file that is not a benchmark file; the message is one line naming it."""


def load(path):
    """(cases DataFrame, machine info {device, torch, triton, commit, date}) of a pytest-benchmark JSON
    or a cases.jsonl file; anything else is a ReportError."""
    path = Path(path)
    try:
        return _load(path)
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as err:
        raise ReportError(f"{path}: not a pytest-benchmark JSON or cases.jsonl file of python -m bench "
                          f"({err.__class__.__name__})") from None


def _load(path):
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


# Report tables by case kind: (name prefix of the benchmark cases, builder of (title, table) from
# those cases and all of them). tables() runs them in this order.
TABLES = []


def table(prefix):
    """Registers a builder of the table of the cases whose name starts with prefix."""
    def register(build):
        TABLES.append((prefix, build))
        return build
    return register


@table("test_release_workload")
def _release_workload(cases, frame):
    loops_ms = cases[cases["param"] == "release-loops"].iloc[0]["median_ms"]
    rows = []
    for _, ours in cases[cases["param"] != "release-loops"].iterrows():
        ours_ms = ours["gpu_ms"] if pd.notna(ours.get("gpu_ms", float("nan"))) else ours["median_ms"]
        kernels = ours.get("gpu_kernels", float("nan"))
        rows.append({"implementation": ours["param"], "backend": ours["backend"], "ours (ms)": ours_ms,
                     "GPU kernels": kernels if pd.notna(kernels) else None,
                     "release-style loops (ms)": loops_ms, "speed-up": loops_ms / ours_ms})
    return "Release workload (16 pairs, FSD 5x5 + LCS 30x30, similarities, forward + backward)", pd.DataFrame(rows)


@table("test_cpu_backend")
def _cpu_backend(cases, frame):
    cases = cases.assign(**{"Gcell/s": cases["B"] * cases["L"] ** 2 / cases["median_ms"] / 1e6})
    return "cpu backend (forward + backward)", cases[["op", "B", "L", "median_ms", "Gcell/s"]].rename(
        columns={"median_ms": "ms"})


@table("test_soft_dtw")
def _soft_dtw(cases, frame):
    ms = cases["gpu_ms"] if "gpu_ms" in cases else cases["median_ms"]
    cases = cases.assign(ms=ms.fillna(cases["median_ms"]) if "gpu_ms" in cases else ms)
    cases = cases.assign(**{"Gcell/s": cases["B"] * cases["L"] ** 2 / cases["ms"] / 1e6})
    # Ours on the CPU path, the reference of each row ("ours-torch": the CPU path of older runs).
    reference = "ours-cpu" if (cases["implementation"] == "ours-cpu").any() else "ours-torch"
    ours = cases[cases["implementation"] == reference].set_index(["B", "L"])["ms"]
    cases = cases.assign(**{"ms / ours-cpu ms": [ms_ / ours[(b, n)] if (b, n) in ours else float("nan")
                                                 for b, n, ms_ in zip(cases["B"], cases["L"], cases["ms"])]})
    chunks = ["chunks_ms"] if "chunks_ms" in cases and cases["chunks_ms"].notna().any() else []
    return ("soft-DTW forward + backward (gamma 1), the same costs for every implementation",
            cases[["implementation", "dtype", "B", "L", "ms", "Gcell/s", "ms / ours-cpu ms"] + chunks])


@table("test_triton_grid")
def _triton_grid(grid, frame):
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
    return "Triton kernels on the GPU (do_bench median)", grid[
        key + ["gpu_ms", "gcell_s", "peak_mib", "torch_ms", "vs_torch", "vs_cuda_ref"] + others]


@table("test_triton_diagonal_major_inputs")
def _diagonal_major_inputs(cases, frame):
    return "Diagonal-major inputs, forward (do_bench median)", cases[
        ["op", "B", "L", "row_major_ms", "diagonal_major_ms", "speedup"]]


@table("test_triton_skewed_tables")
def _skewed_tables(cases, frame):
    copies = [c for c in ("copy_ms", "torch_copy_ms") if c in cases and cases[c].notna().any()]
    return "Diagonal-major tables inside the API, forward + backward (do_bench median)", cases[
        ["op", "B", "L", "row_major_ms", "skewed_ms", "speedup", "peak_mib"] + copies]


@table("test_rows_prefetch_depth")
def _prefetch(cases, frame):
    columns = [c for c in cases.columns if c.startswith("prefetch_") and c.endswith("_ms")]
    return "Rows kernels' prefetch depth, forward + backward (do_bench median)", cases[
        ["op", "B", "L"] + sorted(columns, key=lambda c: int(c.split("_")[1])) + ["best_prefetch", "best_speedup"]]


@table("test_row_bands")
def _row_bands(cases, frame):
    columns = [c for c in cases.columns if c.startswith(("bands_", "publish_")) and c.endswith("_ms")]
    summary = [c for c in ("auto_bands", "best_bands", "one_band_gcell_s", "best_gcell_s", "best_speedup")
               if c in cases]
    return "Row bands (programs per pair) and their hand-over cadence, forward + backward (do_bench median)", cases[
        ["op", "B", "L"] + columns + summary]


@table("test_host_profile")
def _host_profile(cases, frame):
    return "Host time per forward + backward call at B = 16, L = 32 (cProfile, own time)", pd.DataFrame(
        [{"op": row["op"], "host_ms": row["host_ms"], "function": function, "us per call": us}
         for _, row in cases.iterrows() for function, us in row["top_own_us_per_call"].items()])


@table("test_launch_config")
def _launch_config(cases, frame):
    return "Launch configuration sweep, forward + backward (do_bench median)", cases[
        ["op", "B", "L", "default_block", "default_warps", "default_ms", "best_block", "best_warps", "best_ms",
         "best_speedup"]]


@table("")
def _evaluation(cases, frame):
    stages = cases[cases["file"].str.endswith("bench_eval.py")]
    if not len(stages):
        return None
    return "Evaluation", stages[["stage", "median_ms"]].rename(columns={"median_ms": "ms"})


@table("test_training_step")
def _training_step(steps, frame):
    ms = steps["gpu_ms"] if "gpu_ms" in steps and steps["gpu_ms"].notna().all() else steps["median_ms"]
    acm = float(ms[steps["param"] == "acm-32-videos"].iloc[0])
    result = pd.DataFrame({"step": steps["step"], "ms": ms, "ratio to ACM-Net": ms / acm})
    if "gpu_kernels" in steps and steps["gpu_kernels"].notna().any():
        result = result.assign(**{"GPU kernels": steps["gpu_kernels"]})
    return (f"Training step (750 snippets x {int(steps['feature_dim'].iloc[0])}-d, {steps['device'].iloc[0]})",
            result)


@table("test_host_fed_step")
def _host_fed_step(fed, frame):
    if "gpu_ms" not in fed:
        return None
    by_loop = fed.pivot_table(index="step", columns="loop", values="gpu_ms").reset_index()
    if {"waits", "no-waits"} <= set(by_loop.columns):
        by_loop = by_loop.assign(speedup=by_loop["waits"] / by_loop["no-waits"])
    return ("Steps fed from the host, with and without waiting for the device (do_bench median ms)",
            by_loop.rename_axis(columns=None))


@table("test_recipe")
def _recipe(cases, frame):
    row = cases.iloc[0]
    return (f"Recipe at scale {row['scale']:g} ({row['epochs']}, {int(row['feature_dim'])}-d, {row['device']})",
            pd.DataFrame(row["phases"]).astype(object).fillna(""))  # the total row has no calls or runs


@table("")
def _targets(cases, frame):
    targets = gpu_targets(frame)
    return ("GPU targets", targets) if len(targets) else None


def tables(path):
    """{title: DataFrame} of the cases in a pytest-benchmark JSON or cases.jsonl file (TABLES)."""
    frame, _ = load(path)
    out = {}
    if frame.empty:
        return out
    for prefix, build in TABLES:
        cases = frame[frame["name"].str.startswith(prefix)]
        built = build(cases, frame) if len(cases) else None
        if built is not None:
            title, result = built
            out[title] = result
    return out


def _fwd_bwd(frame, op):
    grid = frame[frame["name"].str.startswith("test_triton_grid")]
    return grid[(grid["op"] == op) & (grid["mode"] == "fwd+bwd")] if len(grid) else grid


def _release_ms(frame):
    release = frame[frame["name"].str.startswith("test_release_workload") & (frame["param"] != "release-loops")]
    if len(release) and "gpu_ms" in release and release["gpu_ms"].notna().any():
        return release["gpu_ms"].min()
    return None


def _slowest_big_point(op):
    def measure(frame):
        rows = _fwd_bwd(frame, op)
        big = rows[rows["B"] * rows["L"] ** 2 >= 64 * 2**20] if len(rows) else rows
        return big["gcell_s"].min() if len(big) else None
    return measure


def _slowest_big_point_banded(op):
    def measure(frame):
        rows = frame[frame["name"].str.startswith("test_row_bands")]
        rows = rows[(rows["op"] == op) & (rows["B"] * rows["L"] ** 2 >= 64 * 2**20)] if len(rows) else rows
        return rows["best_gcell_s"].min() if len(rows) else None
    return measure


def _smallest(op, column):
    def measure(frame):
        rows = _fwd_bwd(frame, op)
        return rows[column].min() if len(rows) and column in rows and rows[column].notna().any() else None
    return measure


def _step_ratio(frame):
    steps = frame[frame["name"].str.startswith("test_training_step")]
    if not len(steps) or not (steps["device"] == "cuda").all():
        return None
    by_step = steps.set_index("param")["gpu_ms"]
    if {"acm-32-videos", "ftcl-16-pairs"} <= set(by_step.index):
        return by_step["ftcl-16-pairs"] / by_step["acm-32-videos"]
    return None


def _epoch_evaluation_ms(frame):
    if "stage" not in frame:
        return None
    epoch = frame[frame["stage"].fillna("").str.startswith("per-epoch evaluation")
                  & frame["stage"].fillna("").str.contains(", cuda,")]
    # With the worker processes training uses (the most of the variants).
    return epoch.sort_values("workers")["median_ms"].iloc[-1] if len(epoch) else None


@dataclass(frozen=True)
class Target:
    """A GPU target: what is measured, its limit, whether the measure must stay at or below it
    (at_most) or at or above it, and how it is read from the cases (None: not measured)."""

    what: str
    limit: float
    at_most: bool
    measure: Callable


# The recipe's minutes come from `python -m bench recipe`; N = M = 4096 from the GPU tests.
GPU_TARGETS = (
    Target("release workload, forward + backward (ms)", 0.25, True, _release_ms),
    Target("FSD forward + backward at B·L² ≥ 64 M cells, slowest point (Gcell/s)", 50.0, False,
           _slowest_big_point("fsd")),
    Target("LCS forward + backward at B·L² ≥ 64 M cells, slowest point (Gcell/s)", 50.0, False,
           _slowest_big_point("lcs")),
    Target("FSD, the same over the row-bands grid with its fastest band count (Gcell/s)", 50.0, False,
           _slowest_big_point_banded("fsd")),
    Target("LCS, the same over the row-bands grid with its fastest band count (Gcell/s)", 50.0, False,
           _slowest_big_point_banded("lcs")),
    Target("FSD speed-up over the CUDA reference, smallest over the grid", 10.0, False,
           _smallest("fsd", "vs_cuda_ref")),
    Target("LCS speed-up over the CUDA reference, smallest over the grid", 10.0, False,
           _smallest("lcs", "vs_cuda_ref")),
    Target("FSD speed-up over the CUDA reference replayed from a CUDA graph, smallest over the grid", 10.0, False,
           _smallest("fsd", "vs_cuda_ref_graph")),
    Target("LCS speed-up over the CUDA reference replayed from a CUDA graph, smallest over the grid", 10.0, False,
           _smallest("lcs", "vs_cuda_ref_graph")),
    Target("FTCL step / ACM-Net step (2048-d, 750 snippets)", 1.15, True, _step_ratio),
    Target("per-epoch evaluation, 210 test videos (ms)", 300.0, True, _epoch_evaluation_ms),
)


def gpu_targets(frame):
    """The GPU targets (GPU_TARGETS) the benchmark cases measure, each with its measured value and
    whether it is met. Empty without GPU cases."""
    if frame.empty:
        return pd.DataFrame()
    rows = []
    for target in GPU_TARGETS:
        value = target.measure(frame)
        if value is None:
            continue
        met = value <= target.limit if target.at_most else value >= target.limit
        rows.append({"target": target.what, "limit": ("≤ " if target.at_most else "≥ ") + f"{target.limit:g}",
                     "measured": value, "met": "yes" if met else "NO"})
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
