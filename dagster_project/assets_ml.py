"""Group ``ml``: the nightly model and the daily scores. The logic is ``ml.pipeline`` and
``ml.scoring``; this module only binds them to the warehouse and reports what happened."""

import datetime as dt
import os
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    MaterializeResult,
    asset,
)

from dagster_project.assets_sources import WAREHOUSE_POOL
from dagster_project.partitions import daily_partitions
from dagster_project.resources import WarehouseResource
from ml.pipeline import train_and_register
from ml.scoring import score_as_of, write_scores
from ml.train import TrainConfig

GATE_CHECK = "promotion_gate"
DRIFT_CHECK = "score_drift"


@asset(
    group_name="ml",
    deps=[AssetKey("lead_features")],
    kinds={"lightgbm", "mlflow"},
    check_specs=[AssetCheckSpec(GATE_CHECK, asset="lead_scoring_model")],
)
def lead_scoring_model(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """Train on the labelled history, tune with Optuna, register in MLflow as ``challenger`` and
    promote to ``champion`` only if it passes the gate; otherwise the champion stays."""
    path = Path(warehouse.path)
    outcome = train_and_register(
        warehouse_path=path, train_config=TrainConfig.nightly(os.environ, study_dir=path.parent / "optuna")
    )
    context.log.info(outcome.message)
    # The gate check fails (as a warning) when a challenger was not promoted: the pipeline goes on
    # with the champion, and a person sees why in the check's metadata.
    gate = AssetCheckResult(
        check_name=GATE_CHECK,
        passed=outcome.status != "kept_champion",
        severity=AssetCheckSeverity.WARN,
        metadata={"status": outcome.status, "reason": outcome.message},
    )
    return MaterializeResult(metadata=outcome.metadata(), check_results=[gate])


@asset(
    group_name="ml",
    deps=[lead_scoring_model, AssetKey("lead_features")],
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    check_specs=[AssetCheckSpec(DRIFT_CHECK, asset="lead_scores")],
)
def lead_scores(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """Score every consented, unconverted lead for each day of the partition window with
    ``models:/lead_scoring@champion`` and replace those days of ``main.lead_scores``."""
    window = context.partition_time_window
    day, last = window.start.date(), window.end.date() - dt.timedelta(days=1)
    totals: dict[str, object] = {"days": 0, "rows_written": 0}
    drift = None
    while day <= last:
        result = score_as_of(day, Path(warehouse.path))
        if result.status != "scored":
            context.log.warning(f"{day}: {result.status}")
        else:
            with warehouse.connect() as con:
                written = write_scores(con, result.scores, day)
            context.log.info(f"{day}: {written:,} leads scored with {result.stats.model_version}")
            totals["rows_written"] = int(totals["rows_written"]) + written
            totals |= result.stats.metadata()
            drift = result.stats.drift or drift
        totals["days"] = int(totals["days"]) + 1
        day += dt.timedelta(days=1)
    psi = round(drift.psi, 4) if drift else None
    check = AssetCheckResult(
        check_name=DRIFT_CHECK,
        passed=not (drift and drift.warn),
        severity=AssetCheckSeverity.WARN,
        metadata={"psi_vs_training": psi if psi is not None else "n/a", "warn_above": 0.25},
    )
    return MaterializeResult(metadata=totals, check_results=[check])
