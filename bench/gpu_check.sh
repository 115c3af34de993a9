#!/usr/bin/env bash
# One run on a GPU machine: compiled-kernel and method tests on CUDA, every benchmark, then the recipe at a
# scale (RECIPE_SCALE, default 0.05: 25 baseline + 1 FTCL epochs; 0.03 took 31 s on an H100). Uses
# the machine's own python3 (for a machine without a package index that has torch, Triton, pytest and
# pytest-benchmark), or $PYTHON.
#
# Usage from the repo root: bash bench/gpu_check.sh [STAGE ...], stages tests step bands kernels
# recipe (default: these five, in that order; bands is the kernels benchmark's row-bands A/B, kernels
# the rest of it), eval, recipe-inline (the recipe with its epoch ends in line),
# recipe-new (the recipe with --compile, --precision bf16 and --checkpoint-every 25), recipe-graphs
# (the same with --compile-mode reduce-overhead: each step replayed from CUDA graphs) and tune (launch
# configuration sweep) only when named. Each stage has its own time limit
# (LIMIT_<STAGE> seconds; the defaults of the five sum to 560 s, under ten minutes), so a slow
# stage cannot starve the others. After each stage its log, the benchmark JSON, every finished case
# (bench/results/cases.jsonl, written case by case) and the CSVs are copied to $OUT, so a run cut
# short still returns what it measured; $OUT/stages.tsv lists each stage's exit code and seconds.
# The run ends with the GPU targets table over all stages' cases (`python -m bench report
# --targets`). Paste the printed tables into bench/RESULTS.md. (The ahead-of-time compile test is
# not in the tests stage: it needs no GPU and runs in CI.)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
unset TRITON_INTERPRET
PY="${PYTHON:-python3}"
OUT="${OUT:-bench/results}"
mkdir -p "$OUT" bench/results
exec > >(tee -a "$OUT/gpu_check.log") 2>&1

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(tests step bands kernels recipe)
declare -A limit=([tests]="${LIMIT_TESTS:-200}" [kernels]="${LIMIT_KERNELS:-120}" [step]="${LIMIT_STEP:-60}"
                  [bands]="${LIMIT_BANDS:-120}"
                  [eval]="${LIMIT_EVAL:-55}" [recipe]="${LIMIT_RECIPE:-60}" [recipe-inline]="${LIMIT_RECIPE_INLINE:-40}" [recipe-new]="${LIMIT_RECIPE_NEW:-120}"
                  [recipe-graphs]="${LIMIT_RECIPE_GRAPHS:-120}"
                  [tune]="${LIMIT_TUNE:-240}")

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$PY" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.cuda.is_available())"
git rev-parse --short HEAD 2>/dev/null || true
date -u
# The recipe and evaluation benchmarks use THUMOS14's real lengths and instances when
# FTCL_THUMOS14_ANNOTATIONS names them; a copy in bench/.thumos14 (ignored by git) is taken by default.
if [ -z "${FTCL_THUMOS14_ANNOTATIONS:-}" ] && [ -f bench/.thumos14/gt.json ]; then
    export FTCL_THUMOS14_ANNOTATIONS="$PWD/bench/.thumos14"
fi
# The CUDA soft-DTW peers (pysdtw, ddtw, torchdtw, flash-softdtw) from wheels carried in bench/.wheels
# (ignored by git; docs/performance.md says how to fill it): the kernels stage times those that import.
if [ -d bench/.wheels ]; then
    for peer in pysdtw ddtw torchdtw flash-softdtw; do
        "$PY" -m pip install -q --no-index --find-links bench/.wheels "$peer" >/dev/null 2>&1 \
            && echo "soft-DTW peer installed: $peer" || echo "soft-DTW peer not installed: $peer"
    done
fi
"$PY" -c "from bench.eval_data import annotations_dir
print('THUMOS14 annotations:', annotations_dir() or 'none (generated lengths and instances)')"

run_stage() {
    local name=$1 start rc
    shift
    start=$(date +%s)
    echo "=== stage $name (limit ${limit[$name]} s) ==="
    timeout --kill-after=10 "${limit[$name]}" "$@"
    rc=$?
    printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - start ))" | tee -a "$OUT/stages.tsv"
    if [ "$OUT" != bench/results ]; then
        cp bench/results/*.json bench/results/*.jsonl bench/results/*.csv bench/results/*.txt "$OUT"/ 2>/dev/null
    fi
    return $rc
}

status=0
for stage in "${stages[@]}"; do
    case $stage in
        # The training loop on CUDA first (no waits for the device, Adam's form on resume, the epoch
        # end's state: quick), then the compiled kernels against the float64 reference, and
        # tests/kernels/test_api.py last: compiling its many small variants is what a short limit cuts.
        tests) run_stage tests "$PY" -m pytest -q -p no:cacheprovider --durations=8 \
                   "tests/train/test_loop.py::test_training_steps_never_wait_for_the_gpu" \
                   "tests/train/test_loop.py::test_resume_keeps_this_devices_form_of_adam" \
                   "tests/train/test_loop.py::test_an_epoch_end_saves_the_state_its_epoch_left" \
                   tests/kernels/test_gpu.py tests/ftcl/test_model.py tests/ftcl/test_losses.py \
                   tests/kernels/test_cosine.py tests/bench/test_kernels.py tests/kernels/test_ops.py \
                   tests/ftcl/test_compile.py tests/kernels/test_soft_dtw.py tests/kernels/test_api.py \
                   || status=1 ;;
        # The open kernel question first: row bands against one program per pair (test_row_bands), then
        # the rest of the kernels benchmark.
        bands) run_stage bands "$PY" -m bench kernels -k test_row_bands || status=1 ;;
        kernels) run_stage kernels "$PY" -m bench kernels -k "not test_row_bands" || status=1 ;;
        step|eval|tune) run_stage "$stage" "$PY" -m bench "$stage" || status=1 ;;
        recipe) run_stage recipe "$PY" -m bench recipe --scale "${RECIPE_SCALE:-0.05}" || status=1 ;;
        # The recipe with the training options on: compiled steps, bf16 autocast, last.pt every 25 epochs.
        recipe-new) run_stage recipe-new "$PY" -m bench recipe --scale "${RECIPE_SCALE:-0.05}" --compile \
                        --precision bf16 --checkpoint-every 25 || status=1 ;;
        # The same with every step replayed from CUDA graphs (torch.compile's reduce-overhead mode).
        recipe-graphs) run_stage recipe-graphs "$PY" -m bench recipe --scale "${RECIPE_SCALE:-0.05}" --compile \
                           --compile-mode reduce-overhead --precision bf16 --checkpoint-every 25 || status=1 ;;
        recipe-inline) run_stage recipe-inline "$PY" -m bench recipe --scale "${RECIPE_SCALE:-0.05}" --sequential \
                           || status=1 ;;
        *) echo "unknown stage $stage (tests step bands kernels recipe eval recipe-new recipe-graphs recipe-inline tune)"
           status=2 ;;
    esac
done
if [ -s bench/results/cases.jsonl ]; then
    echo "=== GPU targets over every stage's cases ==="
    "$PY" -m bench report --targets bench/results/cases.jsonl
fi
exit $status
