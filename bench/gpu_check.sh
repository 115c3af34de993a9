#!/usr/bin/env bash
# The one device run: kernel and method tests on CUDA (compiled Triton), then every benchmark.
# Uses the machine's own python3 (the GPU machines have torch and Triton but no package index).
# Usage from the repo root: bash bench/gpu_check.sh  -> paste the printed tables into bench/RESULTS.md
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
unset TRITON_INTERPRET
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.cuda.is_available())"
git rev-parse --short HEAD 2>/dev/null || true
python3 -m pytest -q -p no:cacheprovider tests/test_kernels.py tests/test_kernels_gpu.py tests/test_method.py
tests=$?
python3 -m bench
exit $tests
