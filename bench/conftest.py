"""pytest-benchmark setup for bench/ (never collected by `make test`, whose testpaths is tests/)."""
import os

import pytest
import torch

# Benchmarks run compiled kernels on a GPU; without one the Triton cases skip (no interpreter here).
if not torch.cuda.is_available():
    os.environ.pop("TRITON_INTERPRET", None)

# pytest-benchmark writes its JSON when the run ends; each finished case is also appended here at
# once, so a run cut short (a stage's time limit) keeps what it measured.
CASES_LOG = "cases.jsonl"


def pytest_benchmark_update_machine_info(config, machine_info):
    from bench.common import machine
    machine_info.update({f"ftcl_{k}": v for k, v in machine().items()})


@pytest.fixture(autouse=True)
def _log_each_case(request):
    benchmark = request.getfixturevalue("benchmark") if "benchmark" in request.fixturenames else None
    yield
    if benchmark is None or benchmark.stats is None:
        return
    from bench.common import RESULTS_DIR, machine
    from bench.report import case_line
    stats = benchmark.stats.stats
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with open(RESULTS_DIR / CASES_LOG, "a") as log:
        log.write(case_line(request.node.nodeid, stats.median, stats.mean, stats.rounds, benchmark.extra_info,
                            machine()))
