"""Load the raw tables from a folder of CSV or Parquet exports (one file per table).

Each table of :data:`ml.sources.schema.RAW_TABLES` is read from ``<folder>/<table>.csv`` or
``<folder>/<table>.parquet`` (one of the two). Every file is read and every value checked against the
contract *before* the one transaction that replaces schema ``raw`` (:func:`ml.sources.landing.land`,
which also applies the volume guards); when anything is wrong nothing is written and
:class:`SourceFileError` lists the problems, up to :attr:`FileOptions.max_problems` per file, each as
``<file>, line <L>, column '<c>': <what is wrong>`` (CSV lines are physical lines of the file, the
header being line 1; Parquet files say ``row <R>``, the first data row being row 1).

Reading:

- CSV: UTF-8 (a byte-order mark is allowed), comma-separated, a header line, fields quoted with ``"``
  where needed (``""`` inside a quoted field). A row with more or fewer fields than the header, a quote
  that is never closed (a truncated file), a byte that is not UTF-8 or a line longer than DuckDB reads
  at once is a problem of its line. Blank lines are skipped.
- Null markers (:data:`DEFAULT_NULL_MARKERS`, configurable): a value equal to one of them, exactly, is
  NULL, in every column, before types are checked. ``NA`` is not one: it is Namibia's country code.
- Types: numbers must be finite (``NaN``, ``inf``, ``-inf`` are refused in any casing); INTEGER/BIGINT
  values must be whole (``12`` or ``12.0``, never ``12.5``); DATE is ``YYYY-MM-DD``; BOOLEAN is
  true/false (t/f, yes/no, y/n, 1/0); TIMESTAMP is ISO 8601, ``YYYY-MM-DD[( |T)HH:MM[:SS[.ffffff]]]``,
  optionally followed by ``Z`` or a UTC offset (``+05:00``, ``+0500``, ``+05``): a timestamp with an
  offset is converted to UTC, one without is taken to be UTC already. Raw TIMESTAMPs are naive UTC.
- A required column (``Column.nullable=False``) may not be NULL (empty or a null marker).
- The key of each table (``RawTable.key``) may not repeat: duplicated keys are listed with their lines.
- An optional table (``RawTable.optional``: the CRM's users) may have no file; it then lands empty.
- Extra columns are ignored; ``_loaded_at`` may be left out, and then is the time of the load; optional
  columns (the CRM's own record ids, ``Column.optional``) may be left out, and then load as empty.

CSV files are read by DuckDB (all values as text, malformed rows collected in its rejects tables) into
temporary tables of the connection; only when a problem is reported does Python read the file again,
to turn DuckDB's record numbers into physical line numbers when a quoted field spans lines.

The load replaces schema ``raw`` in one transaction (twice is the same as once) and drops the
``oracle`` and ``synthetic_crm`` schemas, which only ever describe synthetic data.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import itertools
import logging
import math
import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from ml.sources.landing import DEFAULT_MAX_SHRINK, Hook, SourceLoadError, land
from ml.sources.schema import LOADED_AT, RAW_TABLES, Column, RawTable, create_table_sql

log = logging.getLogger(__name__)

MAX_REPORTED_PROBLEMS = 20
# Values that stand for "no value", matched exactly (case and spaces count). Not 'NA' (Namibia's country
# code), 'None' or 'nan' (words and names; NaN is refused in numbers anyway).
DEFAULT_NULL_MARKERS: tuple[str, ...] = ("", "NULL", "null", "N/A", "n/a", "#N/A", "\\N")
MAX_FIELD_BYTES = 1 << 20
SYNTHETIC_ONLY_SCHEMAS = ("oracle", "synthetic_crm")
SHOWN_VALUE_CHARS = 60
SHOWN_DUPLICATE_ROWS = 5

# The text forms each type accepts (DuckDB's casts alone would round 1.5 into an INTEGER, read 0x10 as 16 and
# drop a timestamp's offset).
_WHOLE = r"\s*[+-]?[0-9]+(\.0*)?\s*"
_DATE = r"\s*[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([T ]00:00(:00(\.0*)?)?)?\s*"
_NAIVE_TIMESTAMP = r"\s*[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([T ][0-9]{1,2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?)?\s*"
_OFFSET_TIMESTAMP = (
    r"\s*[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}[T ][0-9]{1,2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
    r"(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)\s*"
)
_TYPE_HINTS = {
    "TIMESTAMP": " (expected ISO 8601, e.g. 2026-06-07 11:51:56 or 2026-06-07T11:51:56+05:00)",
    "DATE": " (expected YYYY-MM-DD)",
    "INTEGER": " (expected a whole number)",
    "BIGINT": " (expected a whole number)",
    "BOOLEAN": " (expected true or false)",
}
_NUMERIC = ("DOUBLE", "INTEGER", "BIGINT")


class SourceFileError(SourceLoadError):
    """A raw export cannot be loaded; the message names each file, line and column at fault."""


@dataclass(frozen=True)
class FileOptions:
    """How strictly exports are read."""

    null_markers: tuple[str, ...] = DEFAULT_NULL_MARKERS
    max_field_bytes: int = MAX_FIELD_BYTES  # a longer value is a problem
    max_problems: int = MAX_REPORTED_PROBLEMS  # listed per file (all are counted)


@dataclass(frozen=True)
class Problem:
    file: str
    message: str
    line: int | None = None  # physical line of a CSV file, the header being line 1
    row: int | None = None  # data row (the first is 1): Parquet, or CSV when the line is unknown
    columns: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = [self.file]
        if self.line is not None:
            where.append(f"line {self.line}")
        elif self.row is not None:
            where.append(f"row {self.row}")
        if self.columns:
            names = ", ".join(f"'{c}'" for c in self.columns)
            where.append(f"column {names}" if len(self.columns) == 1 else f"columns {names}")
        return f"{', '.join(where)}: {self.message}"


@dataclass
class _Finding:
    """A problem at a data row (1-based); ``others`` are rows its message lists (``{others}`` in the message)."""

    row: int
    message: str
    columns: tuple[str, ...] = ()
    others: tuple[int, ...] = ()
    more: int = 0


@dataclass
class _Export:
    """A readable export: a temporary view of its rows as text (``_row`` + the contract columns it has)."""

    table: RawTable
    path: Path
    view: str
    present: set[str]
    lines: _CsvLines | None = None  # None for Parquet


@dataclass
class _Report:
    problems: list[Problem] = field(default_factory=list)
    total: int = 0

    def add(self, problem: Problem, count: int = 1) -> None:
        self.problems.append(problem)
        self.total += count


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _temp_name(kind: str, table: RawTable) -> str:
    return f"_leadscore_{kind}_{table.name}"


def find_table_file(folder: Path, table: RawTable) -> Path | Problem:
    """``<table>.csv`` or ``<table>.parquet``; neither, or both, is a problem."""
    found = [path for path in (folder / f"{table.name}.csv", folder / f"{table.name}.parquet") if path.exists()]
    if len(found) == 1:
        return found[0]
    if found:
        return Problem(f"{table.name}.csv", f"{table.name}.parquet is in {folder} too: keep one of the two")
    return Problem(
        f"{table.name}.csv", f"file is missing from {folder} (expected {table.name}.csv or {table.name}.parquet)"
    )


# --- values ----------------------------------------------------------------------------------------------
def _nulled(text: str, markers: Sequence[str]) -> str:
    if not markers:
        return text
    return f"(CASE WHEN {text} IN ({', '.join(_sql_text(m) for m in markers)}) THEN NULL ELSE {text} END)"


def _typed(type_: str, text: str) -> str:
    """``text`` (VARCHAR, NULL markers already NULL) as ``type_``, or NULL where it is not one."""
    if type_ == "VARCHAR":
        return text
    if type_ in ("INTEGER", "BIGINT"):
        return f"(CASE WHEN regexp_full_match({text}, '{_WHOLE}') THEN TRY_CAST({text} AS {type_}) END)"
    if type_ == "DOUBLE":
        return f"(CASE WHEN isfinite(TRY_CAST({text} AS DOUBLE)) THEN TRY_CAST({text} AS DOUBLE) END)"
    if type_ == "DATE":
        return f"(CASE WHEN regexp_full_match({text}, '{_DATE}') THEN TRY_CAST({text} AS DATE) END)"
    if type_ == "TIMESTAMP":
        return (
            f"(CASE WHEN regexp_full_match({text}, '{_NAIVE_TIMESTAMP}') THEN TRY_CAST({text} AS TIMESTAMP) "
            f"WHEN regexp_full_match({text}, '{_OFFSET_TIMESTAMP}') "
            f"THEN TRY_CAST({text} AS TIMESTAMPTZ) AT TIME ZONE 'UTC' END)"
        )
    return f"TRY_CAST({text} AS {type_})"


def _column_value(column: Column, markers: Sequence[str]) -> str:
    return _typed(column.type, _nulled(f'"{column.name}"', markers))


def _may_be_absent(column: Column) -> bool:
    return column.optional or column.name == LOADED_AT.name


def _select_typed(export: _Export, markers: Sequence[str], loaded_at: dt.datetime) -> str:
    values = []
    for c in export.table.columns:
        if c.name in export.present:
            values.append(_column_value(c, markers))
        elif c.optional:
            values.append(f"CAST(NULL AS {c.type})")
        else:  # only _loaded_at may otherwise be missing (checked before); it then records this load
            values.append(f"TIMESTAMP '{loaded_at:%Y-%m-%d %H:%M:%S}'")
    return f"SELECT {', '.join(values)} FROM {export.view}"


def _shown(value: str | None, size: int | None) -> str:
    if value is None:
        return "NULL"
    return repr(value) if (size or 0) <= len(value.encode()) else f"{value!r}…"


def _type_message(value: str, shown: str, type_: str) -> str:
    if type_ in _NUMERIC:
        with contextlib.suppress(ValueError):
            if not math.isfinite(float(value)):
                return f"{shown} is not a finite number (NaN and infinity are refused)"
    article = "an" if type_[0] in "AEIOU" else "a"
    return f"{shown} is not {article} {type_}{_TYPE_HINTS.get(type_, '')}"


def _value_findings(
    con: duckdb.DuckDBPyConnection, export: _Export, options: FileOptions
) -> tuple[list[_Finding], int]:
    """Oversize, missing required and mistyped values: one scan counts them, one query per kind lists the first."""
    checks: list[tuple[str, Column, str]] = []
    for c in export.table.columns:
        if c.name not in export.present:
            continue
        raw = f'"{c.name}"'
        text = _nulled(raw, options.null_markers)
        checks.append(("size", c, f"strlen({raw}) > {options.max_field_bytes}"))
        if not c.nullable:
            checks.append(("required", c, f"{text} IS NULL"))
        if c.type != "VARCHAR":
            checks.append(("type", c, f"{text} IS NOT NULL AND {_typed(c.type, text)} IS NULL"))
    if not checks:
        return [], 0
    counts = con.execute(
        f"SELECT {', '.join(f'count(*) FILTER (WHERE {pred})' for _, _, pred in checks)} FROM {export.view}"
    ).fetchall()[0]
    findings: list[_Finding] = []
    for (kind, c, pred), count in zip(checks, counts, strict=True):
        if not count:
            continue
        rows = con.execute(
            f'SELECT _row, left("{c.name}", {SHOWN_VALUE_CHARS}), strlen("{c.name}") FROM {export.view} '
            f"WHERE {pred} ORDER BY _row LIMIT {options.max_problems}"
        ).fetchall()
        for row, value, size in rows:
            shown = _shown(value, size)
            if kind == "size":
                message = f"field is {size:,} bytes, more than the {options.max_field_bytes:,} allowed"
            elif kind == "required":
                what = "is empty" if not value else f"{shown} is a null marker"
                message = f"{what}, but the column is required"
            else:
                message = _type_message(value, shown, c.type)
            findings.append(_Finding(int(row), message, (c.name,)))
    return findings, sum(counts)


def _key_text(values: Sequence[object]) -> str:
    shown = [repr(v) if isinstance(v, str) else str(v) for v in values]
    return shown[0] if len(shown) == 1 else f"({', '.join(shown)})"


def _duplicate_findings(
    con: duckdb.DuckDBPyConnection, export: _Export, options: FileOptions
) -> tuple[list[_Finding], int]:
    """Keys that repeat (rows with a NULL in the key are not compared), with the rows they are on."""
    key = export.table.key
    if not key or not set(key) <= export.present:
        return [], 0
    columns = {c.name: c for c in export.table.columns}
    values = ", ".join(f"{_column_value(columns[k], options.null_markers)} AS k{i}" for i, k in enumerate(key))
    names = ", ".join(f"k{i}" for i in range(len(key)))
    not_null = " AND ".join(f"k{i} IS NOT NULL" for i in range(len(key)))
    keys = f"SELECT _row, {values} FROM {export.view}"
    rows = con.execute(
        f"SELECT *, count(*) OVER () FROM (SELECT {names}, count(*) AS n, "
        f"list(_row ORDER BY _row)[1:{SHOWN_DUPLICATE_ROWS + 1}] AS rows FROM ({keys}) "
        f"WHERE {not_null} GROUP BY {names} HAVING count(*) > 1) ORDER BY rows[1] LIMIT {options.max_problems}"
    ).fetchall()
    findings = []
    for *key_values, n, row_list, _ in rows:
        findings.append(
            _Finding(
                int(row_list[0]),
                f"duplicate key {_key_text(key_values)}, also on {{others}}",
                key,
                tuple(int(r) for r in row_list[1:]),
                n - len(row_list),
            )
        )
    return findings, (rows[0][-1] if rows else 0)


# --- CSV ---------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _csv_field_limit(limit: int) -> Iterator[None]:
    """Python's csv module reads fields up to ``limit`` characters (DuckDB's line limit), no more: memory stays
    bounded even when an unterminated quote would swallow the rest of the file."""
    previous = csv.field_size_limit()
    csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _first_bad_utf8(path: Path, line: int, span: int = 1_000) -> tuple[int, int, int] | None:
    """(line, position in the line, byte) of the first byte that is not UTF-8 from ``line`` on."""
    with path.open("rb") as f:
        for number, raw in enumerate(itertools.islice(f, line - 1, line - 1 + span), start=line):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return number, exc.start + 1, raw[exc.start]
    return None


def _not_utf8(path: Path, line: int) -> tuple[int, str]:
    found = _first_bad_utf8(path, line)
    if found is None:
        return line, "not valid UTF-8 (re-export the file as UTF-8)"
    line, position, byte = found
    return line, (
        f"not valid UTF-8: byte 0x{byte:02X} at position {position} of the line "
        "(a Latin-1 or Windows-1252 export? re-export the file as UTF-8)"
    )


class _CsvLines:
    """Physical line numbers of DuckDB's records (header = 1, blank lines counted) and data rows (1-based)."""

    def __init__(self, path: Path, header_lines: int, max_line: int, records_read: int):
        self.path = path
        self.header_lines = header_lines
        self.max_line = max_line
        self.records_read = records_read  # records DuckDB saw: the header, the rows read and the rows rejected
        self._count: tuple[int, bool] | None = None

    def count(self) -> tuple[int, bool]:
        """Physical lines in the file, and whether the last one ends with a newline (C-speed count)."""
        if self._count is None:
            lines, last = 0, b""
            with self.path.open("rb") as f:
                while chunk := f.read(1 << 24):
                    lines += chunk.count(b"\n")
                    last = chunk[-1:]
            self._count = (lines + (1 if last not in (b"", b"\n") else 0), last == b"\n")
        return self._count

    def _one_line_per_record(self) -> bool:
        # No quoted field spans lines and no line is blank exactly when the counts agree.
        return self.header_lines == 1 and self.count()[0] == self.records_read

    def locate(
        self, records: Collection[int] = (), rows: Collection[int] = ()
    ) -> tuple[dict[int, int], dict[int, int]]:
        """(record -> line, data row -> line) for the records and data rows asked for."""
        if self._one_line_per_record():
            return {r: r for r in records}, {r: r + 1 for r in rows}
        return self._scan(set(records), set(rows))

    def _scan(self, records: set[int], rows: set[int]) -> tuple[dict[int, int], dict[int, int]]:
        """Read the file with Python's csv module (same quoting rules) up to the last record wanted."""
        record_lines: dict[int, int] = {}
        row_lines: dict[int, int] = {}
        last_record, last_row = max(records, default=0), max(rows, default=0)
        text = self.path.open(encoding="utf-8-sig", errors="surrogateescape", newline="")
        with _csv_field_limit(self.max_line), text as f:
            reader = csv.reader(f)
            start, record, row = 1, 0, 0
            with contextlib.suppress(csv.Error):
                for fields in reader:
                    record += 1
                    if record in records:
                        record_lines[record] = start
                    if record > 1 and fields:
                        row += 1
                        if row in rows:
                            row_lines[row] = start
                    if record >= last_record and row >= last_row:
                        break
                    start = reader.line_num + 1
        return record_lines, row_lines


