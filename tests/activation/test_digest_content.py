"""The morning digest's content and rendering: who gets one, the ranking, the three to call and why, consent.

A small warehouse (a real DuckDB file) holds the relations of the issue-14 contract for a handful of reps;
the pure rules are also tested directly on hand-made leads.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from pathlib import Path

import duckdb
import pytest

from activation.digest import DigestInputError, load_digests, render_digest
from activation.digest.content import (
    Alert,
    DigestLead,
    Rep,
    build_digests,
    call_group,
    call_list,
    rank_leads,
    top_reason,
)
from activation.digest.render import message_id, render_html, render_text, subject_line

DAY = dt.date(2026, 11, 2)
SENDER = "Leadscore <digest@leadscore.example>"

# user_id, full_name, email, team, territory, is_active
USERS = [
    ("U1", "Ada Lovelace", "Ada@Example.com", "Enterprise", "EMEA", True),
    ("U2", "Grace Hopper", "grace@example.com", "Mid-market", "NA", True),
    ("U3", "Ian Inactive", "ian@example.com", "Mid-market", "NA", False),
    ("U4", "Nora Nomail", None, "Mid-market", "APAC", True),
    ("U5", "Emma Empty", "emma@example.com", "Mid-market", "LATAM", True),
]
# lead_id, owner, owner_source, consent, score, tier, score_change_7d, reasons
LEADS = [
    ("L01", "U1", "crm", True, 95.0, "A1", 3.0, ["+ Viewed pricing 4x in 7 days", "- Small company"]),
    ("L02", "U1", "crm", True, 70.0, "B2", 20.0, ["- No demo request", "+ Requested a demo today"]),
    ("L03", "U1", "crm", True, 60.0, "A2", -25.0, ["+ Director title"]),
    ("L04", "U1", "crm", True, 88.0, "A3", 1.0, ["+ Webinar attended"]),
    ("L05", "U1", "crm", True, 55.0, "C1", 10.0, []),
    ("L06", "U1", "crm", True, 88.0, "A4", 7.0, ["+ Trial workspace created"]),
    ("L07", "U1", "routed", True, 80.0, "A1", None, ["+ 12 pricing-page visits in the last 30 days"]),
    ("L08", "U1", "crm", False, 99.0, "A1", 30.0, ["+ Unconsented but hot"]),  # withdrew consent
    ("L09", "U2", "crm", True, 50.0, "B1", 15.0, ["+ Opened 3 emails"]),
    ("L13", "U2", "crm", True, 70.0, "A1", -2.0, ["+ Visited pricing"]),
    ("L14", "U2", "crm", True, 70.0, "A2", 5.0, ["+ Visited docs"]),
    ("L15", "U2", "crm", True, 90.0, "D4", 0.0, ["+ Huge engagement, poor fit"]),
    ("L16", "U2", "crm", True, 85.0, "A1", -20.0, ["+ Was hot"]),
    ("L20", "U3", "crm", True, 75.0, "A1", 0.0, []),  # an inactive rep's lead (the owners view would route it)
    ("L21", "U4", "crm", True, 75.0, "A1", 0.0, []),
    ("L22", "U5", "crm", False, 75.0, "A1", 0.0, []),  # Emma's only lead is unconsented: no digest for her
    ("L23", "U9", "crm", True, 65.0, "B1", 0.0, []),  # owned by a user id crm_users does not hold
    ("L24", None, None, True, 99.0, "A1", 0.0, []),  # unowned
]
# lead_id, kind, score, previous, change, rule, day
ALERTS = [
    ("L02", "spike", 70.0, 50.0, 20.0, "Score rose 20 points since yesterday.", DAY),
    ("L05", "spike", 55.0, 45.0, 10.0, "Score rose 10 points since yesterday.", DAY),
    ("L07", "unowned_hot", 80.0, 78.0, 2.0, "Hot lead (80) had no active owner: routed to you.", DAY),
    ("L03", "decline", 60.0, 85.0, -25.0, "Score fell 25 points since yesterday.", DAY),
    ("L08", "spike", 99.0, 60.0, 39.0, "Score rose 39 points since yesterday.", DAY),  # unconsented
    ("L01", "spike", 95.0, 40.0, 55.0, "An old spike.", DAY - dt.timedelta(days=1)),  # not the digest day
    ("L09", "spike", 50.0, 35.0, 15.0, "Score rose 15 points since yesterday.", DAY),
    ("L16", "decline", 85.0, 99.0, -14.0, "Score fell 14 points since yesterday.", DAY),
]


def build_warehouse(path: Path, *, users=USERS, leads=LEADS, alerts=ALERTS) -> duckdb.DuckDBPyConnection:
    """The issue-14 relations, exactly as the contract names them, for the rows above."""
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE main.crm_users (user_id VARCHAR, full_name VARCHAR, email VARCHAR, team VARCHAR, "
        "territory VARCHAR, is_active BOOLEAN, hubspot_owner_id VARCHAR, salesforce_user_id VARCHAR)"
    )
    con.executemany("INSERT INTO main.crm_users VALUES (?, ?, lower(?), ?, ?, ?, NULL, NULL)", [list(u) for u in users])
    con.execute(
        "CREATE TABLE main.lead_scores (lead_id VARCHAR, account_id VARCHAR, as_of DATE, score DOUBLE, "
        "fit_score DOUBLE, engagement_score DOUBLE, tier VARCHAR, reasons VARCHAR[], score_change_7d DOUBLE, "
        "model_version VARCHAR, feature_hash VARCHAR, scored_at TIMESTAMP)"
    )
    con.execute(
        "CREATE TABLE main.lead_crm_ids (lead_id VARCHAR, email VARCHAR, hubspot_contact_id VARCHAR, "
        "salesforce_lead_id VARCHAR, salesforce_contact_id VARCHAR, owner_user_id VARCHAR, account_id VARCHAR, "
        "has_marketing_consent BOOLEAN)"
    )
    con.execute("CREATE SCHEMA activation")
    con.execute("CREATE TABLE activation.lead_owners (lead_id VARCHAR, owner_user_id VARCHAR, owner_source VARCHAR)")
    yesterday = DAY - dt.timedelta(days=1)  # yesterday's scores (all 40): only read for that day's digest
    scores = [
        [lead_id, as_of, value, tier, reasons, change]
        for lead_id, _, _, _, score, tier, change, reasons in leads
        for as_of, value in ((DAY, score), (yesterday, 40.0))
    ]
    if leads:
        con.executemany(
            "INSERT INTO main.lead_scores VALUES (?, 'A-1', ?, ?, 50, 50, ?, ?, ?, 'lead_scoring/1', 'h', now())",
            scores,
        )
        con.executemany(
            "INSERT INTO main.lead_crm_ids VALUES (?, ?, NULL, NULL, NULL, ?, 'A-1', ?)",
            [[x[0], f"{x[0].lower()}@acme.example", x[1] if x[2] == "crm" else None, x[3]] for x in leads],
        )
        con.executemany("INSERT INTO activation.lead_owners VALUES (?, ?, ?)", [list(x[:3]) for x in leads])
    con.execute(
        "CREATE TABLE main.lead_alerts (alert_id VARCHAR, lead_id VARCHAR, account_id VARCHAR, alert_date DATE, "
        "kind VARCHAR, score DOUBLE, previous_score DOUBLE, score_change DOUBLE, tier VARCHAR, reasons VARCHAR[], "
        "rule VARCHAR, owner_user_id VARCHAR)"
    )
    for lead_id, kind, score, previous, change, rule, day in alerts:
        con.execute(
            "INSERT INTO main.lead_alerts "
            "VALUES (md5(? || ? || ?::VARCHAR), ?, 'A-1', ?, ?, ?, ?, ?, 'A1', [], ?, NULL)",
            [lead_id, kind, day, lead_id, day, kind, score, previous, change, rule],
        )
    return con


@pytest.fixture
def warehouse_path(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    build_warehouse(path).close()
    return path


@pytest.fixture
def con(warehouse_path: Path):
    with duckdb.connect(str(warehouse_path)) as connection:
        yield connection


def ids(leads) -> list[str]:
    return [lead.lead_id for lead in leads]


# --- from the warehouse -----------------------------------------------------------------------------------
def test_one_reps_digest_ranks_their_leads_and_says_whom_to_call_and_why(con) -> None:
    batch = load_digests(con)
    assert batch.day == DAY  # the latest scoring day by default
    ada = next(d for d in batch.digests if d.rep.user_id == "U1")
    assert ada.rep.email == "ada@example.com"
    # Score desc; the 88 tie goes to the larger 7-day change; the unconsented L08 (99) is nowhere.
    assert ids(ada.leads) == ["L01", "L06", "L04", "L07", "L02", "L03", "L05"]
    assert ids(ada.spikes) == ["L02", "L05"]  # biggest rise first; L08's spike is unconsented, L01's is old
    assert ids(ada.new_to_you) == ["L07"]
    assert ids(ada.declines) == ["L03"]
    # Routed hot lead first (speed to lead), then the day's spikes; tier A L01 at 95 waits for tomorrow.
    assert [(c.lead.lead_id, c.label) for c in ada.call_today] == [
        ("L07", "New to you"),
        ("L02", "Spike"),
        ("L05", "Spike"),
    ]
    assert ada.call_today[0].why == (
        "Hot lead (80) had no active owner: routed to you - 12 pricing-page visits in the last 30 days"
    )
    # The strongest *positive* reason, not the first one.
    assert ada.call_today[1].why == "Score rose 20 points since yesterday - Requested a demo today"
    assert ada.call_today[2].why == "Score rose 10 points since yesterday"  # no reasons: the rule alone


def test_tier_a_by_score_fills_the_call_list_and_a_declining_lead_is_not_called(con) -> None:
    grace = next(d for d in load_digests(con).digests if d.rep.user_id == "U2")
    # The spike first, then tier A by score (tie: the larger 7-day change); the D4 lead at 90 and the A1 lead
    # that declined today are not called.
    assert [(c.lead.lead_id, c.label) for c in grace.call_today] == [
        ("L09", "Spike"),
        ("L14", "Tier A2"),
        ("L13", "Tier A1"),
    ]
    assert grace.call_today[1].why == "Score 70, tier A2, +5 in 7 days - Visited docs"
    assert ids(grace.declines) == ["L16"]


def test_no_digest_for_inactive_reps_reps_without_email_or_without_consented_leads(con) -> None:
    batch = load_digests(con)
    assert sorted(d.rep.user_id for d in batch.digests) == ["U1", "U2"]
    assert {(s.user_id, s.reason) for s in batch.skipped} == {
        ("U3", "inactive"),
        ("U4", "no_email"),
        ("U5", "no_leads"),  # only an unconsented lead
        ("U9", "unknown_user"),  # owns a lead but is not in crm_users
    }
    assert batch.reps_considered == 5


def test_an_unconsented_lead_never_appears_anywhere(con) -> None:
    for digest in load_digests(con).digests:
        message = render_digest(digest, sender=SENDER)
        for part in ("plain", "html"):
            assert "l08@" not in message.get_body(preferencelist=(part,)).get_content()
        assert "L08" not in ids(digest.leads) + ids(digest.spikes) + [c.lead.lead_id for c in digest.call_today]


def test_another_day_and_names_when_the_warehouse_has_them(con) -> None:
    yesterday = load_digests(con, DAY - dt.timedelta(days=1))
    ada = next(d for d in yesterday.digests if d.rep.user_id == "U1")
    assert {lead.score for lead in ada.leads} == {40.0}
    assert ids(ada.spikes) == ["L01"]  # that day's alert
    con.execute("ALTER TABLE main.lead_crm_ids ADD COLUMN first_name VARCHAR")
    con.execute("ALTER TABLE main.lead_crm_ids ADD COLUMN last_name VARCHAR")
    con.execute("UPDATE main.lead_crm_ids SET first_name = 'Alan', last_name = 'Turing' WHERE lead_id = 'L01'")
    ada = next(d for d in load_digests(con).digests if d.rep.user_id == "U1")
    assert [lead.display_name for lead in ada.leads[:2]] == ["Alan Turing", "l06@acme.example"]
    con.execute("ALTER TABLE main.lead_crm_ids ADD COLUMN lead_name VARCHAR")  # the mart's own column wins
    con.execute("UPDATE main.lead_crm_ids SET lead_name = 'Ada Byron' WHERE lead_id = 'L06'")
    ada = next(d for d in load_digests(con).digests if d.rep.user_id == "U1")
    assert [lead.display_name for lead in ada.leads[:2]] == ["l01@acme.example", "Ada Byron"]


def test_a_warehouse_without_the_contract_relations_gets_one_clear_error(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("CREATE TABLE main.crm_users (user_id VARCHAR, full_name VARCHAR, email VARCHAR)")
        with pytest.raises(DigestInputError) as error:
            load_digests(con)
    message = str(error.value)
    assert "main.crm_users lacks column(s) territory, is_active" in message
    for relation in ("main.lead_scores", "main.lead_alerts", "main.lead_crm_ids", "activation.lead_owners"):
        assert f"{relation} is missing" in message


def test_no_scores_at_all_is_a_clear_error(tmp_path: Path) -> None:
    with build_warehouse(tmp_path / "w.duckdb", leads=[], alerts=[]) as con, pytest.raises(DigestInputError) as e:
        load_digests(con)
    assert "main.lead_scores has no rows" in str(e.value)


# --- the pure rules ---------------------------------------------------------------------------------------
def lead(lead_id: str, score: float, tier: str = "B1", change: float | None = 0.0, *alerts: Alert) -> DigestLead:
    return DigestLead(lead_id, f"{lead_id}@x.example", None, score, tier, (), change, alerts=alerts)


def alert(lead_id: str, kind: str, change: float = 10.0) -> Alert:
    return Alert(lead_id, kind, 50.0, 50.0 - change, change, f"{kind} rule")


def test_call_groups_and_order() -> None:
    leads = [
        lead("a", 99, "D1"),
        lead("b", 60, "A1", 1.0),
        lead("c", 60, "A2", 4.0),
        lead("d", 40, "C3", 0.0, alert("d", "spike", 5)),
        lead("e", 30, "C3", 0.0, alert("e", "spike", 25)),
        lead("f", 20, "D4", None, alert("f", "unowned_hot")),
        lead("g", 95, "A1", 0.0, alert("g", "decline", -30)),
    ]
    assert [call_group(x) for x in leads] == [3, 2, 2, 1, 1, 0, 4]
    assert ids(c.lead for c in call_list(leads, size=10)) == ["f", "d", "e", "c", "b", "a"]  # g: never
    # Fewer leads than three: as many as there are; none: none.
    assert ids(c.lead for c in call_list(leads[:2])) == ["b", "a"]
    assert call_list([]) == []


def test_ranking_puts_unknown_changes_last_and_is_stable() -> None:
    leads = [lead("z", 50, change=None), lead("y", 50, change=-3.0), lead("x", 50, change=-3.0), lead("w", 51)]
    assert ids(rank_leads(leads)) == ["w", "x", "y", "z"]


def test_top_reason_prefers_a_positive_reason_and_keeps_one_short_fact() -> None:
    assert top_reason(["- No webinar", "+ Viewed pricing 4x in 7 days"]) == "Viewed pricing 4x in 7 days"
    assert top_reason(["- No webinar"]) == "- No webinar"
    assert top_reason([]) is None
    long = "+ 1 pricing, case study or demo touches in the last 7 days; 6 touches in the last 30 days"
    assert top_reason([long]) == "1 pricing, case study or demo touches in the last 7 days"
    cut = top_reason(["+ " + "word " * 40], limit=30)
    assert cut.endswith("…") and len(cut) <= 30


def test_alerts_of_leads_outside_the_reps_list_are_ignored() -> None:
    rep = Rep("U1", "Ada", "ada@x.example")
    batch = build_digests(DAY, [rep], {"U1": [lead("a", 50)]}, [alert("other", "spike"), alert("a", "decline", -9)])
    (digest,) = batch.digests
    assert ids(digest.spikes) == [] and ids(digest.declines) == ["a"]


# --- rendering --------------------------------------------------------------------------------------------
def test_subject_counts_calls_spikes_and_new_leads(con) -> None:
    batch = load_digests(con)
    subjects = {d.rep.user_id: subject_line(d) for d in batch.digests}
    assert subjects == {
        "U1": "Leadscore - 3 leads to call today (2 spikes, 1 new)",
        "U2": "Leadscore - 3 leads to call today (1 spike)",
    }
    rep = Rep("U7", "Solo", "solo@x.example")
    (single,) = build_digests(DAY, [rep], {"U7": [lead("a", 10)]}, []).digests
    assert subject_line(single) == "Leadscore - 1 lead to call today"


def test_the_message_is_multipart_alternative_with_a_stable_message_id(con) -> None:
    ada = next(d for d in load_digests(con).digests if d.rep.user_id == "U1")
    now = dt.datetime(2026, 11, 3, 6, 30, tzinfo=dt.UTC)
    message = render_digest(ada, sender=SENDER, now=now)
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert parsed["To"] == "Ada Lovelace <ada@example.com>"
    assert parsed["From"] == SENDER
    assert parsed["Date"] == "Tue, 03 Nov 2026 06:30:00 +0000"
    assert parsed["Message-ID"] == message_id(DAY, "U1", SENDER)
    assert parsed["Message-ID"].endswith("@leadscore.example>")
    again = render_digest(ada, sender=SENDER)
    assert again["Message-ID"] == parsed["Message-ID"]  # the same rep and day: recognisably the same digest
    other_day = message_id(DAY + dt.timedelta(days=1), "U1", SENDER)
    assert other_day != parsed["Message-ID"] and message_id(DAY, "U2", SENDER) != parsed["Message-ID"]


def test_text_and_html_say_the_same_things_in_the_same_order(con) -> None:
    ada = next(d for d in load_digests(con).digests if d.rep.user_id == "U1")
    text, page = render_text(ada), render_html(ada)
    for body in (text, page):
        positions = [body.index(marker) for marker in ("to call today", "Since yesterday", "Your leads (7)")]
        assert positions == sorted(positions)
        for needle in ("l07@acme.example", "Score rose 20 points since yesterday", "50 → 70 (+20)", "85 → 60 (-25)"):
            assert needle in body
    assert "Good morning, Ada." in text and "Good morning, Ada." in page


def test_html_is_self_contained_and_escapes_warehouse_values() -> None:
    rep = Rep("U1", "Ada <script>alert(1)</script>", "ada@x.example")
    evil = DigestLead("L1", "x@y.example", '<img src="http://evil/t.png">', 80, "A1", ("+ <b>bold</b> & co",), 5)
    (digest,) = build_digests(DAY, [rep], {"U1": [evil]}, []).digests
    page = render_html(digest)
    assert "<script" not in page and "<img" not in page and "<b>bold" not in page
    assert "&lt;img src=&quot;http://evil/t.png&quot;&gt;" in page and "&amp; co" in page
    lowered = page.lower()
    for external in ("<link", "<img", "<script", "url(", "@import", "http://", "https://"):
        assert external not in lowered.replace("&lt;img src=&quot;http://evil", "")
    assert "<style" not in lowered  # inline CSS only
    assert 'name="viewport"' in page and "max-width:600px" in page


def test_the_list_is_capped_and_says_how_many_more() -> None:
    rep = Rep("U1", "Ada", "ada@x.example")
    many = [lead(f"L{i:03d}", 100 - i * 0.5) for i in range(40)]
    (digest,) = build_digests(DAY, [rep], {"U1": many}, []).digests
    text, page = render_text(digest), render_html(digest)
    assert "Your leads (40), by score" in text and "... and 15 more in the CRM." in text
    assert "and 15 more in the CRM" in page
    assert "L024@x.example" in text and "L025@x.example" not in text
    assert "L025@x.example" not in page
    assert "No spikes, declines or new leads." in text


def test_a_newline_in_a_name_cannot_break_a_header() -> None:
    rep = Rep("U1", "Ada\r\nBcc: everyone@x.example", "ada@x.example")
    (digest,) = build_digests(DAY, [rep], {"U1": [lead("a", 50)]}, []).digests
    message = render_digest(digest, sender=SENDER)
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert parsed["Bcc"] is None
    assert parsed["To"].addresses[0].addr_spec == "ada@x.example"


def test_a_lead_routed_to_the_rep_today_is_listed_once_even_when_it_also_spiked(tmp_path: Path) -> None:
    spiked_too = ("L07", "spike", 80.0, 60.0, 20.0, "Score rose 20 points in 7 days, from 60 to 80", DAY)
    with build_warehouse(tmp_path / "warehouse.duckdb", alerts=[*ALERTS, spiked_too]) as con:
        ada = next(d for d in load_digests(con).digests if d.rep.user_id == "U1")
    assert ids(ada.new_to_you) == ["L07"]
    assert "L07" not in ids(ada.spikes) and ids(ada.spikes) == ["L02", "L05"]


def test_a_hot_lead_gone_quiet_is_described_not_quoted_as_a_zero_change() -> None:
    rep = Rep("U1", "Ada", "ada@x.example")
    quiet = Alert("q", "decline", 42.0, 42.0, 0.0, "No touch for 14 days after being hot (score 42)")
    fell = Alert("f", "decline", 30.0, 45.0, -15.0, "Score fell 15 points in 7 days, from 45 to 30")
    leads = [lead("q", 42, "A1", None, quiet), lead("f", 30, "B1", None, fell)]
    (digest,) = build_digests(DAY, [rep], {"U1": leads}, [quiet, fell]).digests
    text, page = render_text(digest), render_html(digest)
    assert "q@x.example: 42, gone quiet" in text and "42 → 42" not in text and "42 → 42" not in page
    assert "f@x.example: 45 → 30 (-15)" in text and "45 → 30 (-15)" in page
    # Both leads are declining, so none is called first: the digest says so instead of "0 leads".
    assert "Good morning, Ada. No lead to call today." in text and "No lead to call today</h1>" in page
    assert subject_line(digest) == "Leadscore - no lead to call today"


def test_the_seven_day_column_shows_only_when_some_lead_has_a_score_from_a_week_ago() -> None:
    rep = Rep("U1", "Ada", "ada@x.example")
    first_week = [lead("a", 60, "A1", None), lead("b", 50, "B1", None)]
    (new,) = build_digests(DAY, [rep], {"U1": first_week}, []).digests
    assert "    #  score  tier  lead" in render_text(new) and ">7d</th>" not in render_html(new)
    (later,) = build_digests(DAY, [rep], {"U1": [*first_week, lead("c", 40, "C1", -6.0)]}, []).digests
    text, page = render_text(later), render_html(later)
    assert "    #  score  tier    7d  lead" in text and ">7d</th>" in page
    assert "     40  C1      -6  c@x.example" in text and ">-6</td>" in page
