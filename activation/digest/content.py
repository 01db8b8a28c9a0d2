"""What each rep's morning digest says: their leads ranked, what changed since yesterday, and three to call.

The warehouse is read with three small queries (reps, the rep-owned consented leads of the day, the day's
alerts); everything else - who gets a digest, the ranking, the three to call and why - is pure functions of
those rows, so the rules are unit-tested without a warehouse.

**The three leads to call today** (:func:`call_list`) - opinionated, in this order:

1. *New to you*: an ``unowned_hot`` alert of the day on a lead now owned by the rep (routed to them). Nobody
   has called it yet and speed-to-lead matters most for a hot lead nobody owned.
2. *Spikes*: a ``spike`` alert of the day. A change in behaviour is a window that closes; a steadily high
   score will still be there tomorrow.
3. *Tier A*: the best-fit leads (fit letter ``A``: A1...A4) by score.
4. Everyone else by score, so a rep with leads always gets up to three names.

Within a group: higher score first, then the larger score change (the alert's change, else the 7-day
change), then the lead id (stable). A lead with a ``decline`` alert of the day is never in groups 3-4: its
interest just fell, so it is reviewed in the declines section instead of called first.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb

CALL_LIST_SIZE = 3
ALERT_KINDS = ("spike", "unowned_hot", "decline")

# Why a digest was not built for a rep (DigestBatch.skipped).
SKIP_INACTIVE = "inactive"
SKIP_NO_EMAIL = "no_email"
SKIP_NO_LEADS = "no_leads"
SKIP_UNKNOWN_USER = "unknown_user"  # leads are owned by a user id that main.crm_users does not hold

# Relations (and the columns of each) the digest reads: checked first so a warehouse that lacks one gets one
# clear message naming everything missing, not a DuckDB binder error about the first.
REQUIRED: dict[str, tuple[str, ...]] = {
    "main.crm_users": ("user_id", "full_name", "email", "territory", "is_active"),
    "main.lead_scores": ("lead_id", "as_of", "score", "fit_score", "engagement_score", "tier", "reasons",
                         "score_change_7d"),
    "main.lead_alerts": ("lead_id", "alert_date", "kind", "score", "previous_score", "score_change", "rule"),
    "main.lead_crm_ids": ("lead_id", "email", "has_marketing_consent"),
    "activation.lead_owners": ("lead_id", "owner_user_id", "owner_source"),
}  # fmt: skip


class DigestInputError(ValueError):
    """The warehouse lacks what the digest reads (a relation, a column, any scores)."""


@dataclass(frozen=True)
class Rep:
    user_id: str
    full_name: str | None
    email: str | None
    territory: str | None = None
    team: str | None = None
    is_active: bool = True

    @property
    def first_name(self) -> str | None:
        return self.full_name.split()[0] if self.full_name and self.full_name.strip() else None


@dataclass(frozen=True)
class Alert:
    """A row of ``main.lead_alerts`` of the digest day."""

    lead_id: str
    kind: str  # spike | decline | unowned_hot
    score: float
    previous_score: float | None
    score_change: float | None
    rule: str | None


@dataclass(frozen=True)
class DigestLead:
    lead_id: str
    email: str | None
    name: str | None
    score: float
    tier: str | None
    reasons: tuple[str, ...]
    score_change_7d: float | None
    fit_score: float | None = None
    engagement_score: float | None = None
    owner_source: str | None = None  # crm | routed
    alerts: tuple[Alert, ...] = ()

    @property
    def display_name(self) -> str:
        """The person's name when the warehouse has one, else the e-mail, else the lead id."""
        return (self.name or "").strip() or self.email or self.lead_id

    def alert(self, kind: str) -> Alert | None:
        return next((a for a in self.alerts if a.kind == kind), None)

    @property
    def top_reason(self) -> str | None:
        return top_reason(self.reasons)


@dataclass(frozen=True)
class CallItem:
    lead: DigestLead
    label: str  # "New to you", "Spike", "Tier A1", "Top score"
    why: str  # one line: the alert's rule (or the tier and score), then the strongest positive reason


