"""The sandbox as a copy of the company's CRM: seeding from the warehouse, the admin API's record
endpoints, and the state file's schema version (over real HTTP where the API is involved)."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests

from activation.salesforce_ids import make_salesforce_id
from activation.sandbox import SandboxHandle, run_sandbox, seed_from_warehouse

TOKEN = "pat-sandbox-0000-leadscore"
ACCOUNT = make_salesforce_id("001", 7, "8d")
CONTACT = make_salesforce_id("003", 7, "8d")
LEAD_OPEN, LEAD_CONVERTED = make_salesforce_id("00Q", 7, "8d"), make_salesforce_id("00Q", 8, "8d")


def duckdb_file(tmp_path: Path, sql: str) -> Path:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute(sql)
    return path


SYNTHETIC = f"""
CREATE SCHEMA synthetic_crm;
CREATE TABLE synthetic_crm.hubspot_contacts AS SELECT * FROM (VALUES
    ('101', ' Ada@Example.COM', 'Ada', 'Lovelace'), ('102', 'grace@example.com', 'Grace', 'Hopper'),
    ('103', NULL, NULL, 'Nobody'), ('not-an-id', 'x@example.com', 'X', 'Y')) t(id, email, firstname, lastname);
CREATE TABLE synthetic_crm.hubspot_companies AS SELECT * FROM (VALUES
    ('201', 'Acme', 'acme.io'), ('202', 'Initech', NULL)) t(id, name, domain);
CREATE TABLE synthetic_crm.salesforce_accounts AS SELECT * FROM (VALUES
    ('{ACCOUNT[:15]}', 'Acme', 'acme.io')) t("Id", "Name", "Website");
CREATE TABLE synthetic_crm.salesforce_leads AS SELECT * FROM (VALUES
    ('{LEAD_OPEN.lower()}', 'Ada', 'Lovelace', 'Acme', 'ada@example.com', 'Open - Not Contacted', false, NULL, NULL),
    ('{LEAD_CONVERTED}', 'Grace', 'Hopper', 'Acme', 'grace@example.com', 'Closed - Converted', true,
     '{CONTACT}', '{ACCOUNT}'),
    ('00Qbroken', 'X', 'Y', 'Z', NULL, NULL, false, NULL, NULL))
    t("Id", "FirstName", "LastName", "Company", "Email", "Status", "IsConverted", "ConvertedContactId",
      "ConvertedAccountId");
CREATE TABLE synthetic_crm.salesforce_contacts AS SELECT * FROM (VALUES
    ('{CONTACT}', 'Grace', 'Hopper', 'grace@example.com', '{ACCOUNT}'))
    t("Id", "FirstName", "LastName", "Email", "AccountId");
"""

RAW = f"""
CREATE SCHEMA raw;
CREATE TABLE raw.accounts AS SELECT * FROM (VALUES
    ('A-1', '201', '{ACCOUNT}', 'Acme', 'acme.io', TIMESTAMP '2026-01-02'),
    ('A-1', '201', '{ACCOUNT}', 'Acme (old)', 'acme.io', TIMESTAMP '2026-01-01'),
    ('A-2', 'garbage', NULL, 'Initech', NULL, TIMESTAMP '2026-01-01'))
    t(account_id, hubspot_company_id, salesforce_account_id, account_name, domain, _loaded_at);
CREATE TABLE raw.contacts AS SELECT * FROM (VALUES
    ('C-1', '101', '{LEAD_OPEN[:15]}', NULL, 'ADA@example.com', 'Ada', 'Lovelace', 'A-1'),
    ('C-1', '101', '{LEAD_OPEN[:15]}', NULL, 'ada@example.com', 'Ada', 'Lovelace', 'A-1'),
    ('C-2', '102', '{LEAD_CONVERTED}', '{CONTACT.lower()}', 'grace@example.com', 'Grace', 'Hopper', 'A-1'),
    ('C-3', NULL, 'bad-lead-id', NULL, 'x@example.com', 'X', 'Y', 'A-2'))
    t(contact_id, hubspot_contact_id, salesforce_lead_id, salesforce_contact_id, email, first_name, last_name,
      account_id);
