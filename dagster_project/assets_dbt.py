"""The dbt project as assets: one ``@dbt_assets`` per partitioning.

``dbt_daily_history`` holds the models tagged ``daily_history`` (account_metrics_daily,
lead_features and lead_labels over it) on daily partitions with a single-run backfill policy: a
backfill of any range is one ``dbt build`` whose vars cover exactly that range. ``dbt_warehouse`` holds
every other model but the workflow's (``assets_workflow.py``: they read the scores), unpartitioned.
All write the warehouse and so share the warehouse pool: on DuckDB the file allows one writer; on Spark
the embedded metastore allows one process, and the views over Spark's tables are written into the DuckDB
file after each build (``ml/engines.py``).
"""

import datetime as dt
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetKey, BackfillPolicy, Config, Output
from dagster_dbt import DbtCliResource, dbt_assets

from dagster_project.assets_sources import WAREHOUSE_POOL
from dagster_project.partition_truth import reconcile_partitions
from dagster_project.partitions import (
    HISTORY_TAG,
    TRAINING_SNAPSHOT_EVERY_DAYS,
    WORKFLOW_TAG,
    daily_partitions,
    dbt_build_args,
    needs_training_history,
    training_history_vars,
)
from dagster_project.project import dbt_project
from dagster_project.resources import WarehouseResource
from dagster_project.translator import LeadscoreDbtTranslator, dbt_asset_key
from ml import history
from ml.engines import attach_spark_tables
from ml.features import FeatureSet, from_manifest
from ml.warehouse import history_vars, table_exists

# Each op runs the tests whose parents it builds or has already built upstream ("buildable"). The
# default ("eager") would make the unpartitioned op run tests on lead_features before the
# partitioned op has built it.
os.environ.setdefault("DBT_INDIRECT_SELECTION", "buildable")

TRANSLATOR = LeadscoreDbtTranslator()
PROJECT = dbt_project()


def relations_by_key(manifest: Mapping[str, Any], views: bool = False) -> dict[AssetKey, tuple[str, str]]:
    """Asset key -> (schema, table) of every model that is materialised as a table (and as a view too, when
    ``views``: counting a staging view's rows would re-run its rules over the raw data)."""
    kinds = ("table", "incremental", "view") if views else ("table", "incremental")
    return {
        dbt_asset_key(node): (node["schema"], node["alias"])
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["config"].get("materialized") in kinds
    }


def table_metadata(con, schema: str, table: str, days: tuple[str, str] | None) -> dict[str, Any]:
    """Row counts a person wants to see on a materialisation (whole table and, for history, the window)."""
    rows = con.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchall()[0][0]
    metadata: dict[str, Any] = {"dagster/row_count": rows}
    if days:
        in_window, as_of_days = con.execute(
            f'SELECT count(*), count(DISTINCT as_of) FROM "{schema}"."{table}" WHERE as_of BETWEEN ? AND ?',
            list(days),
        ).fetchall()[0]
        metadata |= {"rows_in_partition_window": in_window, "as_of_days_in_window": as_of_days}
    return metadata


