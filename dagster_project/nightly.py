"""`make run`: queue the nightly job for the latest partition, follow it, then summarise.

A thin launcher: the run goes through the instance's queue and daemon like a scheduled run, so it shows in
the UI of `make dev` (runs, timeline, asset partitions) and takes its turn with any other run. Whatever the
run needs to decide (an empty warehouse needs its training history) the assets decide themselves.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import duckdb
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from dagster_project.launcher import clock, launch_and_follow
from dagster_project.partitions import daily_partitions
from ml.sources.summary import format_summary, warehouse_summary
from ml.warehouse import connect, warehouse_path

SYNC_FIELDS = ("created", "updated", "cleared", "unchanged", "unmatched", "failed")
NEXT_STEPS = (
    "  make dev     the Dagster UI on http://127.0.0.1:3000 (this run, its logs, the asset graph, checks)\n"
    "  make mlflow  the MLflow UI: http://127.0.0.1:5000/#/experiments?workflowType=machine_learning (training\n"
    "               runs, metrics, registered versions)"
)


def run_outcomes(instance: DagsterInstance, run_id: str) -> tuple[dict[str, dict], dict[str, dict]]:
    """This run's materialization metadata per asset and check results per check, as plain values."""
    materialized: dict[str, dict] = {}
    checks: dict[str, dict] = {}
    records = instance.get_records_for_run(
        run_id, of_type={DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_CHECK_EVALUATION}
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            m = event.step_materialization_data.materialization
            values = {k: getattr(v, "value", v) for k, v in m.metadata.items()}
            materialized.setdefault(m.asset_key.to_user_string(), {}).update(values)
        else:
            evaluation = event.asset_check_evaluation_data
            checks[evaluation.check_name] = {
                "passed": evaluation.passed,
                **{k: getattr(v, "value", v) for k, v in evaluation.metadata.items()},
            }
    return materialized, checks


def model_lines(materialized: Mapping[str, dict], checks: Mapping[str, dict]) -> list[str]:
    model = materialized.get("lead_scoring_model")
    if not model:
        return []
    # The champion scored the leads; a challenger the gate refused is named in the decision, not as the model.
    kept = model.get("status") == "kept_champion"
    version = (model.get("champion_version") if kept else model.get("model_version")) or "none"
    auc = model.get("roc_auc")
    figures = f", test ROC AUC {auc:.3f}" if isinstance(auc, float) and not kept else ""
    gate = checks.get("promotion_gate", {})
    decision, message = str(model.get("status", "?")), str(model.get("message", ""))
    if gate and not gate.get("passed"):
        decision += " (gate: champion kept)"
    said = f"{decision}: {message}" if message and not message.startswith(decision) else message or decision
    return [f"  model        {version}{figures}; {said}"]


def sync_lines(materialized: Mapping[str, dict]) -> list[str]:
    lines = []
    for crm in ("hubspot", "salesforce"):
        meta = materialized.get(f"{crm}_sync")
        if meta is None:
            continue
        if "skipped" in meta:
            lines.append(f"  {crm:<12} skipped: {meta['skipped']}")
            continue
        waiting = meta.get("waiting_for_tables") or []
        if waiting:
            lines.append(f"  {crm:<12} not synced yet (their tables do not exist): {', '.join(map(str, waiting))}")
        objects = sorted({k.rsplit("_", 1)[0] for k in meta if k.endswith("_status")})
        for obj in objects:
            counts = ", ".join(f"{f} {meta.get(f'{obj}_{f}', 0):,}" for f in SYNC_FIELDS)
            lines.append(f"  {crm:<12} {obj}: {meta.get(f'{obj}_status')}: {counts}")
    return lines


def workflow_lines(materialized: Mapping[str, dict]) -> list[str]:
    """Alerts, routing, tasks and digests of the run, one line each (what a sales manager asks first)."""
    lines = []
    tasks = materialized.get("alert_tasks", {})
    if "alerts" in tasks:
        lines.append(f"  alerts       {tasks.get('alert_day')}: {tasks['alerts']:,} ({tasks.get('by_kind')}); "
                     f"{tasks.get('tasks', 0):,} tasks for owners")  # fmt: skip
    routing = materialized.get("lead_routing", {})
    if "assigned" in routing:
        lines.append(f"  routing      {routing['assigned']:,} hot leads assigned ({routing.get('assigned_by_rule')}), "
                     f"{routing.get('unassigned', 0):,} left without a rep")  # fmt: skip
    for crm in ("hubspot", "salesforce"):
        meta = materialized.get(f"{crm}_tasks", {})
        if "tasks_status" in meta:
            counts = ", ".join(f"{f} {meta.get(f'tasks_{f}', 0):,}" for f in ("created", "unchanged", "failed"))
            lines.append(f"  {crm:<12} tasks: {meta['tasks_status']}: {counts}")
        elif "skipped" in meta:
            lines.append(f"  {crm:<12} tasks skipped: {meta['skipped']}")
    digest = materialized.get("morning_digest", {})
    if "sent" in digest:
        lines.append(f"  digest       {digest.get('day')}: sent {digest['sent']}, already sent "
                     f"{digest.get('already_sent', 0)}, failed {digest.get('failed', 0)}; mail in "
                     f"{digest.get('mail_sink')}")  # fmt: skip
    elif "skipped" in digest:
        lines.append(f"  digest       skipped: {digest['skipped']}")
    return lines


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--partition", help="day to run (default: the latest complete day)")
    parser.add_argument(
        "--days",
        type=int,
        default=1,
        help="run this many consecutive days ending with the partition, oldest first (make run: 2, so that the "
        "second day's alerts have a day to compare with)",
    )
    args = parser.parse_args(argv)
    environ = dict(os.environ if environ is None else environ)
    last = args.partition or daily_partitions.get_last_partition_key()
    if args.days < 1:
        parser.error("--days must be at least 1")
    days = [
        (dt.date.fromisoformat(last) - dt.timedelta(days=back)).isoformat() for back in range(args.days - 1, -1, -1)
    ]
    for partition in days:
        status = run_one(partition, environ)
        if status:
            return status
    return 0


def run_one(partition: str, environ: Mapping[str, str]) -> int:
    """One nightly run for ``partition``: launch, follow, summarise. Returns the exit status."""
    warehouse = warehouse_path(environ)
    print(f"leadscore nightly for {partition} on {warehouse}", flush=True)
    with DagsterInstance.get() as instance:
        launch = launch_and_follow(instance, "nightly", partition, environ, say=lambda s: print(s, flush=True))
        materialized, checks = run_outcomes(instance, launch.run_id)
    total = f"in {clock(launch.seconds)}"
    if launch.status != DagsterRunStatus.SUCCESS:
        print(f"nightly run {launch.run_id} {launch.status.value} {total}; its logs: make dev, then Runs",
              file=sys.stderr)  # fmt: skip
        return 1
    print(f"\nnightly run {launch.run_id} succeeded {total}")
    try:
        if Path(warehouse).exists():
            with connect(warehouse, read_only=True) as con:
                print(format_summary(warehouse_summary(con)))
    except duckdb.IOException as exc:  # the next queued run is already writing: the run itself succeeded
        print(f"  (warehouse figures skipped: {str(exc).splitlines()[0]})")
    for line in model_lines(materialized, checks) + sync_lines(materialized) + workflow_lines(materialized):
        print(line)
    print(f"\nlook further:\n{NEXT_STEPS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
