"""Building the daily history in chunks of as-of days, so that no statement outgrows DuckDB's memory.

A full build of ``lead_features`` computes every open lead on every day of the as-of grid in one
statement: at the bench scale (1.2M leads, 92 weekly as-of days) that is ~30M rows of windowed aggregates,
and DuckDB cannot spill all of it (it ran out of a 4 GB limit even for 13 weeks). Built a few as-of days
at a time - the first chunk with a full refresh, the others incrementally - the same rows come out (the
chunks cover exactly the days one build would) with memory bounded by the chunk, not the history.

:func:`as_of_days` is the Python twin of the dbt macro ``as_of_dates`` (``dbt/macros/as_of.sql``): the
days a build of [min_date, max_date] produces. A chunk's vars name its first and last as-of day, so it
builds exactly its days: the grid days between them, the ``daily_from`` days between them, and its last
day (the macro always adds ``max_date``, here a day of the grid anyway).

A rebuild that dies (a killed run, a machine that went down) leaves the chunks it finished and nothing of
the rest. :func:`resume_plan` finds the grid days the history lacks - those, or nights that were skipped -
so that the next run builds just them instead of training on a history with a hole in it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

import duckdb

HISTORY_CHUNK_ROWS_ENV = "LEADSCORE_HISTORY_CHUNK_ROWS"  # an override of rows_per_chunk, read by entry points
GRID_ANCHOR = dt.date(2000, 1, 3)  # the macro's anchor: weekly snapshots fall on Mondays
# Rows of lead_features one statement may build per GB of DuckDB memory limit. Measured at the bench
# scale: 1.76M rows in one statement peaked at 3.0 GB RSS under a 4 GB limit; 4.5M rows ran out of it.
ROWS_PER_GB = 600_000


def as_of_days(
    min_date: dt.date, max_date: dt.date, every_days: int, daily_from: dt.date | None = None
) -> list[dt.date]:
    """The as-of days a history build of [min_date, max_date] produces (the macro ``as_of_dates``)."""
    days = []
    day = min_date
    while day <= max_date:
        on_grid = (day - GRID_ANCHOR).days % every_days == 0
        if on_grid or day == max_date or (daily_from is not None and day >= daily_from):
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def chunks(days: Sequence[dt.date], rows: Sequence[int], max_rows: int) -> list[tuple[dt.date, dt.date]]:
    """Consecutive as-of days grouped so that each group holds at most ``max_rows`` rows (``rows[i]`` is
    day i's; a day larger than that alone is a group of its own), as (first day, last day) ranges."""
    if len(days) != len(rows):
        raise ValueError("one row count per day")
    ranges: list[tuple[dt.date, dt.date]] = []
    start, total = 0, 0
    for i, count in enumerate(rows):
        if i > start and total + count > max_rows:
            ranges.append((days[start], days[i - 1]))
            start, total = i, 0
        total += count
    if days:
        ranges.append((days[start], days[-1]))
    return ranges


def memory_limit_gb(memory_limit: str) -> float:
    """DuckDB's memory limit setting ('4GB', '512MB', '4GiB') in GB (GiB read as GB: close enough here)."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT])i?B\s*", memory_limit, flags=re.IGNORECASE)
    if not match:
        raise ValueError(f"a DuckDB memory limit looks like '4GB' or '512MB', not {memory_limit!r}")
    return float(match[1]) * {"K": 1e-6, "M": 1e-3, "G": 1.0, "T": 1e3}[match[2].upper()]


def rows_per_chunk(memory_limit: str) -> int:
    """How many lead_features rows one statement may build within DuckDB's memory limit."""
    return max(1, int(ROWS_PER_GB * memory_limit_gb(memory_limit)))


def open_leads_per_day(
    con: duckdb.DuckDBPyConnection, days: Sequence[dt.date], lead_max_age_days: int = 365
) -> list[int]:
    """Leads open at the close of each day (created within ``lead_max_age_days`` by then, not yet converted):
    the rows that day adds to lead_features (the warehouse's intermediate layer must be built)."""
    sql = f"""
        SELECT d.as_of, count(l.lead_id)
        FROM (SELECT unnest(?::DATE[]) AS as_of) AS d
        LEFT JOIN intermediate.int_leads AS l
          ON l.created_at < d.as_of + INTERVAL 1 DAY
         AND l.created_at >= d.as_of + INTERVAL 1 DAY - INTERVAL {int(lead_max_age_days)} DAY
         AND (l.converted_at IS NULL OR l.converted_at >= d.as_of + INTERVAL 1 DAY)
        GROUP BY d.as_of
    """
    counts = dict(con.execute(sql, [list(days)]).fetchall())
    return [counts.get(day, 0) for day in days]


def history_start(con: duckdb.DuckDBPyConnection) -> dt.date:
    """The first as-of day of a full build (the macro: 90 days after the data's first day)."""
    return con.execute("SELECT history_start + 90 FROM intermediate.int_data_window").fetchall()[0][0]


def chunk_vars(first: dt.date, last: dt.date, every_days: int, daily_from: dt.date | None = None) -> dict[str, object]:
    """dbt vars that build exactly the as-of days of [first, last] (see the module docstring)."""
    vars_: dict[str, object] = {
        "min_date": first.isoformat(),
        "max_date": last.isoformat(),
        "snapshot_every_days": every_days,
    }
    if daily_from is not None and daily_from <= last:
        vars_["daily_from"] = daily_from.isoformat()
    return vars_


def build_plan(
    con: duckdb.DuckDBPyConnection,
    last_day: dt.date,
    every_days: int,
    max_rows: int,
    daily_from: dt.date | None = None,
) -> list[dict[str, object]]:
    """The dbt vars of each chunk of a full history build up to ``last_day``, first to last, each of at most
    ``max_rows`` rows (:func:`rows_per_chunk` of the memory limit): a single chunk when the whole history
    fits (every tiny and small warehouse)."""
    days = as_of_days(history_start(con), last_day, every_days, daily_from)
    if not days:
        return [chunk_vars(last_day, last_day, every_days, daily_from)]
    ranges = chunks(days, open_leads_per_day(con, days), max_rows)
    return [chunk_vars(first, last, every_days, daily_from) for first, last in ranges]


def grid_days(first: dt.date, last: dt.date, every_days: int) -> list[dt.date]:
    """The days of the snapshot grid in [first, last] (the weekly training snapshots)."""
    offset = (first - GRID_ANCHOR).days % every_days
    day = first + dt.timedelta(days=(every_days - offset) % every_days)
    days = []
    while day <= last:
        days.append(day)
        day += dt.timedelta(days=every_days)
    return days


def missing_runs(grid: Sequence[dt.date], present: set[dt.date]) -> list[list[dt.date]]:
    """The grid days absent from ``present``, as runs of consecutive grid days (each run one dbt range)."""
    runs: list[list[dt.date]] = []
    previous_missing = False
    for day in grid:
        missing = day not in present
        if missing and previous_missing:
            runs[-1].append(day)
        elif missing:
            runs.append([day])
        previous_missing = missing
    return runs


def resume_plan(
    con: duckdb.DuckDBPyConnection,
    present: set[dt.date],
    before: dt.date,
    every_days: int,
    max_rows: int | None,
) -> list[dict[str, object]]:
    """dbt vars of the chunks that build the grid days before ``before`` that the history lacks (empty when
    it lacks none). A grid day without open leads has no rows, so it is never missing. ``max_rows`` splits
    a run of missing days by :func:`rows_per_chunk`; ``None`` builds each run in one statement (Spark)."""
    grid = grid_days(history_start(con), before - dt.timedelta(days=1), every_days)
    lacking = [day for day in grid if day not in present]
    if not lacking:
        return []
    rows = dict(zip(lacking, open_leads_per_day(con, lacking), strict=True))
    empty = {day for day, count in rows.items() if count == 0}
    plan: list[dict[str, object]] = []
    for run in missing_runs(grid, present | empty):
        counts = [rows[day] for day in run]
        ranges = chunks(run, counts, max_rows) if max_rows is not None else [(run[0], run[-1])]
        plan += [chunk_vars(first, last, every_days) for first, last in ranges]
    return plan