@dataclass(frozen=True)
class DigestContent:
    """One rep's digest for one day: everything the renderers need, nothing they have to look up."""

    day: dt.date
    rep: Rep
    leads: tuple[DigestLead, ...]  # ranked: score desc, 7-day change desc, lead id
    call_today: tuple[CallItem, ...]
    spikes: tuple[DigestLead, ...]
    new_to_you: tuple[DigestLead, ...]  # unowned_hot alerts of the day, now owned by this rep
    declines: tuple[DigestLead, ...]


@dataclass(frozen=True)
class Skipped:
    user_id: str
    reason: str  # one of SKIP_*
    leads: int = 0


@dataclass(frozen=True)
class DigestBatch:
    day: dt.date
    digests: tuple[DigestContent, ...]
    skipped: tuple[Skipped, ...] = field(default=())
    reps_considered: int = 0


# --- pure rules ----------------------------------------------------------------------------------------
def clean_number(value: Any) -> float | None:
    """DuckDB NULL and a NaN (pandas writes NaN for "no value a week ago") both mean: unknown."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def top_reason(reasons: Sequence[str], limit: int = 90) -> str | None:
    """The strongest reason that *raises* the score, in a rep's words and short enough for one line.

    Reasons are stored strongest first as ``'+ text'`` / ``'- text'``; a rep is told why to call, so the first
    positive one wins (else the first of any sign). Long generated reasons list several facts separated by
    ``;``: the first fact is kept, cut at a word boundary.
    """
    if not reasons:
        return None
    text = next((r.strip() for r in reasons if r.lstrip().startswith("+")), reasons[0].strip())
    text = text.removeprefix("+ ")  # a negative reason keeps its "- ": it says what holds the lead back
    text = text.split(";", 1)[0].strip()
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0].rstrip(",.:") + "…"
    return text or None


def rank_leads(leads: Iterable[DigestLead]) -> list[DigestLead]:
    """A rep's list: highest score first, then the largest 7-day change (unknown last), then lead id."""
    return sorted(leads, key=lambda lead: (-lead.score, -_or_lowest(lead.score_change_7d), lead.lead_id))


def _or_lowest(value: float | None) -> float:
    return -math.inf if value is None else value


def call_group(lead: DigestLead) -> int:
    """0 new to you, 1 spike, 2 tier A, 3 the rest, 4 declined today (see the module docstring)."""
    if lead.alert("unowned_hot"):
        return 0
    if lead.alert("spike"):
        return 1
    if lead.alert("decline"):
        return 4
    if (lead.tier or "").upper().startswith("A"):
        return 2
    return 3


def call_list(leads: Iterable[DigestLead], size: int = CALL_LIST_SIZE) -> list[CallItem]:
    """The ``size`` leads to call today, each with its one-line why (declined leads are never picked)."""
    candidates = [lead for lead in leads if call_group(lead) < 4]

    def key(lead: DigestLead) -> tuple[int, float, float, str]:
        alert = lead.alert("unowned_hot") or lead.alert("spike")
        change = alert.score_change if alert and alert.score_change is not None else lead.score_change_7d
        return call_group(lead), -lead.score, -_or_lowest(change), lead.lead_id

    return [CallItem(lead, call_label(lead), why(lead)) for lead in sorted(candidates, key=key)[:size]]


def call_label(lead: DigestLead) -> str:
    group = call_group(lead)
    if group == 0:
        return "New to you"
    if group == 1:
        return "Spike"
    if group == 2:
        return f"Tier {lead.tier}"
    return "Top score"


def why(lead: DigestLead) -> str:
    """One line: the alert rule that fired (or tier and score), then the strongest reason."""
    alert = lead.alert("unowned_hot") or lead.alert("spike")
    if alert and alert.rule:
        first = alert.rule.strip().rstrip(".")
    else:
        first = f"Score {lead.score:.0f}, tier {lead.tier or '?'}"
        if lead.score_change_7d is not None and round(lead.score_change_7d) != 0:
            first += f", {lead.score_change_7d:+.0f} in 7 days"
    reason = lead.top_reason
    return f"{first} - {reason}" if reason else first