def _read_header(path: Path, max_line: int) -> tuple[list[str], int] | Problem:
    with _csv_field_limit(max_line), path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        reader = csv.reader(f)
        try:
            names = next(reader, None)
        except csv.Error as exc:
            return Problem(path.name, f"the header cannot be read: {exc}", line=1)
        header_lines = reader.line_num
    if names is None:
        return Problem(path.name, "file is empty (no header line)")
    if not names:
        return Problem(path.name, "the header line is empty", line=1)
    try:
        "".join(names).encode("utf-8")
    except UnicodeEncodeError:
        line, message = _not_utf8(path, 1)
        return Problem(path.name, message, line=line)
    return [n.strip() for n in names], header_lines


def _header_is_cut(path: Path) -> bool:
    """The file ends inside its header line (no newline after it): a truncated export."""
    with path.open("rb") as f:
        return not f.readline().endswith(b"\n")


_RAGGED = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")


def _report_rejected(
    path: Path, names: list[str], rejected: list[tuple], lines: _CsvLines, options: FileOptions, report: _Report
) -> None:
    """The rows DuckDB could not read (``line`` is its record number), as problems of their physical line."""
    shown = rejected[: options.max_problems]
    record_lines, _ = lines.locate(records=[r[0] for r in shown])
    physical, ends_with_newline = lines.count()
    for record, kind, message, column, csv_line in shown:
        line = record_lines.get(record, record)
        if kind == "INVALID ENCODING":
            line, text = _not_utf8(path, line)
        else:
            at_end = line == physical and not ends_with_newline
            text = _reject_message(kind, message, csv_line, options, lines.max_line, at_end)
        named = names[int(column[1:])] if column and re.fullmatch(r"c\d+", column) else None
        columns = (named,) if named and kind in ("INVALID ENCODING", "UNQUOTED VALUE") else ()
        report.add(Problem(path.name, text, line=line, columns=columns))
    report.total += len(rejected) - len(shown)


