"""Group ``activation``: write the latest scores and account metrics onto the existing HubSpot and Salesforce
records.

The logic is ``activation.run_sync``; the ``crm`` resource decides where it goes: the local CRM sandbox (a
copy of the company's CRM, the embedded default) or the real portal and org (``LEADSCORE_CRM=live``).

Each sync asset carries a check, ``<crm>_rejects``: it passes when the CRM holds no open rejects of
leadscore's (``activation.rejects``), and warns - never blocks - otherwise, showing how many there are and
the first of them, so a person sees what the CRM refused without opening the warehouse.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
    asset,
)

from activation import load_mapping, run_sync
from dagster_project.assets_sources import WAREHOUSE_POOL
from dagster_project.partitions import latest_partition_at
from dagster_project.resources import CrmResource, WarehouseResource
from ml.warehouse import table_exists

PARTITION_TAG, RANGE_END_TAG = "dagster/partition", "dagster/asset_partition_range_end"
REPORTED = ("status", "sent", "updated", "created", "cleared", "unchanged", "unmatched", "failed", "not_found",
            "deferred", "api_calls", "rate_limited")  # fmt: skip


def targets_latest_day(run_tags: Mapping[str, str], latest_partition: str | None) -> bool:
    """False for a run of older partitions only (a backfill): it must never overwrite the CRM."""
    last = run_tags.get(RANGE_END_TAG) or run_tags.get(PARTITION_TAG)
    return last is None or latest_partition is None or last >= latest_partition


def run_targets_latest_day(context: AssetExecutionContext) -> bool:
    """``targets_latest_day`` for this run, the latest day taken at the run's launch (see
    ``latest_partition_at``)."""
    record = context.instance.get_run_record_by_id(context.run_id)
    launched = record.create_timestamp if record else datetime.now(UTC)
    return targets_latest_day(context.run.tags, latest_partition_at(launched))


# The mapping objects each kind of asset syncs: the scores and metrics (this group), and the workflow's
# tasks and routed owners (group workflow, after routing).
SCORE_OBJECTS = ("leads", "accounts")
WORKFLOW_OBJECTS = ("tasks", "lead_owners")


def relation_exists(con: duckdb.DuckDBPyConnection, relation: str) -> bool:
    """``table`` (schema main) or ``schema.table`` exists (as a table or a view)."""
    schema, _, table = relation.rpartition(".")
    return table_exists(con, schema or "main", table)


def sync(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    crm: CrmResource,
    destination: str,
    object_names: Sequence[str] = SCORE_OBJECTS,
    check_name: str | None = None,
) -> MaterializeResult:
    check_name = check_name or rejects_check_name(destination)
    if destination not in crm.destinations:
        context.log.info(f"{destination} is not among LEADSCORE_CRM_DESTINATIONS {crm.destinations}: not synced")
        return skipped(warehouse, destination, "not an enabled destination", object_names, check_name)
    if not run_targets_latest_day(context):
        context.log.info("a backfill of older days: nothing is synced (the CRM keeps the latest scores)")
        return skipped(warehouse, destination, "backfill of older partitions", object_names, check_name)
    mapping = load_mapping()
    with warehouse.connect(log=context.log) as con:
        objects = [o for o in mapping.for_destination(destination) if o.name in object_names]
        ready = [o.name for o in objects if all(relation_exists(con, r) for r in (o.relation, o.identity) if r)]
        missing = sorted({o.name for o in objects} - set(ready))
        if missing:  # e.g. no champion yet, so no lead_scores: sync what exists, say what waits
            context.log.warning(f"not synced yet, their tables do not exist: {missing}")
        metadata: dict[str, object] = {"crm_mode": crm.mode, "waiting_for_tables": missing}
        if not ready:
            check = rejects_check(con, destination, objects=object_names, check_name=check_name)
            return MaterializeResult(metadata=metadata, check_results=[check])
        with crm.open(destination, con, context.log) as client:
            reports = run_sync(con, client, mapping=mapping, objects=ready, options=crm.sync_options())
        instance = next((r.instance for r in reversed(reports) if r.instance), None)
        check = rejects_check(con, destination, instance, objects=object_names, check_name=check_name)
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
    metadata["open_rejects"] = check.metadata["open_rejects"]
    return MaterializeResult(metadata=metadata, check_results=[check])


def skipped(
    warehouse: WarehouseResource,
    destination: str,
    why: str,
    object_names: Sequence[str] = SCORE_OBJECTS,
    check_name: str | None = None,
) -> MaterializeResult:
    """Nothing synced; the rejects check still tells what is open (from the last sync that ran)."""
    if Path(warehouse.path).exists():
        with warehouse.connect(read_only=True) as con:
            check = rejects_check(con, destination, objects=object_names, check_name=check_name)
    else:
        check = rejects_check(None, destination, objects=object_names, check_name=check_name)
    return MaterializeResult(metadata={"skipped": why}, check_results=[check])


# --- the rejects check -----------------------------------------------------------------------------------
REJECTS_SHOWN = 10
REASON_CHARS = 160


def rejects_check_name(destination: str) -> str:
    return f"{destination}_rejects"


@dataclass(frozen=True)
class Reject:
    """One open reject, as the check shows it."""

    object: str  # the mapping object (lead_scores, account_metrics...)
    crm_object: str | None  # where it was sent (contacts, Lead...)
    record_key: str  # the warehouse row
    crm_id: str | None  # the CRM record, when the CRM ever confirmed one for this row
    error_code: str | None
    reason: str | None
    attempts: int


def _cell(value: object, limit: int = REASON_CHARS) -> str:
    """A value as one Markdown table cell: no line breaks or pipes, long text shortened."""
    text = " ".join(str(value).split()) if value not in (None, "") else "—"
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("|", "\\|")


def rejects_table(rejects: Sequence[Reject], total: int) -> str:
    """Markdown: the first rejects (object, CRM id, error...) and how many more there are."""
    if not total:
        return "No open rejects: the CRM accepted every record leadscore sent."
    lines = [
        "| object | CRM object | record | CRM id | error | reason | attempts |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {_cell(r.object)} | {_cell(r.crm_object)} | {_cell(r.record_key)} | {_cell(r.crm_id)} "
            f"| {_cell(r.error_code)} | {_cell(r.reason)} | {r.attempts} |"
            for r in rejects
        ),
    ]
    if total > len(rejects):
        lines.append(f"\n{len(rejects)} of {total:,} open rejects shown; all are in `activation.rejects`.")
    return "\n".join(lines)


def open_rejects(
    con: duckdb.DuckDBPyConnection,
    destination: str,
    instance: str | None = None,
    limit: int = REJECTS_SHOWN,
    objects: Sequence[str] | None = None,
) -> tuple[int, dict[str, int], list[Reject]]:
    """How many rejects are open for ``destination`` (and CRM ``instance``, when known; of the mapping
    ``objects``, when given), by error code, and the most recent ``limit`` of them."""
    if not table_exists(con, "activation", "rejects"):
        return 0, {}, []
    where, params = "r.destination = ?", [destination]
    if objects:
        where += f" AND r.object IN ({', '.join('?' for _ in objects)})"
        params += list(objects)
    if instance:
        where, params = where + " AND r.instance = ?", [*params, instance]
    by_code = dict(
        con.execute(
            f"SELECT coalesce(r.error_code, '?'), count(*) FROM activation.rejects r WHERE {where} "
            "GROUP BY 1 ORDER BY 2 DESC, 1",
            params,
        ).fetchall()
    )
    # The CRM id: where this CRM instance last confirmed the row (a never-confirmed row has none yet).
    crm_id, join = (
        ("s.crm_id", "LEFT JOIN activation.sync_state s USING (destination, instance, object, record_key)")
        if table_exists(con, "activation", "sync_state")
        else ("NULL", "")
    )
    rows = con.execute(
        f"SELECT r.object, r.crm_object, r.record_key, {crm_id}, r.error_code, r.reason, r.attempts "
        f"FROM activation.rejects r {join} WHERE {where} "
        "ORDER BY r.last_failed_at DESC, r.object, r.record_key LIMIT ?",
        [*params, limit],
    ).fetchall()
    return sum(by_code.values()), by_code, [Reject(*row) for row in rows]


def rejects_check(
    con: duckdb.DuckDBPyConnection | None,
    destination: str,
    instance: str | None = None,
    objects: Sequence[str] | None = SCORE_OBJECTS,
    check_name: str | None = None,
) -> AssetCheckResult:
    found = open_rejects(con, destination, instance, objects=objects) if con is not None else (0, {}, [])
    total, by_code, shown = found
    return AssetCheckResult(
        check_name=check_name or rejects_check_name(destination),
        passed=total == 0,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "open_rejects": total,
            "by_error_code": MetadataValue.json(by_code),
            "crm_instance": instance or "all",
            "first_rejects": MetadataValue.md(rejects_table(shown, total)),
        },
    )


def build_sync_asset(destination: str, crm_label: str):
    """One asset per CRM: the latest scores and account metrics, only what changed."""

    @asset(
        name=f"{destination}_sync",
        group_name="activation",
        deps=[AssetKey(name) for name in ("lead_scores", "account_metrics", "lead_crm_ids", "account_crm_ids")],
        pool=WAREHOUSE_POOL,
        kinds={destination},
        description=(
            f"Writes the latest lead scores (with their reasons) and account metrics onto the existing {crm_label}, "
            "matched by the CRM's own record ids. Only what changed since the CRM last confirmed it is sent; no "
            "record is ever created. Runs for the latest day only (a backfill of older days syncs nothing). "
            "Materialization metadata: per mapping object, what was sent, updated, cleared, unchanged, unmatched "
            f"and failed. Records the CRM refused stay in `activation.rejects` and are retried every run: the "
            f"`{rejects_check_name(destination)}` check warns while any are open."
        ),
        check_specs=[
            AssetCheckSpec(
                rejects_check_name(destination),
                asset=f"{destination}_sync",
                description=(
                    f"Passes when {crm_label.split(' ')[0]} holds no open rejects: every record leadscore sent was "
                    "accepted (`activation.rejects` has no row for this CRM). WARN otherwise - never blocking; the "
                    "refused records are retried on every run. Metadata: the count, counts by error code and a "
                    f"table of the {REJECTS_SHOWN} most recent rejects (object, record, CRM id, error, reason)."
                ),
            )
        ],
    )
    def _sync(context: AssetExecutionContext, warehouse: WarehouseResource, crm: CrmResource) -> MaterializeResult:
        return sync(context, warehouse, crm, destination)

    return _sync


hubspot_sync = build_sync_asset("hubspot", "HubSpot contacts and companies")
salesforce_sync = build_sync_asset("salesforce", "Salesforce Leads, Contacts and Accounts")