def build_digests(
    day: dt.date,
    reps: Sequence[Rep],
    leads_by_owner: Mapping[str, Sequence[DigestLead]],
    alerts: Sequence[Alert],
) -> DigestBatch:
    """One digest per rep who is active, has an e-mail and owns at least one (consented, scored) lead.

    ``leads_by_owner`` holds only consented leads scored on ``day``; alerts of leads not in it (another
    owner's, unconsented, unscored) are ignored, so an alert can never bring a lead into a digest.
    """
    by_lead: dict[str, list[Alert]] = {}
    for alert in alerts:
        if alert.kind in ALERT_KINDS:
            by_lead.setdefault(alert.lead_id, []).append(alert)
    known = {rep.user_id for rep in reps}
    digests, skipped = [], []
    for rep in sorted(reps, key=lambda r: ((r.full_name or "").lower(), r.user_id)):
        owned = leads_by_owner.get(rep.user_id, ())
        reason = skip_reason(rep, len(owned))
        if reason:
            skipped.append(Skipped(rep.user_id, reason, len(owned)))
            continue
        leads = rank_leads(_with_alerts(lead, by_lead.get(lead.lead_id, ())) for lead in owned)
        digests.append(
            DigestContent(
                day=day,
                rep=rep,
                leads=tuple(leads),
                call_today=tuple(call_list(leads)),
                # a lead routed to the rep today is listed once, as new to them, even when it also spiked
                spikes=tuple(
                    lead for lead in _by_change(leads, "spike", descending=True) if not lead.alert("unowned_hot")
                ),
                new_to_you=tuple(lead for lead in leads if lead.alert("unowned_hot")),
                declines=tuple(_by_change(leads, "decline", descending=False)),
            )
        )
    for owner in sorted(set(leads_by_owner) - known):
        skipped.append(Skipped(owner, SKIP_UNKNOWN_USER, len(leads_by_owner[owner])))
    return DigestBatch(day, tuple(digests), tuple(skipped), reps_considered=len(reps))


def skip_reason(rep: Rep, lead_count: int) -> str | None:
    if not rep.is_active:
        return SKIP_INACTIVE
    if not rep.email or "@" not in rep.email.strip(" @"):
        return SKIP_NO_EMAIL
    if lead_count == 0:
        return SKIP_NO_LEADS
    return None


def _with_alerts(lead: DigestLead, alerts: Sequence[Alert]) -> DigestLead:
    if not alerts:
        return lead
    return DigestLead(**{**lead.__dict__, "alerts": tuple(sorted(alerts, key=lambda a: a.kind))})


def _by_change(leads: Sequence[DigestLead], kind: str, *, descending: bool) -> list[DigestLead]:
    """Leads with an alert of ``kind``: the biggest move first (largest rise, or steepest fall)."""
    with_alert = [lead for lead in leads if lead.alert(kind)]

    def change(lead: DigestLead) -> float:
        value = lead.alert(kind).score_change  # type: ignore[union-attr]
        return 0.0 if value is None else value

    return sorted(with_alert, key=lambda lead: ((-change(lead) if descending else change(lead)), lead.lead_id))


# --- warehouse ------------------------------------------------------------------------------------------
def check_inputs(con: duckdb.DuckDBPyConnection) -> None:
    """Raise :class:`DigestInputError` naming every relation or column the digest needs and does not find."""
    rows = con.execute(
        "SELECT table_schema || '.' || table_name, column_name FROM information_schema.columns "
        "WHERE table_catalog = current_database()"
    ).fetchall()
    present: dict[str, set[str]] = {}
    for relation, column in rows:
        present.setdefault(relation, set()).add(column)
    problems = []
    for relation, columns in REQUIRED.items():
        if relation not in present:
            problems.append(f"{relation} is missing")
            continue
        missing = [c for c in columns if c not in present[relation]]
        if missing:
            problems.append(f"{relation} lacks column(s) {', '.join(missing)}")
    if problems:
        raise DigestInputError("the morning digest cannot be built: " + "; ".join(problems))


