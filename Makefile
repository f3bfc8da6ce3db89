# mnistkit developer commands. Every target sets up what it needs itself (a fresh machine has only
# Python 3.11 and pip). MNIST is read from ../shared/data/mnist when that folder exists.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED_MNIST := $(abspath ../shared/data/mnist)
export MNISTKIT_DATA ?= $(if $(wildcard $(SHARED_MNIST)/README.md),$(SHARED_MNIST),)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup test test-all demo pretrained exports report clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[train,dev]"
	touch $@

setup: $(VENV)/.installed  ## create .venv with the training, export and test stack

test: setup  ## the test suite CI runs (slow tests included)
	$(PY) -m pytest -q -m "not pi" --durations=15

test-fast: setup  ## unit tests only (no training, no conversion)
	$(PY) -m pytest -q -m "not slow and not pi"

demo: setup  ## the README's main command: train a small model and evaluate it
	$(VENV)/bin/mnistkit train mlp --epochs 3 --out runs/demo-mlp --force
	$(VENV)/bin/mnistkit evaluate runs/demo-mlp

pretrained: setup  ## train the six zoo models on all 60,000 images into models/pretrained
	$(VENV)/bin/mnistkit train-all --out runs/pretrained --force --publish models/pretrained

clean:
	rm -rf $(VENV) runs .pytest_cache

# ---- Raspberry Pi emulation and runtime compatibility (tools/pi) ----
