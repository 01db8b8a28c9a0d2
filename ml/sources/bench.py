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
import resource
import shutil
import sys
import time
from pathlib import Path

import duckdb

from ml.sources.__main__ import parse_scale
from ml.sources.synthetic import SCALES, SyntheticConfig, load_synthetic
from ml.warehouse import build_days_args, run_dbt, scalar

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


def timed_dbt(warehouse: Path, *args: str) -> tuple[float, dict[str, float]]:
    """Wall time of a dbt command, and the time dbt spent per resource type (from run_results)."""
    start = time.perf_counter()
    result = run_dbt(warehouse, *args, base_env=os.environ)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"dbt {' '.join(args)} failed:\n{result.stdout[-4000:]}")
    results = json.loads((warehouse.parent / "dbt-dbt/target/run_results.json").read_text())
    by_type: dict[str, float] = {}
    for r in results["results"]:
        kind = r["unique_id"].split(".")[0]
        by_type[kind] = by_type.get(kind, 0.0) + r["execution_time"]
    return wall, by_type


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=parse_scale, default=SCALES["bench"])
    parser.add_argument("--dir", type=Path, default=Path("data/bench"))
    parser.add_argument("--keep", action="store_true", help="reuse the generated raw data if present")
    args = parser.parse_args(argv)
    warehouse = args.dir.resolve() / "warehouse.duckdb"
    print(f"== warehouse bench: {args.scale:,} accounts -> {warehouse}", flush=True)

    if not (args.keep and warehouse.exists()):
        shutil.rmtree(args.dir, ignore_errors=True)
        args.dir.mkdir(parents=True)
        start = time.perf_counter()
        with duckdb.connect(str(warehouse)) as con:
            counts = load_synthetic(con, SyntheticConfig(n_accounts=args.scale))
        generate = time.perf_counter() - start
        events = counts["marketing_events"] + counts["product_usage"]
        print(
            f"generate      {generate:8.1f} s   {counts['accounts']:,} accounts, {counts['contacts']:,} leads, "
            f"{events:,} events ({counts['marketing_events']:,} marketing + {counts['product_usage']:,} "
            "product-usage days)",
            flush=True,
        )
    else:
        print("generate      (kept from the previous bench)", flush=True)

    full, full_parts = timed_dbt(warehouse, "build", "--full-refresh")
    print(
        f"dbt build     {full:8.1f} s   (models {full_parts.get('model', 0):.1f} s, tests "
        f"{full_parts.get('test', 0):.1f} s)",
        flush=True,
    )
    with duckdb.connect(str(warehouse), read_only=True) as con:
        day = scalar(con, "SELECT data_through FROM intermediate.int_data_window")
        rows = scalar(con, "SELECT count(*) FROM main.lead_features")
        dates = scalar(con, "SELECT count(DISTINCT as_of) FROM main.lead_features")
    print(f"              lead_features: {rows:,} rows over {dates} as-of days", flush=True)

    incremental, inc_parts = timed_dbt(warehouse, *build_days_args(day, day))
    print(
        f"one day       {incremental:8.1f} s   (models {inc_parts.get('model', 0):.1f} s, tests "
        f"{inc_parts.get('test', 0):.1f} s) for as_of {day}",
        flush=True,
    )

    with duckdb.connect(str(warehouse)) as con:
        start = time.perf_counter()
        con.execute(FLOOR_SQL)
        floor = time.perf_counter() - start
        floor_rows = scalar(con, "SELECT count(*) FROM floor_features")
    print(f"floor query   {floor:8.1f} s   ({floor_rows:,} rows; one hand-written query, raw events)", flush=True)

    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    models = full_parts.get("model", full)
    print("\nsummary")
    print(f"  full build (models) / floor   {models / floor:5.2f}x   target <= 5x")
    print(f"  full build (models+tests) / floor {full / floor:5.2f}x")
    print(f"  one day / full build (models) {inc_parts.get('model', incremental) / models:5.3f}    target <= 0.1")
    print(f"  one day / full build (wall)   {incremental / full:5.3f}")
    print(f"  peak RSS of dbt               {peak_mb:,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
