# RepSeg developer entry points. `make demo` and `make test` install into .venv/ first (once; quick afterwards).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.repseg-installed
TORCH_SPEC ?= torch==2.13.0
DEMO_DIR ?= work_dirs/demo

.PHONY: install demo test test-gpu lint clean

install: $(STAMP)

# A CUDA torch >= 2.5 already on the system is kept (the venv then sees system site-packages); otherwise torch==2.13.0.
# mmcv: a compiled mmcv whose ops load with this torch is kept; otherwise mmcv-lite plus repseg.mmcv_compat (no source
# build).
$(STAMP): setup.cfg pyproject.toml Makefile
	@if [ ! -x $(PY) ]; then \
	  if $(PYTHON) -c 'import torch, sys; v = tuple(int(p) for p in torch.__version__.split(".")[:2]); sys.exit(0 if torch.version.cuda and v >= (2, 5) else 1)' 2>/dev/null; then \
	    echo "[install] system CUDA torch found: keeping it"; $(PYTHON) -m venv --system-site-packages $(VENV); \
	  else $(PYTHON) -m venv $(VENV); fi; fi
	$(PIP) install -q "setuptools>=77,<81" wheel
	@$(PY) -c 'import torch' 2>/dev/null || $(PIP) install -q "$(TORCH_SPEC)"
	@if $(PY) -c 'import mmcv._ext' 2>/dev/null; then \
	  echo "[install] compiled mmcv found: keeping it"; extras="deploy,tests"; else extras="lite,deploy,tests"; fi; \
	  $(PIP) install -q --no-build-isolation -e ".[$$extras]"
	@$(PY) -c 'import torch, mmcv, mmseg, repseg; print("[install] torch", torch.__version__, "| mmcv", mmcv.__version__, "| mmseg", mmseg.__version__, "| repseg", repseg.__version__)'
	@touch $@

demo: install
	$(PY) tools/demo.py --work-dir $(DEMO_DIR)

# NNCF's C++ extension (QAT tests) is built per venv: no rebuilds between checkouts, no stale locks of other runs.
# The CPU suite hides CUDA, so it runs the same on a machine with GPUs; test-gpu runs the GPU suite there.
test: install
	CUDA_VISIBLE_DEVICES= TORCH_EXTENSIONS_DIR=$(abspath $(VENV))/torch_extensions $(PY) -m pytest -q --durations=15 \
	  -m 'not gpu' tests

test-gpu: install
	REPSEG_TEST_GPU=1 TORCH_EXTENSIONS_DIR=$(abspath $(VENV))/torch_extensions $(PY) -m pytest -q -ra -m gpu tests

lint: install
	$(PY) -m flake8 repseg tools tests configs
	$(PY) -m isort --check-only --diff repseg tools tests
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) build *.egg-info work_dirs