"""


def seed(sandbox: SandboxHandle, path: Path) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return seed_from_warehouse(sandbox.app, conn)


def by_id(records: list[dict[str, Any]], key: str = "Id") -> dict[str, dict[str, Any]]:
    return {r[key]: r for r in records}


def test_seed_from_the_synthetic_crm_schema(sandbox: SandboxHandle, tmp_path: Path) -> None:
    path = duckdb_file(tmp_path, SYNTHETIC)
    counts = seed(sandbox, path)
    assert counts == {
        "hubspot.contacts": 3,
        "hubspot.companies": 2,
        "salesforce.Lead": 2,
        "salesforce.Contact": 1,
        "salesforce.Account": 1,
    }
    assert seed(sandbox, path) == dict.fromkeys(counts, 0)  # a second seed inserts nothing
    contacts = by_id(sandbox.admin.hubspot_objects("contacts"), "id")
    assert contacts["101"]["properties"] == {"email": "ada@example.com", "firstname": "Ada", "lastname": "Lovelace"}
    leads = by_id(sandbox.admin.salesforce_records("Lead"))
    assert leads[LEAD_OPEN]["IsConverted"] is False  # the lower-cased 18-character id was normalised
    assert leads[LEAD_CONVERTED]["IsConverted"] is True and leads[LEAD_CONVERTED]["ConvertedContactId"] == CONTACT
    assert by_id(sandbox.admin.salesforce_records("Account"))[ACCOUNT]["Name"] == "Acme"
    assert sandbox.admin.counts() == {
        "hubspot": {"contacts": 3, "companies": 2},
        "salesforce": {"Lead": 2, "Contact": 1, "Account": 1},
    }


def test_seed_derives_the_records_from_the_raw_export(sandbox: SandboxHandle, tmp_path: Path) -> None:
    counts = seed(sandbox, duckdb_file(tmp_path, RAW))
    assert counts == {
        "hubspot.contacts": 2,
        "hubspot.companies": 1,
        "salesforce.Lead": 2,
        "salesforce.Contact": 1,
        "salesforce.Account": 1,
    }
    assert seed(sandbox, tmp_path / "warehouse.duckdb") == dict.fromkeys(counts, 0)
    companies = sandbox.admin.hubspot_objects("companies")
    assert [(c["id"], c["properties"]["name"]) for c in companies] == [("201", "Acme")]  # newest export row
    emails = [c["properties"]["email"] for c in sandbox.admin.hubspot_objects("contacts")]
    assert emails == ["ada@example.com", "grace@example.com"]
    leads = by_id(sandbox.admin.salesforce_records("Lead"))
    assert leads[LEAD_OPEN]["Company"] == "Acme" and leads[LEAD_OPEN]["IsConverted"] is False
    converted = leads[LEAD_CONVERTED]
    assert (converted["IsConverted"], converted["ConvertedContactId"], converted["ConvertedAccountId"]) == (
        True,
        CONTACT,
        ACCOUNT,
    )
    contact = by_id(sandbox.admin.salesforce_records("Contact"))[CONTACT]
    assert (contact["LastName"], contact["AccountId"]) == ("Hopper", ACCOUNT)


def test_seed_without_crm_ids_in_the_export_starts_empty(
    sandbox: SandboxHandle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = duckdb_file(tmp_path, "CREATE SCHEMA raw; CREATE TABLE raw.contacts (contact_id VARCHAR, email VARCHAR);")
    with caplog.at_level(logging.WARNING):
        assert set(seed(sandbox, path).values()) == {0}
    assert "no CRM id columns" in caplog.text


def test_seed_refuses_an_incomplete_synthetic_schema(sandbox: SandboxHandle, tmp_path: Path) -> None:
    path = duckdb_file(tmp_path, "CREATE SCHEMA synthetic_crm; CREATE TABLE synthetic_crm.hubspot_contacts (id INT);")
    with pytest.raises(ValueError, match="lacks tables"):
        seed(sandbox, path)


def test_seeding_never_touches_records_the_crm_holds(sandbox: SandboxHandle, tmp_path: Path) -> None:
    path = duckdb_file(tmp_path, SYNTHETIC)
    seed(sandbox, path)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    update = {"inputs": [{"id": "101", "properties": {"firstname": "Augusta"}}]}
    url = f"{sandbox.url}/crm/v3/objects/contacts/batch/update"
    assert requests.post(url, json=update, headers=headers, timeout=10).status_code == 200
    sandbox.admin.delete_salesforce_record("Lead", LEAD_OPEN)
    assert set(seed(sandbox, path).values()) == {0}
    assert by_id(sandbox.admin.hubspot_objects("contacts"), "id")["101"]["properties"]["firstname"] == "Augusta"
    assert LEAD_OPEN not in by_id(sandbox.admin.salesforce_records("Lead"))  # a deleted record stays deleted


def test_seeding_is_fast(sandbox: SandboxHandle) -> None:
    contacts = [
        {"id": str(10_000 + i), "properties": {"email": f"p{i}@example.com", "lastname": "L"}} for i in range(50_000)
    ]
    leads = [{"Id": make_salesforce_id("00Q", i), "LastName": "L", "Company": "C"} for i in range(50_000)]
    started = time.perf_counter()
    assert sandbox.app.seed_hubspot("contacts", contacts) == 50_000
    assert sandbox.app.seed_salesforce("Lead", leads) == 50_000
    assert time.perf_counter() - started < 10  # 100k records: a few seconds on a laptop


# --- admin record endpoints ----------------------------------------------------------------------------------
def test_admin_seed_count_and_delete(sandbox: SandboxHandle) -> None:
    admin = sandbox.admin
    assert admin.seed_hubspot("contacts", [{"id": "5", "properties": {"email": "A@B.io"}}]) == 1
    assert admin.seed_hubspot("contacts", [{"id": "5", "properties": {"email": "other@b.io"}}]) == 0
    assert admin.seed_salesforce("Account", [{"Id": ACCOUNT, "Name": "Acme"}]) == 1
    assert admin.counts()["hubspot"]["contacts"] == 1 and admin.counts()["salesforce"]["Account"] == 1
    admin.delete_hubspot_object("contacts", "5")
    admin.delete_salesforce_record("Account", ACCOUNT.lower())
    assert admin.counts() == {
        "hubspot": {"contacts": 0, "companies": 0},
        "salesforce": {"Lead": 0, "Contact": 0, "Account": 0},
    }
    missing = requests.delete(f"{sandbox.url}/_admin/hubspot/contacts/objects/5", timeout=10)
    assert missing.status_code == 404 and "message" in missing.json()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("hubspot/contacts/seed", {"records": [{"id": "abc", "properties": {}}]}),
        ("hubspot/contacts/seed", {"records": [{"id": "1", "properties": {"nope": "x"}}]}),
        ("hubspot/contacts/seed", {"records": {"id": "1"}}),
        ("hubspot/tickets/seed", {"records": []}),
        ("salesforce/Lead/seed", {"records": [{"Id": ACCOUNT, "LastName": "x"}]}),  # an Account id
        ("salesforce/Lead/seed", {"records": [{"Id": LEAD_OPEN, "IsConverted": "yes"}]}),
        ("salesforce/Lead/seed", {"records": [{"Id": LEAD_OPEN, "Nope__c": 1}]}),
        ("salesforce/Nope/seed", {"records": []}),
    ],
)
def test_admin_seed_refuses_malformed_records(sandbox: SandboxHandle, path: str, body: dict[str, Any]) -> None:
    response = requests.post(f"{sandbox.url}/_admin/{path}", json=body, timeout=10)
    assert 400 <= response.status_code < 500 and isinstance(response.json()["message"], str)
    assert set(sandbox.admin.counts()["hubspot"].values()) | set(sandbox.admin.counts()["salesforce"].values()) == {0}


# --- the state file ------------------------------------------------------------------------------------------
def v1_state_file(path: Path) -> None:
    """A store as the first design wrote it (no meta table), holding a record leadscore had created."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE hs_objects (id INTEGER PRIMARY KEY, object_type TEXT, properties TEXT)")
    conn.execute("INSERT INTO hs_objects VALUES (1, 'contacts', '{\"leadscore_lead_id\": \"L-1\"}')")
    conn.commit()
    conn.close()


