# mnistkit developer commands. Every target sets up what it needs itself (a fresh machine has only
# Python 3.11 and pip). MNIST is read from ../shared/data/mnist when that folder exists.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED_MNIST := $(abspath ../shared/data/mnist)
export MNISTKIT_DATA ?= $(if $(wildcard $(SHARED_MNIST)/README.md),$(SHARED_MNIST),)
export TF_CPP_MIN_LOG_LEVEL ?= 2

MK := $(VENV)/bin/mnistkit
ROBUSTNESS_EXTRA ?= # more LABEL=PATH models for `make robustness`, e.g. "cnn before=old/cnn.keras"
ZOO := linear mlp rnn lstm bilstm cnn

.PHONY: setup test test-fast demo pretrained exports bench report robustness clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[train,dev]"
	touch $@

setup: $(VENV)/.installed  ## create .venv with the training, export and test stack

test: setup  ## the whole suite, slow tests included (what CI runs)
	$(PY) -m pytest --runslow --durations=15

test-fast: setup  ## unit tests only (no training, no conversion)
	$(PY) -m pytest -q

demo: setup  ## train a small model and evaluate it
	$(MK) train mlp --epochs 3 --out runs/demo-mlp --force
	$(MK) evaluate runs/demo-mlp

pretrained: setup  ## train the six zoo models on all 60,000 images into models/pretrained (~1 h on 2 cores with the augmentation)
	$(MK) train-all --out runs/pretrained --force --publish models/pretrained

exports: setup  ## the full export matrix of the pretrained zoo into exports/pretrained (refused combinations say why)
	@for m in $(ZOO); do $(MK) export models/pretrained/$$m.keras --format all --quantize all --out exports/pretrained --force || true; done

bench: setup  ## benchmark the export matrix and the Keras sources into reports/bench.json
	@mkdir -p reports
	$(MK) bench exports/pretrained --json > reports/bench.json.tmp && mv reports/bench.json.tmp reports/bench.json

robustness: setup  ## accuracy of the committed zoo and the default model under shifts into reports/robustness.json (~10 min)
	$(PY) -m mnistkit.tools.robustness.matrix --out reports/robustness.json $(foreach m,$(ZOO),$(m)=models/pretrained/$(m).keras) default.tflite=runtime/assets/default.tflite $(ROBUSTNESS_EXTRA)

report: exports bench  ## regenerate REPORT.md and its charts from the committed models
	$(MK) report

clean:
	rm -rf $(VENV) runs .pytest_cache

# ---- Raspberry Pi emulation and runtime compatibility (tools/pi) ----
# Owned by the Pi/compat tooling; everything is cached in .cache/pi (or $MNISTKIT_PI_CACHE).
# Needs qemu-user-static (apt-get install qemu-user-static); with CI=1 it is installed when missing.
PI := $(PY) -m mnistkit.tools.pi
PI_CHECK_ARGS ?=
COMPAT_EXPORTS ?= exports/pretrained
COMPAT_OUT ?= reports/compat.md
.PHONY: pi-setup pi-check compat-matrix

pi-setup: setup  ## build the emulated Raspberry Pi (aarch64 Python 3.11 + wheels, tflite-runtime venv)
	$(PI) setup --tflrt $(if $(CI),--install-qemu,)

pi-check: setup  ## default model + samples + 300 MNIST PNGs on an emulated Pi vs x86 (PI_CHECK_ARGS="--all" for every export)
	$(PI) check $(if $(CI),--install-qemu,) $(PI_CHECK_ARGS)

compat-matrix: setup  ## every artifact of COMPAT_EXPORTS on every runtime -> COMPAT_OUT (.md) + .json
	$(PI) matrix $(COMPAT_EXPORTS) --out $(COMPAT_OUT)

# ---- mnistkit serve (tools/serve) ----
.PHONY: serve serve-load serve-screenshot

serve: setup  ## the page and JSON API on http://127.0.0.1:8000/ with the bundled model
	$(MK) serve

serve-load: setup  ## 16 clients x 2,000 photo requests on 127.0.0.1 -> reports/serve_load.{json,md,png}
	$(PY) -m mnistkit.tools.serve.load --out reports/serve_load

serve-screenshot: setup  ## the browser test (Debian chromium); its page screenshot -> reports/serve_page.png
	MNISTKIT_TEST_ARTIFACTS=runs/test-artifacts $(PY) -m pytest -q tests/test_serve_browser.py
	cp runs/test-artifacts/serve_page.png reports/serve_page.png

# ---- Hardening: fuzzing and soak (tools/fuzz, tools/bench/soak.py; figures feed REPORT.md) ----
FUZZ_MODELS ?= 20000
FUZZ_IMAGES ?= 20000
FUZZ_PI_MODELS ?= 2000
.PHONY: fuzz fuzz-pi soak

fuzz: setup  ## longer fuzzing run (~10-20 min): model and image mutants on the host, then the model loader on the emulated Pi -> reports/fuzz.json
	$(PY) -m mnistkit.tools.fuzz --models $(FUZZ_MODELS) --images $(FUZZ_IMAGES) --json reports/fuzz.json
	$(MAKE) fuzz-pi

fuzz-pi: pi-setup  ## the model loader's fuzzing share on the emulated Raspberry Pi -> reports/fuzz.json ("pi")
	$(PY) -m mnistkit.tools.fuzz --pi --models $(FUZZ_PI_MODELS) --images 0 --json reports/fuzz.json

soak: setup  ## 1,000,000 single-image + 200,000 photo calls with RSS sampled, 8 threads vs sequential -> reports/soak.json
	$(PY) -m mnistkit.tools.bench.soak $(SOAK_ARGS) --json reports/soak.json
