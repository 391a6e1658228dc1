# SentinAI — two commands on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
MEMBERS := libs/common tools/devkit services/collector services/detector services/api tools/twin tools/cli services/executor services/planner services/predictor services/rca
STAMP := $(VENV)/.installed
ANVIL := tools/anvil/node_modules/@foundry-rs/anvil/package.json
NAB ?=

.PHONY: setup chromium run test test-unit test-integration lint format bench-pipeline bench-load bench-loop bench-api bench-nab bench-scaling bench-predict eval asyncapi docs clean

setup: $(STAMP) $(ANVIL) chromium

# Debian's Chromium for the dashboard tests (Playwright drives it by path; no browser download).
chromium:
	@command -v chromium >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 || \
		{ $$SUDO apt-get update -qq && $$SUDO apt-get install -y --no-install-recommends chromium; }; }

# Reinstalls only when a dependency declaration changes, so a second `make setup` is instant.
$(STAMP): pyproject.toml constraints.txt $(addsuffix /pyproject.toml,$(MEMBERS))
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt \
		$(foreach m,$(MEMBERS),-e ./$(m)) -e '.[dev]'
	@touch $@

$(ANVIL): tools/anvil/package.json
	cd tools/anvil && npm install --no-package-lock --no-audit --no-fund --loglevel=error
	@touch $@

run: setup
	$(BIN)/sentinai up

# Two workers (pytest-xdist): whole-stack tests run one at a time on one of them (conftest.py).
WORKERS ?= 2

test: setup
	$(BIN)/pytest -q -n $(WORKERS) --dist loadgroup

test-unit: setup
	$(BIN)/pytest -q -m "not integration"

test-integration: setup
	$(BIN)/pytest -q -m integration

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy libs/common/src services/*/src tools/*/src

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench-pipeline: setup
	$(BIN)/python -m bench.stack.pipeline

# N twin chains at 1 Hz through `sentinai up`, 10 min per N: BENCH_LOAD_ARGS="--duration 120 --chains 50,100".
bench-load: setup
	$(BIN)/python -m bench.stack.load $(BENCH_LOAD_ARGS)

bench-loop: setup
	$(BIN)/python -m bench.stack.loop

bench-api: setup
	$(BIN)/python -m bench.stack.api_load

bench-nab: setup
	$(BIN)/python -m bench.nab $(if $(NAB),--nab $(NAB))

bench-scaling: setup
	$(BIN)/python -m bench.scaling $(if $(NAB),--nab $(NAB))

bench-predict: setup
	$(BIN)/python -m bench.scaling.predict_latency

eval: setup
	$(BIN)/python -m bench.eval

# The bus's AsyncAPI document, served by the api at /asyncapi; a test fails when it is stale.
asyncapi: setup
	$(BIN)/sentinai asyncapi --out services/api/src/sentinai/api/static/asyncapi.json

# The incident catalogue's page (classes, evidence rules, log markers); a test fails when it is stale.
docs: setup
	$(BIN)/sentinai catalogue --out docs/incidents.md

clean:
	rm -rf $(VENV) .state .reports tools/anvil/node_modules
