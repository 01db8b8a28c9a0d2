"""The one ``Definitions`` of leadscore (loaded by workspace.yaml and ``dagster dev``)."""

from __future__ import annotations

import os

from dagster import Definitions, EnvVar
from dagster_dbt import DbtCliResource

from dagster_project.assets_activation import hubspot_sync, salesforce_sync
from dagster_project.assets_dbt import PROJECT, dbt_daily_history, dbt_warehouse
from dagster_project.assets_ml import lead_scores, lead_scoring_model
from dagster_project.assets_sources import raw_sources
from dagster_project.assets_workflow import (
    alert_tasks,
    alert_volume,
    dbt_workflow,
    hubspot_tasks,
    lead_routing,
    morning_digest,
    salesforce_tasks,
)
from dagster_project.policies import apply_policies
from dagster_project.recovery import recover_dead_runs_sensor
from dagster_project.resources import (
    CrmResource,
    MlflowResource,
    SourcesResource,
    TrainingResource,
    WarehouseResource,
    WorkflowResource,
    crm_from_env,
    mlflow_from_env,
    sources_from_env,
    training_from_env,
    workflow_from_env,
)
from dagster_project.schedules import nightly_job, nightly_schedule
from ml.engines import ENGINE_ENV, SPARK_DIR_ENV, default_spark_dir, engine_from_env
from ml.history import HISTORY_CHUNK_ROWS_ENV
from ml.warehouse import (
    DEFAULT_MEMORY_LIMIT,
    MEMORY_LIMIT_ENV,
    SPILL_DIR_ENV,
    WAREHOUSE_ENV,
    default_spill_dir,
    warehouse_path,
)

# One variable names the warehouse for dbt (its profile reads it in the dbt subprocess, which
# inherits this environment) and for Python (through EnvVar): they can never point at different files.
# The same holds for the engine, Spark's folder and DuckDB's memory bounds.
os.environ.setdefault(WAREHOUSE_ENV, str(warehouse_path(os.environ)))
os.environ[ENGINE_ENV] = engine_from_env(os.environ)  # fails at load time on a misspelt engine
os.environ.setdefault(SPARK_DIR_ENV, str(default_spark_dir(warehouse_path(os.environ))))
os.environ.setdefault(MEMORY_LIMIT_ENV, DEFAULT_MEMORY_LIMIT)
os.environ.setdefault(SPILL_DIR_ENV, str(default_spill_dir(warehouse_path(os.environ))))
os.environ.setdefault(HISTORY_CHUNK_ROWS_ENV, "0")  # 0: chunks sized from the memory limit


def build_definitions(
    sources: SourcesResource,
    crm: CrmResource | None = None,
    *,
    mlflow: MlflowResource | None = None,
    training: TrainingResource | None = None,
    workflow: WorkflowResource | None = None,
) -> Definitions:
    """Everything, with one source of raw data (tests use a tiny synthetic one) and one CRM setting (by
    default from the environment: the sandbox unless ``LEADSCORE_CRM=live``); MLflow and the training
    budget default to the environment too (``MLFLOW_TRACKING_URI``, ``LEADSCORE_OPTUNA_*``), and so do the
    workflow's channels (``LEADSCORE_WORKFLOW_TASKS``, ``LEADSCORE_DIGEST_*``, ``LEADSCORE_SMTP_*``)."""
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
                dbt_workflow,
                lead_routing,
                alert_tasks,
                hubspot_tasks,
                salesforce_tasks,
                morning_digest,
            ]
        ),
        asset_checks=[alert_volume],
        jobs=[nightly_job],
        schedules=[nightly_schedule],
        sensors=[recover_dead_runs_sensor],
        resources={
            "dbt": DbtCliResource(project_dir=PROJECT),
            "warehouse": WarehouseResource(
                path=EnvVar(WAREHOUSE_ENV),
                engine=EnvVar(ENGINE_ENV),
                spark_dir=EnvVar(SPARK_DIR_ENV),
                memory_limit=EnvVar(MEMORY_LIMIT_ENV),
                spill_dir=EnvVar(SPILL_DIR_ENV),
                history_chunk_rows=EnvVar.int(HISTORY_CHUNK_ROWS_ENV),
            ),
            "sources": sources,
            "crm": crm or crm_from_env(os.environ),
            "mlflow": mlflow or mlflow_from_env(os.environ),
            "training": training or training_from_env(os.environ),
            "workflow": workflow or workflow_from_env(os.environ),
        },
    )


defs = build_definitions(sources_from_env(os.environ))
