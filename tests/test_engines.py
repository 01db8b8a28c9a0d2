"""How Python reads a Spark-built warehouse (ml/engines.py), on files laid out as Spark writes them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from ml.engines import (
    SparkLayout,
    attach_spark_tables,
    check_engine,
    engine_from_env,
    publish_raw_tables,
    spark_tables,
)


def write_parquet(path: Path, sql: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as con:
        con.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet)")


def test_engine_is_duckdb_unless_spark_is_named_and_a_misspelling_fails():
    assert engine_from_env({}) == "duckdb"
    assert engine_from_env({"LEADSCORE_ENGINE": " Spark "}) == "spark"
    with pytest.raises(ValueError, match="LEADSCORE_ENGINE must be one of duckdb, spark, not 'sparc'"):
        check_engine("sparc")


def landed_accounts(tmp_path: Path, select: str) -> duckdb.DuckDBPyConnection:
    """A warehouse whose raw.accounts holds the rows of ``select``."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE SCHEMA raw")
    con.execute(f"CREATE TABLE raw.accounts AS {select}")
    return con


def test_raw_tables_are_published_whole_and_replace_the_previous_export(tmp_path):
    raw_dir = tmp_path / "raw"
    with landed_accounts(tmp_path, "SELECT 'A-1' AS account_id, TIMESTAMP '2026-01-01 10:00' AS t") as con:
        publish_raw_tables(con, raw_dir, ["accounts"])
        con.execute("INSERT INTO raw.accounts VALUES ('A-2', NULL)")
        publish_raw_tables(con, raw_dir, ["accounts"])
    files = sorted(p.relative_to(raw_dir).as_posix() for p in raw_dir.rglob("*") if p.is_file())
    assert files == ["accounts/part-0.parquet"]  # no leftovers of the swap
    rows = duckdb.sql(f"SELECT * FROM '{raw_dir}/accounts/*.parquet' ORDER BY 1").fetchall()
    assert rows == [("A-1", dt.datetime(2026, 1, 1, 10)), ("A-2", None)]


def test_a_failed_export_leaves_the_previous_table_in_place(tmp_path):
    raw_dir = tmp_path / "raw"
    with landed_accounts(tmp_path, "SELECT 'A-1' AS account_id") as con:
        publish_raw_tables(con, raw_dir, ["accounts"])
        with pytest.raises(duckdb.CatalogException):
            publish_raw_tables(con, raw_dir, ["contacts"])  # no such table
    assert duckdb.sql(f"SELECT count(*) FROM '{raw_dir}/accounts/*.parquet'").fetchall() == [(1,)]
    assert not (raw_dir / "contacts").exists()


def test_spark_tables_become_views_with_partitions_as_columns_and_stale_views_go(tmp_path):
    layout = SparkLayout(tmp_path / "spark")
    history = layout.table_dir("main", "lead_features")
    for day in ("2026-06-28", "2026-06-29"):
        write_parquet(history / f"as_of={day}" / "part-00000.parquet", "SELECT 'L-1' AS lead_id, 3 AS page_views_7d")
    write_parquet(layout.table_dir("intermediate", "int_leads") / "part-00000.parquet", "SELECT 'L-1' AS lead_id")
    (layout.warehouse_dir / "staging.db" / "stg_accounts").mkdir(parents=True)  # a Spark view: no files
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE TABLE main.lead_features AS SELECT 1 AS built_on_duckdb")  # switched engine
        assert set(spark_tables(layout)) == {("main", "lead_features"), ("intermediate", "int_leads")}
        assert sorted(attach_spark_tables(con, layout)) == ["intermediate.int_leads", "main.lead_features"]
        rows = con.execute("SELECT lead_id, page_views_7d, as_of FROM main.lead_features ORDER BY as_of").fetchall()
        assert rows == [("L-1", 3, dt.date(2026, 6, 28)), ("L-1", 3, dt.date(2026, 6, 29))]

        # The next build no longer has int_leads (a model was removed): its view goes, DuckDB's own tables stay.
        for leftover in (layout.table_dir("intermediate", "int_leads")).iterdir():
            leftover.unlink()
        con.execute("CREATE TABLE main.lead_scores AS SELECT 'L-1' AS lead_id")
        attach_spark_tables(con, layout)
        names = {
            f"{s}.{t}"
            for s, t in con.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall()
        }
    assert "intermediate.int_leads" not in names
    assert {"main.lead_features", "main.lead_scores"} <= names