def run_dbt_build(
    context: AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: WarehouseResource,
    vars_: Mapping[str, object] | None = None,
    full_refresh: bool = False,
    target: str | None = None,
) -> Iterator[Any]:
    """Run ``dbt build`` for this op's selection and pass its events on, with row counts added.

    Row counts are read after dbt exits: DuckDB allows one process on a file while it writes, so
    the counts cannot be fetched while dbt runs. Events of a failed build are still passed on (what
    dbt did build is materialised), then the failure is raised, which blocks everything downstream.
    """
    warehouse.wait_until_writable(context.log)  # dbt would fail at once on a file another process holds
    args = dbt_build_args(vars_, full_refresh=full_refresh) + (["--target", target] if target else [])
    invocation = dbt.cli(args, context=context)
    events, failure = [], None
    try:
        events.extend(invocation.stream())
    except Exception as exc:  # dbt failed: report what it built, then fail the step
        failure = exc
    layout = warehouse.spark_layout() if target is None else None
    if layout is not None:  # Python reads what Spark built through views in the DuckDB file
        with warehouse.connect(log=context.log) as con:
            attached = attach_spark_tables(con, layout)
        context.log.info(f"{len(attached)} Spark tables readable from DuckDB as views: {', '.join(attached)}")
    relations = relations_by_key(invocation.manifest, views=vars_ is not None)  # lead_labels, a view on DuckDB
    window = (vars_.get("min_date", "1900-01-01"), vars_["max_date"]) if vars_ else None
    with warehouse.connect(read_only=True, log=context.log) as con:
        for event in events:
            if isinstance(event, Output):
                key = context.asset_key_for_output(event.output_name)
                if key in relations and table_exists(con, *relations[key]):
                    schema, table = relations[key]
                    event = event.with_metadata({**event.metadata, **table_metadata(con, schema, table, window)})
            yield event
    if failure is not None:
        raise failure


