"""The CRM tasks reps act on: one per new alert, for the lead's owner (``activation.alert_tasks``).

:func:`build_alert_tasks` turns the day's alerts (``main.lead_alerts``) into the relation the ``tasks``
mapping object syncs, in create mode, to HubSpot and Salesforce. Each row carries the owner everyone else
uses (``activation.lead_owners``: the CRM owner when active, else the routed one), that owner's id in each
CRM (``main.crm_users``), the lead's record ids (``main.lead_crm_ids``), and the task's words. Only leads that
consent to marketing get a task; an alert without any owner gets none (it is counted and logged: routing
is what gives hot leads an owner). An owner without an id in one CRM still gets a row: the sync rejects it
there with ``owner_not_in_crm`` rather than assigning the task to nobody.

The words are pure functions of the alert (unit-tested): what happened in the subject (at most 255
characters, Salesforce's limit for Subject), the rule and the three strongest reasons in the body.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

import duckdb
import pandas as pd

log = logging.getLogger(__name__)

TABLE = "activation.alert_tasks"
SUBJECT_MAX = 255  # Salesforce Task.Subject; HubSpot's hs_task_subject takes more
REASONS_SHOWN = 3
# HubSpot's due moment: 09:00 UTC of the alert day, after the nightly scoring and on the same calendar day
# from UTC-9 to UTC+14, so a rep in any territory but Hawaii sees the task due "today".
DUE_HOUR_UTC = 9
URGENT_KINDS = ("spike", "unowned_hot")  # a call today; a decline is a to-do

COLUMNS = (
    "alert_id", "lead_id", "alert_date", "kind", "owner_user_id", "hubspot_owner_id", "salesforce_user_id",
    "hubspot_contact_id", "salesforce_lead_id", "salesforce_contact_id", "email", "subject", "body", "due_date",
    "due_at", "status", "priority", "task_type",
)  # fmt: skip


# --- the words (pure) ---------------------------------------------------------------------------------
def gone_quiet(kind: str, score_change: float | None) -> bool:
    """A decline that lost no (whole) points: lead_alerts' silence rule, a hot lead untouched for days.

    Tasks and the digest describe it in words; quoting its score change would read "dropped 0 points"."""
    return kind == "decline" and (score_change is None or score_change > -0.5)


def task_subject(kind: str, score: float | None, score_change: float | None) -> str:
    """One line a rep reads in a task list, e.g. ``Leadscore: score jumped 23 points to 81 - call today``."""
    points = f"{abs(score_change or 0):.0f} point{'' if round(abs(score_change or 0)) == 1 else 's'}"
    now = f"{score:.0f}" if score is not None else "?"
    if kind == "spike":
        text = f"Leadscore: score jumped {points} to {now} - call today"
    elif gone_quiet(kind, score_change):
        # no points lost (yet), so no number to quote
        text = f"Leadscore: hot lead gone quiet (score {now}) - check in this week"
    elif kind == "decline":
        text = f"Leadscore: score dropped {points} to {now} - check in this week"
    elif kind == "unowned_hot":
        text = f"Leadscore: hot lead (score {now}) without an active owner, now yours - call today"
    else:
        text = f"Leadscore: {kind.replace('_', ' ')} alert (score {now})"
    return clip(text, SUBJECT_MAX)


def task_body(
    rule: str | None,
    reasons: Sequence[str] | None,
    score: float | None,
    previous_score: float | None,
    tier: str | None,
) -> str:
    """Plain text: why the alert fired, the strongest reasons (at most three), and the score."""
    lines = [rule.strip() if rule and rule.strip() else "Leadscore raised an alert for this lead."]
    shown = [r.strip() for r in (reasons or []) if r and r.strip()][:REASONS_SHOWN]
    if shown:
        # Reasons come signed ("+ Viewed pricing 4x in 7 days", "- No activity in 30 days"): kept as the bullet.
        lines += ["", "Top reasons:", *(r if r[:2] in ("+ ", "- ") else f"- {r}" for r in shown)]
    facts = []
    if score is not None:
        facts.append(f"Score {score:.0f}" + (f" (was {previous_score:.0f})" if previous_score is not None else ""))
    if tier:
        facts.append(f"tier {tier}")
    if facts:
        lines += ["", ", ".join(facts) + "."]
    return "\n".join(lines)


def task_priority(kind: str) -> str:
    """``high`` for what needs a call today (a spike, a hot lead just routed), else ``normal``."""
    return "high" if kind in URGENT_KINDS else "normal"


def task_type(kind: str) -> str:
    return "call" if kind in URGENT_KINDS else "todo"


def due_moment(day: dt.date) -> dt.datetime:
    """When a task of ``day`` is due, for CRMs that want a moment (naive UTC, as the warehouse stores it)."""
    return dt.datetime(day.year, day.month, day.day, DUE_HOUR_UTC)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


# --- the relation ------------------------------------------------------------------------------------
def build_alert_tasks(con: duckdb.DuckDBPyConnection, as_of: dt.date | str | None = None) -> int:
    """Replace ``activation.alert_tasks`` with the tasks of one day's alerts; returns how many rows.

    The day is ``as_of``, else the latest ``as_of`` of ``lead_scores`` (the run's new alerts), else the
    latest ``alert_date``. Raises ValueError naming what is missing when an input relation is absent.
    """
    for schema, table in (("main", "lead_alerts"), ("activation", "lead_owners"), ("main", "crm_users"),
                          ("main", "lead_crm_ids")):  # fmt: skip
        if not _exists(con, schema, table):
            raise ValueError(f"{schema}.{table} does not exist: build it before the alert tasks")
    day = _day(con, as_of)
    consent = (
        "AND i.has_marketing_consent"
        if "has_marketing_consent" in _columns(con, "main", "lead_crm_ids")
        else ""  # an older lead_crm_ids: main.lead_alerts holds consented leads only
    )
    rows = con.execute(
        f"""
        SELECT a.alert_id, a.lead_id, a.alert_date, a.kind, o.owner_user_id, u.hubspot_owner_id,
               u.salesforce_user_id, i.hubspot_contact_id, i.salesforce_lead_id, i.salesforce_contact_id, i.email,
               a.score, a.previous_score, a.score_change, a.tier, a.reasons, a.rule
        FROM main.lead_alerts a
        JOIN main.lead_crm_ids i ON i.lead_id = a.lead_id
        LEFT JOIN activation.lead_owners o ON o.lead_id = a.lead_id
        LEFT JOIN main.crm_users u ON u.user_id = o.owner_user_id
        WHERE a.alert_date = ? {consent}
        ORDER BY a.alert_id
        """,
        [day],
    ).fetchall()
    tasks, unowned = [], 0
    for row in rows:
        task = _task(dict(zip(_QUERY_COLUMNS, row, strict=True)))
        if task is None:
            unowned += 1
        else:
            tasks.append(task)
    if unowned:
        log.warning("%d alerts of %s have no owner (neither in the CRM nor routed): no task for them", unowned, day)
    _replace(con, tasks)
    log.info("activation.alert_tasks: %d tasks for the alerts of %s", len(tasks), day)
    return len(tasks)


_QUERY_COLUMNS = (
    "alert_id", "lead_id", "alert_date", "kind", "owner_user_id", "hubspot_owner_id", "salesforce_user_id",
    "hubspot_contact_id", "salesforce_lead_id", "salesforce_contact_id", "email", "score", "previous_score",
    "score_change", "tier", "reasons", "rule",
)  # fmt: skip


def _task(alert: dict[str, Any]) -> dict[str, Any] | None:
    """One task row from an alert joined with its owner and ids; None when the alert has no owner."""
    if not alert["owner_user_id"]:
        return None
    kind, day = str(alert["kind"]), alert["alert_date"]
    return {
        **{name: alert[name] for name in COLUMNS if name in alert},
        "subject": task_subject(kind, alert["score"], alert["score_change"]),
        "body": task_body(alert["rule"], alert["reasons"], alert["score"], alert["previous_score"], alert["tier"]),
        "due_date": day,
        "due_at": due_moment(day),
        "status": "not_started",
        "priority": task_priority(kind),
        "task_type": task_type(kind),
    }


def _replace(con: duckdb.DuckDBPyConnection, tasks: list[dict[str, Any]]) -> None:
    frame = pd.DataFrame(tasks, columns=list(COLUMNS), dtype="object")
    types = {"alert_date": "DATE", "due_date": "DATE", "due_at": "TIMESTAMP"}
    select = ", ".join(f'CAST("{c}" AS {types.get(c, "VARCHAR")}) AS "{c}"' for c in COLUMNS)
    con.execute("CREATE SCHEMA IF NOT EXISTS activation")
    con.register("_alert_tasks_frame", frame)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {TABLE} AS SELECT {select} FROM _alert_tasks_frame")
    finally:
        con.unregister("_alert_tasks_frame")


def _day(con: duckdb.DuckDBPyConnection, as_of: dt.date | str | None) -> dt.date:
    if as_of is not None:
        return as_of if isinstance(as_of, dt.date) else dt.date.fromisoformat(str(as_of))
    latest = None
    if _exists(con, "main", "lead_scores"):
        latest = con.execute("SELECT max(as_of) FROM main.lead_scores").fetchone()[0]
    if latest is None:
        latest = con.execute("SELECT max(alert_date) FROM main.lead_alerts").fetchone()[0]
    if latest is None:
        return dt.date.min  # no scores and no alerts: an empty day
    return latest.date() if isinstance(latest, dt.datetime) else latest


def _exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    sql = "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?"
    return bool(con.execute(sql, [schema, table]).fetchone()[0])


def _columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> set[str]:
    sql = "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?"
    return {r[0] for r in con.execute(sql, [schema, table]).fetchall()}