def _reject_message(
    kind: str, message: str, csv_line: str | None, options: FileOptions, max_line: int, at_end: bool
) -> str:
    if kind in ("MISSING COLUMNS", "TOO MANY COLUMNS"):
        match = _RAGGED.search(message)
        found = f"{match.group(2)} fields, the header has {match.group(1)}" if match else message
        truncated = " (the file ends in this row without a newline: truncated?)" if at_end else ""
        return f"row has {found}{truncated}"
    if kind == "UNQUOTED VALUE":
        try:
            list(csv.reader([csv_line or ""], strict=True))
        except csv.Error as exc:
            if "expected after" in str(exc):
                return 'text follows a closing quote (quote the whole field, doubling the quotes inside it: "")'
        return "a quoted field is never closed (unterminated quote; a truncated file?)"
    if kind == "LINE SIZE OVER MAXIMUM":
        return f"line is longer than {max_line:,} bytes (a field of more than {options.max_field_bytes:,} bytes?)"
    return f"cannot be read: {message}"


def _mixed_line_endings(path: Path) -> Problem | None:
    with path.open("rb") as f:
        first = f.readline()
        crlf = first.endswith(b"\r\n")
        for number, raw in enumerate(f, start=2):
            if raw.endswith(b"\n") and raw.endswith(b"\r\n") != crlf:
                ends, other = (r"\n", r"\r\n") if crlf else (r"\r\n", r"\n")
                message = f"line ends with {ends} while line 1 ends with {other}: mixed line endings (use one kind)"
                return Problem(path.name, message, line=number)
    return None


