"""The one ``Definitions`` of leadscore (loaded by workspace.yaml and ``dagster dev``)."""

from __future__ import annotations

import os

from dagster import Definitions, EnvVar
from dagster_dbt import DbtCliResource

from dagster_project.assets_activation import hubspot_sync, salesforce_sync
from dagster_project.assets_dbt import PROJECT, dbt_daily_history, dbt_warehouse
from dagster_project.assets_ml import lead_scores, lead_scoring_model
from dagster_project.assets_sources import raw_sources
from dagster_project.policies import apply_policies
from dagster_project.recovery import recover_dead_runs_sensor
from dagster_project.resources import (
    CrmResource,
    MlflowResource,
    SourcesResource,
    TrainingResource,
    WarehouseResource,
    crm_from_env,
    mlflow_from_env,
    sources_from_env,
    training_from_env,
)
from dagster_project.schedules import nightly_job, nightly_schedule
from ml.warehouse import WAREHOUSE_ENV, warehouse_path

# One variable names the warehouse for dbt (its profile reads it in the dbt subprocess, which
# inherits this environment) and for Python (through EnvVar): they can never point at different files.
os.environ.setdefault(WAREHOUSE_ENV, str(warehouse_path(os.environ)))


def build_definitions(
    sources: SourcesResource,
    crm: CrmResource | None = None,
    *,
    mlflow: MlflowResource | None = None,
    training: TrainingResource | None = None,
) -> Definitions:
    """Everything, with one source of raw data (tests use a tiny synthetic one) and one CRM setting (by
    default from the environment: the sandbox unless ``LEADSCORE_CRM=live``); MLflow and the training
    budget default to the environment too (``MLFLOW_TRACKING_URI``, ``LEADSCORE_OPTUNA_*``)."""
    return Definitions(
        assets=apply_policies(
            [
                raw_sources,
                dbt_warehouse,
                dbt_daily_history,
                lead_scoring_model,
                lead_scores,
                hubspot_sync,
                salesforce_sync,
            ]
        ),
        jobs=[nightly_job],
        schedules=[nightly_schedule],
        sensors=[recover_dead_runs_sensor],
        resources={
            "dbt": DbtCliResource(project_dir=PROJECT),
            "warehouse": WarehouseResource(path=EnvVar(WAREHOUSE_ENV)),
            "sources": sources,
            "crm": crm or crm_from_env(os.environ),
            "mlflow": mlflow or mlflow_from_env(os.environ),
            "training": training or training_from_env(os.environ),
        },
    )


defs = build_definitions(sources_from_env(os.environ))
