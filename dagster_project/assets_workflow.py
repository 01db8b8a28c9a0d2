"""Group ``workflow``: what makes reps act on the scores, after ``lead_scores``.

``lead_alerts`` (dbt, built on DuckDB where the scores are, whatever the engine) -> ``lead_routing`` (hot
leads without an active owner get one) -> ``alert_tasks`` (one task per new alert, for the owner) ->
``hubspot_tasks`` / ``salesforce_tasks`` (created exactly once through the sync engine) and
``morning_digest`` (one e-mail per rep, and optionally Slack). The logic is in ``activation/``; each channel
has a switch (``workflow`` resource). Like the CRM sync, nothing is delivered by a backfill of older days.

Checks: ``alert_volume`` on lead_alerts (an alert storm means a model or data problem, not a busy day),
``<crm>_task_rejects`` on the task assets, ``undelivered_digests`` on the digest.
"""

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

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
    asset_check,
)
from dagster_dbt import DbtCliResource, dbt_assets

from activation.digest import read_messages, run_smtp_sink, send_digests
from activation.owners import build_owner_writes
from activation.routing import route
from activation.tasks import build_alert_tasks
from dagster_project.assets_activation import WORKFLOW_OBJECTS, run_targets_latest_day, skipped, sync
from dagster_project.assets_dbt import PROJECT, TRANSLATOR, run_dbt_build
from dagster_project.assets_sources import WAREHOUSE_POOL
from dagster_project.partitions import WORKFLOW_TAG
from dagster_project.resources import CrmResource, WarehouseResource, WorkflowResource
from ml.warehouse import table_exists

# Above this share of the day's scored leads, alerts stop being news: the check warns.
ALERT_STORM_SHARE = 0.05


