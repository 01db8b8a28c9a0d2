"""The ML assets in Dagster: configuration through resources, and materializations that tell the truth
(links to the MLflow run and version, the gate's comparison, the score distribution)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dagster import AssetKey, MetadataValue, materialize
from mlflow import MlflowClient

from dagster_project.assets_ml import DRIFT_CHECK, GATE_CHECK, lead_scores, lead_scoring_model, mlflow_run_tags
from dagster_project.definitions import build_definitions, defs
from dagster_project.resources import (
    DEFAULT_SANDBOX_STATE,
    MlflowResource,
    SourcesResource,
    TrainingResource,
    WarehouseResource,
    default_study_dir,
    mlflow_from_env,
    training_from_env,
)
from tests.conftest import REPO, query

# Entry points may read the environment; everything else receives values.
ENTRY_POINTS = {"__main__.py", "bench.py", "quality.py"}  # command-line entry points
READS_ENVIRONMENT = re.compile(r"\bos\.environ\b|\bgetenv\(|from os import [^\n]*\benviron\b")


def test_libraries_never_read_the_environment():
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for package in ("ml", "activation")
        for path in sorted((REPO / package).rglob("*.py"))
        if path.name not in ENTRY_POINTS
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if READS_ENVIRONMENT.search(line)
    ]
    assert offenders == [], "libraries take values; read the environment in an entry point:\n" + "\n".join(offenders)


def test_mlflow_and_training_resources_from_the_environment(tmp_path):
    default = mlflow_from_env({})
    assert default.tracking_uri == f"sqlite:///{REPO / 'data' / 'mlflow.db'}"
    assert not default.allow_new_registry
    assert default.run_url("3", "abc") == "http://127.0.0.1:5000/#/experiments/3/runs/abc?workflowType=machine_learning"
    assert MlflowResource(ui_url="http://mlflow:5000/").version_url("7") == (
        "http://mlflow:5000/#/models/lead_scoring/versions/7?workflowType=machine_learning"
    )
    configured = mlflow_from_env({"MLFLOW_TRACKING_URI": "sqlite:///elsewhere.db"})
    assert "MLFLOW_TRACKING_URI" in repr(configured.tracking_uri)  # an EnvVar, resolved when a run starts

    training = training_from_env({"LEADSCORE_OPTUNA_TRIALS": "5", "LEADSCORE_OPTUNA_TIMEOUT_S": "60"})
    assert (training.n_trials, training.timeout_s) == (5, 60.0)
    assert (training_from_env({}).n_trials, training_from_env({}).timeout_s) == (12, 240.0)
    assert training_from_env({}).ablation and not training_from_env({"LEADSCORE_MODEL_DIAGNOSTICS": "off"}).ablation
    with pytest.raises(ValueError, match="on or off"):
        training_from_env({"LEADSCORE_MODEL_DIAGNOSTICS": "maybe"})
    for bad in ({"LEADSCORE_OPTUNA_TRIALS": "many"}, {"LEADSCORE_OPTUNA_TIMEOUT_S": "0"}):
        with pytest.raises(ValueError, match="LEADSCORE_OPTUNA"):
            training_from_env(bad)

    # The study lives beside a SQLite MLflow store, never beside the warehouse.
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert training.train_config(store).study_dir == tmp_path / "optuna"
    assert default_study_dir("http://mlflow:5000") == REPO / "data" / "optuna"
    assert TrainingResource(study_dir=str(tmp_path / "s")).train_config(store).study_dir == tmp_path / "s"
    assert DEFAULT_SANDBOX_STATE == REPO / "data" / "crm_sandbox.sqlite"


def test_definitions_carry_the_resources_and_check_descriptions():
    assert {"mlflow", "training"} <= set(defs.resources)
    custom = build_definitions(SourcesResource(), mlflow=MlflowResource(ui_url="http://x"))
    assert custom.resources["mlflow"].ui_url == "http://x"
    specs = {spec.name: spec for asset in (lead_scoring_model, lead_scores) for spec in asset.check_specs}
    assert "tolerance" in specs[GATE_CHECK].description and "PSI" in specs[DRIFT_CHECK].description
    for resource in (MlflowResource, TrainingResource):  # every field explains itself in the Launchpad
        assert all(field.description for field in resource.model_fields.values())
    assert mlflow_run_tags("r-1", "nightly") == {"dagster_run_id": "r-1", "dagster_job": "nightly"}


def metadata_of(result, key: str) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == AssetKey(key)]
    return event.materialization.metadata


def check_of(result, name: str):
    (evaluation,) = [
        e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.event_specific_data.check_name == name
    ]  # fmt: skip
    return evaluation


@pytest.mark.slow
def test_the_model_and_the_scores_tell_the_truth(warehouse_copy: Path, tmp_path: Path):
    (day,) = query(warehouse_copy, "SELECT max(as_of) FROM main.lead_features")[0]
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    resources = {
        "warehouse": WarehouseResource(path=str(warehouse_copy)),
        "mlflow": MlflowResource(tracking_uri=store, ui_url="http://mlflow.example:5000"),
        "training": TrainingResource(
            n_trials=3, timeout_s=120, min_leads=100, min_conversions=10, ablation=False
        ),  # the learning curve stays: its table is on the materialization
    }
    result = materialize([lead_scoring_model, lead_scores], partition_key=str(day), resources=resources)
    assert result.success

    model = metadata_of(result, "lead_scoring_model")
    assert model["status"].value == "promoted" and model["model_version"].value == "lead_scoring/1"
    assert 0.5 < model["test_roc_auc"].value <= 1
    assert model["features"].value >= 40 and model["main_model"].value in ("lightgbm", "logistic_regression")
    assert "| 100% (" in model["learning_curve"].value and "ablation" not in model
    client = MlflowClient(store, registry_uri=store)
    (run,) = client.search_runs([client.get_experiment_by_name("lead_scoring").experiment_id])
    assert run.data.tags["dagster_run_id"] == result.run_id, "the MLflow run names the Dagster run"
    assert model["mlflow_run"] == MetadataValue.url(
        f"http://mlflow.example:5000/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
        "?workflowType=machine_learning"
    )
    assert model["mlflow_model_version"].value.endswith(
        "#/models/lead_scoring/versions/1?workflowType=machine_learning"
    )
    gate = check_of(result, GATE_CHECK)
    assert gate.passed and "| ROC AUC" in gate.metadata["comparison"].value
    assert "**Decision: promoted to champion.**" in gate.metadata["comparison"].value

    scores = metadata_of(result, "lead_scores")
    assert scores["rows_written"].value > 0 and scores["distribution_as_of"].value == str(day)
    histogram = scores["score_histogram"].value
    assert "| 90–100 |" in histogram and sum(int(row.split("|")[2].replace(",", "")) for row in
                                              histogram.splitlines()[2:]) == scores["rows_written"].value  # fmt: skip
    assert "| fit \\ engagement |" in scores["tier_counts"].value
    assert scores["score_min"].value <= scores["score_mean"].value <= scores["score_max"].value
    assert check_of(result, DRIFT_CHECK).metadata["warn_above"].value == 0.25

    # The MLflow store is lost while the warehouse remembers its champion: refused, not restarted at 1.
    lost = {**resources, "mlflow": MlflowResource(tracking_uri=f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}")}
    refused = materialize([lead_scoring_model], resources=lost, raise_on_error=False)
    assert not refused.success
    (failure,) = [e for e in refused.all_events if e.is_step_failure]
    message = str(failure.event_specific_data.error)
    assert "scored with lead_scoring/1" in message and "allow_new_registry" in message


def test_a_declared_feature_the_table_lacks_asks_for_a_history_rebuild(tmp_path: Path):
    """An analyst declared a new column: the nightly must rebuild the history, not append a column that is
    null for every past day (dbt_daily_history does so when this list is not empty)."""
    import duckdb

    from dagster_project.assets_dbt import undeclared_columns
    from ml.features import from_columns

    declared = from_columns(
        [
            {"name": "visits_7d", "config": {"meta": {"feature": {"group": "engagement"}}}},
            {"name": "active_days_30d", "config": {"meta": {"feature": {"group": "engagement"}}}},
        ],
        "test.yml",
    )
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        assert undeclared_columns(con, "main", "lead_features", declared) == []  # no table yet: a first build
        con.execute("CREATE TABLE main.lead_features (lead_id VARCHAR, as_of DATE, visits_7d INTEGER)")
        assert undeclared_columns(con, "main", "lead_features", declared) == ["active_days_30d"]
        con.execute("ALTER TABLE main.lead_features ADD COLUMN active_days_30d INTEGER")
        assert undeclared_columns(con, "main", "lead_features", declared) == []
