"""`make bench`, warehouse section: generation, a full dbt build, one incremental day, and the floor.

The floor is one hand-written DuckDB query computing the same per-lead windowed aggregates on the
same as-of grid straight from the raw events: what the lead_features work costs with no modelling
around it. Targets: full build within 5x the floor; an incremental day at most a tenth of a full build.
Figures are printed, never asserted.

    uv run python -m ml.sources.bench [--scale bench] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ml import history
from ml.sources.__main__ import parse_scale
from ml.sources.landing import raw_row_counts
from ml.sources.synthetic import SCALES
from ml.warehouse import (
    DAILY_HISTORY_MODELS,
    MEMORY_LIMIT_ENV,
    WAREHOUSE_ENV,
    DuckDBSettings,
    build_days_args,
    connect,
    dbt_invocation,
    scalar,
    settings_from_env,
)

FLOOR_SQL = """
CREATE OR REPLACE TEMP TABLE floor_features AS
WITH bounds AS (
    SELECT (SELECT min(created_at)::DATE + 90 FROM raw.contacts) AS lo,
           (SELECT max(occurred_at)::DATE FROM raw.marketing_events WHERE occurred_at <= _loaded_at) AS hi
),
dates AS (
    SELECT d::DATE AS as_of FROM bounds, generate_series(lo::TIMESTAMP, hi::TIMESTAMP, INTERVAL 1 DAY) t(d)
    WHERE datediff('day', DATE '2000-01-03', d::DATE) % 7 = 0 OR d::DATE = hi
),
leads AS (SELECT contact_id AS lead_id, created_at FROM raw.contacts),
open_leads AS (
    SELECT l.lead_id, d.as_of FROM dates d JOIN leads l
      ON l.created_at < d.as_of + INTERVAL 1 DAY AND l.created_at >= d.as_of + INTERVAL 1 DAY - INTERVAL 365 DAY
),
daily AS (
    SELECT contact_id AS lead_id, occurred_at::DATE AS activity_date,
           greatest(occurred_at, _loaded_at)::DATE AS known_date,
           count(*) FILTER (WHERE event_type = 'page_view') AS page_views,
           count(*) FILTER (WHERE event_type = 'page_view' AND page_path LIKE '/pricing%') AS pricing_views,
           count(*) FILTER (WHERE event_type = 'page_view' AND page_path LIKE '/customers/%') AS case_study_views,
           count(*) FILTER (WHERE event_type = 'page_view' AND page_path LIKE '/docs%') AS docs_views,
           count(*) FILTER (WHERE event_type = 'page_view' AND page_path LIKE '/blog%') AS blog_views,
           count(*) FILTER (WHERE event_type = 'form_submit') AS demo_requests,
           count(*) FILTER (WHERE event_type = 'email_send') AS email_sends,
           count(*) FILTER (WHERE event_type = 'email_open') AS email_opens,
           count(*) FILTER (WHERE event_type = 'email_click') AS email_clicks,
           count(*) FILTER (WHERE event_type = 'webinar_attended') AS webinars,
           count(*) FILTER (WHERE event_type <> 'email_send') AS touches
    FROM raw.marketing_events WHERE occurred_at <= _loaded_at GROUP BY ALL
)
SELECT o.lead_id, o.as_of,
    sum(a.page_views * pow(0.5, (o.as_of - a.activity_date) / 14.0)) AS page_views_decayed,
    sum(a.pricing_views * pow(0.5, (o.as_of - a.activity_date) / 14.0)) AS pricing_views_decayed,
    sum(a.case_study_views * pow(0.5, (o.as_of - a.activity_date) / 14.0)) AS case_study_views_decayed,
    sum(a.docs_views * pow(0.5, (o.as_of - a.activity_date) / 14.0)) AS docs_views_decayed,
    sum(a.blog_views * pow(0.5, (o.as_of - a.activity_date) / 14.0)) AS blog_views_decayed,
    sum(a.demo_requests * pow(0.5, (o.as_of - a.activity_date) / 14.0)) AS demo_requests_decayed,
    sum(a.email_opens * pow(0.5, (o.as_of - a.activity_date) / 14.0)) AS email_opens_decayed,
    sum(a.email_clicks * pow(0.5, (o.as_of - a.activity_date) / 14.0)) AS email_clicks_decayed,
    sum(a.webinars * pow(0.5, (o.as_of - a.activity_date) / 14.0)) AS webinars_decayed,
    sum(a.page_views) FILTER (WHERE a.activity_date > o.as_of - 7) AS page_views_7d,
    sum(a.page_views) FILTER (WHERE a.activity_date > o.as_of - 30) AS page_views_30d,
    sum(a.page_views) AS page_views_90d,
    sum(a.pricing_views) FILTER (WHERE a.activity_date > o.as_of - 7) AS pricing_views_7d,
    sum(a.pricing_views) FILTER (WHERE a.activity_date > o.as_of - 30) AS pricing_views_30d,
    sum(a.demo_requests) AS demo_requests_90d,
    sum(a.webinars) AS webinars_90d,
    sum(a.email_sends) FILTER (WHERE a.activity_date > o.as_of - 30) AS email_sends_30d,
    sum(a.email_opens) FILTER (WHERE a.activity_date > o.as_of - 30) AS email_opens_30d,
    sum(a.email_clicks) FILTER (WHERE a.activity_date > o.as_of - 30) AS email_clicks_30d,
    sum(a.touches) FILTER (WHERE a.activity_date > o.as_of - 7) AS touches_7d,
    sum(a.touches) FILTER (WHERE a.activity_date <= o.as_of - 7 AND a.activity_date > o.as_of - 28)
        AS touches_prev_21d,
    o.as_of - max(a.activity_date) FILTER (WHERE a.touches > 0) AS days_since_last_touch
