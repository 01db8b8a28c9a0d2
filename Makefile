# leadscore - the README's commands. Every target installs what it needs first (uv, then the locked
# environment), so a fresh clone needs nothing but python3 and make.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := python3 -m uv
endif

# One set of paths for every tool (see README, "Configuration"). Override any of them in the environment.
export LEADSCORE_WAREHOUSE ?= $(CURDIR)/data/warehouse.duckdb
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/data/mlflow.db
# The embedded default writes to the local CRM sandbox; LEADSCORE_CRM=live writes to the real CRMs.
export LEADSCORE_CRM ?= sandbox
export LEADSCORE_CRM_SANDBOX_STATE ?= $(CURDIR)/data/crm_sandbox.sqlite
# Nothing may phone home at run time.
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export DO_NOT_TRACK := 1

DBT := cd dbt && $(UV) run dbt

.PHONY: help install instance run test dev mlflow docs bench lint

help:
	@echo "make run    install, then run the nightly pipeline on the embedded default (synthetic data)"
	@echo "make test   install, then run the test suite"
	@echo "make dev    the Dagster UI on http://127.0.0.1:3000 (asset graph, schedule, backfills)"
	@echo "make mlflow the MLflow UI on http://127.0.0.1:5000 (training runs, metrics, model versions)"
	@echo "make docs   dbt docs of the warehouse on http://127.0.0.1:8080"
	@echo "make bench  install, then print the performance figures (bench scale: several minutes)"
	@echo "make lint   ruff"

.venv/.installed: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv>=0.5"
	$(UV) sync --locked --quiet
	@touch $@

install: .venv/.installed

$(DAGSTER_HOME)/dagster.yaml: dagster_project/dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp $< $@

instance: $(DAGSTER_HOME)/dagster.yaml

# A thin launcher: queues the nightly run through the instance (like the schedule) and follows it.
run: install instance
	@$(UV) run --quiet python -m dagster_project.nightly

test: install
	$(UV) run pytest

dev: install instance
	$(UV) run dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

# MLflow 3 opens on its GenAI view; the model training view (runs, metrics, versions) is one query away.
mlflow: install
	@echo "MLflow UI: http://127.0.0.1:5000/#/experiments?workflowType=machine_learning"
	$(UV) run mlflow ui --backend-store-uri "$(MLFLOW_TRACKING_URI)" --host 127.0.0.1 --port 5000

docs: install
	$(DBT) docs generate --profiles-dir .
	$(DBT) docs serve --profiles-dir . --port 8080 --host 127.0.0.1

bench: install
	$(UV) run python -m ml.sources.bench
	$(UV) run python -m ml.bench
	$(UV) run python -m ml.quality
	$(UV) run python -m activation.bench

lint: install
	$(UV) run ruff check .
	$(UV) run ruff format --check .
