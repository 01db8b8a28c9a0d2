"""The short summary `make run` prints: what landed, what was built, the headline figures."""

from __future__ import annotations

import duckdb

from ml.sources.schema import RAW_TABLES
from ml.warehouse import scalar, table_exists


def warehouse_summary(con: duckdb.DuckDBPyConnection) -> dict[str, object]:
    """Row counts of the raw tables and marts, total ARR, lead conversion and quarantine counts."""
    summary: dict[str, object] = {}
    for table in RAW_TABLES:
        if table_exists(con, "raw", table.name):
            summary[f"raw.{table.name}"] = scalar(con, f"SELECT count(*) FROM raw.{table.name}")
    for mart in ("account_metrics", "account_metrics_daily", "lead_features"):
        if table_exists(con, "main", mart):
            summary[mart] = scalar(con, f"SELECT count(*) FROM main.{mart}")
    if table_exists(con, "main", "account_metrics"):
        summary["total_arr_usd"] = scalar(con, "SELECT round(sum(arr), 2) FROM main.account_metrics")
        summary["paying_customers"] = scalar(
            con, "SELECT count(*) FROM main.account_metrics WHERE customer_status = 'customer'"
        )
    if table_exists(con, "intermediate", "int_leads"):
        summary["lead_conversion_rate"] = scalar(
            con, "SELECT round(avg((converted_at IS NOT NULL)::INT), 4) FROM intermediate.int_leads"
        )
    if table_exists(con, "main", "lead_labels"):
        summary["lead_features_label_rate_90d"] = scalar(
            con, "SELECT round(avg(converted_90d), 4) FROM main.lead_labels"
        )
    if table_exists(con, "main", "lead_scores"):
        latest, scored, version = con.execute(
            "SELECT as_of, count(*), any_value(model_version) FROM main.lead_scores "
            "WHERE as_of = (SELECT max(as_of) FROM main.lead_scores) GROUP BY as_of"
        ).fetchall()[0]
        summary["lead_scores_latest_day"] = str(latest)
        summary["leads_scored"] = scored
        summary["model_version"] = version
    if table_exists(con, "staging", "quarantine"):
        summary["quarantined_rows"] = scalar(con, "SELECT count(*) FROM staging.quarantine")
    return summary


def format_summary(summary: dict[str, object]) -> str:
    width = max((len(k) for k in summary), default=0)
    lines = []
    for key, value in summary.items():
        shown = f"{value:,}" if isinstance(value, int) else (f"{value:,.2f}" if key.endswith("_usd") else value)
        lines.append(f"  {key.ljust(width)}  {shown}")
    return "\n".join(lines)
