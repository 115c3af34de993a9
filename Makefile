# Every target runs inside .venv, which `make install` creates from scratch (idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

DATA ?= data/synthetic
DEVICE ?= auto
RUNS ?= runs
# On the embedded synthetic set the whole method fits in minutes on a CPU; on real data the
# release's counts (1000 baseline epochs, 25 FTCL epochs) apply unless EPOCHS / FTCL_EPOCHS are set.
ifeq ($(DATA),data/synthetic)
EPOCHS ?= 30
FTCL_EPOCHS ?= 3
endif

epochs_arg = $(if $(EPOCHS),--epochs $(EPOCHS),)
ftcl_epochs_arg = $(if $(FTCL_EPOCHS),--epochs $(FTCL_EPOCHS),)

.PHONY: install test test-gpu bench data train-baseline train-ftcl evaluate clean

install: $(STAMP)

# Without a CUDA driver the CPU wheel of torch is taken (it lies on local disk here); elsewhere the
# regular wheel. The project itself is installed editable so `python -m ...` works from anywhere.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		$(PY) -m pip install -q torch; \
	else \
		$(PY) -m pip install -q torch==2.13.0; \
	fi
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

test: install
	$(PY) -m pytest -q

# The kernel tests with the GPU-only ones (those skip without CUDA). On the lent GPU machines,
# which have no package index, run `bash bench/gpu_check.sh` instead (system python3).
test-gpu: install
	$(PY) -m pytest -q tests/test_kernels.py tests/test_kernels_gpu.py

bench: install
	$(PY) -m bench

# The synthetic THUMOS-like set is generated once; pass DATA=/path/to/THUMOS14 for real features.
$(DATA)/gt.json: | install
	$(PY) -m ftcl.synthetic --out $(DATA)

data: $(if $(filter data/synthetic,$(DATA)),$(DATA)/gt.json,)

train-baseline: install data
	$(PY) -m train baseline --data-dir $(DATA) --run-dir $(RUNS)/baseline --device $(DEVICE) $(epochs_arg)

train-ftcl: install data
	@test -f $(RUNS)/baseline/best.pt || $(MAKE) --no-print-directory train-baseline
	$(PY) -m train ftcl --data-dir $(DATA) --run-dir $(RUNS)/ftcl --init $(RUNS)/baseline/best.pt \
		--device $(DEVICE) $(ftcl_epochs_arg)
	@echo "== baseline (ACM-Net) =="
	@$(PY) -m ftcl.evaluate $(RUNS)/baseline/best.pt --device $(DEVICE)
	@echo "== FTCL =="
	@$(PY) -m ftcl.evaluate $(RUNS)/ftcl/best.pt --device $(DEVICE)

clean:
	rm -rf $(VENV) .pytest_cache
