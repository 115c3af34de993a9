"""pytest-benchmark setup for bench/ (never collected by `make test`, whose testpaths is tests/)."""
import os

import torch

# Benchmarks run compiled kernels on a GPU; without one the Triton cases skip (no interpreter here).
if not torch.cuda.is_available():
    os.environ.pop("TRITON_INTERPRET", None)


def pytest_benchmark_update_machine_info(config, machine_info):
    from bench.common import machine
    machine_info.update({f"ftcl_{k}": v for k, v in machine().items()})
