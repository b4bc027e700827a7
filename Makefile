# movierec: `make run` serves the product, `make test` runs every check. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip

# Use the shared GroupLens mirror and metadata when this checkout sits beside them.
ifneq ($(wildcard ../shared/data/movielens/.),)
export MOVIEREC_MIRROR ?= $(abspath ../shared/data/movielens)
endif
ifneq ($(wildcard ../shared/data/movie-metadata/.),)
export MOVIEREC_METADATA ?= $(abspath ../shared/data/movie-metadata)
endif
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test lint typecheck unit install install-test bench bench-recbole clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -e ".[serve,content,baselines]"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PIP) install -q -e ".[serve,content,baselines,test]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

## The product: data, catalogue, a default model if none exists, then the web page on http://127.0.0.1:8000
run: install
	$(BIN)/movierec run

lint: install-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: install-test
	$(BIN)/mypy

unit: install-test
	$(BIN)/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

## Every check CI runs: lint, types, the whole test suite.
test: lint typecheck unit

bench: install
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

## Optional: RecBole's SASRec and GRU4Rec on the same next-item split, in their own venv (RecBole's pins)
RB := .venv-recbole
bench-recbole:
	test -x $(RB)/bin/python || $(PYTHON) -m venv $(RB)
	test -f $(RB)/.installed || ($(RB)/bin/pip install -q -r benchmarks/recbole-requirements.txt \
	  && $(RB)/bin/pip install -q --no-deps -e . && touch $(RB)/.installed)
	nice -n 5 $(RB)/bin/python benchmarks/compare_recbole.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info src/*.egg-info