def latest_day(con: duckdb.DuckDBPyConnection) -> dt.date:
    """The digest day by default: the latest scoring day (``max(as_of)`` of ``main.lead_scores``)."""
    (day,) = con.execute("SELECT max(as_of) FROM main.lead_scores").fetchone()
    if day is None:
        raise DigestInputError("main.lead_scores has no rows: there is no scoring day to build a digest for")
    return day


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_name = ? AND table_catalog = current_database()",
        [table],
    ).fetchall()
    return {row[0] for row in rows}


def _name_expression(con: duckdb.DuckDBPyConnection) -> str:
    """``main.lead_crm_ids`` may carry the person's name (``lead_name``, ``full_name``, or ``first_name`` and
    ``last_name``); without one the digest shows the e-mail."""
    columns = _columns(con, "lead_crm_ids")
    for column in ("lead_name", "full_name"):
        if column in columns:
            return f"i.{column}"
    if {"first_name", "last_name"} <= columns:
        return "nullif(trim(concat_ws(' ', i.first_name, i.last_name)), '')"
    return "NULL::VARCHAR"


def load_digests(con: duckdb.DuckDBPyConnection, day: dt.date | None = None) -> DigestBatch:
    """Read the warehouse and build every rep's digest for ``day`` (default: the latest scoring day)."""
    check_inputs(con)
    day = day or latest_day(con)
    reps = [
        Rep(user_id, full_name, (email or "").strip().lower() or None, territory, team, is_active is not False)
        for user_id, full_name, email, territory, team, is_active in con.execute(
            "SELECT user_id, full_name, email, territory, "
            f"{'team' if 'team' in _columns(con, 'crm_users') else 'NULL'}, is_active FROM main.crm_users"
        ).fetchall()
    ]
    # Consent is the *current* consent (lead_crm_ids), not the day's: a lead that withdrew never appears.
    rows = con.execute(
        f"""
        SELECT o.owner_user_id, o.owner_source, s.lead_id, i.email, {_name_expression(con)} AS name, s.score,
               s.tier, s.reasons, s.score_change_7d, s.fit_score, s.engagement_score
        FROM main.lead_scores s
        JOIN activation.lead_owners o ON o.lead_id = s.lead_id
        JOIN main.lead_crm_ids i ON i.lead_id = s.lead_id
        WHERE s.as_of = ? AND o.owner_user_id IS NOT NULL AND i.has_marketing_consent
        """,
        [day],
    ).fetchall()
    leads_by_owner: dict[str, dict[str, DigestLead]] = {}
    for owner, source, lead_id, email, name, score, tier, reasons, change, fit, engagement in rows:
        lead = DigestLead(
            lead_id=lead_id,
            email=email,
            name=name,
            score=float(score),
            tier=tier,
            reasons=tuple(reasons or ()),
            score_change_7d=clean_number(change),
            fit_score=clean_number(fit),
            engagement_score=clean_number(engagement),
            owner_source=source,
        )
        leads_by_owner.setdefault(owner, {}).setdefault(lead_id, lead)  # a duplicated join row counts once
    alerts = [
        Alert(lead_id, kind, float(score), clean_number(previous), clean_number(change), rule)
        for lead_id, kind, score, previous, change, rule in con.execute(
            "SELECT lead_id, kind, score, previous_score, score_change, rule FROM main.lead_alerts "
            "WHERE alert_date = ? AND kind IN ('spike', 'decline', 'unowned_hot')",
            [day],
        ).fetchall()
    ]
    owned = {owner: list(leads.values()) for owner, leads in leads_by_owner.items()}
    return build_digests(day, reps, owned, alerts)