def _read_csv(
    con: duckdb.DuckDBPyConnection, table: RawTable, path: Path, options: FileOptions, report: _Report
) -> _Export | None:
    max_line = max(2_000_000, 2 * options.max_field_bytes + 65_536)  # DuckDB's limit, raised for long fields
    header = _read_header(path, max_line)
    if isinstance(header, Problem):
        report.add(header)
        return None
    names, header_lines = header
    present = _map_columns(table, names, path.name, report, line=1)
    if report.problems and _header_is_cut(path):
        report.add(Problem(path.name, "the file ends inside its header line (truncated?)", line=1), count=0)
    stage, rejects, scans = (_temp_name(k, table) for k in ("csv", "rejects", "rejects_scan"))
    for name in (rejects, scans):
        con.execute(f"DROP TABLE IF EXISTS temp.main.{name}")
    columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(names))) + "}"
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {stage} AS SELECT * FROM read_csv({_sql_text(str(path))}, "
            f"header = true, auto_detect = false, columns = {columns}, delim = ',', quote = '\"', escape = '\"', "
            "strict_mode = true, null_padding = false, nullstr = '\n', allow_quoted_nulls = false, "
            f"store_rejects = true, rejects_table = '{rejects}', rejects_scan = '{scans}', "
            f"rejects_limit = {max(100, options.max_problems)}, max_line_size = {max_line})"
        )
    except duckdb.Error as exc:
        first_line = str(exc).strip().splitlines()[0]
        report.add(_mixed_line_endings(path) or Problem(path.name, f"cannot be read as CSV: {first_line}"))
        return None
    staged = con.execute(f"SELECT count(*) FROM {stage}").fetchall()[0][0]
    # DuckDB may list a row twice (a truncated last row): one problem a line.
    rejected = con.execute(
        f"SELECT line, any_value(error_type), any_value(error_message), any_value(column_name), "
        f"any_value(left(csv_line, 10000)) FROM {rejects} GROUP BY line ORDER BY line"
    ).fetchall()
    lines = _CsvLines(path, header_lines, max_line, records_read=1 + staged + len(rejected))
    if rejected:
        _report_rejected(path, names, rejected, lines, options, report)
        return None  # rows after a rejected one are numbered differently: check values once it can be read
    view = _text_view(con, table, "rowid + 1", {name: f"c{i}" for name, i in present.items()}, stage)
    return _Export(table, path, view, set(present), lines)


