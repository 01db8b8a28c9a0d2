"""The landing step: one transaction for both loaders, hooks inside it, and volume guards that keep the previous
raw data when a load would empty a table or shrink it too much."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from dagster import materialize

from dagster_project.assets_sources import raw_sources
from dagster_project.resources import SourcesResource, WarehouseResource
from ml.sources.files import export_raw, load_files
from ml.sources.landing import VolumeGuardError, allowed_to_shrink, check_max_shrink, land
from ml.sources.synthetic import load_synthetic
from tests.conftest import tiny_config
from tests.test_files_loader import PAYMENTS_HEADER


def writer(**rows: int):
    """A loader that (re)creates the named raw tables with that many rows."""

    def write_tables(con: duckdb.DuckDBPyConnection) -> None:
        con.execute("CREATE SCHEMA IF NOT EXISTS raw")
        for name, n in rows.items():
            con.execute(f"CREATE OR REPLACE TABLE raw.{name} AS SELECT range AS id FROM range({n})")

    return write_tables


def count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM raw.{table}").fetchall()[0][0]


def test_a_first_load_is_never_refused_for_its_size():
    with duckdb.connect() as con:
        assert land(con, writer(payments=0, invoices=10), source="test") == {"payments": 0, "invoices": 10}


def test_a_table_that_would_become_empty_is_refused_and_nothing_is_replaced():
    with duckdb.connect() as con:
        land(con, writer(payments=5_836, invoices=100), source="test")
        with pytest.raises(VolumeGuardError) as err:
            land(con, writer(payments=0, invoices=200), source="test")
        assert (count(con, "payments"), count(con, "invoices")) == (5_836, 100), "the whole load is rolled back"
    assert str(err.value) == (
        "raw.payments would go from 5,836 rows to 0 (empty export?); nothing was replaced. "
        "Pass --allow-shrink payments to load it anyway (LEADSCORE_ALLOW_SHRINK=payments for the pipeline)"
    )
    assert err.value.shrunk == {"payments": (5_836, 0)}


def test_a_shrink_beyond_the_limit_is_refused_unless_allowed():
    with duckdb.connect() as con:
        land(con, writer(payments=1_000, invoices=1_000), source="test")
        with pytest.raises(VolumeGuardError) as err:
            land(con, writer(payments=400, invoices=0), source="test")
        message = str(err.value)
        assert "raw.payments would go from 1,000 rows to 400 (-60%, more than the 50% allowed)" in message
        assert "raw.invoices would go from 1,000 rows to 0 (empty export?)" in message
        assert "Pass --allow-shrink invoices --allow-shrink payments to load them anyway" in message
        assert count(con, "payments") == 1_000

        with pytest.raises(VolumeGuardError, match=r"raw\.invoices"):
            land(con, writer(payments=400, invoices=0), source="test", allow_shrink=["payments"])
        assert land(con, writer(payments=600, invoices=1_000), source="test")["payments"] == 600, "-40% is fine"
        assert land(con, writer(payments=200), source="test", max_shrink=0.7)["payments"] == 200
        assert land(con, writer(payments=0, invoices=0), source="test", allow_shrink=["all"]) == {
            "payments": 0,
            "invoices": 0,
        }


def test_hooks_run_inside_the_transaction_after_the_tables_are_written_and_before_the_guards_count():
    seen = []

    def erase_most(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
        seen.append(count(con, "payments"))
        con.execute("DELETE FROM raw.payments WHERE id >= 100")
        return {"payments": 900}

    def fail(con: duckdb.DuckDBPyConnection) -> None:
        raise RuntimeError("hook failed")

    with duckdb.connect() as con:
        land(con, writer(payments=1_000), source="test")
        with pytest.raises(VolumeGuardError, match="from 1,000 rows to 100"):
            land(con, writer(payments=1_000, invoices=5), source="test", before_commit=[erase_most])
        assert seen == [1_000], "the hook sees the rows just written"
        assert count(con, "payments") == 1_000, "the hook's deletes are rolled back with the load"
        with pytest.raises(RuntimeError, match="hook failed"):
            land(con, writer(payments=2_000), source="test", before_commit=[fail])
        assert count(con, "payments") == 1_000
        assert land(con, writer(payments=2_000), source="test", before_commit=[lambda con: 42]) == {"payments": 2_000}


def test_guard_settings_are_validated():
    assert allowed_to_shrink(["Payments", " invoices "]) == {"payments", "invoices"}
    assert "contacts" in allowed_to_shrink(["all"])
    assert check_max_shrink("0.25") == 0.25
    with pytest.raises(ValueError, match="paymnts"):
        allowed_to_shrink(["paymnts"])
    for bad in ("1.5", "-0.1", "half", float("nan")):
        with pytest.raises(ValueError, match="between 0 and 1"):
            check_max_shrink(bad)


# --- through the loaders --------------------------------------------------------------------------------------
@pytest.fixture
def loaded(tmp_path, tiny_raw_warehouse) -> Path:
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(tiny_raw_warehouse, path)
    return path


def header_only_payments(warehouse: Path, folder: Path) -> Path:
    """The warehouse's raw tables as CSV exports, but for a payments.csv with only its header."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        export_raw(con, folder)
    (folder / "payments.csv").write_bytes(PAYMENTS_HEADER)
    return folder


def test_a_header_only_export_fails_naming_the_table_and_both_counts(tmp_path, loaded):
    folder = header_only_payments(loaded, tmp_path / "x")
    with duckdb.connect(str(loaded)) as con:
        before = count(con, "payments")
        with pytest.raises(VolumeGuardError) as err:
            load_files(con, folder)
        assert count(con, "payments") == before
        assert con.execute("SELECT count(*) FROM synthetic_crm.hubspot_contacts").fetchall()[0][0] > 0, "kept too"
        assert load_files(con, folder, allow_shrink=["payments"])["payments"] == 0
    assert f"raw.payments would go from {before:,} rows to 0 (empty export?); nothing was replaced" in str(err.value)


def test_regenerating_a_smaller_synthetic_company_is_refused_unless_allowed(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        first = load_synthetic(con, tiny_config(n_accounts=90))
        with pytest.raises(VolumeGuardError, match=r"raw\.accounts would go from 90 rows to 30"):
            load_synthetic(con, tiny_config(n_accounts=30))
        assert count(con, "accounts") == 90 and count(con, "contacts") == first["contacts"]
        assert load_synthetic(con, tiny_config(n_accounts=30), allow_shrink=["all"])["accounts"] == 30


def test_the_dagster_step_fails_with_the_guard_message_and_its_setting_lets_it_through(tmp_path, loaded):
    folder = header_only_payments(loaded, tmp_path / "x")
    warehouse = WarehouseResource(path=str(loaded))

    def run(**guards):
        sources = SourcesResource(kind="files", files_dir=str(folder), **guards)
        return materialize([raw_sources], resources={"warehouse": warehouse, "sources": sources}, raise_on_error=False)

    refused = run()
    assert not refused.success
    failure = refused.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert "raw.payments would go from" in failure.description and "nothing was replaced" in failure.description
    assert run(allow_shrink=["payments"]).success
    with duckdb.connect(str(loaded), read_only=True) as con:
        assert count(con, "payments") == 0
