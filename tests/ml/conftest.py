"""Fixtures for the model library: labelled rows of the tiny warehouse, a split, a tiny trained model,
and an MLflow tracking store in a temp dir. Budgets are tiny (3 Optuna trials) to keep the suite fast."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ml import warehouse
from ml.data import load_labelled
from ml.features import FeatureSet, from_dbt_yaml
from ml.registry import MlflowSettings
from ml.split import Split, SplitConfig, time_split
from ml.train import TrainConfig, TrainedModel, train_model

# The tiny warehouse's training window has ~600 leads and ~60 conversions: below the defaults.
SMALL_MINIMUMS = SplitConfig(min_leads=100, min_conversions=10)


def tiny_train_config(study_dir: Path, **overrides) -> TrainConfig:
    """3 trials; no learning curve or ablation unless a test asks (they refit the model ~20 times)."""
    defaults = {"n_trials": 3, "timeout_s": 120, "study_dir": study_dir, "learning_curve": (), "ablation": False}
    return TrainConfig(**{**defaults, **overrides})


@pytest.fixture(scope="session")
def small_minimums() -> SplitConfig:
    return SMALL_MINIMUMS


@pytest.fixture(scope="session")
def train_config_factory():
    """``factory(study_dir, **overrides)``: a tiny-budget TrainConfig (test modules cannot import conftest)."""
    return tiny_train_config


@pytest.fixture(scope="session")
def features() -> FeatureSet:
    """The features the dbt YAML declares."""
    return from_dbt_yaml(warehouse.FEATURES_YAML)


@pytest.fixture(scope="session")
def labelled(built_warehouse, features) -> pd.DataFrame:
    with warehouse.connect(built_warehouse, read_only=True) as con:
        return load_labelled(con, features)


@pytest.fixture(scope="session")
def split(labelled) -> Split:
    return time_split(labelled, SMALL_MINIMUMS)


@pytest.fixture(scope="session")
def trained(split, features, tmp_path_factory) -> TrainedModel:
    return train_model(split, features, tiny_train_config(tmp_path_factory.mktemp("optuna")))


@pytest.fixture
def mlflow_settings(tmp_path) -> MlflowSettings:
    return MlflowSettings(f"sqlite:///{tmp_path}/mlflow.db", (tmp_path / "mlartifacts").as_uri())