FROM open_leads o
LEFT JOIN daily a ON a.lead_id = o.lead_id AND a.known_date <= o.as_of AND a.activity_date > o.as_of - 90
GROUP BY o.lead_id, o.as_of
"""


@dataclass(frozen=True)
class Measured:
    """One step of the bench, run as its own process: wall time, that process's peak RSS, its output."""

    wall_s: float
    peak_mb: float
    stdout: str


def run_measured(argv: list[str], env: dict[str, str], what: str) -> Measured:
    """Run ``argv`` as a child process and measure it alone (``wait4`` gives the child's own peak RSS; the
    bench's earlier steps do not count). Exits naming ``what`` when the step fails."""
    start = time.perf_counter()
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        stdout = proc.stdout.read() if proc.stdout else ""
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{what} failed (exit {proc.returncode}):\n{stdout[-4000:]}")
    return Measured(wall, usage.ru_maxrss / 1024, stdout)


# DuckDB's own default: 80% of the machine's memory.
FLOOR_MEMORY_LIMIT = f"{int(0.8 * os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1e9)}GB"


def timed_dbt(warehouse: Path, env: dict[str, str], *args: str) -> tuple[Measured, dict[str, float]]:
    """A dbt command measured alone, and the time dbt spent per resource type (from run_results)."""
    argv, dbt_environ = dbt_invocation(warehouse, *args, base_env=env)
    measured = run_measured(argv, dbt_environ, f"dbt {' '.join(args)}")
    results = json.loads((warehouse.parent / "dbt-dbt/target/run_results.json").read_text())
    by_type: dict[str, float] = {}
    for r in results["results"]:
        kind = r["unique_id"].split(".")[0]
        by_type[kind] = by_type.get(kind, 0.0) + r["execution_time"]
    return measured, by_type


def full_build(warehouse: Path, env: dict[str, str], settings: DuckDBSettings) -> tuple[Measured, dict[str, float]]:
    """A full build as the nightly does it on a new warehouse: every model but the history, then the history
    in chunks of as-of days within the memory limit (``ml/history.py``; one chunk when it fits). Wall time
    and per-type times are summed over the dbt commands, the peak is the largest of them."""
    select = ["--select", *DAILY_HISTORY_MODELS]
    steps = [timed_dbt(warehouse, env, "build", "--full-refresh", "--exclude", "tag:daily_history")]
    with connect(warehouse, read_only=True, settings=settings) as con:
        last_day = scalar(con, "SELECT data_through FROM intermediate.int_data_window")
        plan = history.build_plan(con, last_day, 7, history.rows_per_chunk(settings.memory_limit))
    for number, chunk in enumerate(plan):
        command = "build" if number == len(plan) - 1 else "run"
        refresh = ["--full-refresh"] if number == 0 else []
        steps.append(timed_dbt(warehouse, env, command, *select, "--vars", json.dumps(chunk), *refresh))
    parts: dict[str, float] = {}
    for _, by_type in steps:
        for kind, seconds in by_type.items():
            parts[kind] = parts.get(kind, 0.0) + seconds
    wall = sum(m.wall_s for m, _ in steps)
    peak = max(m.peak_mb for m, _ in steps)
    return Measured(wall, peak, f"history in {len(plan)} chunk{'s' * (len(plan) > 1)}"), parts


