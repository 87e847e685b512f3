# The README's two commands are `make demo` and `make test`; both set up what they need.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test bench

setup: $(VENV)/.installed

# The local CPU torch wheel is installed first so the package's `torch>=2.4` never pulls a CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: setup
	$(PY) -m ebert_modelzoo.demo

test: setup
	$(PY) -m pytest -q

# Every benchmark in bench/ -> bench/results/*.json and bench/results/SUMMARY.md (see bench/README.md).
bench: setup
	$(PY) -m bench
