"""The files loader: a folder of exports lands exactly; every problem names file, line and column, nothing is
written while any is found, and no malformed file ends in a traceback."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import duckdb
import pytest

from ml.sources.files import FileOptions, SourceFileError, export_raw, load_files
from ml.sources.schema import RAW_TABLES

PAYMENTS_HEADER = b"payment_id,invoice_id,amount,paid_at,_loaded_at\n"


@pytest.fixture(scope="module")
def exports(tmp_path_factory, tiny_raw_warehouse) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    with duckdb.connect(str(tiny_raw_warehouse), read_only=True) as con:
        export_raw(con, root / "csv", "csv")
        export_raw(con, root / "parquet", "parquet")
    return {"csv": root / "csv", "parquet": root / "parquet"}


def raw_counts(path: Path) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {t.name: con.execute(f"SELECT count(*) FROM raw.{t.name}").fetchall()[0][0] for t in RAW_TABLES}


def copy_exports(source: Path, target: Path) -> Path:
    target.mkdir()
    for f in source.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    return target


def rewrite_csv(path: Path, edit) -> None:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    edit(rows)
    with path.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def set_value(path: Path, row: int, column: str, value: str) -> None:
    """Set data row ``row`` (1-based, on line row + 1) of ``column``."""

    def edit(rows):
        rows[row][rows[0].index(column)] = value

    rewrite_csv(path, edit)


def load_error(folder: Path, warehouse: Path, **kwargs) -> str:
    with duckdb.connect(str(warehouse)) as con, pytest.raises(SourceFileError) as err:
        load_files(con, folder, **kwargs)
    return str(err.value)


def raw_table_count(warehouse: Path) -> int:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'raw'").fetchall()[0][0]


# --- landing what is right -------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_round_trip_lands_every_row_and_replaces_on_reload(tmp_path, exports, tiny_raw_warehouse, fmt):
    target = tmp_path / "w.duckdb"
    with duckdb.connect(str(target)) as con:
        con.execute("CREATE SCHEMA oracle; CREATE TABLE oracle.stale AS SELECT 1 AS x")
        con.execute("CREATE SCHEMA synthetic_crm; CREATE TABLE synthetic_crm.hubspot_contacts AS SELECT 1 AS id")
        first = load_files(con, exports[fmt])
        second = load_files(con, exports[fmt])
        schemas = con.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name IN ('oracle', 'synthetic_crm')"
        ).fetchall()[0][0]
        assert schemas == 0, "the oracle and the synthetic CRM only describe synthetic data"
        con.execute(f"ATTACH '{tiny_raw_warehouse}' AS source (READ_ONLY)")
        differ = {
            t.name: con.execute(
                f"SELECT count(*) FROM (SELECT * FROM raw.{t.name} EXCEPT ALL SELECT * FROM source.raw.{t.name})"
            ).fetchall()[0][0]
            for t in RAW_TABLES
        }
        temporary = con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchall()[0][0]
    assert first == second == raw_counts(tiny_raw_warehouse)
    assert set(differ.values()) == {0}, f"every value lands exactly: {differ}"
    assert temporary == 0, "the staging tables of the check are dropped"


def test_timestamps_with_an_offset_are_converted_to_utc_and_naive_ones_taken_as_utc(tmp_path, exports):
    folder = copy_exports(exports["csv"], tmp_path / "x")

    def edit(rows):
        paid_at, loaded_at = rows[0].index("paid_at"), rows[0].index("_loaded_at")
        rows[1][paid_at], rows[1][loaded_at] = "2026-06-07T11:51:56+05:00", "2026-06-08T01:30:00-02:30"
        rows[2][paid_at], rows[2][loaded_at] = "2026-06-07T11:51:56.250Z", "2026-06-08 00:00:00+0000"
        rows[3][paid_at], rows[3][loaded_at] = "2026-06-07 11:51:56", "2026-06-08"

    rewrite_csv(folder / "payments.csv", edit)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("SET TimeZone = 'Asia/Tokyo'")  # the session's zone plays no part
        load_files(con, folder)
        got = con.execute("SELECT paid_at, _loaded_at FROM raw.payments LIMIT 3").fetchall()
    assert got == [
        (dt.datetime(2026, 6, 7, 6, 51, 56), dt.datetime(2026, 6, 8, 4, 0)),
        (dt.datetime(2026, 6, 7, 11, 51, 56, 250_000), dt.datetime(2026, 6, 8)),
        (dt.datetime(2026, 6, 7, 11, 51, 56), dt.datetime(2026, 6, 8)),
    ]


def test_a_parquet_timestamp_with_time_zone_lands_in_utc(tmp_path, exports):
    folder = copy_exports(exports["parquet"], tmp_path / "x")
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'America/New_York'")
        con.execute(
            f"COPY (SELECT * REPLACE (TIMESTAMPTZ '2026-06-07 11:51:56+05:00' AS paid_at) "
            f"FROM '{exports['parquet']}/payments.parquet') TO '{folder}/payments.parquet' (FORMAT parquet)"
        )
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        load_files(con, folder)
        assert con.execute("SELECT DISTINCT paid_at FROM raw.payments").fetchall() == [
            (dt.datetime(2026, 6, 7, 6, 51, 56),)
        ]


def test_null_markers_become_null_in_every_column_and_na_stays_a_country(tmp_path, exports):
    folder = copy_exports(exports["csv"], tmp_path / "x")

    def edit(rows):
        invoice, amount, paid_at = (rows[0].index(c) for c in ("invoice_id", "amount", "paid_at"))
        rows[1][invoice], rows[1][amount], rows[1][paid_at] = "NULL", "n/a", "null"
        rows[2][invoice], rows[2][amount], rows[2][paid_at] = "N/A", "#N/A", "\\N"
        rows[3][invoice] = ""

    rewrite_csv(folder / "payments.csv", edit)
    set_value(folder / "accounts.csv", 1, "country", "NA")
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        load_files(con, folder)
        payments = con.execute("SELECT invoice_id, amount, paid_at FROM raw.payments LIMIT 3").fetchall()
        country = con.execute("SELECT country FROM raw.accounts LIMIT 1").fetchall()[0][0]
    assert payments[:2] == [(None, None, None), (None, None, None)]
    assert payments[2][0] is None
    assert country == "NA", "Namibia is not a null"


def test_null_markers_are_configurable(tmp_path, exports):
    folder = copy_exports(exports["csv"], tmp_path / "x")
    set_value(folder / "payments.csv", 1, "invoice_id", "NULL")
    set_value(folder / "accounts.csv", 1, "country", "-")
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        load_files(con, folder, options=FileOptions(null_markers=("", "-")))
        assert con.execute("SELECT invoice_id FROM raw.payments LIMIT 1").fetchall()[0][0] == "NULL"
        assert con.execute("SELECT country FROM raw.accounts LIMIT 1").fetchall()[0][0] is None


def test_an_export_without_crm_ids_loads_them_empty(tmp_path, exports, tiny_raw_warehouse):
    folder = copy_exports(exports["csv"], tmp_path / "x")
    for table, names in CRM_ID_COLUMNS.items():
        drop_columns(folder / f"{table}.csv", names)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        counts = load_files(con, folder)
        ids = con.execute(
            "SELECT (SELECT count(hubspot_company_id) + count(salesforce_account_id) FROM raw.accounts),"
            " (SELECT count(hubspot_contact_id) + count(salesforce_lead_id) + count(salesforce_contact_id)"
            "  FROM raw.contacts), (SELECT count(email) FROM raw.contacts)"
        ).fetchall()[0]
    assert counts == raw_counts(tiny_raw_warehouse)
    assert ids[:2] == (0, 0) and ids[2] > 0, "the ids are empty, the rest is loaded"


def test_a_malformed_crm_id_is_loaded_for_the_warehouse_to_quarantine(tmp_path, exports):
    """The loader checks types only; whether an id is a valid CRM id is a warehouse rule (with a reason)."""
    folder = copy_exports(exports["csv"], tmp_path / "x")
    set_value(folder / "contacts.csv", 1, "salesforce_lead_id", "??")
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        load_files(con, folder)
        assert con.execute("SELECT count(*) FROM raw.contacts WHERE salesforce_lead_id = '??'").fetchall()[0][0] == 1


def test_loaded_at_may_be_left_out(tmp_path, exports):
    folder = copy_exports(exports["csv"], tmp_path / "x")
    for t in RAW_TABLES:
        drop_columns(folder / f"{t.name}.csv", {"_loaded_at"})
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        load_files(con, folder)
        assert con.execute("SELECT count(*) FROM raw.contacts WHERE _loaded_at IS NULL").fetchall()[0][0] == 0


# --- columns and files -----------------------------------------------------------------------------------
def drop_columns(path: Path, names: set[str]) -> None:
    def edit(rows):
        keep = [i for i, name in enumerate(rows[0]) if name not in names]
        rows[:] = [[r[i] for i in keep] for r in rows]

    rewrite_csv(path, edit)


CRM_ID_COLUMNS = {
    "accounts": {"hubspot_company_id", "salesforce_account_id"},
    "contacts": {"hubspot_contact_id", "salesforce_lead_id", "salesforce_contact_id"},
}


def test_missing_file_is_named(tmp_path, exports):
    folder = copy_exports(exports["csv"], tmp_path / "x")
    (folder / "payments.csv").unlink()
    assert "payments.csv: file is missing" in load_error(folder, tmp_path / "w.duckdb")


def test_a_table_in_both_formats_is_refused(tmp_path, exports):
    folder = copy_exports(exports["csv"], tmp_path / "x")
    (folder / "payments.parquet").write_bytes((exports["parquet"] / "payments.parquet").read_bytes())
    assert "payments.csv: payments.parquet is in" in load_error(folder, tmp_path / "w.duckdb")


def test_missing_column_is_named(tmp_path, exports):
    folder = copy_exports(exports["csv"], tmp_path / "x")
    drop_columns(folder / "invoices.csv", {"amount"})
    assert "invoices.csv, column 'amount': column is missing" in load_error(folder, tmp_path / "w.duckdb")


def test_a_missing_required_column_is_named_among_absent_optional_ones(tmp_path, exports):
    folder = copy_exports(exports["csv"], tmp_path / "x")
    drop_columns(folder / "contacts.csv", CRM_ID_COLUMNS["contacts"] | {"email"})
    message = load_error(folder, tmp_path / "w.duckdb")
    assert "contacts.csv, column 'email': column is missing" in message
    assert "1 problem(s)" in message, "absent optional columns are not problems"


# --- values ------------------------------------------------------------------------------------------------
def test_unparseable_value_names_file_line_and_column_and_writes_nothing(tmp_path, exports):
    folder = copy_exports(exports["csv"], tmp_path / "x")
    set_value(folder / "payments.csv", 17, "amount", "12,50 EUR")
    set_value(folder / "payments.csv", 3, "paid_at", "yesterday")
    set_value(folder / "subscriptions.csv", 2, "seats", "1.5")  # DuckDB alone would round it to 2
    target = tmp_path / "w.duckdb"
    message = load_error(folder, target)
    assert raw_table_count(target) == 0
    assert "payments.csv, line 18, column 'amount': '12,50 EUR' is not a DOUBLE" in message
    assert "payments.csv, line 4, column 'paid_at': 'yesterday' is not a TIMESTAMP" in message
    assert "subscriptions.csv, line 3, column 'seats': '1.5' is not an INTEGER" in message
    assert message.index("line 4, column 'paid_at'") < message.index("line 18, column 'amount'"), "in file order"


def test_nan_and_infinity_are_refused_in_numbers(tmp_path, exports):
    folder = copy_exports(exports["csv"], tmp_path / "x")
    set_value(folder / "payments.csv", 5, "amount", "NaN")
    set_value(folder / "payments.csv", 7, "amount", "inf")
    set_value(folder / "payments.csv", 9, "amount", "-Infinity")
    set_value(folder / "subscriptions.csv", 4, "seats", "nan")
    message = load_error(folder, tmp_path / "w.duckdb")
    for line, value in ((6, "NaN"), (8, "inf"), (10, "-Infinity")):
        assert f"payments.csv, line {line}, column 'amount': '{value}' is not a finite number" in message
    assert "subscriptions.csv, line 5, column 'seats': 'nan' is not a finite number" in message


def test_required_value_missing_is_reported(tmp_path, exports):
    folder = copy_exports(exports["csv"], tmp_path / "x")
    set_value(folder / "accounts.csv", 5, "account_id", "")
    set_value(folder / "payments.csv", 3, "payment_id", "NULL")
    message = load_error(folder, tmp_path / "w.duckdb")
    assert "accounts.csv, line 6, column 'account_id': is empty, but the column is required" in message
    assert "payments.csv, line 4, column 'payment_id': 'NULL' is a null marker, but the column is required" in message


def test_duplicate_keys_are_listed_with_their_lines_before_anything_is_replaced(tmp_path, exports, tiny_raw_warehouse):
    target = tmp_path / "w.duckdb"
    with duckdb.connect(str(target)) as con:
        load_files(con, exports["csv"])
    folder = copy_exports(exports["csv"], tmp_path / "x")

    def repeat_payment(rows):
        rows[10][0] = rows[2][0]
        rows[12][0] = rows[2][0]

    def repeat_usage(rows):
        rows[5] = list(rows[3])

    rewrite_csv(folder / "payments.csv", repeat_payment)
    rewrite_csv(folder / "product_usage.csv", repeat_usage)
    with duckdb.connect(str(tiny_raw_warehouse), read_only=True) as con:
        payment = con.execute("SELECT payment_id FROM raw.payments LIMIT 1 OFFSET 1").fetchall()[0][0]
        user, day = con.execute("SELECT user_id, usage_date FROM raw.product_usage LIMIT 1 OFFSET 2").fetchall()[0]
    message = load_error(folder, target)
    assert f"payments.csv, line 3, column 'payment_id': duplicate key '{payment}', also on lines 11, 13" in message
    assert (
        f"product_usage.csv, line 4, columns 'user_id', 'usage_date': duplicate key ('{user}', {day}), also on line 6"
        in message
    )
    assert raw_counts(target) == raw_counts(tiny_raw_warehouse), "the previous raw data is untouched"


def test_an_oversize_field_is_named(tmp_path, exports):
    folder = copy_exports(exports["csv"], tmp_path / "x")
    set_value(folder / "contacts.csv", 4, "title", "x" * 5_000)
    message = load_error(folder, tmp_path / "w.duckdb", options=FileOptions(max_field_bytes=1_000))
    assert "contacts.csv, line 5, column 'title': field is 5,000 bytes, more than the 1,000 allowed" in message


def test_a_line_too_long_to_read_is_named(tmp_path, exports):
    folder = copy_exports(exports["csv"], tmp_path / "x")
    set_value(folder / "contacts.csv", 4, "title", "x" * 2_500_000)
    message = load_error(folder, tmp_path / "w.duckdb")
    assert "contacts.csv, line 5: line is longer than 2,162,688 bytes" in message


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_parquet_problems_name_the_row(tmp_path, exports, fmt):
    folder = copy_exports(exports[fmt], tmp_path / "x")
    if fmt == "parquet":
        with duckdb.connect() as con:
            con.execute(
                f"COPY (SELECT * EXCLUDE (file_row_number) REPLACE (CASE WHEN file_row_number = 4 THEN 'NaN'::DOUBLE "
                f"ELSE amount END AS amount) FROM read_parquet('{exports['parquet']}/payments.parquet', "
                f"file_row_number = true)) TO '{folder}/payments.parquet' (FORMAT parquet)"
            )
    else:
        set_value(folder / "payments.csv", 5, "amount", "NaN")
    where = "row 5" if fmt == "parquet" else "line 6"
    assert f"payments.{fmt}, {where}, column 'amount': " in load_error(folder, tmp_path / "w.duckdb")


# --- malformed files: a message with the line, never a traceback --------------------------------------------
def big_payments(path: Path, rows: int = 400_000, edit=None) -> None:
    """A payments export of ``rows`` rows; data row i (0-based) is on line i + 2."""
    lines = [
        b"PAY-%07d,INV-%07d,%d.5,2026-01-01 10:00:00,2026-01-02 00:00:00\n" % (i, i, i % 1_000) for i in range(rows)
    ]
    if edit:
        edit(lines)
    path.write_bytes(PAYMENTS_HEADER + b"".join(lines))


def test_a_latin1_byte_near_the_end_of_a_large_file_names_its_line_and_byte(tmp_path, exports):
    folder = copy_exports(exports["csv"], tmp_path / "x")
    big_payments(
        folder / "payments.csv",
        edit=lambda lines: lines.__setitem__(399_990, lines[399_990][:4] + b"\xe9" + lines[399_990][4:]),
    )
    message = load_error(folder, tmp_path / "w.duckdb")
    assert (
        "payments.csv, line 399992, column 'payment_id': not valid UTF-8: byte 0xE9 at position 5 of the line"
        in message
    )
    assert "Traceback" not in message


def test_a_ragged_row_near_the_end_of_a_large_file_names_its_line(tmp_path, exports):
    folder = copy_exports(exports["csv"], tmp_path / "x")

    def edit(lines):
        lines[399_990] = lines[399_990].rstrip(b"\n") + b",extra\n"
        lines[399_995] = b"PAY-x,INV-x\n"

    big_payments(folder / "payments.csv", edit=edit)
    message = load_error(folder, tmp_path / "w.duckdb")
    assert "payments.csv, line 399992: row has 6 fields, the header has 5" in message
    assert "payments.csv, line 399997: row has 2 fields, the header has 5" in message


def test_lines_stay_right_after_a_quoted_field_that_spans_lines(tmp_path, exports):
    """DuckDB counts records; a field with a newline in it makes them differ from the file's lines."""
    folder = copy_exports(exports["csv"], tmp_path / "x")

    def edit(lines):
        lines[1_000] = b'PAY-1000,"INV\n1000",1.5,2026-01-01 10:00:00,2026-01-02 00:00:00\n'
        lines[399_990] = lines[399_990].replace(b",990.5,", b",zero,")

    big_payments(folder / "payments.csv", edit=edit)
    assert "payments.csv, line 399993, column 'amount': 'zero' is not a DOUBLE" in load_error(
        folder, tmp_path / "a.duckdb"
    )

    big_payments(folder / "payments.csv", edit=lambda lines: (edit(lines), lines.__setitem__(399_995, b"PAY-x\n")))
    assert "payments.csv, line 399998: row has 1 fields, the header has 5" in load_error(folder, tmp_path / "b.duckdb")


