"""The same dbt project on DuckDB and on Spark gives the same warehouse, row by row.

Both engines build the tiny synthetic company: every model, with the daily history over three days; then a
lead and an account leave the export (as CRM deletions do) and one more day is built incrementally, with the
day before re-built (a Spark partition overwrite against DuckDB's delete+insert), so the departed keys leave
the history (a partition rewrite on Spark, a delete on DuckDB). After each build every table of the marts,
intermediate and quarantine layers is compared: same columns, same kinds of types, same rows (floats within
1e-4). Spark runs as a real local session
(``local[2]``) through dbt-spark's session method, with the raw tables published as Parquet and its tables
read back through views in a DuckDB file, as the nightly on Spark does (``ml/engines.py``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml import warehouse as warehouse_lib
from ml.engines import ENGINE_ENV, SparkLayout, attach_spark_tables, publish_raw_tables, spark_env
from ml.sources.landing import RAW_TABLE_NAMES
from tests.conftest import TINY_END_DATE

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(1200)]

ABS_TOLERANCE = 1e-4
# Differs by design: which dbt invocation built a history row.
IGNORED_COLUMNS = {"built_by_invocation"}
LAST_DAY = TINY_END_DATE - dt.timedelta(days=1)  # the tiny data's last complete day


# Tiny data: compiling whole-stage code for the quarantine's huge expressions costs more than running them.
SMALL_DATA_SPARK = {"LEADSCORE_SPARK_CODEGEN": "false", "LEADSCORE_SPARK_SHUFFLE_PARTITIONS": "2"}


def build(engine: str, warehouse: Path, layout: SparkLayout, *args: str) -> None:
    engine_env = {**spark_env(layout), **SMALL_DATA_SPARK} if engine == "spark" else {ENGINE_ENV: "duckdb"}
    env = {**os.environ, **engine_env}
    result = warehouse_lib.run_dbt(warehouse, *args, base_env=env, work_dir=warehouse.parent / "dbt")
    assert result.returncode == 0, f"dbt {' '.join(args)} on {engine} failed:\n{result.stdout[-6000:]}"
    if engine == "spark":
        with warehouse_lib.connect(warehouse) as con:
            attach_spark_tables(con, layout)


def history_args(first: dt.date, last: dt.date, *exclude: str) -> list[str]:
    """``dbt run`` of every model (but ``exclude``), the daily history over the days first .. last."""
    vars_ = warehouse_lib.history_vars(first, last + dt.timedelta(days=1))
    return ["run", "--vars", json.dumps(vars_), *(["--exclude", *exclude] if exclude else [])]


def built_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every table dbt built on DuckDB (staging views are compared through the tables built from them)."""
    rows = con.execute(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables "
        "WHERE table_schema IN ('main', 'staging', 'intermediate') AND table_type = 'BASE TABLE' ORDER BY 1"
    ).fetchall()
    return [name for (name,) in rows]


def type_family(duckdb_type: str) -> str:
    kind = duckdb_type.upper()
    for family, markers in {
        "integer": ("INT",),
        "float": ("DOUBLE", "FLOAT", "DECIMAL", "REAL"),
        "timestamp": ("TIMESTAMP",),
        "date": ("DATE",),
        "boolean": ("BOOL",),
        "array": ("[]",),
    }.items():
        if any(m in kind for m in markers):
            return family
    return "string"  # VARCHAR, and JSON (a string on Spark)


def normalised_json(text: str | None) -> dict | None:
    """A quarantined row's JSON with timestamps as timestamps: DuckDB writes '2026-01-01 10:00:00', Spark
    '2026-01-01T10:00:00.000Z'."""
    if text is None:
        return None
    row = json.loads(text)
    for key, value in row.items():
        if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] in " T":
            row[key] = pd.Timestamp(value.rstrip("Z")).isoformat()
    return row


def comparable(frame: pd.DataFrame, families: dict[str, str]) -> pd.DataFrame:
    frame = frame[[c for c in families if c not in IGNORED_COLUMNS]].copy()
    for column, family in families.items():
        if column in IGNORED_COLUMNS:
            continue
        if family == "array":
            frame[column] = frame[column].map(lambda v: json.dumps(sorted(v)) if v is not None else None)
        elif family == "float":
            frame[column] = frame[column].astype(float)
        elif column == "raw_row":
            frame[column] = frame[column].map(lambda v: json.dumps(normalised_json(v), sort_keys=True))
    keys = [c for c in frame.columns if families[c] != "float"]
    return frame.sort_values(keys, na_position="first").reset_index(drop=True)


