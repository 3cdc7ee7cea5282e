# Executable documentation: `make run` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= config.yaml

.PHONY: run test lint format bench clean

$(BIN)/aggregator: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

run: $(BIN)/aggregator          ## create the venv, install, start the service with ./config.yaml
	$(BIN)/aggregator -c $(CONFIG) serve

test: $(BIN)/aggregator         ## the whole test suite
	$(BIN)/python -m pytest

lint: $(BIN)/aggregator         ## ruff (lint + format), mypy, import layering
	$(BIN)/ruff check aggregator tests bench
	$(BIN)/ruff format --check aggregator tests bench
	$(BIN)/mypy aggregator
	$(BIN)/lint-imports

format: $(BIN)/aggregator
	$(BIN)/ruff check --fix aggregator tests bench
	$(BIN)/ruff format aggregator tests bench

bench: $(BIN)/aggregator        ## benchmarks (print figures; not part of the tests)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/poll.py --sizes 200,1000
	$(BIN)/python bench/scrape.py
	$(BIN)/python bench/dedupe.py --sizes 10000,50000,200000
	$(BIN)/python bench/serve.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