def test_a_state_file_of_the_previous_version_is_moved_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "crm_sandbox.sqlite"
    v1_state_file(state)
    with caplog.at_level(logging.WARNING), run_sandbox(state_path=state) as sandbox:
        assert sandbox.admin.counts()["hubspot"]["contacts"] == 0
    backups = list(tmp_path.glob("crm_sandbox.sqlite.v1-*.bak"))
    assert len(backups) == 1 and backups[0].name.endswith("Z.bak")
    assert sqlite3.connect(backups[0]).execute("SELECT count(*) FROM hs_objects").fetchone()[0] == 1
    assert "moved it to" in caplog.text and str(backups[0]) in caplog.text


def test_a_current_state_file_is_kept_across_restarts(tmp_path: Path) -> None:
    state = tmp_path / "crm_sandbox.sqlite"
    with run_sandbox(state_path=state) as sandbox:
        sandbox.admin.seed_hubspot("companies", [{"id": "9", "properties": {"name": "Acme"}}])
    with run_sandbox(state_path=state) as sandbox:
        assert sandbox.admin.counts()["hubspot"]["companies"] == 1
    assert not list(tmp_path.glob("*.bak"))


def test_an_unreadable_state_file_is_moved_aside(tmp_path: Path) -> None:
    state = tmp_path / "crm_sandbox.sqlite"
    state.write_bytes(b"this is not a database" * 100)
    with run_sandbox(state_path=state) as sandbox:
        assert sandbox.admin.counts()["salesforce"]["Lead"] == 0
    assert len(list(tmp_path.glob("crm_sandbox.sqlite.unreadable-*.bak"))) == 1


