"""Which engine builds the warehouse, and how Python reads what Spark built.

The dbt project runs on DuckDB (the embedded default) or on Spark (``LEADSCORE_ENGINE=spark``; README
"Scaling out"). Python reads and writes one DuckDB file in both cases, so every reader in ``ml/`` and
``activation/`` stays one SQL dialect and one connection:

- **DuckDB**: dbt builds the marts in that file.
- **Spark**: the raw tables still land in the DuckDB file (one transaction behind the volume guards,
  ``ml.sources.landing``), and :func:`publish_raw_tables` then writes each as Parquet under
  ``<spark dir>/raw/<table>/``, where dbt's on-run-start hook registers them for Spark. dbt on Spark
  writes its tables as Parquet under ``<spark dir>/warehouse/<schema>.db/<table>/``;
  :func:`attach_spark_tables` makes each one a view of the same name in the DuckDB file
  (``main.lead_features``, ``intermediate.int_leads``), over its Parquet files. Readers cannot tell the
  difference, and what Python writes (scores, sync state) stays in the DuckDB file.

Only entry points read the environment (:func:`engine_from_env`); the functions take values.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb

ENGINE_ENV = "LEADSCORE_ENGINE"
SPARK_DIR_ENV = "LEADSCORE_SPARK_DIR"
ENGINES = ("duckdb", "spark")
Engine = Literal["duckdb", "spark"]

# The schemas dbt builds (models/staging, quarantine, intermediate, marts). `raw` is not among them: on
# Spark it is registered over the Parquet files that publish_raw_tables writes.
BUILT_SCHEMAS = ("main", "staging", "intermediate")


def check_engine(value: str) -> Engine:
    engine = (value or "duckdb").strip().lower()
    if engine not in ENGINES:
        raise ValueError(f"{ENGINE_ENV} must be one of {', '.join(ENGINES)}, not {value!r}")
    return engine  # type: ignore[return-value]


def engine_from_env(environ: Mapping[str, str]) -> Engine:
    """The engine an entry point's environment names (default duckdb)."""
    return check_engine(environ.get(ENGINE_ENV, "duckdb"))


def default_spark_dir(warehouse: Path) -> Path:
    """Where Spark keeps raw Parquet, its tables and its metastore by default: ``spark/`` beside the DuckDB
    file, so that tests which isolate the warehouse isolate Spark's files too."""
    return warehouse.parent / "spark"


@dataclass(frozen=True)
class SparkLayout:
    """The folders of a local Spark warehouse (the profile's target ``spark`` reads the same paths from
    ``LEADSCORE_SPARK_DIR``)."""

    root: Path

    @property
    def raw_dir(self) -> Path:
        return self.root / "raw"

    @property
    def warehouse_dir(self) -> Path:
        return self.root / "warehouse"

    def schema_dir(self, schema: str) -> Path:
        return self.warehouse_dir / f"{schema}.db"  # Spark's layout of a database's managed tables

    def table_dir(self, schema: str, table: str) -> Path:
        return self.schema_dir(schema) / table


def publish_raw_tables(con: duckdb.DuckDBPyConnection, raw_dir: Path, tables: Iterable[str]) -> dict[str, Path]:
    """Write each raw table of ``con`` as Parquet to ``raw_dir/<table>/part-0.parquet`` for Spark.

    Each table is written to a new folder first and swapped in by renames, so a Spark job never reads a
    half-written table and a failed export leaves the previous one in place. Timestamps stay plain
    TIMESTAMP (no time zone), as in DuckDB; the Spark profile reads them so.
    """
    raw_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for table in tables:
        final = raw_dir / table
        fresh, old = raw_dir / f".{table}.new", raw_dir / f".{table}.old"
        for leftover in (fresh, old):
            shutil.rmtree(leftover, ignore_errors=True)
        fresh.mkdir()
        con.execute(f"COPY raw.{table} TO '{_sql_path(fresh / 'part-0.parquet')}' (FORMAT parquet)")
        if final.exists():
            final.rename(old)
        fresh.rename(final)
        shutil.rmtree(old, ignore_errors=True)
        written[table] = final
    return written


def spark_tables(layout: SparkLayout, schemas: Iterable[str] = BUILT_SCHEMAS) -> dict[tuple[str, str], Path]:
    """(schema, table) -> folder of every table dbt built on Spark that has data files (Spark views, such
    as the staging models, have no folder: Python reads the tables built from them)."""
    found = {}
    for schema in schemas:
        schema_dir = layout.schema_dir(schema)
        if not schema_dir.is_dir():
            continue
        for table_dir in sorted(p for p in schema_dir.iterdir() if p.is_dir()):
            if next(table_dir.rglob("*.parquet"), None) is not None:
                found[(schema, table_dir.name)] = table_dir
    return found


def attach_spark_tables(con: duckdb.DuckDBPyConnection, layout: SparkLayout) -> list[str]:
    """Make every table dbt built on Spark a view of the same name in the DuckDB file of ``con`` (a writer's
    connection), over its Parquet files. Partition folders (``as_of=2026-08-31``) become the column again.
    Views of tables Spark no longer has are dropped. Returns the views created, as ``schema.table``."""
    tables = spark_tables(layout)
    created = []
    for (schema, table), folder in tables.items():
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        existing = con.execute(
            "SELECT table_type FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        ).fetchall()
        if existing and existing[0][0] != "VIEW":
            con.execute(f"DROP TABLE {schema}.{table}")
        files = _sql_path(folder) + "/**/*.parquet"
        con.execute(
            f"CREATE OR REPLACE VIEW {schema}.{table} AS "
            f"SELECT * FROM read_parquet('{files}', hive_partitioning = true, union_by_name = true)"
        )
        created.append(f"{schema}.{table}")
    stale = con.execute(
        "SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal AND sql LIKE ?",
        [f"%{_sql_path(layout.warehouse_dir)}%"],
    ).fetchall()
    for schema, table in stale:
        if (schema, table) not in tables:
            con.execute(f"DROP VIEW {schema}.{table}")
    return created


def _sql_path(path: Path) -> str:
    return str(path.resolve()).replace("'", "''")


def spark_env(layout: SparkLayout) -> dict[str, str]:
    """Environment entries that point dbt's ``spark`` target at ``layout``."""
    return {ENGINE_ENV: "spark", SPARK_DIR_ENV: str(layout.root.resolve())}
