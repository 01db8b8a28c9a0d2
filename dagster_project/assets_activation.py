"""Group ``activation``: push the latest scores and account metrics into HubSpot and Salesforce.

The logic is ``activation.run_sync``. Without credentials in the environment (the embedded default)
each sync starts the local CRM sandbox in process, with its state beside the warehouse, and says so
in the log, so ``make run`` ends with the data in a CRM a person can inspect.
"""

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, asset

from activation import load_mapping, run_sync
from activation.sandbox import run_sandbox
from dagster_project.assets_sources import WAREHOUSE_POOL
from dagster_project.partitions import daily_partitions
from dagster_project.resources import WarehouseResource
from ml.warehouse import table_exists

# The variable whose presence means "a real CRM is configured" for each destination.
CREDENTIAL_ENV = {"hubspot": "HUBSPOT_ACCESS_TOKEN", "salesforce": "SALESFORCE_CLIENT_ID"}
PARTITION_TAG, RANGE_END_TAG = "dagster/partition", "dagster/asset_partition_range_end"


def targets_latest_day(run_tags: Mapping[str, str], latest_partition: str | None) -> bool:
    """False for a run of older partitions only (a backfill): it must never overwrite the CRM."""
    last = run_tags.get(RANGE_END_TAG) or run_tags.get(PARTITION_TAG)
    return last is None or latest_partition is None or last >= latest_partition


@contextlib.contextmanager
def crm_environment(destination: str, warehouse: Path, log) -> Iterator[dict[str, str]]:
    """The environment the sync reads its credentials from: the real one when configured, else a
    sandbox started for the duration of the sync."""
    if os.environ.get(CREDENTIAL_ENV[destination]):
        yield dict(os.environ)
        return
    state = warehouse.parent / "crm_sandbox.sqlite"
    with run_sandbox(state_path=state) as sandbox:
        log.info(
            f"{CREDENTIAL_ENV[destination]} is not set: syncing {destination} to the local CRM sandbox at "
            f"{sandbox.url} (state in {state}); set the {destination.upper()}_* variables to use a real CRM"
        )
        yield {**os.environ, **sandbox.env()}


def sync(context: AssetExecutionContext, warehouse: WarehouseResource, destination: str) -> MaterializeResult:
    if not targets_latest_day(context.run.tags, daily_partitions.get_last_partition_key()):
        context.log.info("a backfill of older days: nothing is synced (the CRM keeps the latest scores)")
        return MaterializeResult(metadata={"skipped": "backfill of older partitions"})
    path = Path(warehouse.path)
    mapping = load_mapping()
    with warehouse.connect() as con:
        ready = [o.name for o in mapping.for_destination(destination) if table_exists(con, "main", o.relation)]
    missing = sorted({o.name for o in mapping.for_destination(destination)} - set(ready))
    if missing:  # e.g. no champion yet, so no lead_scores: sync what exists, say what waits
        context.log.warning(f"not synced yet, their tables do not exist: {missing}")
    metadata: dict[str, object] = {"waiting_for_tables": missing}
    if not ready:
        return MaterializeResult(metadata=metadata)
    with crm_environment(destination, path, context.log) as env, warehouse.connect() as con:
        reports = run_sync(con, destination, mapping=mapping, objects=ready, env=env)
    for report in reports:
        context.log.info(
            f"{report.mapping_object} -> {destination} {report.object}: {report.status}, sent {report.sent}, "
            f"created {report.created}, updated {report.updated}, unchanged {report.unchanged}, "
            f"failed {report.failed}, deferred {report.deferred}, {report.api_calls} API calls"
        )
        for field in (
            "status",
            "sent",
            "created",
            "updated",
            "cleared",
            "unchanged",
            "failed",
            "deferred",
            "api_calls",
            "rate_limited",
        ):
            metadata[f"{report.mapping_object}_{field}"] = getattr(report, field)
    return MaterializeResult(metadata=metadata)


def build_sync_asset(destination: str, crm_label: str):
    """One asset per CRM: the latest scores and account metrics, only what changed."""

    @asset(
        name=f"{destination}_sync",
        group_name="activation",
        deps=[AssetKey("lead_scores"), AssetKey("account_metrics")],
        pool=WAREHOUSE_POOL,
        kinds={destination},
        description=f"Latest lead scores and account metrics to {crm_label} (only what changed).",
    )
    def _sync(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
        return sync(context, warehouse, destination)

    return _sync


hubspot_sync = build_sync_asset("hubspot", "HubSpot contacts and companies")
salesforce_sync = build_sync_asset("salesforce", "Salesforce Leads and Accounts")
