"""Routing: every hot lead without an active owner gets one, by a rule a sales manager can read.

The rule (:func:`assign`), for the day's ``unowned_hot`` alerts (dbt ``lead_alerts``), highest score first:

1. **territory** - the candidates are the active reps of the lead's account territory (``account_crm_ids``;
   each account's from its country, dbt vars ``territories``); when that territory has no active rep,
   every active rep is a candidate (rule ``round_robin``);
2. **round robin weighted by open load** - the lead goes to the candidate with the fewest open leads
   (today's scored leads they own, plus what this run already gave them), ties to the lower user id. With
   equal loads this is a plain round robin; a rep who already carries more gets fewer.

Every assignment is recorded in ``activation.lead_assignments`` (append only: who got which lead for which
alert, from whom, by which rule, and whether the CRM owner field is written for it). Routing is idempotent
per alert: running the day again assigns nothing new. ``activation.lead_owners`` is the owner every
workflow consumer uses - the CRM owner while active, else the latest routed one while active, else none -
so tasks and digests agree on who owns a lead. Writing the routed owner into the CRM's owner field is the
sync mapping's object ``lead_owners``, disabled by default: a CRM's assignment rules often already route
leads, and leadscore should not fight them unless asked to.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

TERRITORY = "territory"
ROUND_ROBIN = "round_robin"

ASSIGNMENTS_DDL = """
CREATE TABLE IF NOT EXISTS activation.lead_assignments (
    lead_id VARCHAR NOT NULL,
    alert_id VARCHAR NOT NULL,
    as_of DATE NOT NULL,
    user_id VARCHAR NOT NULL,
    previous_owner_user_id VARCHAR,
    rule VARCHAR NOT NULL,
    assigned_at TIMESTAMP NOT NULL,
    crm_owner_write BOOLEAN NOT NULL,
    PRIMARY KEY (lead_id, alert_id)
)
"""

# The owner of every lead for the workflow: the CRM's while active, else the latest routed one while active.
LEAD_OWNERS_VIEW = """
CREATE OR REPLACE VIEW activation.lead_owners AS
WITH routed AS (
    SELECT lead_id, arg_max(user_id, assigned_at) AS user_id
    FROM activation.lead_assignments
    GROUP BY lead_id
)
SELECT
    leads.lead_id,
    CASE WHEN crm_owner.is_active THEN crm_owner.user_id WHEN routed_owner.is_active THEN routed_owner.user_id END
        AS owner_user_id,
    CASE WHEN crm_owner.is_active THEN 'crm' WHEN routed_owner.is_active THEN 'routed' END AS owner_source
FROM main.lead_crm_ids AS leads
LEFT JOIN main.crm_users AS crm_owner ON crm_owner.user_id = leads.owner_user_id
LEFT JOIN routed USING (lead_id)
LEFT JOIN main.crm_users AS routed_owner ON routed_owner.user_id = routed.user_id
"""


@dataclass(frozen=True)
class Rep:
    user_id: str
    territory: str
    open_load: int  # open leads owned today


@dataclass(frozen=True)
class HotLead:
    lead_id: str
    alert_id: str
    territory: str
    score: float
    previous_owner_user_id: str | None


@dataclass(frozen=True)
class Assignment:
    lead_id: str
    alert_id: str
    user_id: str
    rule: str
    previous_owner_user_id: str | None


def assign(leads: Sequence[HotLead], reps: Sequence[Rep]) -> list[Assignment]:
    """The routing rule (module docstring): territory first, then the least-loaded candidate. ``reps`` are
    the active reps only. No active rep at all: nothing is assigned (the alerts stay unowned)."""
    load = Counter({rep.user_id: rep.open_load for rep in reps})
    by_territory: dict[str, list[Rep]] = {}
    for rep in reps:
        by_territory.setdefault(rep.territory, []).append(rep)
    assignments = []
    for lead in sorted(leads, key=lambda lead: (-lead.score, lead.lead_id)):
        candidates, rule = by_territory.get(lead.territory, []), TERRITORY
        if not candidates:
            candidates, rule = list(reps), ROUND_ROBIN
        if not candidates:
            continue
        chosen = min(candidates, key=lambda rep: (load[rep.user_id], rep.user_id))
        load[chosen.user_id] += 1
        assignments.append(Assignment(lead.lead_id, lead.alert_id, chosen.user_id, rule, lead.previous_owner_user_id))
    return assignments


@dataclass(frozen=True)
class RoutingReport:
    as_of: dt.date | None
    unowned_hot: int  # unowned_hot alerts of the day
    already_routed: int  # of them, assigned by an earlier run
    assigned: dict[str, int]  # rule -> leads assigned now
    unassigned: int  # no active rep anywhere


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS activation")
    con.execute(ASSIGNMENTS_DDL)
    con.execute(LEAD_OWNERS_VIEW)


def route(
    con: duckdb.DuckDBPyConnection, as_of: dt.date | None = None, *, crm_owner_write: bool = False
) -> RoutingReport:
    """Assign the day's unowned hot leads (``as_of``: the latest alert day) and refresh ``lead_owners``.

    The day's assignments are inserted by one statement: a run killed half-way leaves none recorded."""
    ensure_tables(con)
    if as_of is None:
        as_of = con.execute("SELECT max(alert_date) FROM main.lead_alerts").fetchone()[0]
    if as_of is None:
        return RoutingReport(None, 0, 0, {}, 0)
    leads = [
        HotLead(*row)
        for row in con.execute(
            """
            SELECT alerts.lead_id, alerts.alert_id, coalesce(accounts.territory, ''), alerts.score,
                   alerts.owner_user_id
            FROM main.lead_alerts AS alerts
            JOIN main.lead_crm_ids AS leads USING (lead_id)
            LEFT JOIN main.account_crm_ids AS accounts ON accounts.account_id = leads.account_id
            WHERE alerts.kind = 'unowned_hot' AND alerts.alert_date = ? AND leads.has_marketing_consent
            """,
            [as_of],
        ).fetchall()
    ]
    done = {
        row[0]
        for row in con.execute("SELECT alert_id FROM activation.lead_assignments WHERE as_of = ?", [as_of]).fetchall()
    }
    pending = [lead for lead in leads if lead.alert_id not in done]
    reps = [
        Rep(*row)
        for row in con.execute(
            """
            WITH today AS (SELECT lead_id FROM main.lead_scores WHERE as_of = (SELECT max(as_of) FROM main.lead_scores))
            SELECT users.user_id, users.territory, count(today.lead_id)::INTEGER AS open_load
            FROM main.crm_users AS users
            LEFT JOIN activation.lead_owners AS owners ON owners.owner_user_id = users.user_id
            LEFT JOIN today ON today.lead_id = owners.lead_id
            WHERE users.is_active
            GROUP BY ALL
            """
        ).fetchall()
    ]
    assignments = assign(pending, reps)
    if assignments:  # one statement, so a run killed half-way records none of them
        con.executemany(
            "INSERT INTO activation.lead_assignments VALUES (?, ?, ?, ?, ?, ?, now()::TIMESTAMP, ?)",
            [
                (a.lead_id, a.alert_id, as_of, a.user_id, a.previous_owner_user_id, a.rule, crm_owner_write)
                for a in assignments
            ],
        )
    return RoutingReport(
        as_of=as_of,
        unowned_hot=len(leads),
        already_routed=len(leads) - len(pending),
        assigned=dict(Counter(a.rule for a in assignments)),
        unassigned=len(pending) - len(assignments),
    )
