# govstream — run `make help` for the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Debian's Chromium (and a CJK font for its screenshots), for the headless dashboard tests
# (tests/e2e/test_dashboard.py, tests/e2e/test_analyst_page.py)
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-11s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,embedded]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project with its dev tools

$(CHROMIUM):
	@echo "installing Debian's chromium (headless dashboard test); ~20-25 s with a near mirror"
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium fonts-wqy-microhei

system-deps: $(CHROMIUM) ## Install the system packages the tests need (Debian chromium), once

demo: $(STAMP) ## Start the embedded stack, run the pipeline on simulated data, show the result, stop
	$(BIN)/python -m pipelines demo

test: $(STAMP) $(CHROMIUM) ## Run the test suite (unit + integration on an embedded stack)
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

test-all: $(STAMP) $(CHROMIUM) ## Run every test, slow and soak ones included
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff (lint + format check) and mypy
	$(BIN)/ruff check pipelines agents tests benchmarks
	$(BIN)/ruff format --check pipelines agents tests benchmarks
	$(BIN)/mypy pipelines agents

bench: $(STAMP) ## Run the benchmarks and write a table to benchmarks/results/
	$(BIN)/python -m benchmarks

clean: ## Stop a running stack and remove the venv, caches and stack data
	-test -x $(BIN)/govstream && $(BIN)/govstream stack down
	rm -rf $(VENV) .govstream .pytest_cache .mypy_cache .ruff_cache build *.egg-info tests/artifacts

.PHONY: help install system-deps demo test test-all lint bench clean