@dbt_assets(
    manifest=PROJECT.manifest_path,
    project=PROJECT,
    select=f"tag:{WORKFLOW_TAG}",
    dagster_dbt_translator=TRANSLATOR,
    pool=WAREHOUSE_POOL,
    name="dbt_workflow",
)
def dbt_workflow(context: AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    """lead_alerts from the score history. Always the DuckDB target: the scores live in the DuckDB file, and on
    Spark the marts it joins are views there too."""
    yield from run_dbt_build(context, dbt, warehouse, target="duckdb")


def alert_counts(con: duckdb.DuckDBPyConnection) -> tuple[dt.date | None, dict[str, int], int]:
    """(latest alert day, alerts of that day by kind, leads scored that day)."""
    if not table_exists(con, "main", "lead_alerts") or not table_exists(con, "main", "lead_scores"):
        return None, {}, 0
    day = con.execute("SELECT max(as_of) FROM main.lead_scores").fetchone()[0]
    by_kind = dict(
        con.execute("SELECT kind, count(*) FROM main.lead_alerts WHERE alert_date = ? GROUP BY 1", [day]).fetchall()
    )
    scored = con.execute("SELECT count(*) FROM main.lead_scores WHERE as_of = ?", [day]).fetchone()[0]
    return day, by_kind, int(scored)


@asset_check(
    asset=AssetKey("lead_alerts"),
    name="alert_volume",
    description=(
        "Counts the alerts of the latest scoring day by kind. Warns when they exceed "
        f"{ALERT_STORM_SHARE:.0%} of the leads scored that day: reps would be flooded with tasks, which points "
        "at the model or the data (a feature gone wrong), not at a busy day."
    ),
)
def alert_volume(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.connect(read_only=True) as con:
        day, by_kind, scored = alert_counts(con)
    total = sum(by_kind.values())
    return AssetCheckResult(
        passed=total <= ALERT_STORM_SHARE * max(scored, 1),
        severity=AssetCheckSeverity.WARN,
        metadata={
            "alert_day": str(day),
            "alerts": total,
            "by_kind": MetadataValue.json(by_kind),
            "scored_leads": scored,
        },
    )


@asset(
    group_name="workflow",
    deps=[AssetKey(name) for name in ("lead_alerts", "lead_crm_ids", "account_crm_ids", "crm_users")],
    pool=WAREHOUSE_POOL,
    description=(
        "Gives each new unowned hot lead (alert unowned_hot) an active rep: its account's territory first, then "
        "the least-loaded rep (round robin weighted by open leads); every assignment is recorded in "
        "`activation.lead_assignments`, and `activation.lead_owners` is the owner tasks and digests use. Writing "
        "the owner into the CRM is the mapping object `lead_owners`, off by default. activation/routing.py."
    ),
)
def lead_routing(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    if not run_targets_latest_day(context):
        return MaterializeResult(metadata={"skipped": "backfill of older partitions"})
    with warehouse.connect(log=context.log) as con:
        report = route(con)
        owner_writes = build_owner_writes(con)
    context.log.info(
        f"routing {report.as_of}: {report.unowned_hot} unowned hot leads, {report.already_routed} routed before, "
        f"assigned {report.assigned}, {report.unassigned} without any active rep"
    )
    return MaterializeResult(
        metadata={
            "alert_day": str(report.as_of),
            "unowned_hot": report.unowned_hot,
            "already_routed": report.already_routed,
            "assigned": sum(report.assigned.values()),
            "assigned_by_rule": MetadataValue.json(report.assigned),
            "unassigned": report.unassigned,
            "routed_owners": owner_writes,
        }
    )


@asset(
    group_name="workflow",
    deps=[AssetKey("lead_routing"), AssetKey("lead_alerts")],
    pool=WAREHOUSE_POOL,
    description=(
        "One CRM task per alert of the latest day, for the lead's owner (`activation.lead_owners`): subject, "
        "body with the rule and top reasons, due that day; `activation.alert_tasks`. Alerts without an owner are "
        "counted, not sent. activation/tasks.py."
    ),
)
def alert_tasks(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    if not run_targets_latest_day(context):
        return MaterializeResult(metadata={"skipped": "backfill of older partitions"})
    with warehouse.connect(log=context.log) as con:
        tasks = build_alert_tasks(con)
        day, by_kind, _ = alert_counts(con)
    return MaterializeResult(
        metadata={"alert_day": str(day), "alerts": sum(by_kind.values()), "tasks": tasks, "by_kind": by_kind}
    )


def task_rejects_check_name(destination: str) -> str:
    return f"{destination}_task_rejects"


def build_tasks_asset(destination: str, crm_label: str):
    """One asset per CRM: the day's alert tasks, each created once."""

    @asset(
        name=f"{destination}_tasks",
        group_name="workflow",
        deps=[AssetKey("alert_tasks"), AssetKey(f"{destination}_sync")],
        pool=WAREHOUSE_POOL,
        kinds={destination},
        description=(
            f"Creates each new alert's task in {crm_label} for the lead's owner, exactly once (a key confirmed "
            "once is never sent again; an uncertain create is looked up by its alert id before any resend). Also "
            "writes routed owners when the mapping object `lead_owners` is enabled (off by default). Switch: "
            "LEADSCORE_WORKFLOW_TASKS."
        ),
        check_specs=[
            AssetCheckSpec(
                task_rejects_check_name(destination),
                asset=f"{destination}_tasks",
                description=(
                    f"Passes when {crm_label} refused no task (or routed owner) of leadscore's; WARN otherwise with "
                    "the rejects and their reasons (a task whose owner has no id in that CRM, a lead not in it). "
                    "Refused tasks are retried on the next run of the same day."
                ),
            )
        ],
    )
    def _tasks(
        context: AssetExecutionContext, warehouse: WarehouseResource, crm: CrmResource, workflow: WorkflowResource
    ) -> MaterializeResult:
        check_name = task_rejects_check_name(destination)
        if not workflow.crm_tasks:
            context.log.info("CRM tasks are switched off (LEADSCORE_WORKFLOW_TASKS=off)")
            return skipped(warehouse, destination, "switched off", WORKFLOW_OBJECTS, check_name)
        return sync(context, warehouse, crm, destination, WORKFLOW_OBJECTS, check_name)

    return _tasks


hubspot_tasks = build_tasks_asset("hubspot", "HubSpot")
salesforce_tasks = build_tasks_asset("salesforce", "Salesforce")


def digest_check(con: duckdb.DuckDBPyConnection | None, day: dt.date | None) -> AssetCheckResult:
    failed: list[tuple[Any, ...]] = []
    if con is not None and table_exists(con, "activation", "digest_deliveries"):
        failed = con.execute(
            "SELECT user_id, channel, error FROM activation.digest_deliveries WHERE status = 'failed' "
            "AND digest_date = coalesce(?, (SELECT max(digest_date) FROM activation.digest_deliveries)) "
            "ORDER BY user_id, channel",
            [day],
        ).fetchall()
    table = "\n".join(["| rep | channel | error |", "|---|---|---|", *(f"| {u} | {c} | {e} |" for u, c, e in failed)])
    return AssetCheckResult(
        check_name="undelivered_digests",
        passed=not failed,
        severity=AssetCheckSeverity.WARN,
        metadata={"undelivered": len(failed), "failed": MetadataValue.md(table if failed else "None.")},
    )


@asset(
    group_name="workflow",
    deps=[AssetKey("lead_routing"), AssetKey("lead_alerts"), AssetKey("lead_scores")],
    pool=WAREHOUSE_POOL,
    description=(
        "Each rep's morning digest for the latest scoring day: the three leads to call with why, the spikes and "
        "declines since yesterday, and their leads ranked by score. E-mail by SMTP (empty LEADSCORE_SMTP_HOST: "
        "the local sink, which files messages under data/mail), optionally Slack. Never to a rep without leads, "
        "never twice for one day (`activation.digest_deliveries`). activation/digest/."
    ),
    check_specs=[
        AssetCheckSpec(
            "undelivered_digests",
            asset="morning_digest",
            description=(
                "Passes when every digest of the day that should have gone out did; WARN with the reps, channels "
                "and errors otherwise. Failed deliveries are retried by the next run (never a sent one)."
            ),
        )
    ],
)
def morning_digest(
    context: AssetExecutionContext, warehouse: WarehouseResource, crm: CrmResource, workflow: WorkflowResource
) -> Iterator[Any]:
    latest = run_targets_latest_day(context)  # one look-up of the run's launch time
    if not latest or not (workflow.digest_email or workflow.digest_slack):
        why = "backfill of older partitions" if not latest else "switched off"
        yield MaterializeResult(metadata={"skipped": why}, check_results=[digest_check(None, None)])
        return
    with warehouse.connect(log=context.log) as con:
        if not table_exists(con, "main", "lead_scores"):
            yield MaterializeResult(metadata={"skipped": "nothing scored yet"}, check_results=[digest_check(con, None)])
            return
        with _channels(workflow, crm) as (smtp, slack):
            report = send_digests(con, sender=workflow.digest_from, smtp=smtp, slack_webhook_url=slack)
        check = digest_check(con, report.day)
    context.log.info(report.summary())
    received = len(read_messages(workflow.mail_dir, report.day)) if not workflow.smtp_host else None
    yield MaterializeResult(
        metadata={
            **{k: v for k, v in report.as_dict().items() if isinstance(v, int | str | float)},
            "skipped_reps": MetadataValue.json(report.skipped),
            "mail_sink": workflow.mail_dir if not workflow.smtp_host else "(SMTP relay)",
            **({"messages_in_sink_for_day": received} if received is not None else {}),
        },
        check_results=[check],
    )


@contextlib.contextmanager
def _channels(workflow: WorkflowResource, crm: CrmResource) -> Iterator[tuple[Any, str | None]]:
    """The delivery channels for one run: SMTP (the relay, or a local sink started for the run) and Slack (the
    configured webhook, or in sandbox mode the sandbox's own)."""
    with contextlib.ExitStack() as stack:
        smtp = None
        if workflow.digest_email:
            if workflow.smtp_host:
                smtp = workflow.smtp_settings()
            else:
                sink = stack.enter_context(run_smtp_sink(workflow.mail_dir))
                smtp = workflow.smtp_settings(sink.port)
        slack = None
        if workflow.digest_slack:
            if workflow.slack_webhook_url:
                slack = workflow.slack_webhook_url
            elif crm.mode == "sandbox":
                from activation.sandbox import run_sandbox  # only the embedded default needs it

                slack = stack.enter_context(run_sandbox(state_path=crm.sandbox_state)).slack_webhook_url()
            else:
                raise ValueError("LEADSCORE_DIGEST_SLACK=on needs LEADSCORE_SLACK_WEBHOOK_URL outside sandbox mode")
        yield smtp, slack
