"""The alert rules of dbt's lead_alerts at their thresholds, on a hand-made score history.

The model runs with the real dbt project against a small DuckDB file holding only what it reads
(lead_scores, lead_crm_ids, crm_users, lead_features), with the thresholds set explicitly so that the
boundaries below are the rule's and not the defaults'.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest

from tests.conftest import query, run_dbt

DAY = dt.date(2026, 3, 1)
THRESHOLDS = {
    "alert_hot_score": 75,
    "alert_spike_points": 20,
    "alert_decline_points": 20,
    "alert_window_days": 7,
    "alert_silent_days": 14,
}

# lead: (owner, consented, [(day offset, score, days since last touch)])
HISTORY: dict[str, tuple[str | None, bool, list[tuple[int, float, int]]]] = {
    "rise_just_short_then_enough": ("R-1", True, [(0, 50.0, 1), (1, 69.9, 1), (2, 70.0, 1), (3, 71.0, 1)]),
    "crosses_hot": ("R-1", True, [(0, 74.9, 1), (1, 75.0, 1)]),
    "unowned_hot_from_the_start": (None, True, [(0, 80.0, 1), (1, 81.0, 1)]),
    "inactive_owner_crosses": ("R-2", True, [(0, 60.0, 1), (1, 76.0, 1)]),
    "falls_just_short_then_enough": ("R-1", True, [(0, 80.0, 1), (1, 60.1, 1), (2, 60.0, 1)]),
    "goes_silent": ("R-1", True, [(0, 80.0, 12), (1, 80.0, 13), (2, 80.0, 14), (3, 80.0, 15)]),
    "unconsented_spike": ("R-1", False, [(0, 10.0, 1), (1, 90.0, 1)]),
    "gap_longer_than_window": ("R-1", True, [(0, 50.0, 1), (9, 76.0, 1)]),
    "silent_but_rising": ("R-1", True, [(0, 60.0, 20), (1, 80.0, 21)]),
}


def make_inputs(path: Path, last_offset: int | None = None) -> None:
    """The four relations lead_alerts reads, with the history up to ``last_offset`` days after DAY."""
    scores, features = [], []
    for lead, (_, _, days) in HISTORY.items():
        for offset, score, silent in days:
            if last_offset is None or offset <= last_offset:
                as_of = DAY + dt.timedelta(days=offset)
                scores.append((lead, "A-1", as_of, score, "A1", ["+ Viewed pricing 3x in 7 days"]))
                features.append((lead, as_of, silent))
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE main.lead_scores (lead_id VARCHAR, account_id VARCHAR, as_of DATE, score DOUBLE, "
            "tier VARCHAR, reasons VARCHAR[])"
        )
        con.executemany("INSERT INTO main.lead_scores VALUES (?, ?, ?, ?, ?, ?)", scores)
        con.execute("CREATE TABLE main.lead_features (lead_id VARCHAR, as_of DATE, days_since_last_touch INTEGER)")
        con.executemany("INSERT INTO main.lead_features VALUES (?, ?, ?)", features)
        con.execute(
            "CREATE TABLE main.lead_crm_ids (lead_id VARCHAR, owner_user_id VARCHAR, has_marketing_consent BOOLEAN)"
        )
        con.executemany(
            "INSERT INTO main.lead_crm_ids VALUES (?, ?, ?)",
            [(lead, owner, consented) for lead, (owner, consented, _) in HISTORY.items()],
        )
        con.execute("CREATE TABLE main.crm_users (user_id VARCHAR, is_active BOOLEAN)")
        con.execute("INSERT INTO main.crm_users VALUES ('R-1', true), ('R-2', false)")


def build_alerts(path: Path) -> list[tuple]:
    run_dbt(path, "run", "--select", "lead_alerts", "--vars", json.dumps(THRESHOLDS))
    return query(
        path,
        "SELECT lead_id, kind, (alert_date - DATE '2026-03-01')::INTEGER, previous_score, rule, alert_id "
        "FROM main.lead_alerts ORDER BY ALL",
    )


@pytest.fixture(scope="module")
def alerts(tmp_path_factory) -> list[tuple]:
    path = tmp_path_factory.mktemp("alerts") / "warehouse.duckdb"
    make_inputs(path)
    return build_alerts(path)


def fired(alerts: list[tuple], lead: str) -> list[tuple[str, int]]:
    return [(kind, day) for lead_id, kind, day, *_ in alerts if lead_id == lead]


def test_a_rise_fires_at_the_threshold_once_and_not_while_it_lasts(alerts):
    assert fired(alerts, "rise_just_short_then_enough") == [("spike", 2)]
    (row,) = [a for a in alerts if a[0] == "rise_just_short_then_enough"]
    assert row[3] == 50.0 and row[4] == "Score rose 20 points in 7 days, from 50 to 70"


def test_crossing_the_hot_score_is_a_spike_and_an_active_owner_needs_no_routing(alerts):
    assert fired(alerts, "crosses_hot") == [("spike", 1)]
    (row,) = [a for a in alerts if a[0] == "crosses_hot"]
    assert row[3] == 74.9 and row[4].startswith("Score crossed the hot threshold of 75")


def test_a_hot_lead_without_an_active_owner_is_unowned_hot_on_the_day_it_becomes_hot(alerts):
    assert fired(alerts, "unowned_hot_from_the_start") == [("unowned_hot", 0)]
    assert sorted(fired(alerts, "inactive_owner_crosses")) == [("spike", 1), ("unowned_hot", 1)]


def test_a_decline_fires_at_the_threshold(alerts):
    assert fired(alerts, "falls_just_short_then_enough") == [("decline", 2)]
    (row,) = [a for a in alerts if a[0] == "falls_just_short_then_enough"]
    assert row[4] == "Score fell 20 points in 7 days, from 80 to 60"


def test_a_hot_lead_going_silent_fires_on_the_fourteenth_day_only(alerts):
    assert fired(alerts, "goes_silent") == [("decline", 2)]
    (row,) = [a for a in alerts if a[0] == "goes_silent"]
    assert row[4] == "No touch for 14 days after being hot (score 80)"


def test_a_rising_score_is_a_spike_not_a_silence_decline(alerts):
    assert fired(alerts, "silent_but_rising") == [("spike", 1)]


def test_an_unconsented_lead_never_has_an_alert(alerts):
    assert fired(alerts, "unconsented_spike") == []


def test_a_score_older_than_the_window_is_no_reference(alerts):
    assert fired(alerts, "gap_longer_than_window") == []


def test_alerts_are_point_in_time_and_idempotent(tmp_path, alerts):
    """Building with the history up to day 2 gives days 0-2 exactly the alerts (and ids) of the full build;
    building again changes nothing."""
    path = tmp_path / "warehouse.duckdb"
    make_inputs(path, last_offset=2)
    first = build_alerts(path)
    assert first == [a for a in alerts if a[2] <= 2]
    assert build_alerts(path) == first