# --- Parquet -----------------------------------------------------------------------------------------------
def _read_parquet(con: duckdb.DuckDBPyConnection, table: RawTable, path: Path, report: _Report) -> _Export | None:
    source = f"read_parquet({_sql_text(str(path))}, file_row_number = true)"
    try:
        names = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({_sql_text(str(path))})").fetchall()]
    except duckdb.Error as exc:
        report.add(Problem(path.name, f"cannot be read as Parquet: {str(exc).strip().splitlines()[0]}"))
        return None
    present = _map_columns(table, names, path.name, report, line=None)
    # As text, like CSV values: one set of checks. A TIMESTAMPTZ keeps its offset in its text (then to UTC).
    columns = {name: f'CAST("{name}" AS VARCHAR)' for name in present}
    view = _text_view(con, table, "file_row_number + 1", columns, source)
    return _Export(table, path, view, set(present))


# --- both --------------------------------------------------------------------------------------------------
def _text_view(con: duckdb.DuckDBPyConnection, table: RawTable, row: str, columns: dict[str, str], source: str) -> str:
    """A temporary view of an export: ``_row`` (1-based) and each contract column it has, as text."""
    view = _temp_name("text", table)
    select = "".join(f', {expression} AS "{name}"' for name, expression in columns.items())
    con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT {row} AS _row{select} FROM {source}")
    return view


