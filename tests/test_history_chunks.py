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


def test_grid_days_fall_on_the_weekly_grid_between_the_bounds():
    assert history.grid_days(MONDAY - dt.timedelta(days=2), MONDAY + dt.timedelta(days=14), 7) == [
        MONDAY,
        MONDAY + dt.timedelta(days=7),
        MONDAY + dt.timedelta(days=14),
    ]
    assert history.grid_days(MONDAY + dt.timedelta(days=1), MONDAY + dt.timedelta(days=6), 7) == []
    assert history.grid_days(MONDAY, MONDAY, 7) == [MONDAY]


def test_missing_grid_days_come_as_runs_of_consecutive_days():
    grid = history.grid_days(MONDAY, MONDAY + dt.timedelta(days=56), 7)  # 9 Mondays
    present = {grid[0], grid[1], grid[4], grid[8], MONDAY + dt.timedelta(days=3)}  # plus a daily day
    assert history.missing_runs(grid, present) == [grid[2:4], grid[5:8]]
    assert history.missing_runs(grid, set(grid)) == []
    assert history.missing_runs(grid, set()) == [grid]


def warehouse_with_leads(created: list[dt.date], first_day: dt.date) -> duckdb.DuckDBPyConnection:
    """The two intermediate tables resume_plan reads, with one lead created on each given day."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA intermediate")
    con.execute("CREATE TABLE intermediate.int_data_window AS SELECT ?::DATE AS history_start", [first_day])
    con.execute("CREATE TABLE intermediate.int_leads (lead_id VARCHAR, created_at TIMESTAMP, converted_at TIMESTAMP)")
    for number, day in enumerate(created):
        con.execute("INSERT INTO intermediate.int_leads VALUES (?, ?, NULL)", [f"L{number}", day])
    return con


def test_the_resume_plan_builds_what_a_stopped_rebuild_left_out_and_nothing_else():
    first_day = MONDAY - dt.timedelta(days=90)  # the history starts 90 days into the data: on MONDAY
    grid = history.grid_days(MONDAY, MONDAY + dt.timedelta(days=63), 7)  # 10 Mondays
    # One lead a week from the third Monday on: the first two grid days have no open lead, so no rows.
    con = warehouse_with_leads([day - dt.timedelta(days=1) for day in grid[2:]], first_day)
    window = grid[-1] + dt.timedelta(days=1)  # this run builds the day after the last Monday itself
    stopped = set(grid[2:5])  # a rebuild that died after three chunks
    plan = history.resume_plan(con, stopped, window, 7, max_rows=100)
    assert plan == [history.chunk_vars(grid[5], grid[-1], 7)], "one chunk: the rest of the grid"
    # The row budget splits it: grid day i has i - 1 open leads (4, 5, 6, 7, 8 rows), so 15 rows a chunk
    # makes two chunks.
    split = history.resume_plan(con, stopped, window, 7, max_rows=15)
    assert split == [history.chunk_vars(grid[5], grid[7], 7), history.chunk_vars(grid[8], grid[9], 7)]
    # A complete history (days without open leads never have rows) needs nothing.
    assert history.resume_plan(con, set(grid[2:]), window, 7, max_rows=100) == []
    # A hole in the middle (nights that did not run) is filled, and only the hole.
    hole = set(grid[2:]) - {grid[6], grid[7]}
    assert history.resume_plan(con, hole, window, 7, max_rows=100) == [history.chunk_vars(grid[6], grid[7], 7)]
    # Spark (no row budget): one range per run of missing days.
    assert history.resume_plan(con, stopped, window, 7, max_rows=None) == [history.chunk_vars(grid[5], grid[-1], 7)]


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
    # The first chunk, then a run that died: the next run finds the rest missing and builds only that.
    run_dbt(warehouse, "run", "--select", *DAILY_HISTORY_MODELS, "--vars", json.dumps(plan[0]), "--full-refresh")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        present = {day for (day,) in con.execute("SELECT DISTINCT as_of FROM lead_features").fetchall()}
        resumed = history.resume_plan(con, present, last_day, 7, max_rows=30_000)
    assert max(present) == dt.date.fromisoformat(plan[0]["max_date"])
    assert resumed[0]["min_date"] == plan[1]["min_date"], "it resumes where the first chunk ended"
    for chunk in resumed:
        run_dbt(warehouse, "run", "--select", *DAILY_HISTORY_MODELS, "--vars", json.dumps(chunk))
    window = {"min_date": last_day.isoformat(), "max_date": last_day.isoformat(), "snapshot_every_days": 7}
    run_dbt(warehouse, "run", "--select", *DAILY_HISTORY_MODELS, "--vars", json.dumps(window))
    with duckdb.connect(str(warehouse), read_only=True) as con:
        present = {day for (day,) in con.execute("SELECT DISTINCT as_of FROM lead_features").fetchall()}
        assert history.resume_plan(con, present, last_day, 7, max_rows=30_000) == [], "nothing is missing now"
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
