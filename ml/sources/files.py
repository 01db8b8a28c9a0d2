"""Load the raw tables from a folder of CSV or Parquet exports (one file per table).

Each table of :data:`ml.sources.schema.RAW_TABLES` is read from ``<folder>/<table>.parquet`` or
``<folder>/<table>.csv`` (with a header row). Every value is checked against the contract before
anything is written, and a problem fails the load with a message naming the file, the column and the
row, e.g. ``invoices.csv, column 'amount', row 17 (line 18): 'abc' is not a DOUBLE``. Extra columns
are ignored; ``_loaded_at`` may be left out, and then is the time of the load; optional columns (the
CRM's own record ids, ``Column.optional``) may be left out, and then load as empty.

The load replaces schema ``raw`` in one transaction (twice is the same as once) and drops the
``oracle`` and ``synthetic_crm`` schemas, which only ever describe synthetic data.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ml.sources.schema import LOADED_AT, RAW_TABLES, Column, RawTable, create_table_sql

log = logging.getLogger(__name__)

MAX_REPORTED_PROBLEMS = 20
SYNTHETIC_ONLY_SCHEMAS = ("oracle", "synthetic_crm")


class SourceFileError(ValueError):
    """A raw export cannot be loaded; the message names each file, column and row at fault."""


@dataclass(frozen=True)
class Problem:
    file: str
    column: str | None
    row: int | None
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.column:
            where += f", column '{self.column}'"
        if self.row is not None:
            line = f" (line {self.row + 1})" if self.file.endswith(".csv") else ""
            where += f", row {self.row}{line}"
        return f"{where}: {self.message}"


def find_table_file(folder: Path, table: RawTable) -> Path | None:
    for suffix in (".parquet", ".csv"):
        candidate = folder / f"{table.name}{suffix}"
        if candidate.exists():
            return candidate
    return None


def _scan_sql(path: Path) -> str:
    """A scan with a 1-based row number that follows the file's order."""
    quoted = str(path).replace("'", "''")
    if path.suffix == ".parquet":
        return f"(SELECT *, file_row_number + 1 AS _row FROM read_parquet('{quoted}', file_row_number = true))"
    # all_varchar: we type-check every value ourselves, so a bad value is reported, not guessed around.
    return (
        f"(SELECT *, row_number() OVER () AS _row FROM read_csv('{quoted}', header = true, all_varchar = true, "
        "auto_detect = true))"
    )


def _may_be_absent(column: Column) -> bool:
    return column.optional or column.name == LOADED_AT.name


def _value_expression(column: Column, present: bool, loaded_at: dt.datetime) -> str:
    if present:
        return f'TRY_CAST("{column.name}" AS {column.type})'
    if column.optional:
        return f"CAST(NULL AS {column.type})"
    # Only _loaded_at may otherwise be missing (checked before); it then records this load.
    return f"TIMESTAMP '{loaded_at:%Y-%m-%d %H:%M:%S}'"


def check_table_file(con: duckdb.DuckDBPyConnection, path: Path, table: RawTable) -> tuple[list[Problem], set[str]]:
    """Problems in one file, and the contract columns it has."""
    scan = _scan_sql(path)
    try:
        header = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()]
    except duckdb.Error as exc:
        return [Problem(path.name, None, None, f"cannot be read: {exc}")], set()
    present = set(header) & set(table.column_names)
    problems = [
        Problem(path.name, c.name, None, "column is missing")
        for c in table.columns
        if c.name not in present and not _may_be_absent(c)
    ]
    checks: list[str] = []
    for c in table.columns:
        if c.name not in present:
            continue
        name = c.name.replace("'", "''")
        checks.append(
            f"SELECT _row, '{name}' AS col, CAST(\"{c.name}\" AS VARCHAR) AS value, "
            f"'is not a {c.type}' AS why FROM {scan} "
            f'WHERE "{c.name}" IS NOT NULL AND TRY_CAST("{c.name}" AS {c.type}) IS NULL'
        )
        if not c.nullable:
            checks.append(
                f"SELECT _row, '{name}', NULL, 'is empty but required' FROM {scan} WHERE \"{c.name}\" IS NULL"
            )
    if checks:
        rows = con.execute(
            f"SELECT * FROM ({' UNION ALL '.join(checks)}) ORDER BY _row, col LIMIT {MAX_REPORTED_PROBLEMS}"
        ).fetchall()
        for row_number, column, value, why in rows:
            shown = f"{value!r} {why}" if value is not None else f"value {why}"
            problems.append(Problem(path.name, column, int(row_number), shown))
    return problems, present


def load_files(
    con: duckdb.DuckDBPyConnection, folder: str | Path, loaded_at: dt.datetime | None = None
) -> dict[str, int]:
    """Validate every export in ``folder``, then replace schema ``raw`` with them atomically.

    Raises :class:`SourceFileError` listing every problem found (up to a limit per file) and writes
    nothing when there is any.
    """
    folder = Path(folder)
    loaded_at = loaded_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if not folder.is_dir():
        raise SourceFileError(f"{folder}: source folder does not exist")
    problems: list[Problem] = []
    plan: list[tuple[RawTable, Path, set[str]]] = []
    for table in RAW_TABLES:
        path = find_table_file(folder, table)
        if path is None:
            problems.append(
                Problem(
                    f"{table.name}.csv",
                    None,
                    None,
                    f"file is missing from {folder} (expected {table.name}.csv or {table.name}.parquet)",
                )
            )
            continue
        table_problems, present = check_table_file(con, path, table)
        problems += table_problems
        plan.append((table, path, present))
    if problems:
        raise SourceFileError(
            f"{len(problems)} problem(s) in the raw exports in {folder}:\n" + "\n".join(f"- {p}" for p in problems)
        )

    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS raw")
        for table, path, present in plan:
            con.execute(create_table_sql(table))
            values = ", ".join(_value_expression(c, c.name in present, loaded_at) for c in table.columns)
            con.execute(f"INSERT INTO raw.{table.name} SELECT {values} FROM {_scan_sql(path)} ORDER BY _row")
        # Both describe the synthetic company only; left behind they would contradict these exports.
        for schema in SYNTHETIC_ONLY_SCHEMAS:
            con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    counts = {t.name: con.execute(f"SELECT count(*) FROM raw.{t.name}").fetchall()[0][0] for t, _, _ in plan}
    log.info("raw tables loaded from %s: %s", folder, counts)
    return counts


def export_raw(con: duckdb.DuckDBPyConnection, folder: str | Path, file_format: str = "csv") -> list[Path]:
    """Write every raw table to ``folder`` in the files loader's layout (a template for real exports)."""
    if file_format not in ("csv", "parquet"):
        raise ValueError(f"file_format must be csv or parquet, not {file_format!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for table in RAW_TABLES:
        path = folder / f"{table.name}.{file_format}"
        options = "(FORMAT csv, HEADER true)" if file_format == "csv" else "(FORMAT parquet)"
        con.execute(f"COPY raw.{table.name} TO '{path}' {options}")
        written.append(path)
    return written