def _map_columns(table: RawTable, names: list[str], file: str, report: _Report, line: int | None) -> dict[str, int]:
    """Contract column -> position in the file; a missing required column or a repeated one is a problem."""
    wanted = set(table.column_names)
    present: dict[str, int] = {}
    for i, name in enumerate(names):
        if name not in wanted:
            continue
        if name in present:
            twice = f"appears twice in the header (fields {present[name] + 1} and {i + 1})"
            report.add(Problem(file, twice, line, None, (name,)))
        else:
            present[name] = i
    for c in table.columns:
        if c.name not in present and not _may_be_absent(c):
            report.add(Problem(file, "column is missing", columns=(c.name,)))
    return present


def _check(
    con: duckdb.DuckDBPyConnection, table: RawTable, path: Path, options: FileOptions
) -> tuple[_Export | None, _Report]:
    report = _Report()
    try:
        if path.suffix == ".csv":
            export = _read_csv(con, table, path, options, report)
        else:
            export = _read_parquet(con, table, path, report)
        if export is None or report.problems:
            return export, report
        values, value_total = _value_findings(con, export, options)
        duplicates, duplicate_total = _duplicate_findings(con, export, options)
    except duckdb.Error as exc:
        report.add(Problem(path.name, f"cannot be read: {str(exc).strip().splitlines()[0]}"))
        return None, report
    findings = sorted(values + duplicates, key=lambda f: (f.row, f.columns))[: options.max_problems]
    report.total += value_total + duplicate_total
    _place(findings, export, report)
    return export, report


