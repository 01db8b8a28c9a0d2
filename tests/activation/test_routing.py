"""Routing of unowned hot leads: the rule (pure) and its record in the warehouse (a real DuckDB file)."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from activation.routing import ROUND_ROBIN, TERRITORY, HotLead, Rep, assign, route


def lead(lead_id: str, territory: str, score: float, owner: str | None = None) -> HotLead:
    return HotLead(lead_id, f"alert-{lead_id}", territory, score, owner)


def test_a_lead_goes_to_the_least_loaded_rep_of_its_territory():
    reps = [Rep("R-1", "EMEA", 5), Rep("R-2", "EMEA", 3), Rep("R-3", "AMER", 0)]
    (a,) = assign([lead("L-1", "EMEA", 40.0)], reps)
    assert (a.user_id, a.rule) == ("R-2", TERRITORY)


def test_equal_loads_take_turns_and_the_highest_score_is_served_first():
    reps = [Rep("R-2", "EMEA", 0), Rep("R-1", "EMEA", 0)]
    leads = [lead("L-low", "EMEA", 31.0), lead("L-high", "EMEA", 90.0), lead("L-mid", "EMEA", 50.0)]
    got = {a.lead_id: a.user_id for a in assign(leads, reps)}
    # highest first, to the lower user id on a tie; then the other rep; then back to the first
    assert got == {"L-high": "R-1", "L-mid": "R-2", "L-low": "R-1"}


def test_load_weighs_the_round_robin():
    reps = [Rep("R-1", "EMEA", 2), Rep("R-2", "EMEA", 0)]
    got = [a.user_id for a in assign([lead(f"L-{i}", "EMEA", 50.0 - i) for i in range(4)], reps)]
    assert got == ["R-2", "R-2", "R-1", "R-2"]  # R-2 catches up with R-1's two open leads first


def test_a_territory_without_an_active_rep_falls_back_to_everyone():
    reps = [Rep("R-1", "EMEA", 4), Rep("R-3", "AMER", 1)]
    (a,) = assign([lead("L-1", "APAC", 40.0, owner="R-9")], reps)
    assert (a.user_id, a.rule, a.previous_owner_user_id) == ("R-3", ROUND_ROBIN, "R-9")


def test_nobody_to_assign_to_assigns_nothing():
    assert assign([lead("L-1", "EMEA", 40.0)], []) == []


DAY = dt.date(2026, 3, 2)


@pytest.fixture
def warehouse(tmp_path):
    """The relations routing reads: one EMEA account, three leads, two active reps and a departed one."""
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("CREATE TABLE main.crm_users (user_id VARCHAR, territory VARCHAR, is_active BOOLEAN)")
    con.execute(
        "INSERT INTO main.crm_users VALUES ('R-1', 'EMEA', true), ('R-2', 'EMEA', true), ('R-9', 'EMEA', false)"
    )
    con.execute("CREATE TABLE main.account_crm_ids (account_id VARCHAR, territory VARCHAR)")
    con.execute("INSERT INTO main.account_crm_ids VALUES ('A-1', 'EMEA')")
    con.execute(
        "CREATE TABLE main.lead_crm_ids (lead_id VARCHAR, account_id VARCHAR, owner_user_id VARCHAR, "
        "has_marketing_consent BOOLEAN)"
    )
    con.execute(
        "INSERT INTO main.lead_crm_ids VALUES ('L-owned', 'A-1', 'R-1', true), "
        "('L-departed-owner', 'A-1', 'R-9', true), ('L-nobody', 'A-1', NULL, true), "
        "('L-unconsented', 'A-1', NULL, false)"
    )
    con.execute("CREATE TABLE main.lead_scores (lead_id VARCHAR, as_of DATE, score DOUBLE)")
    con.execute("INSERT INTO main.lead_scores SELECT lead_id, ?, 50.0 FROM main.lead_crm_ids", [DAY])
    con.execute(
        "CREATE TABLE main.lead_alerts (alert_id VARCHAR, lead_id VARCHAR, alert_date DATE, kind VARCHAR, "
        "score DOUBLE, owner_user_id VARCHAR)"
    )
    con.execute(
        "INSERT INTO main.lead_alerts VALUES ('a1', 'L-departed-owner', ?, 'unowned_hot', 80.0, 'R-9'), "
        "('a2', 'L-nobody', ?, 'unowned_hot', 60.0, NULL), ('a3', 'L-unconsented', ?, 'unowned_hot', 90.0, NULL), "
        "('a4', 'L-owned', ?, 'spike', 45.0, 'R-1')",
        [DAY, DAY, DAY, DAY],
    )
    yield con
    con.close()


def test_route_records_each_assignment_once_and_lead_owners_follows(warehouse):
    report = route(warehouse)
    assert report.as_of == DAY and report.unowned_hot == 2 and report.assigned == {TERRITORY: 2}
    rows = warehouse.execute(
        "SELECT lead_id, user_id, previous_owner_user_id, rule, crm_owner_write FROM activation.lead_assignments "
        "ORDER BY lead_id"
    ).fetchall()
    # R-1 already owns L-owned, so the higher-scored lead goes to R-2, the next to R-1 (one each)
    assert rows == [
        ("L-departed-owner", "R-2", "R-9", TERRITORY, False),
        ("L-nobody", "R-1", None, TERRITORY, False),
    ]
    owners = dict(
        (lead_id, (owner, source))
        for lead_id, owner, source in warehouse.execute("SELECT * FROM activation.lead_owners").fetchall()
    )
    assert owners["L-owned"] == ("R-1", "crm")
    assert owners["L-departed-owner"] == ("R-2", "routed")
    assert owners["L-unconsented"] == (None, None)  # never routed: no consent, no alert work

    again = route(warehouse)
    assert again.already_routed == 2 and again.assigned == {}
    assert warehouse.execute("SELECT count(*) FROM activation.lead_assignments").fetchone()[0] == 2
