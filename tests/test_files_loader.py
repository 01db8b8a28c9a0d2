"""The files loader: a folder of exports lands exactly; every problem names file, column and row."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pytest

from ml.sources.files import SourceFileError, export_raw, load_files
from ml.sources.schema import RAW_TABLES


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
        same = con.execute(
            f"SELECT count(*) FROM (SELECT * FROM raw.invoices EXCEPT SELECT * FROM "
            f"read_{'csv' if fmt == 'csv' else 'parquet'}('{exports[fmt]}/invoices.{fmt}'))"
        ).fetchall()[0][0]
    assert first == second == raw_counts(tiny_raw_warehouse)
    assert same == 0


def copy_exports(source: Path, target: Path) -> Path:
    target.mkdir()
    for f in source.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    return target


def test_missing_file_is_named(tmp_path, exports):
    folder = copy_exports(exports["csv"], tmp_path / "x")
    (folder / "payments.csv").unlink()
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con, pytest.raises(SourceFileError) as err:
        load_files(con, folder)
    assert "payments.csv: file is missing" in str(err.value)


def rewrite_csv(path: Path, edit) -> None:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    edit(rows)
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)


def test_missing_column_is_named(tmp_path, exports):
    folder = copy_exports(exports["csv"], tmp_path / "x")

    def drop_amount(rows):
        i = rows[0].index("amount")
        for r in rows:
            del r[i]

    rewrite_csv(folder / "invoices.csv", drop_amount)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con, pytest.raises(SourceFileError) as err:
        load_files(con, folder)
    assert "invoices.csv, column 'amount': column is missing" in str(err.value)


def drop_columns(path: Path, names: set[str]) -> None:
    def edit(rows):
        keep = [i for i, name in enumerate(rows[0]) if name not in names]
        rows[:] = [[r[i] for i in keep] for r in rows]

    rewrite_csv(path, edit)


CRM_ID_COLUMNS = {
    "accounts": {"hubspot_company_id", "salesforce_account_id"},
    "contacts": {"hubspot_contact_id", "salesforce_lead_id", "salesforce_contact_id"},
}


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


def test_a_missing_required_column_is_named_among_absent_optional_ones(tmp_path, exports):
    folder = copy_exports(exports["csv"], tmp_path / "x")
    drop_columns(folder / "contacts.csv", CRM_ID_COLUMNS["contacts"] | {"email"})
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con, pytest.raises(SourceFileError) as err:
        load_files(con, folder)
    message = str(err.value)
    assert "contacts.csv, column 'email': column is missing" in message
    assert "1 problem(s)" in message, "absent optional columns are not problems"


def test_a_malformed_crm_id_is_loaded_for_the_warehouse_to_quarantine(tmp_path, exports):
    """The loader checks types only; whether an id is a valid CRM id is a warehouse rule (with a reason)."""
    folder = copy_exports(exports["csv"], tmp_path / "x")
    rewrite_csv(folder / "contacts.csv", lambda rows: rows[1].__setitem__(rows[0].index("salesforce_lead_id"), "??"))
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        load_files(con, folder)
        assert con.execute("SELECT count(*) FROM raw.contacts WHERE salesforce_lead_id = '??'").fetchall()[0][0] == 1


def test_unparseable_value_names_file_column_and_row_and_writes_nothing(tmp_path, exports):
    folder = copy_exports(exports["csv"], tmp_path / "x")

    def corrupt(rows):
        rows[17][rows[0].index("amount")] = "12,50 EUR"  # data row 17, line 18 of the file
        rows[3][rows[0].index("paid_at")] = "yesterday"

    rewrite_csv(folder / "payments.csv", corrupt)
    target = tmp_path / "w.duckdb"
    with duckdb.connect(str(target)) as con:
        with pytest.raises(SourceFileError) as err:
            load_files(con, folder)
        assert (
            con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'raw'").fetchall()[0][0]
            == 0
        )
    message = str(err.value)
    assert "payments.csv, column 'amount', row 17 (line 18): '12,50 EUR' is not a DOUBLE" in message
    assert "payments.csv, column 'paid_at', row 3 (line 4): 'yesterday' is not a TIMESTAMP" in message


def test_required_value_missing_is_reported(tmp_path, exports):
    folder = copy_exports(exports["csv"], tmp_path / "x")
    rewrite_csv(folder / "accounts.csv", lambda rows: rows[5].__setitem__(0, ""))
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con, pytest.raises(SourceFileError) as err:
        load_files(con, folder)
    assert "accounts.csv, column 'account_id', row 5 (line 6): value is empty but required" in str(err.value)


def test_loaded_at_may_be_left_out(tmp_path, exports):
    folder = copy_exports(exports["csv"], tmp_path / "x")

    def drop_loaded_at(rows):
        i = rows[0].index("_loaded_at")
        for r in rows:
            del r[i]

    for t in RAW_TABLES:
        rewrite_csv(folder / f"{t.name}.csv", drop_loaded_at)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        load_files(con, folder)
        assert con.execute("SELECT count(*) FROM raw.contacts WHERE _loaded_at IS NULL").fetchall()[0][0] == 0