def _place(findings: list[_Finding], export: _Export, report: _Report) -> None:
    """Findings as problems: CSV rows become physical lines, Parquet ones stay rows."""
    rows = {r for f in findings for r in (f.row, *f.others)}
    row_lines = export.lines.locate(rows=rows)[1] if export.lines and rows else {}

    def where(numbers: Sequence[int]) -> str:
        if export.lines and all(r in row_lines for r in numbers):
            return ("line " if len(numbers) == 1 else "lines ") + ", ".join(str(row_lines[r]) for r in numbers)
        return ("row " if len(numbers) == 1 else "rows ") + ", ".join(str(r) for r in numbers)

    for f in findings:
        message = f.message
        if f.others:
            message = message.format(others=where(f.others) + (f" and {f.more:,} more rows" if f.more else ""))
        line = row_lines.get(f.row)
        report.problems.append(Problem(export.path.name, message, line, None if line else f.row, f.columns))


def _drop_temporary(con: duckdb.DuckDBPyConnection) -> None:
    for table in RAW_TABLES:
        con.execute(f"DROP VIEW IF EXISTS temp.main.{_temp_name('text', table)}")
        for kind in ("csv", "rejects", "rejects_scan"):
            con.execute(f"DROP TABLE IF EXISTS temp.main.{_temp_name(kind, table)}")


def load_files(
    con: duckdb.DuckDBPyConnection,
    folder: str | Path,
    loaded_at: dt.datetime | None = None,
    *,
    allow_shrink: Collection[str] = (),
    max_shrink: float = DEFAULT_MAX_SHRINK,
    options: FileOptions | None = None,
    before_commit: Sequence[Hook] = (),
) -> dict[str, int]:
    """Check every export in ``folder``, then replace schema ``raw`` with them in one transaction.

    Raises :class:`SourceFileError` listing the problems found (up to ``options.max_problems`` per file)
    and writes nothing when there is any; the volume guards of :func:`ml.sources.landing.land` apply
    (``allow_shrink``, ``max_shrink``), and its ``before_commit`` hooks run before they count.
    """
    folder = Path(folder)
    options = options or FileOptions()
    loaded_at = loaded_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if not folder.is_dir():
        raise SourceFileError(f"{folder}: source folder does not exist")
    problems: list[Problem] = []
    total = 0
    exports: list[_Export] = []
    absent: list[RawTable] = []  # optional tables without a file: they land empty
    try:
        for table in RAW_TABLES:
            if table.optional and not any((folder / f"{table.name}.{ext}").exists() for ext in ("csv", "parquet")):
                absent.append(table)
                continue
            path = find_table_file(folder, table)
            if isinstance(path, Problem):
                problems.append(path)
                total += 1
                continue
            export, report = _check(con, table, path, options)
            problems += report.problems
            total += report.total
            if report.total > len(report.problems):
                listed = len(report.problems)
                problems.append(Problem(path.name, f"{report.total:,} problems in all; the first {listed} are listed"))
            if export is not None:
                exports.append(export)
        if problems:
            raise SourceFileError(
                f"{total:,} problem(s) in the raw exports in {folder}; nothing was replaced:\n"
                + "\n".join(f"- {p}" for p in problems)
            )

        def write_tables(con: duckdb.DuckDBPyConnection) -> None:
            con.execute("CREATE SCHEMA IF NOT EXISTS raw")
            for table in absent:
                con.execute(create_table_sql(table))
            for export in exports:
                con.execute(create_table_sql(export.table))
                con.execute(
                    f"INSERT INTO raw.{export.table.name} {_select_typed(export, options.null_markers, loaded_at)}"
                )
            # Both describe the synthetic company only; left behind they would contradict these exports.
            for schema in SYNTHETIC_ONLY_SCHEMAS:
                con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

        return land(
            con,
            write_tables,
            source=f"the exports in {folder}",
            allow_shrink=allow_shrink,
            max_shrink=max_shrink,
            before_commit=before_commit,
        )
    finally:
        _drop_temporary(con)


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
