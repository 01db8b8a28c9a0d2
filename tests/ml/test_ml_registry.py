"""MLflow round trip with categoricals, the champion gate, and a registry that lost its champion."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from ml import warehouse
from ml.pipeline import TrainingData, train_and_register
from ml.registry import (
    CHALLENGER,
    CHAMPION,
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    MODEL_NAME,
    GateConfig,
    RegistryMissingError,
    check_registry_continuity,
    gate,
    load_alias,
    log_and_register,
    tracking,
)
from ml.split import time_split
from ml.train import shuffled_labels


def test_pyfunc_round_trip_keeps_categories(trained, split, mlflow_settings, tmp_path):
    registered = log_and_register(trained.bundle, split.test, {"p": 1}, {"m": 0.5}, None, mlflow_settings, tmp_path)
    rows = split.test.head(50).copy()
    assert pd.api.types.is_string_dtype(rows["industry"])  # pandas 3 str straight from DuckDB
    rows.loc[rows.index[0], "industry"] = "never-seen-industry"
    rows.loc[rows.index[1], "seniority"] = None
    expected = trained.bundle.predict(rows).reset_index(drop=True)
    with tracking(mlflow_settings):
        model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@{CHALLENGER}")
        assert model.metadata.signature is not None
        assert model.metadata.get_input_schema().input_dict()["industry"].type.name == "string"
        got = model.predict(rows)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, check_dtype=False)
    loaded = model.unwrap_python_model().bundle
    assert loaded.categories == trained.bundle.categories and "never-seen-industry" not in loaded.categories["industry"]
    assert registered.version == "1"


def test_gate_rules():
    champion = {"roc_auc": 0.80, "pr_auc": 0.20, "brier": 0.030}
    assert gate({"roc_auc": 0.7, "pr_auc": 0.1, "brier": 0.1}, None).promote  # first model
    assert gate({"roc_auc": 0.797, "pr_auc": 0.195, "brier": 0.0305}, champion).promote  # within tolerance
    worse_auc = gate({"roc_auc": 0.79, "pr_auc": 0.25, "brier": 0.02}, champion)
    assert not worse_auc.promote and "ROC AUC" in worse_auc.reason
    worse_brier = gate({"roc_auc": 0.85, "pr_auc": 0.25, "brier": 0.035}, champion, GateConfig(brier_tolerance=0.001))
    assert not worse_brier.promote and "Brier" in worse_brier.reason


def test_registry_continuity_rule():
    uri = "sqlite:///somewhere/mlflow.db"
    check_registry_continuity(None, [], uri)  # nothing scored yet: a new store is fine
    check_registry_continuity("lead_scoring/3", ["1", "2", "3"], uri)
    check_registry_continuity("bench/1", [], uri)  # not a registered model's label
    with pytest.raises(RegistryMissingError) as refused:
        check_registry_continuity("lead_scoring/3", [], uri)
    message = str(refused.value)
    assert "lead_scoring/3" in message and uri in message and "holds none" in message
    assert "Restore it" in message and "allow_new_registry" in message
    with pytest.raises(RegistryMissingError, match="holds versions 1, 2"):
        check_registry_continuity("lead_scoring/3", ["2", "1"], uri)  # a different (younger) store
    check_registry_continuity("lead_scoring/3", [], uri, allow_new_registry=True)


def test_a_lost_registry_is_refused_before_training(
    labelled, features, small_minimums, train_config_factory, mlflow_settings, tmp_path
):
    """The warehouse was scored with lead_scoring/4, the store is new: refused, and no run is started."""
    data = TrainingData(features, labelled, scored_with="lead_scoring/4")
    with pytest.raises(RegistryMissingError, match="no version 4 of lead_scoring"):
        train_and_register(data, mlflow_settings, small_minimums, train_config_factory(tmp_path / "optuna"))
    client = MlflowClient(mlflow_settings.tracking_uri, registry_uri=mlflow_settings.tracking_uri)
    assert client.search_runs(experiment_ids=[e.experiment_id for e in client.search_experiments()]) == []


@pytest.mark.slow
def test_first_model_is_champion_and_a_worse_challenger_is_kept_out(
    labelled, features, built_warehouse, small_minimums, train_config_factory, mlflow_settings, tmp_path
):
    with warehouse.connect(built_warehouse, read_only=True) as con:
        data = TrainingData.read(con, features, small_minimums)
    assert data.oracle_truth is not None and data.scored_with is None
    good = train_and_register(
        TrainingData(features, labelled, data.oracle_truth),
        mlflow_settings,
        small_minimums,
        train_config_factory(tmp_path / "optuna"),
        tags={"dagster_run_id": "dagster-run-1"},
    )
    assert good.status == "promoted" and good.champion_version == good.version == "1"
    assert good.metrics["roc_auc"] > 0.7 and good.metrics["roc_auc_ci_low"] <= good.metrics["roc_auc"]
    for key in ("baseline_logistic_roc_auc", "baseline_rules_roc_auc", "oracle_roc_auc", "brier", "ece", "lift_top10"):
        assert key in good.metrics
    client = MlflowClient(mlflow_settings.tracking_uri, registry_uri=mlflow_settings.tracking_uri)
    run = client.get_run(good.run_id)
    # The run spans the training (not just the logging) and says where it came from and on what data.
    assert (run.info.end_time - run.info.start_time) / 1000 >= good.metrics["tuning_seconds"]
    assert run.data.tags["dagster_run_id"] == "dagster-run-1"
    assert run.data.tags["data.window_end"] == good.split["test_end"] and run.data.params["data.train_start"]
    assert good.experiment_id == run.info.experiment_id
    assert client.get_experiment(good.experiment_id).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND

    # A challenger trained on shuffled training labels (valid/calib/test untouched) knows nothing.
    train_end = pd.Timestamp(time_split(labelled, small_minimums).windows["train"].end)
    in_train = pd.to_datetime(labelled["as_of"]) <= train_end
    worse_rows = pd.concat([shuffled_labels(labelled[in_train], seed=1), labelled[~in_train]])
    # The warehouse was scored with the champion since: the store holds it, so training goes on.
    worse = train_and_register(
        TrainingData(features, worse_rows, data.oracle_truth, scored_with="lead_scoring/1"),
        mlflow_settings,
        small_minimums,
        train_config_factory(tmp_path / "optuna2"),
    )
    assert worse.status == "kept_champion" and worse.version == "2" and worse.champion_version == "1"
    assert worse.metrics["roc_auc"] < good.metrics["roc_auc"]
    assert worse.decision is not None and worse.decision.champion["roc_auc"] == pytest.approx(good.metrics["roc_auc"])

    assert str(client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version) == "1"
    assert str(client.get_model_version_by_alias(MODEL_NAME, CHALLENGER).version) == "2"
    version = client.get_model_version(MODEL_NAME, "2")
    assert version.tags["gate.decision"] == "kept_champion" and version.tags["gate.champion_version"] == "1"
    run = client.get_run(worse.run_id)
    assert run.data.metrics["gate_promoted"] == 0.0 and "gate_champion_roc_auc" in run.data.metrics
    assert any(a.path == "evaluation" for a in client.list_artifacts(worse.run_id))
    assert not any("secret" in k.lower() or "token" in k.lower() for k in run.data.params)
    champion = load_alias(mlflow_settings)
    assert champion is not None and champion.version == "1"
    np.testing.assert_allclose(
        champion.bundle.predict(labelled.head(20))["score"], champion.pyfunc.predict(labelled.head(20))["score"]
    )
