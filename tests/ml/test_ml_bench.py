"""The model bench runs end to end on a small warehouse and measures what it says it measures."""

from __future__ import annotations

import datetime as dt
import json

import duckdb

from ml import bench
from tests.conftest import query


def test_bench_builds_yesterday_and_scores_a_nightly_run(warehouse_copy, capsys):
    (latest,) = query(warehouse_copy, "SELECT max(as_of) FROM main.lead_features")[0]
    yesterday = latest - dt.timedelta(days=1)
    # As on the bench warehouse, whose weekly training grid skips the day before the latest.
    with duckdb.connect(str(warehouse_copy)) as con:
        for table in ("lead_features", "account_metrics_daily"):
            con.execute(f"DELETE FROM main.{table} WHERE as_of = ?", [yesterday])

    assert bench.main(["--warehouse", str(warehouse_copy), "--trials", "2", "--reasons-sample", "200"]) == 0
    printed = capsys.readouterr().out
    figures = json.loads(printed[: printed.index("\nsummary")])

    # The weekly grid had no "yesterday": the bench built that as-of day, and the nightly run compared with it.
    assert "yesterday_build_seconds" in figures and figures["previous_as_of"] == str(yesterday)
    consented = "SELECT count(*) FROM main.lead_features WHERE as_of = ? AND has_marketing_consent"
    assert query(warehouse_copy, consented, [yesterday])[0][0] > 0
    (today_leads,) = query(warehouse_copy, consented, [latest])[0]
    assert figures["leads_today"] == today_leads > 0
    # Every lead either had its reasons computed or reused yesterday's, and most leads did not change in a day.
    assert figures["nightly_reasons_computed"] + figures["nightly_reasons_reused"] == today_leads
    assert 0 < figures["nightly_reasons_computed"] < today_leads
    assert figures["trials"] == 2 and figures["plain_leads_per_s"] > 0 and figures["nightly_over_plain"] > 0
    assert "target >= 100,000" in printed and "target <= 10x" in printed