def differences(duck: duckdb.DuckDBPyConnection, spark: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """What differs between the two engines' versions of ``table`` (empty: identical)."""
    duck_types = {name: type_family(kind) for name, kind, *_ in duck.execute(f"DESCRIBE {table}").fetchall()}
    spark_types = {name: type_family(kind) for name, kind, *_ in spark.execute(f"DESCRIBE {table}").fetchall()}
    if duck_types != spark_types:
        return [f"columns or types differ: duckdb {duck_types} vs spark {spark_types}"]
    a = comparable(duck.execute(f"SELECT * FROM {table}").df(), duck_types)
    b = comparable(spark.execute(f"SELECT * FROM {table}").df(), duck_types)
    if len(a) != len(b):
        return [f"{len(a)} rows on duckdb, {len(b)} on spark"]
    found = []
    for column in a.columns:
        x, y = a[column], b[column]
        if duck_types[column] == "float":
            same = np.isclose(x, y, atol=ABS_TOLERANCE, rtol=0, equal_nan=True)
        else:
            same = ((x == y) | (x.isna() & y.isna())).to_numpy()
        if not same.all():
            first = int(np.flatnonzero(~same)[0])
            found.append(f"{column}: {int((~same).sum())} rows differ, e.g. {x.iloc[first]!r} vs {y.iloc[first]!r}")
    return found


@pytest.fixture(scope="module")
def engines(tmp_path_factory, tiny_raw_warehouse) -> dict[str, tuple[Path, SparkLayout]]:
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.fail("Spark needs a Java runtime: `make test` installs one (openjdk-17-jre-headless)")
    root = tmp_path_factory.mktemp("parity")
    built = {}
    for engine in ("duckdb", "spark"):
        warehouse = root / engine / "warehouse.duckdb"
        warehouse.parent.mkdir()
        shutil.copy(tiny_raw_warehouse, warehouse)
        built[engine] = (warehouse, SparkLayout(root / engine / "spark"))
    warehouse, layout = built["spark"]
    with warehouse_lib.connect(warehouse, read_only=True) as con:
        publish_raw_tables(con, layout.raw_dir, RAW_TABLE_NAMES)
    return built


def depart_a_lead_and_an_account(engines: dict[str, tuple[Path, SparkLayout]]) -> tuple[str, str]:
    """Delete a lead that has history rows, and another account with its people, from both engines' raw
    data (a CRM that deletes a company deletes or moves its contacts)."""
    with warehouse_lib.connect(engines["duckdb"][0], read_only=True) as con:
        lead, lead_account = con.execute(
            "SELECT lead_id, account_id FROM main.lead_features ORDER BY lead_id LIMIT 1"
        ).fetchall()[0]
        account = con.execute(
            "SELECT min(account_id) FROM main.account_metrics_daily WHERE account_id <> ?", [lead_account]
        ).fetchall()[0][0]
    for engine, (warehouse, layout) in engines.items():
        with warehouse_lib.connect(warehouse) as con:
            con.execute("DELETE FROM raw.contacts WHERE contact_id = ? OR account_id = ?", [lead, account])
            con.execute("DELETE FROM raw.accounts WHERE account_id = ?", [account])
            if engine == "spark":
                publish_raw_tables(con, layout.raw_dir, ["contacts", "accounts"])
    return lead, account


def compare_all(engines: dict[str, tuple[Path, SparkLayout]]) -> dict[str, list[str]]:
    with (
        warehouse_lib.connect(engines["duckdb"][0], read_only=True) as duck,
        warehouse_lib.connect(engines["spark"][0], read_only=True) as spark,
    ):
        tables = built_tables(duck)
        assert {"main.lead_features", "main.account_metrics", "staging.quarantine"} <= set(tables)
        return {table: differences(duck, spark, table) for table in tables}


def test_both_engines_build_the_same_warehouse_and_the_same_next_day(engines):
    for engine, (warehouse, layout) in engines.items():
        build(
            engine, warehouse, layout, *history_args(LAST_DAY - dt.timedelta(days=3), LAST_DAY - dt.timedelta(days=1))
        )
    first = compare_all(engines)
    assert not any(first.values()), {t: d for t, d in first.items() if d}
    with warehouse_lib.connect(engines["spark"][0], read_only=True) as spark:
        days = spark.execute("SELECT count(DISTINCT as_of) FROM main.lead_features").fetchall()[0][0]
    assert days == 3

    # A lead and an account leave the export; then the next day, and the day before it re-built: Spark
    # overwrites a partition, DuckDB deletes and inserts, and both drop the departed keys from the history.
    lead, account = depart_a_lead_and_an_account(engines)
    for engine, (warehouse, layout) in engines.items():
        build(
            engine,
            warehouse,
            layout,
            # the quarantine reports are the same for both engines whether or not they are rebuilt
            *history_args(LAST_DAY - dt.timedelta(days=1), LAST_DAY, "quarantine", "unknown_values"),
        )
    second = compare_all(engines)
    assert not any(second.values()), {t: d for t, d in second.items() if d}
    with warehouse_lib.connect(engines["spark"][0], read_only=True) as spark:
        per_day = spark.execute(
            "SELECT as_of, count(*) FROM main.lead_features GROUP BY as_of ORDER BY as_of"
        ).fetchall()
        gone = spark.execute(
            "SELECT (SELECT count(*) FROM main.lead_features WHERE lead_id = ?), "
            "(SELECT count(*) FROM main.account_metrics_daily WHERE account_id = ?)",
            [lead, account],
        ).fetchall()[0]
    assert [day for day, _ in per_day] == [LAST_DAY - dt.timedelta(days=n) for n in (3, 2, 1, 0)]
    assert all(n > 0 for _, n in per_day)
    assert gone == (0, 0)
