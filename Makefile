# Sluice: `make run` starts the local runtime, `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test unit functional e2e lint bench package clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m chalicelib.local

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 tests

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

functional: $(STAMP)
	$(BIN)/python -m pytest -q tests/functional

e2e: $(STAMP)
	$(BIN)/python -m pytest -q tests/e2e

lint: $(STAMP)
	$(BIN)/cfn-lint infra/resources.yaml

bench: $(STAMP)
	$(BIN)/python bench/api_local.py
	$(BIN)/python bench/engine_cost.py
	$(BIN)/python bench/tick_scale.py
	$(BIN)/python bench/traffic_ingest.py

# The deployable CloudFormation: chalice's functions and API merged with infra/.
package: $(STAMP)
	$(BIN)/python infra/merge_template.py build/merge.json
	$(BIN)/chalice package --stage $(or $(STAGE),dev) --merge-template build/merge.json build/

clean:
	rm -rf $(VENV) build .pytest_cache
