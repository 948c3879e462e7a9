# Every target installs what it needs into .venv on first use.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PYTEST  := $(BIN)/python -m pytest

.PHONY: install test test-all lint demo bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PYTEST) -q -m "not slow"

test-all: $(STAMP)
	$(PYTEST) -q

lint: $(STAMP)
	test -x $(BIN)/ruff || $(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/ruff check jwarp tests benchmarks *.py

demo: $(STAMP)
	$(BIN)/python -m jwarp.demo --out demo.gif

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_flow.py --json benchmarks/results_flow.json

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