def test_a_truncated_file_is_a_truncated_row_not_a_missing_column(tmp_path, exports):
    folder = copy_exports(exports["csv"], tmp_path / "x")
    big_payments(folder / "payments.csv", rows=1_000)
    data = (folder / "payments.csv").read_bytes()
    (folder / "payments.csv").write_bytes(data[: len(data) - 40])  # cut in the middle of the last row
    message = load_error(folder, tmp_path / "w.duckdb")
    assert "payments.csv, line 1001: row has 4 fields, the header has 5 (the file ends in this row" in message
    assert "column is missing" not in message


def test_an_unterminated_quote_names_its_line(tmp_path, exports):
    folder = copy_exports(exports["csv"], tmp_path / "x")
    big_payments(folder / "payments.csv", rows=1_000)
    with (folder / "payments.csv").open("ab") as f:
        f.write(b'PAY-x,"INV-x,1.5,2026-01-01 10:00')  # the export was cut inside a quoted field
    message = load_error(folder, tmp_path / "w.duckdb")
    assert "payments.csv, line 1002, column 'invoice_id': a quoted field is never closed" in message


def test_text_after_a_closing_quote_names_its_line(tmp_path, exports):
    folder = copy_exports(exports["csv"], tmp_path / "x")
    big_payments(folder / "payments.csv", rows=100, edit=lambda lines: lines.__setitem__(50, b'PAY-x,"INV" x,1.5,,\n'))
    assert "payments.csv, line 52, column 'invoice_id': text follows a closing quote" in load_error(
        folder, tmp_path / "w.duckdb"
    )


def test_a_header_cut_short_says_so(tmp_path, exports):
    folder = copy_exports(exports["csv"], tmp_path / "x")
    (folder / "payments.csv").write_bytes(b"payment_id,invoice_id,amo")
    message = load_error(folder, tmp_path / "w.duckdb")
    assert "payments.csv, line 1: the file ends inside its header line (truncated?)" in message


def test_an_empty_file_and_mixed_line_endings_are_named(tmp_path, exports):
    folder = copy_exports(exports["csv"], tmp_path / "x")
    (folder / "payments.csv").write_bytes(b"")
    big_payments(folder / "invoices.csv", rows=0)  # wrong columns do not matter here
    (folder / "invoices.csv").write_bytes((exports["csv"] / "invoices.csv").read_bytes().replace(b"\n", b"\r\n", 30))
    message = load_error(folder, tmp_path / "w.duckdb")
    assert "payments.csv: file is empty (no header line)" in message
    assert "invoices.csv, line 31: line ends with \\n while line 1 ends with \\r\\n: mixed line endings" in message
