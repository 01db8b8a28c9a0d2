"""Group ``ml``: the nightly model and the daily scores. The logic is ``ml.pipeline`` and
``ml.scoring``; this module only binds them to the warehouse and the resources, and reports what
happened: links to the MLflow run and version, the gate's comparison, the day's score distribution."""

import datetime as dt

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    asset,
)

from dagster_project.assets_dbt import PROJECT, as_of_days
from dagster_project.assets_sources import WAREHOUSE_POOL
from dagster_project.partition_truth import reconcile_partitions
from dagster_project.partitions import daily_partitions
from dagster_project.resources import MlflowResource, TrainingResource, WarehouseResource
from ml.diagnostics import ablation_markdown, curve_markdown
from ml.drift import WARN_ABOVE
from ml.features import from_manifest_file
from ml.pipeline import TrainingData, TrainingOutcome, train_and_register
from ml.registry import MODEL_NAME, GateConfig, load_alias
from ml.report import ScoreSummary, candidates_markdown, gate_markdown, histogram_markdown, tier_grid_markdown
from ml.scoring import score_as_of, write_scores

GATE_CHECK = "promotion_gate"
DRIFT_CHECK = "score_drift"
GATE = GateConfig()  # the tolerances of the nightly gate (ml/registry.py)


def mlflow_run_tags(dagster_run_id: str, job_name: str | None) -> dict[str, str]:
    """Tags that lead from an MLflow run back to the Dagster run that trained it."""
    tags = {"dagster_run_id": dagster_run_id}
    if job_name:
        tags["dagster_job"] = job_name
    return tags


def model_metadata(outcome: TrainingOutcome, mlflow: MlflowResource) -> dict[str, object]:
    """The outcome's figures plus links to its MLflow run and registered version, and the test ROC AUC."""
    metadata: dict[str, object] = dict(outcome.metadata())
    if "roc_auc" in outcome.metrics:
        metadata["test_roc_auc"] = round(outcome.metrics["roc_auc"], 4)
    if outcome.run_id and outcome.experiment_id:
        metadata["mlflow_run"] = MetadataValue.url(mlflow.run_url(outcome.experiment_id, outcome.run_id))
    if outcome.version:
        metadata["mlflow_model_version"] = MetadataValue.url(mlflow.version_url(outcome.version))
    if outcome.champion_version and outcome.champion_version != outcome.version:
        metadata["mlflow_champion_version"] = MetadataValue.url(mlflow.version_url(outcome.champion_version))
    if outcome.curve:
        metadata["learning_curve"] = MetadataValue.md(curve_markdown(outcome.curve))
    if outcome.ablation:
        metadata["ablation"] = MetadataValue.md(ablation_markdown(outcome.ablation))
    return metadata


def gate_check_metadata(outcome: TrainingOutcome, config: GateConfig) -> dict[str, object]:
    """Status and reason, and the challenger-vs-champion table when a challenger was gated."""
    metadata: dict[str, object] = {"status": outcome.status, "reason": outcome.message}
    decision = outcome.decision
    if decision is not None and outcome.version:
        champion = f"{MODEL_NAME}/{decision.champion_version}" if decision.champion_version else None
        table = gate_markdown(decision, config, f"{MODEL_NAME}/{outcome.version}", champion)
        metadata["comparison"] = MetadataValue.md(table)
    if outcome.main_model:
        metadata["candidates"] = MetadataValue.md(candidates_markdown(outcome.metrics, outcome.main_model))
    return metadata


