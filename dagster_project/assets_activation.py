"""Group ``activation``: write the latest scores and account metrics onto the existing HubSpot and Salesforce
records.

The logic is ``activation.run_sync``; the ``crm`` resource decides where it goes: the local CRM sandbox (a
copy of the company's CRM, the embedded default) or the real portal and org (``LEADSCORE_CRM=live``).
"""

from collections.abc import Mapping

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from activation import load_mapping, run_sync
from dagster_project.assets_sources import WAREHOUSE_POOL
from dagster_project.partitions import daily_partitions
from dagster_project.resources import CrmResource, WarehouseResource
from ml.warehouse import table_exists

PARTITION_TAG, RANGE_END_TAG = "dagster/partition", "dagster/asset_partition_range_end"
REPORTED = ("status", "sent", "updated", "created", "cleared", "unchanged", "unmatched", "failed", "not_found",
            "deferred", "api_calls", "rate_limited")  # fmt: skip


def targets_latest_day(run_tags: Mapping[str, str], latest_partition: str | None) -> bool:
    """False for a run of older partitions only (a backfill): it must never overwrite the CRM."""
    last = run_tags.get(RANGE_END_TAG) or run_tags.get(PARTITION_TAG)
    return last is None or latest_partition is None or last >= latest_partition


def sync(
    context: AssetExecutionContext, warehouse: WarehouseResource, crm: CrmResource, destination: str
) -> MaterializeResult:
    if destination not in crm.destinations:
        context.log.info(f"{destination} is not among LEADSCORE_CRM_DESTINATIONS {crm.destinations}: not synced")
        return MaterializeResult(metadata={"skipped": "not an enabled destination"})
    if not targets_latest_day(context.run.tags, daily_partitions.get_last_partition_key()):
        context.log.info("a backfill of older days: nothing is synced (the CRM keeps the latest scores)")
        return MaterializeResult(metadata={"skipped": "backfill of older partitions"})
    mapping = load_mapping()
    with warehouse.connect() as con:
        objects = list(mapping.for_destination(destination))
        ready = [o.name for o in objects if all(table_exists(con, "main", r) for r in (o.relation, o.identity) if r)]
        missing = sorted({o.name for o in objects} - set(ready))
        if missing:  # e.g. no champion yet, so no lead_scores: sync what exists, say what waits
            context.log.warning(f"not synced yet, their tables do not exist: {missing}")
        metadata: dict[str, object] = {"crm_mode": crm.mode, "waiting_for_tables": missing}
        if not ready:
            return MaterializeResult(metadata=metadata)
        with crm.open(destination, con, context.log) as client:
            reports = run_sync(con, client, mapping=mapping, objects=ready, options=crm.sync_options())
    for report in reports:
        context.log.info(
            f"{report.mapping_object} -> {destination} {report.instance} {report.crm_object}: {report.status}, "
            f"sent {report.sent} (updated {report.updated}, cleared {report.cleared}, failed {report.failed}, "
            f"of which not found {report.not_found}), unchanged {report.unchanged}, unmatched {report.unmatched}, "
            f"deferred {report.deferred}, {report.api_calls} API calls"
        )
        metadata["crm_instance"] = report.instance
        for field in REPORTED:
            metadata[f"{report.mapping_object}_{field}"] = getattr(report, field)
    metadata["rejects"] = MetadataValue.md(
        "Open rejects are in `activation.rejects` (one row per record, with the CRM's reason); they are retried "
        "on every run until the CRM accepts them."
    )
    return MaterializeResult(metadata=metadata)


def build_sync_asset(destination: str, crm_label: str):
    """One asset per CRM: the latest scores and account metrics, only what changed."""

    @asset(
        name=f"{destination}_sync",
        group_name="activation",
        deps=[AssetKey(name) for name in ("lead_scores", "account_metrics", "lead_crm_ids", "account_crm_ids")],
        pool=WAREHOUSE_POOL,
        kinds={destination},
        description=f"Latest lead scores and account metrics onto the existing {crm_label} (only what changed; "
        "never creates records).",
    )
    def _sync(context: AssetExecutionContext, warehouse: WarehouseResource, crm: CrmResource) -> MaterializeResult:
        return sync(context, warehouse, crm, destination)

    return _sync


hubspot_sync = build_sync_asset("hubspot", "HubSpot contacts and companies")
salesforce_sync = build_sync_asset("salesforce", "Salesforce Leads, Contacts and Accounts")
