# The README's two commands are `make demo` and `make test`; both set up what they need.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python

# cerebras-pytorch pins torch 2.4.0, so the Cerebras tests run in their own venv, built once per
# user and reused (tools/cerebras_venv.sh; EBERT_CEREBRAS_VENV overrides its location).
CEREBRAS_VENV := EBERT_CEREBRAS_PYTHON=$(PYTHON) tools/cerebras_venv.sh

.PHONY: setup demo test bench cerebras-venv

setup: $(VENV)/.installed

# The local CPU torch wheel is installed first so the package's `torch>=2.4` never pulls a CUDA build.
$(VENV)/.installed: pyproject.toml
	@echo "setup: [1/3] creating $(VENV)"
	$(PYTHON) -m venv $(VENV)
	@echo "setup: [2/3] CPU torch 2.13.0 (about 40 s from the pip cache)"
	$(PY) -m pip install -q torch==2.13.0
	@echo "setup: [3/3] this package and its test dependencies (about 50 s)"
	$(PY) -m pip install -q -e '.[test]'
	touch $@
	@echo "setup: done; activate with: source $(VENV)/bin/activate"

demo: setup
	$(PY) -m ebert_modelzoo.demo

cerebras-venv:
	$(CEREBRAS_VENV) ensure

test: setup
	$(PY) -m pytest -q
	EBERT_DEV_PYTHON=$(abspath $(PY)) $(CEREBRAS_VENV) run python -m pytest -q -m cerebras tests/cerebras

# Every benchmark in bench/ -> bench/results/*.json and bench/results/SUMMARY.md (see bench/README.md).
bench: setup
	$(PY) -m bench