@asset(
    group_name="ml",
    deps=[AssetKey("lead_features"), AssetKey("lead_labels")],
    kinds={"lightgbm", "mlflow"},
    check_specs=[
        AssetCheckSpec(
            GATE_CHECK,
            asset="lead_scoring_model",
            description=f"Did the new model (the challenger) replace the champion? It must not be worse than "
            f"the champion on the same test window by more than the tolerances (ROC AUC {GATE.roc_auc_tolerance}, "
            f"PR AUC {GATE.pr_auc_tolerance}, Brier {GATE.brier_tolerance}). A warning when the champion was kept: "
            f"scoring goes on with the champion; the comparison table says why.",
        )
    ],
)
def lead_scoring_model(
    context: AssetExecutionContext, warehouse: WarehouseResource, mlflow: MlflowResource, training: TrainingResource
) -> MaterializeResult:
    """Train on the features the dbt YAML declares (lead_features.yml, meta.feature), tune LightGBM with
    Optuna, compare it with a tuned logistic regression, log the learning curve and the ablation, register
    in MLflow as ``challenger`` and promote to ``champion`` only if it passes the gate; otherwise the
    champion stays. The MLflow run spans the training and carries this run's id (tag ``dagster_run_id``)."""
    settings, split_config = mlflow.settings(), training.split_config()
    # Read everything first and let go of the file: tuning takes minutes, and an open reader would hold
    # DuckDB's lock against the writers of other runs (this asset is not in the warehouse pool).
    # The features are what the dbt YAML declares, as tonight's dbt run parsed it (the manifest).
    features = from_manifest_file(PROJECT.manifest_path)
    context.log.info(f"training on {len(features.names)} declared features ({features.source})")
    with warehouse.connect(read_only=True, log=context.log) as con:
        data = TrainingData.read(con, features, split_config)
    outcome = train_and_register(
        data,
        settings,
        split_config,
        training.train_config(settings.tracking_uri),
        GATE,
        tags=mlflow_run_tags(context.run.run_id, context.run.job_name),
        allow_new_registry=mlflow.allow_new_registry,
    )
    context.log.info(outcome.message)
    # The gate check fails (as a warning) when a challenger was not promoted: the pipeline goes on
    # with the champion, and a person sees why in the check's metadata.
    gate = AssetCheckResult(
        check_name=GATE_CHECK,
        passed=outcome.status != "kept_champion",
        severity=AssetCheckSeverity.WARN,
        metadata=gate_check_metadata(outcome, GATE),
    )
    return MaterializeResult(metadata=model_metadata(outcome, mlflow), check_results=[gate])


def score_metadata(summary: ScoreSummary, day: dt.date) -> dict[str, object]:
    """The distribution of one day's scores: histogram, tier grid, min/mean/max."""
    return {
        "distribution_as_of": day.isoformat(),
        "score_histogram": MetadataValue.md(histogram_markdown(summary.histogram)),
        "tier_counts": MetadataValue.md(tier_grid_markdown(summary.tiers)),
        "score_min": summary.minimum,
        "score_mean": summary.mean,
        "score_max": summary.maximum,
    }


@asset(
    group_name="ml",
    deps=[lead_scoring_model, AssetKey("lead_features")],
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    check_specs=[
        AssetCheckSpec(
            DRIFT_CHECK,
            asset="lead_scores",
            description=f"Do today's scores look like the scores the champion gave its training leads? Population "
            f"stability index (PSI) of the score distribution; a warning above {WARN_ABOVE} (the leads, or the "
            f"data behind them, have changed: look at the features before trusting the scores).",
        )
    ],
)
def lead_scores(
    context: AssetExecutionContext, warehouse: WarehouseResource, mlflow: MlflowResource
) -> MaterializeResult:
    """Score every consented, unconverted lead for each day of the partition window with
    ``models:/lead_scoring@champion`` and replace those days of ``main.lead_scores``. The metadata shows
    the distribution (histogram, tiers, min/mean/max) of the last day scored."""
    window = context.partition_time_window
    day, last = window.start.date(), window.end.date() - dt.timedelta(days=1)
    model = load_alias(mlflow.settings())  # once for the window, not once per day
    totals: dict[str, object] = {"days": 0, "rows_written": 0}
    drift, distribution = None, {}
    while day <= last:
        with warehouse.connect(read_only=True, log=context.log) as con:
            result = score_as_of(con, model, day)
        if result.status != "scored":
            context.log.warning(f"{day}: {result.status}")
        else:
            with warehouse.connect(log=context.log) as con:  # the write lock only for the write
                written = write_scores(con, result.scores, day)
            context.log.info(f"{day}: {written:,} leads scored with {result.stats.model_version}")
            totals["rows_written"] = int(totals["rows_written"]) + written
            totals |= result.stats.metadata()
            distribution = score_metadata(ScoreSummary.of(result.scores), day)
            drift = result.stats.drift or drift
        totals["days"] = int(totals["days"]) + 1
        day += dt.timedelta(days=1)
    with warehouse.connect(read_only=True, log=context.log) as con:
        scored_days = as_of_days(con, "main", "lead_scores")
    reconcile_partitions(context, context.assets_def.key, scored_days, context.partition_keys)
    psi = round(drift.psi, 4) if drift else None
    check = AssetCheckResult(
        check_name=DRIFT_CHECK,
        passed=not (drift and drift.warn),
        severity=AssetCheckSeverity.WARN,
        metadata={"psi_vs_training": psi if psi is not None else "n/a", "warn_above": WARN_ABOVE},
    )
    return MaterializeResult(metadata={**totals, **distribution}, check_results=[check])
