#!/usr/bin/env bash
# The one device run: compiled-kernel and method tests on CUDA, then every benchmark, then the recipe
# at a scale (RECIPE_SCALE, default 0.1: 50 baseline + 3 FTCL epochs). Uses the machine's own
# python3 (the GPU machines have torch, Triton, pytest and pytest-benchmark but no package index).
# Usage from the repo root: bash bench/gpu_check.sh; with $OUT set, the log, the benchmark JSON and
# the CSVs are copied there. Paste the printed tables into bench/RESULTS.md.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
unset TRITON_INTERPRET
OUT="${OUT:-bench/results}"
mkdir -p "$OUT" bench/results
exec > >(tee "$OUT/gpu_check.log") 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.cuda.is_available())"
git rev-parse --short HEAD 2>/dev/null || true
date -u
python3 -m pytest -q -p no:cacheprovider tests/test_kernels.py tests/test_kernels_gpu.py tests/test_method.py \
    tests/test_kernels_compile.py
tests=$?
for what in kernels step eval; do
    timeout 400 python3 -m bench "$what"
done
timeout "${RECIPE_TIMEOUT:-400}" python3 -m bench recipe --scale "${RECIPE_SCALE:-0.1}"
cp bench/results/*.json bench/results/*.csv "$OUT"/ 2>/dev/null || true
exit $tests