@dbt_assets(
    manifest=PROJECT.manifest_path,
    project=PROJECT,
    exclude=f"tag:{HISTORY_TAG} tag:{WORKFLOW_TAG}",
    dagster_dbt_translator=TRANSLATOR,
    pool=WAREHOUSE_POOL,
    name="dbt_warehouse",
)
def dbt_warehouse(context: AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    """Staging, quarantine, intermediate and the current marts: rebuilt in full every night."""
    yield from run_dbt_build(context, dbt, warehouse)


class DailyHistoryConfig(Config):
    """Run configuration of the daily history models."""

    rebuild_training_history: bool = False
    """Rebuild from scratch even when a history exists: weekly snapshots from the start of the data up to
    the last day of the partition window. A warehouse without enough history is rebuilt anyway."""


def as_of_days(con, schema: str, table: str) -> set[str]:
    """The as-of days a history table holds (empty when it does not exist yet)."""
    if not table_exists(con, schema, table):
        return set()
    rows = con.execute(f'SELECT DISTINCT strftime(as_of, \'%Y-%m-%d\') FROM "{schema}"."{table}"').fetchall()
    return {day for (day,) in rows}


def undeclared_columns(con, schema: str, table: str, features: FeatureSet) -> list[str]:
    """Declared features the table does not have yet (an analyst added a column): the history must be
    rebuilt, or the model would learn the new feature from one day of values and years of nulls."""
    if not table_exists(con, schema, table):
        return []
    present = {row[0] for row in con.execute(f'DESCRIBE "{schema}"."{table}"').fetchall()}
    return [name for name in features.names if name not in present]


def training_history_plan(warehouse: WarehouseResource, vars_: Mapping[str, Any]) -> list[dict[str, object]]:
    """The chunks of a training-history rebuild (``ml/history.py``): several when the history would outgrow
    DuckDB's memory limit in one statement, one (``vars_`` itself) otherwise and always on Spark."""
    if warehouse.spark_layout() is not None:
        return [dict(vars_)]
    daily_from = dt.date.fromisoformat(vars_["daily_from"]) if vars_.get("daily_from") else None
    with warehouse.connect(read_only=True) as con:
        plan = history.build_plan(
            con,
            dt.date.fromisoformat(vars_["max_date"]),
            vars_["snapshot_every_days"],
            warehouse.history_max_rows(),
            daily_from,
        )
    return plan if len(plan) > 1 else [dict(vars_)]


def missing_history_plan(
    context: AssetExecutionContext, warehouse: WarehouseResource, stored_days: set[str], before: dt.date
) -> list[dict[str, object]]:
    """The chunks that fill the weekly snapshots the history lacks before this run's window: a rebuild that
    was killed part-way, or nights that never ran. Without them the model would train on a history with a
    hole in it, and nothing would say so."""
    present = {dt.date.fromisoformat(day) for day in stored_days}  # read once by the asset: a scan of the history
    max_rows = None if warehouse.spark_layout() is not None else warehouse.history_max_rows()
    with warehouse.connect(read_only=True) as con:
        plan = history.resume_plan(con, present, before, TRAINING_SNAPSHOT_EVERY_DAYS, max_rows)
    if plan:
        context.log.info(
            f"the weekly training history lacks as-of days between {plan[0]['min_date']} and {plan[-1]['max_date']} "
            f"(a rebuild that stopped part-way, or nights that did not run): building them first, in "
            f"{len(plan)} chunk{'s' if len(plan) > 1 else ''}"
        )
    return plan


def history_on_disk(warehouse: WarehouseResource, relation: tuple[str, str]) -> set[str]:
    if not Path(warehouse.path).exists():
        return set()  # a new warehouse: nothing built yet
    with warehouse.connect(read_only=True) as con:
        return as_of_days(con, *relation)


@dbt_assets(
    manifest=PROJECT.manifest_path,
    project=PROJECT,
    select=f"tag:{HISTORY_TAG}",
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    dagster_dbt_translator=TRANSLATOR,
    pool=WAREHOUSE_POOL,
    name="dbt_daily_history",
)
def dbt_daily_history(
    context: AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource, config: DailyHistoryConfig
):
    """The daily history models for the days of this run's partition window, and only those.

    A warehouse with too little history to train on (a new one) gets its weekly training history first,
    whoever launched the run (the schedule, the UI, ``make run``): the asset looks at the table itself.
    Afterwards the partitions recorded in Dagster are made to match the as-of days in the tables.
    """
    window = context.partition_time_window
    manifest = json.loads(PROJECT.manifest_path.read_text())
    relations = relations_by_key(manifest, views=True)
    stored = relations[AssetKey("lead_features")]
    stored_days = history_on_disk(warehouse, stored)
    built = len(stored_days)
    added: list[str] = []
    if built:
        with warehouse.connect(read_only=True) as con:
            added = undeclared_columns(con, *stored, from_manifest(manifest))
    if config.rebuild_training_history or needs_training_history(built) or added:
        vars_ = training_history_vars(window.end.date() - dt.timedelta(days=1), window.start.date())
        if config.rebuild_training_history:
            why = "as configured"
        elif added:
            why = f"the dbt YAML declares features lead_features lacks: {', '.join(added)}"
        else:
            why = f"lead_features has {built} as-of days"
        context.log.info(f"rebuilding the weekly training history up to {vars_['max_date']} ({why})")
        plan = training_history_plan(warehouse, vars_)
        if len(plan) > 1:  # one statement would outgrow DuckDB's memory limit: build it a few days at a time
            context.log.info(
                f"in {len(plan)} chunks of as-of days ({plan[0]['min_date']} .. {plan[0]['max_date']} first) of at "
                f"most {warehouse.history_max_rows():,} rows each (DuckDB's memory limit: {warehouse.memory_limit})"
            )
            for number, chunk in enumerate(plan[:-1]):
                refresh = ["--full-refresh"] if number == 0 else []
                run_args = ["run", "--vars", json.dumps(chunk, sort_keys=True), *refresh]
                dbt.cli(run_args, context=context).wait()
            yield from run_dbt_build(context, dbt, warehouse, plan[-1])
        else:
            yield from run_dbt_build(context, dbt, warehouse, vars_, full_refresh=True)
    else:
        for chunk in missing_history_plan(context, warehouse, stored_days, window.start.date()):
            dbt.cli(["run", "--vars", json.dumps(chunk, sort_keys=True)], context=context).wait()
        vars_ = history_vars(window.start.date(), window.end.date())
        context.log.info(f"building as-of days {vars_['min_date']} .. {vars_['max_date']}")
        yield from run_dbt_build(context, dbt, warehouse, vars_)
    for key in sorted(context.selected_asset_keys, key=lambda k: k.to_user_string()):
        if key in relations:
            reconcile_partitions(context, key, history_on_disk(warehouse, relations[key]), context.partition_keys)
