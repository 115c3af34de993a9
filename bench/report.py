"""Markdown tables (and CSV rows under bench/results/) from a pytest-benchmark JSON file."""
import json
from pathlib import Path

import pandas as pd

from bench.common import RESULTS_DIR
from evaluation import markdown


def _cases(data):
    rows = []
    for bench in data["benchmarks"]:
        stats = bench["stats"]
        rows.append({"file": bench["fullname"].split("::")[0], "name": bench["name"], "param": bench.get("param"),
                     "median_ms": 1e3 * stats["median"], "mean_ms": 1e3 * stats["mean"], "rounds": stats["rounds"],
                     **bench.get("extra_info", {})})
    return pd.DataFrame(rows)


def tables(path):
    """{title: DataFrame} of the cases in a pytest-benchmark JSON file."""
    data = json.loads(Path(path).read_text())
    frame = _cases(data)
    out = {}
    if frame.empty:
        return out
    release = frame[frame["name"].str.startswith("test_release_workload")]
    if len(release):
        ours = release[release["param"] == "ours"].iloc[0]
        loops = release[release["param"] == "release-loops"].iloc[0]
        ours_ms = ours.get("gpu_ms") if pd.notna(ours.get("gpu_ms", float("nan"))) else ours["median_ms"]
        out["Release workload (16 pairs, FSD 5x5 + LCS 30x30, similarities, forward + backward)"] = pd.DataFrame([{
            "backend": ours["backend"], "ours (ms)": ours_ms, "release-style loops (ms)": loops["median_ms"],
            "speed-up": loops["median_ms"] / ours_ms}])
    cpu = frame[frame["name"].str.startswith("test_torch_backend_cpu")]
    if len(cpu):
        cpu = cpu.assign(**{"Gcell/s": cpu["B"] * cpu["L"] ** 2 / cpu["median_ms"] / 1e6})
        out["torch backend on the CPU (forward + backward)"] = cpu[["op", "B", "L", "median_ms", "Gcell/s"]].rename(
            columns={"median_ms": "ms"})
    grid = frame[frame["name"].str.startswith("test_triton_grid")]
    if len(grid):
        out["Triton kernels on the GPU (do_bench median)"] = grid[
            ["op", "mode", "B", "L", "gpu_ms", "gcell_s", "peak_mib", "torch_ms", "vs_torch", "vs_cuda_ref"]]
    stages = frame[frame["file"].str.endswith("bench_eval.py")]
    if len(stages):
        out["Evaluation"] = stages[["stage", "median_ms"]].rename(columns={"median_ms": "ms"})
    steps = frame[frame["name"].str.startswith("test_training_step")]
    if len(steps):
        ms = steps["gpu_ms"] if "gpu_ms" in steps and steps["gpu_ms"].notna().all() else steps["median_ms"]
        acm = float(ms[steps["param"] == "acm-32-videos"].iloc[0])
        out[f"Training step (750 snippets x {int(steps['feature_dim'].iloc[0])}-d, {steps['device'].iloc[0]})"] = \
            pd.DataFrame({"step": steps["step"], "ms": ms, "ratio to ACM-Net": ms / acm})
    recipe = frame[frame["name"].str.startswith("test_recipe")]
    if len(recipe):
        row = recipe.iloc[0]
        out[f"Recipe at scale {row['scale']:g} ({row['epochs']}, {int(row['feature_dim'])}-d, {row['device']})"] = \
            pd.DataFrame(row["phases"])
    return out


def print_report(path, csv_dir=RESULTS_DIR):
    """Print every table of a benchmark JSON and append its cases to csv_dir/benchmarks.csv."""
    data = json.loads(Path(path).read_text())
    info = data.get("machine_info", {})
    print(f"# {info.get('ftcl_device')}, torch {info.get('ftcl_torch')}, triton {info.get('ftcl_triton')}, "
          f"commit {info.get('ftcl_commit')}, {info.get('ftcl_date')} ({path})")
    for title, frame in tables(path).items():
        print(f"\n## {title}\n")
        print(markdown(frame, floatfmt=".4g"))
    cases = _cases(data).drop(columns=["phases"], errors="ignore")
    cases = cases.assign(**{k.removeprefix("ftcl_"): v for k, v in info.items() if k.startswith("ftcl_")})
    csv_dir.mkdir(parents=True, exist_ok=True)
    target = csv_dir / "benchmarks.csv"
    cases.to_csv(target, mode="a", index=False, header=not target.exists())