def run_floor(warehouse: Path, settings: DuckDBSettings) -> None:
    """The floor query (its own process, so that its peak memory is its own): prints seconds and rows.

    The floor is a yardstick, not a way to build the warehouse: one statement over the whole history, it
    runs with DuckDB's own default limit (80% of the machine), as it always has - under the 4 GB limit it
    would spill tens of GB (it filled the disk once) and measure the spilling instead."""
    with connect(
        warehouse, settings=DuckDBSettings(memory_limit=FLOOR_MEMORY_LIMIT, spill_dir=settings.spill_dir)
    ) as con:
        start = time.perf_counter()
        con.execute(FLOOR_SQL)
        seconds = time.perf_counter() - start
        rows = scalar(con, "SELECT count(*) FROM floor_features")
    print(json.dumps({"seconds": seconds, "rows": rows}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=parse_scale, default=SCALES["bench"])
    parser.add_argument("--dir", type=Path, default=Path("data/bench/warehouse"))
    parser.add_argument("--keep", action="store_true", help="reuse the generated raw data if present")
    parser.add_argument("--floor-only", type=Path, help=argparse.SUPPRESS)  # the floor step's own process
    args = parser.parse_args(argv)
    settings = settings_from_env(os.environ)
    if args.floor_only:
        run_floor(args.floor_only, settings)
        return 0
    warehouse = args.dir.resolve() / "warehouse.duckdb"
    env = {**os.environ, WAREHOUSE_ENV: str(warehouse), MEMORY_LIMIT_ENV: settings.memory_limit}
    print(f"== warehouse bench: {args.scale:,} accounts -> {warehouse}", flush=True)
    print(f"   DuckDB memory_limit {settings.memory_limit} (${MEMORY_LIMIT_ENV}); peak = the step's own peak RSS")

    if not (args.keep and warehouse.exists()):
        shutil.rmtree(args.dir, ignore_errors=True)
        args.dir.mkdir(parents=True)
        gen = run_measured(
            [sys.executable, "-m", "ml.sources", "synthetic", "--scale", str(args.scale)], env, "generation"
        )
        with connect(warehouse, read_only=True, settings=settings) as con:
            counts = raw_row_counts(con)
        events = counts["marketing_events"] + counts["product_usage"]
        print(
            f"generate      {gen.wall_s:8.1f} s   peak {gen.peak_mb:7,.0f} MB   {counts['accounts']:,} accounts, "
            f"{counts['contacts']:,} leads, {events:,} events ({counts['marketing_events']:,} marketing + "
            f"{counts['product_usage']:,} product-usage days)",
            flush=True,
        )
    else:
        print("generate      (kept from the previous bench)", flush=True)

    full, full_parts = full_build(warehouse, env, settings)
    print(
        f"dbt build     {full.wall_s:8.1f} s   peak {full.peak_mb:7,.0f} MB   (models "
        f"{full_parts.get('model', 0):.1f} s, tests {full_parts.get('test', 0):.1f} s; {full.stdout})",
        flush=True,
    )
    with connect(warehouse, read_only=True, settings=settings) as con:
        day = scalar(con, "SELECT data_through FROM intermediate.int_data_window")
        rows = scalar(con, "SELECT count(*) FROM main.lead_features")
        dates = scalar(con, "SELECT count(DISTINCT as_of) FROM main.lead_features")
    print(f"              lead_features: {rows:,} rows over {dates} as-of days", flush=True)

    one_day, inc_parts = timed_dbt(warehouse, env, *build_days_args(day, day))
    print(
        f"one day       {one_day.wall_s:8.1f} s   peak {one_day.peak_mb:7,.0f} MB   (models "
        f"{inc_parts.get('model', 0):.1f} s, tests {inc_parts.get('test', 0):.1f} s) for as_of {day}",
        flush=True,
    )

    floor_run = run_measured(
        [sys.executable, "-m", "ml.sources.bench", "--floor-only", str(warehouse)], env, "the floor query"
    )
    floor = json.loads(floor_run.stdout.strip().splitlines()[-1])
    print(
        f"floor query   {floor['seconds']:8.1f} s   peak {floor_run.peak_mb:7,.0f} MB   ({floor['rows']:,} rows; one "
        "hand-written query, raw events)",
        flush=True,
    )

    models = full_parts.get("model", full.wall_s)
    peak = max(full.peak_mb, one_day.peak_mb)
    print("\nsummary")
    print(f"  full build (models) / floor   {models / floor['seconds']:5.2f}x   target <= 5x")
    print(f"  full build (models+tests) / floor {full.wall_s / floor['seconds']:5.2f}x")
    print(f"  one day / full build (models) {inc_parts.get('model', one_day.wall_s) / models:5.3f}    target <= 0.1")
    print(f"  one day / full build (wall)   {one_day.wall_s / full.wall_s:5.3f}")
    print(f"  peak RSS of dbt               {peak:,.0f} MB   target <= 8,192 MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
