# Every target that runs code first builds .venv, so a fresh clone needs only
# `make demo` or `make test`. PYTHON picks the interpreter for the venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/runtools-tail demo

test: $(STAMP)
	./scripts/install-test-tools.sh
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check tailer tests bench
	$(BIN)/ruff format --check tailer tests bench
	$(BIN)/mypy
	bash scripts/lint-dockerfile.sh

format: $(STAMP)
	$(BIN)/ruff check --fix tailer tests bench
	$(BIN)/ruff format tailer tests bench

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