def test_cli_seeds_from_a_warehouse(tmp_path: Path) -> None:
    path = duckdb_file(tmp_path, SYNTHETIC)
    command = [sys.executable, "-m", "activation.sandbox", "--port", "0", "--state", str(tmp_path / "s.sqlite")]
    process = subprocess.Popen([*command, "--seed-from", str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split(" on ", 1)[1].split(" ", 1)[0]
        assert "'hubspot.contacts': 3" in process.stdout.readline()
        assert requests.get(f"{url}/_admin/counts", timeout=10).json()["salesforce"]["Lead"] == 2
    finally:
        process.terminate()
        process.wait(timeout=10)


def crm_contents(sandbox: SandboxHandle) -> dict[str, Any]:
    hubspot = {kind: sandbox.admin.hubspot_objects(kind) for kind in ("contacts", "companies")}
    salesforce = {sobject: sandbox.admin.salesforce_records(sobject) for sobject in ("Lead", "Contact", "Account")}
    strip = ("createdate", "lastmodifieddate", "hs_lastmodifieddate", "CreatedDate", "LastModifiedDate",
             "SystemModstamp", "createdAt", "updatedAt")  # fmt: skip

    def stable(record: Any) -> Any:
        if isinstance(record, dict):
            return {k: stable(v) for k, v in record.items() if k not in strip}
        return record

    return {name: [stable(r) for r in records] for name, records in (hubspot | salesforce).items()}


@pytest.mark.parametrize("schema", [SYNTHETIC, RAW], ids=["synthetic_crm", "raw export"])
def test_seeding_in_batches_of_one_record_equals_one_batch(start_sandbox, tmp_path: Path, schema: str) -> None:
    """The copy goes into the sandbox a batch at a time (millions of records are never held at once): the
    batch size changes nothing, not even which of two rows of one id wins (the newest export row)."""
    path = duckdb_file(tmp_path, schema)
    whole, batched = start_sandbox(), start_sandbox()
    with duckdb.connect(str(path), read_only=True) as conn:
        counts = seed_from_warehouse(whole.app, conn)
        assert seed_from_warehouse(batched.app, conn, batch_records=1) == counts
    assert sum(counts.values()) >= 7
    assert crm_contents(batched) == crm_contents(whole)
    if schema == RAW:
        assert [c["properties"]["name"] for c in batched.admin.hubspot_objects("companies")] == ["Acme"]
