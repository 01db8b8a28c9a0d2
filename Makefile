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
# What dbt builds the warehouse with: duckdb (default) or spark (a local Spark session; README "Scaling out").
export LEADSCORE_ENGINE ?= duckdb
export LEADSCORE_SPARK_DIR ?= $(CURDIR)/data/spark
# DuckDB's memory bound for dbt and every Python reader; past it DuckDB spills here.
export LEADSCORE_DUCKDB_MEMORY_LIMIT ?= 4GB
export LEADSCORE_DUCKDB_SPILL_DIR ?= $(CURDIR)/data/duckdb_spill
# The embedded default writes to the local CRM sandbox; LEADSCORE_CRM=live writes to the real CRMs.
export LEADSCORE_CRM ?= sandbox
export LEADSCORE_CRM_SANDBOX_STATE ?= $(CURDIR)/data/crm_sandbox.sqlite
# Nothing may phone home at run time.
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export DO_NOT_TRACK := 1

DBT := cd dbt && $(UV) run dbt

.PHONY: help install java instance run test dev mlflow docs bench lint

help:
	@echo "make run    install, then run the nightly pipeline on the embedded default (synthetic data)"
	@echo "            LEADSCORE_ENGINE=spark make run: the same nightly with dbt on a local Spark session"
	@echo "make test   install, then run the test suite"
	@echo "make dev    the Dagster UI on http://127.0.0.1:3000 (asset graph, schedule, backfills)"
	@echo "make mlflow the MLflow UI on http://127.0.0.1:5000 (training runs, metrics, model versions)"
	@echo "make docs   dbt docs of the warehouse on http://127.0.0.1:8080"
	@echo "make bench  install, then print the performance figures (bench scale: several minutes)"
	@echo "make lint   ruff"

# The spark group (dbt-spark, pyspark) is installed too: the test suite runs the Spark parity test.
.venv/.installed: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv>=0.5"
	$(UV) sync --locked --quiet --group spark
	@touch $@

install: .venv/.installed

# Spark needs a Java runtime; Debian's headless JRE when there is none (CI machines, fresh containers).
java:
	@command -v java >/dev/null 2>&1 || { \
		echo "installing a Java runtime for Spark (openjdk-17-jre-headless)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq openjdk-17-jre-headless >/dev/null; }

$(DAGSTER_HOME)/dagster.yaml: dagster_project/dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp $< $@

instance: $(DAGSTER_HOME)/dagster.yaml

# A thin launcher: queues the nightly run through the instance (like the schedule) and follows it.
# Two consecutive days by default: the first builds the history and the model, the second is a normal night
# whose alerts compare with the first (make run RUN_DAYS=1 for the latest day only).
RUN_DAYS ?= 2
run: install instance $(if $(filter spark,$(LEADSCORE_ENGINE)),java)
	@$(UV) run --quiet python -m dagster_project.nightly --days $(RUN_DAYS)

test: install java
	$(UV) run pytest -n 2 --dist loadfile --durations=25

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
