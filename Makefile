# Every target runs inside .venv, which `make install` creates from scratch (idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

DATA ?= data/synthetic
DEVICE ?= auto
# Runs of a data set live under runs/<its directory name>: runs/synthetic, runs/THUMOS14, ...
RUNS ?= runs/$(notdir $(patsubst %/,%,$(DATA)))
# On the embedded synthetic set the whole method fits in minutes on a CPU; on real data the
# release's counts (500 baseline epochs, 25 FTCL epochs) apply unless EPOCHS / FTCL_EPOCHS are set.
# The demo's baseline is ACM-Net alone: on the synthetic set the release's baseline objective sits at
# chance for most of 30 epochs (README), so FTCL would start from a model that barely localises.
# OBJECTIVE=release trains the release's baseline objective there too; real data keep the release's.
ifeq ($(DATA),data/synthetic)
EPOCHS ?= 30
FTCL_EPOCHS ?= 3
OBJECTIVE ?= acm
endif
# BASELINE_SEEDS=4 trains four baselines (seeds 0-3) and fine-tunes the best.
BASELINE_SEEDS ?=

epochs_arg = $(if $(EPOCHS),--epochs $(EPOCHS),)
ftcl_epochs_arg = $(if $(FTCL_EPOCHS),--epochs $(FTCL_EPOCHS),)
seeds_arg = $(if $(BASELINE_SEEDS),--seeds $(BASELINE_SEEDS),)
objective_arg = $(if $(OBJECTIVE),--objective $(OBJECTIVE),)

.PHONY: install test test-fast test-gpu bench bench-compare data train-baseline train-ftcl clean

install: $(STAMP)

# Without a CUDA driver, torch's CPU build: PyTorch's CPU index is added to pip's (its 2.13.0+cpu
# ranks above PyPI's 2.13.0, the CUDA build on Linux); where it is out of reach, pip goes on with its
# own index. With a GPU, the default index's torch. The project itself is installed editable, its tools runnable from any directory.
$(STAMP): pyproject.toml
	@echo "make install: creating $(VENV) and installing torch, triton and the project (about 1-2 minutes the first time)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		echo "make install: GPU found: torch with CUDA"; $(PY) -m pip install -q torch; \
	else \
		echo "make install: no GPU: torch 2.13.0, CPU build"; \
		$(PY) -m pip install -q torch==2.13.0 --extra-index-url https://download.pytorch.org/whl/cpu --retries 0 \
			--timeout 15; \
	fi
	@echo "make install: the project and its dependencies (pip install -e '.[test]')"
	@$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)
	@echo "make install: done; run commands with $(VENV)/bin/python, or after: source $(VENV)/bin/activate"

# The dependency contracts (pyproject.toml) are checked on the installed layout: ftcl as its wheel
# lays it out (kernels/, train/ and evaluation/ inside it), bench beside it, under build/.
test: install
	@rm -rf build/contracts && $(PY) -m pip install -q --no-deps --no-build-isolation --target build/contracts . \
		&& cp -r bench build/contracts/
	cd build/contracts && ../../$(VENV)/bin/lint-imports --no-cache --config ../../pyproject.toml
	$(PY) -m pytest -q -n 2

# The working loop: everything but the tests marked slow (docs/testing.md).
test-fast: install
	$(PY) -m pytest -q -n 2 -m "not slow"

# The kernel tests, the GPU-only ones included (they skip without CUDA). On a GPU machine without a
# package index, `bash bench/gpu_check.sh` runs them with the machine's own python3.
test-gpu: install
	$(PY) -m pytest -q tests/kernels

# Benchmarks (pytest-benchmark; not part of `make test`): JSON under .benchmarks/, tables printed.
bench: install
	$(PY) -m bench all

# Against the last saved run in .benchmarks/ (e.g. `make bench` at another commit).
bench-compare: install
	$(PY) -m pytest bench/bench_kernels.py bench/bench_eval.py bench/bench_step.py --benchmark-compare

# The synthetic THUMOS-like set is generated once; pass DATA=/path/to/THUMOS14 for real features.
$(DATA)/gt.json: | install
	$(PY) -m ftcl.synthetic --out $(DATA)

data: $(if $(filter data/synthetic,$(DATA)),$(DATA)/gt.json,)

# A stage whose best.pt exists is not trained again (delete its run directory to start over).
train-baseline: install data
	@if [ -e $(RUNS)/baseline/best.pt ]; then echo "$(RUNS)/baseline/best.pt exists: baseline not trained again"; else \
		$(PY) -m ftcl.train baseline --data-dir $(DATA) --run-dir $(RUNS)/baseline --device $(DEVICE) $(epochs_arg) $(objective_arg) $(seeds_arg); fi

train-ftcl: train-baseline
	@if [ -e $(RUNS)/ftcl/best.pt ]; then echo "$(RUNS)/ftcl/best.pt exists: FTCL not trained again"; else \
		$(PY) -m ftcl.train ftcl --data-dir $(DATA) --run-dir $(RUNS)/ftcl --init $(RUNS)/baseline/best.pt \
		--device $(DEVICE) $(ftcl_epochs_arg); fi
	@echo "== baseline ($(if $(filter acm,$(OBJECTIVE)),ACM-Net alone,ACM-Net + in-batch LCS and FSD: the release's baseline objective)) =="
	@$(PY) -m ftcl.evaluate $(RUNS)/baseline/best.pt --device $(DEVICE)
	@echo "== FTCL =="
	@$(PY) -m ftcl.evaluate $(RUNS)/ftcl/best.pt --device $(DEVICE)

clean:
	rm -rf $(VENV) .pytest_cache build
