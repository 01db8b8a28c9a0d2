"""The dbt project as assets: one ``@dbt_assets`` per partitioning.

``dbt_daily_history`` holds the models tagged ``daily_history`` (account_metrics_daily,
lead_features) on daily partitions with a single-run backfill policy: a backfill of any range is one
``dbt build`` whose vars cover exactly that range. ``dbt_warehouse`` holds every other model,
unpartitioned. Both write the DuckDB file and so share the warehouse pool.
"""

import datetime as dt
import os
from collections.abc import Iterator, Mapping
from typing import Any

from dagster import AssetExecutionContext, AssetKey, BackfillPolicy, Config, Output
from dagster_dbt import DbtCliResource, dbt_assets

from dagster_project.assets_sources import WAREHOUSE_POOL
from dagster_project.partitions import (
    HISTORY_TAG,
    daily_partitions,
    dbt_build_args,
    training_history_vars,
)
from dagster_project.project import dbt_project
from dagster_project.resources import WarehouseResource
from dagster_project.translator import LeadscoreDbtTranslator, dbt_asset_key
from ml.warehouse import history_vars

# Each op runs the tests whose parents it builds or has already built upstream ("buildable"). The
# default ("eager") would make the unpartitioned op run tests on lead_features before the
# partitioned op has built it.
os.environ.setdefault("DBT_INDIRECT_SELECTION", "buildable")

TRANSLATOR = LeadscoreDbtTranslator()
PROJECT = dbt_project()


def relations_by_key(manifest: Mapping[str, Any]) -> dict[AssetKey, tuple[str, str]]:
    """Asset key -> (schema, table) of every model that is materialised as a table."""
    return {
        dbt_asset_key(node): (node["schema"], node["alias"])
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["config"].get("materialized") in ("table", "incremental")
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
) -> Iterator[Any]:
    """Run ``dbt build`` for this op's selection and pass its events on, with row counts added.

    Row counts are read after dbt exits: DuckDB allows one process on a file while it writes, so
    the counts cannot be fetched while dbt runs. Events of a failed build are still passed on (what
    dbt did build is materialised), then the failure is raised, which blocks everything downstream.
    """
    invocation = dbt.cli(dbt_build_args(vars_, full_refresh=full_refresh), context=context)
    events, failure = [], None
    try:
        events.extend(invocation.stream())
    except Exception as exc:  # dbt failed: report what it built, then fail the step
        failure = exc
    relations = relations_by_key(invocation.manifest)
    window = (vars_.get("min_date", "1900-01-01"), vars_["max_date"]) if vars_ else None
    with warehouse.connect(read_only=True) as con:
        for event in events:
            if isinstance(event, Output):
                key = context.asset_key_for_output(event.output_name)
                if key in relations:
                    schema, table = relations[key]
                    event = event.with_metadata({**event.metadata, **table_metadata(con, schema, table, window)})
            yield event
    if failure is not None:
        raise failure


@dbt_assets(
    manifest=PROJECT.manifest_path,
    project=PROJECT,
    exclude=f"tag:{HISTORY_TAG}",
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
    """Rebuild from scratch: weekly snapshots from the start of the data up to the last day of the
    partition window (the training history a new warehouse lacks). Other days are not rebuilt."""


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
    """The daily history models for the days of this run's partition window, and only those."""
    window = context.partition_time_window
    if config.rebuild_training_history:
        vars_ = training_history_vars(window.end.date() - dt.timedelta(days=1))
        context.log.info(f"rebuilding the weekly training history up to {vars_['max_date']}")
        yield from run_dbt_build(context, dbt, warehouse, vars_, full_refresh=True)
        return
    vars_ = history_vars(window.start.date(), window.end.date())
    context.log.info(f"building as-of days {vars_['min_date']} .. {vars_['max_date']}")
    yield from run_dbt_build(context, dbt, warehouse, vars_)
