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
        first = load_files(con, exports[fmt])
        second = load_files(con, exports[fmt])
        assert (
            con.execute("SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'oracle'").fetchall()[0][
                0
            ]
            == 0
        ), "the oracle only describes synthetic data"
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
