"""bench/gpu_check.sh, the one prepared call of a GPU run, run here with a stand-in python that only
records what it is asked: the stages it runs by default, the commands, the limits, the exit codes."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils' timeout")


def _run(tmp_path, *stages):
    log = tmp_path / "calls.log"
    stand_in = tmp_path / "python"
    stand_in.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$*" >> "{log}"\n')
    stand_in.chmod(0o755)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": str(stand_in), "OUT": str(out)}
    env.pop("TRITON_INTERPRET", None)
    done = subprocess.run(["bash", "bench/gpu_check.sh", *stages], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    calls = log.read_text().splitlines() if log.exists() else []
    stages_run = [line.split("\t") for line in (out / "stages.tsv").read_text().splitlines()] \
        if (out / "stages.tsv").exists() else []
    return done, calls, stages_run


def test_the_default_call_runs_five_stages_within_ten_minutes(tmp_path):
    done, calls, stages = _run(tmp_path)
    assert done.returncode == 0, done.stdout[-2000:]
    assert [name for name, rc, _ in stages] == ["tests", "step", "bands", "kernels", "recipe"]
    assert all(rc == "0" for _, rc, _ in stages)
    limits = [int(word.split()[0]) for word in done.stdout.split("(limit ")[1:]]
    assert len(limits) == 5 and sum(limits) <= 600, limits
    benchmarks = [c for c in calls if c.startswith("-m bench ")]
    assert benchmarks[:3] == ["-m bench step", "-m bench kernels -k test_row_bands",
                              '-m bench kernels -k not test_row_bands']
    # (then `-m bench report --targets` where bench/results/cases.jsonl holds cases from earlier runs)
    assert benchmarks[3].startswith("-m bench recipe --scale")
    tests = next(c for c in calls if c.startswith("-m pytest"))
    for path in ("tests/kernels/test_gpu.py", "tests/ftcl/test_compile.py", "tests/kernels/test_soft_dtw.py"):
        assert path in tests
        assert (ROOT / path).is_file()


def test_the_opt_in_stages_pass_the_training_flags(tmp_path):
    done, calls, stages = _run(tmp_path, "recipe-new", "recipe-graphs")
    assert done.returncode == 0 and [name for name, _, _ in stages] == ["recipe-new", "recipe-graphs"]
    recipes = [c for c in calls if c.startswith("-m bench recipe")]
    assert "--compile --precision bf16 --checkpoint-every 25" in recipes[0]
    assert "--compile --compile-mode reduce-overhead --precision bf16 --checkpoint-every 25" in recipes[1]


def test_an_unknown_stage_is_reported_and_fails_the_call(tmp_path):
    done, _, stages = _run(tmp_path, "kernel")
    assert done.returncode == 2 and "unknown stage kernel" in done.stdout and stages == []
