"""Erasure (GDPR Art. 17): a person leaves every warehouse table but the audit, and later loads keep them out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from ml.sources.governance import ErasureError, apply_suppressions, erase
from tests.conftest import query


def traces(path: Path, needles: set[str]) -> list[tuple[str, str, int]]:
    """(table, column, rows) for every text column of every table in which any needle appears."""
    found = []
    with duckdb.connect(str(path), read_only=True) as con:
        columns = con.execute(
            """SELECT c.table_schema, c.table_name, c.column_name FROM information_schema.columns c
               JOIN information_schema.tables t USING (table_catalog, table_schema, table_name)
               WHERE t.table_type = 'BASE TABLE' AND c.data_type IN ('VARCHAR', 'JSON', 'VARCHAR[]')"""
        ).fetchall()
        lowered = sorted(n.lower() for n in needles)
        for schema, table, column in columns:
            condition = " OR ".join(f'contains(lower("{column}"::VARCHAR), ?)' for _ in lowered)
            count = con.execute(f'SELECT count(*) FROM "{schema}"."{table}" WHERE {condition}', lowered).fetchall()
            if count[0][0]:
                found.append((f"{schema}.{table}", column, count[0][0]))
    return found


@pytest.fixture
def person(built_warehouse) -> dict[str, str]:
    """A consented lead with a duplicate record (same address in another casing) and marketing events."""
    row = query(
        built_warehouse,
        """SELECT c.contact_id, lower(trim(c.email)), c.hubspot_contact_id, c.salesforce_lead_id
           FROM raw.contacts c JOIN staging.stg_contacts s ON s.contact_id = c.contact_id
           WHERE len(s.merged_contact_ids) > 0 AND s.has_marketing_consent
             AND c.hubspot_contact_id IS NOT NULL AND c.salesforce_lead_id IS NOT NULL
           ORDER BY c.contact_id LIMIT 1""",
    )[0]
    return {"contact_id": row[0], "email": row[1], "hubspot_contact_id": row[2], "salesforce_lead_id": row[3]}


def test_an_erased_person_leaves_no_trace_but_the_audit(tmp_path, built_warehouse, person) -> None:
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(built_warehouse, path)
    duplicates = {r[0] for r in query(path, "SELECT contact_id FROM raw.contacts WHERE lower(trim(email)) = ?",
                                      [person["email"]])}  # fmt: skip
    assert len(duplicates) >= 2, "the fixture person has a duplicate record"
    needles = {person["email"], *duplicates, person["hubspot_contact_id"], person["salesforce_lead_id"]}
    assert traces(path, needles), "the person is in the warehouse before"
    revenue_before = query(path, "SELECT count(*), sum(amount) FROM raw.opportunities")
    with duckdb.connect(str(path)) as con:
        report = erase(con, emails=[person["email"].upper()], requested_by="dpo@company.example", reason="ticket 42")
    assert report.people_found == len(duplicates)
    assert report.rows_removed["raw.contacts"] == len(duplicates)
    assert traces(path, needles) == []
    audit = query(path, "SELECT requested_by, reason, people_found, rows_removed FROM governance.erasures")
    assert audit[0][:3] == ("dpo@company.example", "ticket 42", len(duplicates))
    assert person["email"] not in audit[0][3] and json.loads(audit[0][3])["raw.contacts"] == len(duplicates)
    assert query(path, "SELECT count(*), sum(amount) FROM raw.opportunities") == revenue_before, "revenue stays"


def test_by_contact_id_the_whole_person_goes(tmp_path, built_warehouse, person) -> None:
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(built_warehouse, path)
    with duckdb.connect(str(path)) as con:
        report = erase(con, contact_ids=[person["contact_id"]], requested_by="ops")
    assert report.people_found >= 2, "the duplicate record sharing the address went too"
    assert traces(path, {person["email"]}) == []


def test_a_later_load_keeps_erased_people_out(tmp_path, tiny_raw_warehouse, person) -> None:
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(tiny_raw_warehouse, path)
    with duckdb.connect(str(path)) as con:
        erase(con, emails=[person["email"]], requested_by="ops")
        contacts = con.execute("SELECT count(*) FROM raw.contacts").fetchall()[0][0]
        # The next export still holds the person: put their rows back, as a reload would, and apply the list.
        con.execute(f"ATTACH '{tiny_raw_warehouse}' AS again (READ_ONLY)")
        con.execute("BEGIN")
        for table in ("contacts", "marketing_events"):
            con.execute(f"DELETE FROM raw.{table}")
            con.execute(f"INSERT INTO raw.{table} SELECT * FROM again.raw.{table}")
        removed = apply_suppressions(con)
        con.execute("COMMIT")
        assert removed["raw.contacts"] >= 2 and removed.get("raw.marketing_events", 0) > 0
        assert con.execute("SELECT count(*) FROM raw.contacts").fetchall()[0][0] == contacts
    assert traces(path, {person["email"]}) == []


def test_erasure_needs_an_identifier_and_a_requester(tmp_path) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        with pytest.raises(ErasureError, match="--email or --contact-id"):
            erase(con, emails=[" "], requested_by="ops")
        with pytest.raises(ErasureError, match="requested-by"):
            erase(con, emails=["a@b.io"], requested_by="")
        report = erase(con, emails=["nobody@example.com"], requested_by="ops")  # not in this warehouse (yet)
        assert report.people_found == 0
        assert con.execute("SELECT count(*) FROM governance.suppressions").fetchall()[0][0] == 1


def test_the_cli_erases_and_says_what_it_did(tmp_path, built_warehouse, person, monkeypatch, capsys) -> None:
    from ml.sources.__main__ import main

    path = tmp_path / "warehouse.duckdb"
    shutil.copy(built_warehouse, path)
    monkeypatch.setenv("LEADSCORE_WAREHOUSE", str(path))
    assert main(["erase", "--email", person["email"], "--requested-by", "dpo ticket 4711"]) == 0
    out = capsys.readouterr().out
    assert "contact record(s) found" in out and "raw.contacts" in out and person["email"] not in out
    assert main(["erase", "--requested-by", "x"]) == 2
    assert "--email or --contact-id" in capsys.readouterr().err
