"""The daily history built in chunks of as-of days (ml/history.py) is the history one build makes."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import duckdb
import pytest

from ml import history
from ml.warehouse import DAILY_HISTORY_MODELS
from tests.conftest import query, run_dbt

MONDAY = dt.date(2026, 6, 1)


def test_as_of_days_are_the_weekly_grid_plus_the_last_day_and_the_daily_range():
    days = history.as_of_days(MONDAY - dt.timedelta(days=2), MONDAY + dt.timedelta(days=16), 7)
    assert days == [
        MONDAY,
        MONDAY + dt.timedelta(days=7),
        MONDAY + dt.timedelta(days=14),
        MONDAY + dt.timedelta(days=16),
    ]
    daily = history.as_of_days(MONDAY, MONDAY + dt.timedelta(days=9), 7, daily_from=MONDAY + dt.timedelta(days=8))
    assert daily == [
        MONDAY,
        MONDAY + dt.timedelta(days=7),
        MONDAY + dt.timedelta(days=8),
        MONDAY + dt.timedelta(days=9),
    ]


def test_chunks_hold_at_most_the_row_budget_and_cover_every_day_once_in_order():
    days = history.as_of_days(MONDAY, MONDAY + dt.timedelta(days=42), 7)
    rows = [100, 200, 300, 400, 900, 50, 50]
    ranges = history.chunks(days, rows, 600)
    assert ranges == [(days[0], days[2]), (days[3], days[3]), (days[4], days[4]), (days[5], days[6])]
    assert history.chunks(days, rows, 10_000) == [(days[0], days[-1])]
    with pytest.raises(ValueError, match="one row count per day"):
        history.chunks(days, rows[:-1], 600)


@pytest.mark.parametrize(
    ("limit", "expected"), [("4GB", 2_400_000), ("8GB", 4_800_000), ("512MB", 307_200), ("4GiB", 2_400_000)]
)
def test_the_row_budget_scales_with_the_memory_limit(limit, expected):
    assert history.rows_per_chunk(limit) == expected


def test_a_misspelt_memory_limit_is_refused():
    with pytest.raises(ValueError, match="looks like '4GB'"):
        history.memory_limit_gb("4 gigs")


@pytest.mark.slow
def test_a_history_built_in_chunks_equals_one_build(tmp_path, tiny_raw_warehouse, built_warehouse):
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(tiny_raw_warehouse, warehouse)
    run_dbt(warehouse, "run", "--exclude", "tag:daily_history")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        last_day = con.execute("SELECT data_through FROM intermediate.int_data_window").fetchall()[0][0]
        days = history.as_of_days(history.history_start(con), last_day, 7)
        rows = history.open_leads_per_day(con, days)
        # A limit small enough to split the tiny history into a few chunks.
        plan = history.build_plan(con, last_day, 7, max_rows=30_000)
    assert 2 <= len(plan) <= 4
    assert sum(rows) == query(built_warehouse, "SELECT count(*) FROM lead_features")[0][0], "the row estimate is exact"
    for number, chunk in enumerate(plan):
        refresh = ["--full-refresh"] if number == 0 else []
        run_dbt(warehouse, "run", "--select", *DAILY_HISTORY_MODELS, "--vars", json.dumps(chunk), *refresh)
    for table in ("lead_features", "account_metrics_daily"):
        sql = f"SELECT * EXCLUDE (built_by_invocation) FROM {table}" if table == "lead_features" else f"FROM {table}"
        chunked = query(warehouse, f"SELECT count(*), count(DISTINCT as_of) FROM {table}")[0]
        one = query(built_warehouse, f"SELECT count(*), count(DISTINCT as_of) FROM {table}")[0]
        assert chunked == one, table
        with duckdb.connect(str(warehouse), read_only=True) as con:
            con.execute(f"ATTACH '{built_warehouse}' AS one (READ_ONLY)")
            differing = con.execute(
                f"SELECT count(*) FROM (({sql}) EXCEPT ALL ({sql.replace(f'FROM {table}', f'FROM one.main.{table}')}))"
            ).fetchall()[0][0]
        assert differing == 0, table
