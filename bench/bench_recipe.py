"""The recipe at a small scale (2 baseline epochs and 1 FTCL epoch by default) as a benchmark case;
the phase split goes into extra_info. `python -m bench recipe --scale F` runs it at any scale."""
import os
import tempfile
from pathlib import Path

import torch

from bench.common import on_gpu
from bench.recipe import phase_frame, recipe_data, run_recipe

SCALE = float(os.environ.get("FTCL_BENCH_RECIPE_SCALE", "0.004"))


def test_recipe(benchmark):
    device = "cuda" if on_gpu() else "cpu"
    dim = 2048 if device == "cuda" else 256
    data_dir = recipe_data(dim)
    result = {}

    def run():
        result["timer"], result["epochs"], result["best"] = run_recipe(
            data_dir, SCALE, torch.device(device), Path(tempfile.mkdtemp()) / "runs")

    benchmark.pedantic(run, rounds=1, warmup_rounds=0)
    frame = phase_frame(result["timer"])
    benchmark.extra_info.update(device=device, feature_dim=dim, scale=SCALE, epochs=result["epochs"],
                                phases=frame.to_dict("records"))
