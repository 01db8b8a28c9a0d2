"""Make the sandbox a copy of the company's CRM, read from the warehouse.

leadscore updates records that already exist in the CRM (the people and companies it scores come *from*
the CRM), so a sandbox that starts empty would test nothing real. The records come from schema
``synthetic_crm`` when it exists (written by the synthetic-data generator, exactly the CRM's shape), else
they are derived from the raw CRM export (``raw.accounts``, ``raw.contacts``), whose ids are normalised and
whose malformed ids are skipped. Seeding only inserts records whose id the sandbox does not hold yet: the
CRM already has the others, and whatever a sync wrote there must survive a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from activation.sandbox.hubspot_api import normalize_hubspot_id
from activation.sandbox.salesforce_records import canonical_id

if TYPE_CHECKING:
    import duckdb

    from activation.sandbox.server import CrmSandbox

log = logging.getLogger(__name__)

SYNTHETIC_SCHEMA = "synthetic_crm"
SYNTHETIC_TABLES: dict[str, tuple[str, ...]] = {
    "hubspot_contacts": ("id", "email", "firstname", "lastname"),
    "hubspot_companies": ("id", "name", "domain"),
    "salesforce_accounts": ("Id", "Name", "Website"),
    "salesforce_leads": (
        "Id",
        "FirstName",
        "LastName",
        "Company",
        "Email",
        "Status",
        "IsConverted",
        "ConvertedContactId",
        "ConvertedAccountId",
    ),
    "salesforce_contacts": ("Id", "FirstName", "LastName", "Email", "AccountId"),
}
RAW_ACCOUNT_COLUMNS = ("account_id", "hubspot_company_id", "salesforce_account_id", "account_name", "domain")
RAW_CONTACT_COLUMNS = (
    "hubspot_contact_id",
    "salesforce_lead_id",
    "salesforce_contact_id",
    "email",
    "first_name",
    "last_name",
    "account_id",
)
REFERENCE_FIELDS = {"ConvertedContactId": "Contact", "ConvertedAccountId": "Account", "AccountId": "Account"}
OPEN_STATUS, CONVERTED_STATUS = "Open - Not Contacted", "Closed - Converted"


@dataclass
class CrmCopy:
    """The five record sets, in the shapes ``seed_hubspot`` / ``seed_salesforce`` take."""

    hubspot: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"contacts": [], "companies": []})
    salesforce: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"Lead": [], "Contact": [], "Account": []}
    )
    skipped: int = 0  # records with a malformed id

    def add_hubspot(self, object_type: str, raw_id: Any, properties: dict[str, Any]) -> None:
        record_id = normalize_hubspot_id(raw_id)
        if record_id is None:
            self.skipped += raw_id is not None
            return
        values = {k: str(v) for k, v in properties.items() if v is not None and str(v) != ""}
        self.hubspot[object_type].append({"id": record_id, "properties": values})

    def add_salesforce(self, sobject: str, values: dict[str, Any]) -> None:
        record_id = canonical_id(sobject, values.get("Id"))
        if record_id is None:
            self.skipped += values.get("Id") is not None
            return
        record: dict[str, Any] = {"Id": record_id}
        for name, value in values.items():
            if name == "Id" or value is None:
                continue
            if name in REFERENCE_FIELDS:
                value = canonical_id(REFERENCE_FIELDS[name], value)
            elif name == "IsConverted":
                value = _as_bool(value)
            else:
                value = str(value)
            if value is not None:
                record[name] = value
        self.salesforce[sobject].append(record)


def seed_from_warehouse(app: CrmSandbox, conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Insert the CRM's records the sandbox does not hold yet; returns the number inserted per object,
    e.g. ``{"hubspot.contacts": 20112, "hubspot.companies": 1960, "salesforce.Lead": ..., ...}``."""
    if _schema_exists(conn, SYNTHETIC_SCHEMA):
        copy, source = read_synthetic_crm(conn), f"schema {SYNTHETIC_SCHEMA}"
    else:
        copy, source = read_raw_export(conn), "the raw CRM export"
    if copy.skipped:
        log.warning("seeding the CRM sandbox from %s: skipped %d records with malformed ids", source, copy.skipped)
    counts = {f"hubspot.{kind}": app.seed_hubspot(kind, records) for kind, records in copy.hubspot.items()}
    counts |= {f"salesforce.{sobject}": app.seed_salesforce(sobject, rows) for sobject, rows in copy.salesforce.items()}
    log.info("seeded the CRM sandbox from %s: %s", source, counts)
    return counts


def read_synthetic_crm(conn: duckdb.DuckDBPyConnection) -> CrmCopy:
    """The five tables of ``synthetic_crm``, exactly as the CRM holds them."""
    missing = [t for t in SYNTHETIC_TABLES if not _columns(conn, SYNTHETIC_SCHEMA, t)]
    if missing:
        raise ValueError(f"schema {SYNTHETIC_SCHEMA} lacks tables {missing} (expected {sorted(SYNTHETIC_TABLES)})")
    copy = CrmCopy()
    for row in _select(conn, SYNTHETIC_SCHEMA, "hubspot_contacts"):
        copy.add_hubspot("contacts", row.pop("id"), row)
    for row in _select(conn, SYNTHETIC_SCHEMA, "hubspot_companies"):
        copy.add_hubspot("companies", row.pop("id"), row)
    for table, sobject in (("salesforce_accounts", "Account"), ("salesforce_leads", "Lead")):
        for row in _select(conn, SYNTHETIC_SCHEMA, table):
            copy.add_salesforce(sobject, row)
    for row in _select(conn, SYNTHETIC_SCHEMA, "salesforce_contacts"):
        copy.add_salesforce("Contact", row)
    return copy


def read_raw_export(conn: duckdb.DuckDBPyConnection) -> CrmCopy:
    """The same five record sets derived from ``raw.accounts`` and ``raw.contacts``.

    A contact row with both a Salesforce lead id and a contact id is a converted Lead (and that Contact).
    Rows are read newest ``_loaded_at`` first, so the first row of a duplicated id — the one kept — is the
    latest export of it. Without the CRM id columns there is nothing to copy (logged, not an error).
    """
    copy = CrmCopy()
    accounts, contacts = _columns(conn, "raw", "accounts"), _columns(conn, "raw", "contacts")
    if not set(RAW_ACCOUNT_COLUMNS) <= accounts or not set(RAW_CONTACT_COLUMNS) <= contacts:
        log.warning("the raw CRM export has no CRM id columns (%s): the sandbox starts empty", RAW_CONTACT_COLUMNS)
        return copy
    for row in _raw_rows(conn, "accounts", RAW_ACCOUNT_COLUMNS, accounts):
        copy.add_hubspot("companies", row["hubspot_company_id"], {"name": row["account_name"], "domain": row["domain"]})
        copy.add_salesforce(
            "Account", {"Id": row["salesforce_account_id"], "Name": row["account_name"], "Website": row["domain"]}
        )
    account_of = _salesforce_accounts(conn, accounts)
    for row in _raw_rows(conn, "contacts", RAW_CONTACT_COLUMNS, contacts):
        names = {"email": row["email"], "firstname": row["first_name"], "lastname": row["last_name"]}
        copy.add_hubspot("contacts", row["hubspot_contact_id"], names)
        account_id, company = account_of.get(row["account_id"], (None, None))
        person = {"FirstName": row["first_name"], "LastName": row["last_name"], "Email": row["email"]}
        if row["salesforce_contact_id"] is not None:
            copy.add_salesforce("Contact", {"Id": row["salesforce_contact_id"], **person, "AccountId": account_id})
        if row["salesforce_lead_id"] is not None:
            copy.add_salesforce("Lead", _lead(row, person, company, account_id))
    return copy


def _lead(row: dict[str, Any], person: dict[str, Any], company: Any, account_id: Any) -> dict[str, Any]:
    converted = canonical_id("Contact", row["salesforce_contact_id"]) is not None
    return {
        "Id": row["salesforce_lead_id"],
        **person,
        "Company": company,
        "Status": CONVERTED_STATUS if converted else OPEN_STATUS,
        "IsConverted": converted,
        "ConvertedContactId": row["salesforce_contact_id"] if converted else None,
        "ConvertedAccountId": account_id if converted else None,
    }


def _salesforce_accounts(conn: duckdb.DuckDBPyConnection, columns: set[str]) -> dict[Any, tuple[Any, Any]]:
    """raw account_id -> (Salesforce account id, account name), from the newest row of each account."""
    rows = _raw_rows(conn, "accounts", ("account_id", "salesforce_account_id", "account_name"), columns)
    found: dict[Any, tuple[Any, Any]] = {}
    for row in rows:
        found.setdefault(row["account_id"], (row["salesforce_account_id"], row["account_name"]))
    return found


def _raw_rows(
    conn: duckdb.DuckDBPyConnection, table: str, wanted: Sequence[str], columns: set[str]
) -> list[dict[str, Any]]:
    order = " ORDER BY _loaded_at DESC NULLS LAST" if "_loaded_at" in columns else ""
    select = ", ".join(f'"{c}"' for c in wanted)
    cursor = conn.execute(f"SELECT {select} FROM raw.{table}{order}")
    return _as_dicts(wanted, cursor.fetchall())


def _select(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[dict[str, Any]]:
    columns = SYNTHETIC_TABLES[table]
    select = ", ".join(f'"{c}"' for c in columns)
    return _as_dicts(columns, conn.execute(f'SELECT {select} FROM "{schema}"."{table}"').fetchall())


def _as_dicts(columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _schema_exists(conn: duckdb.DuckDBPyConnection, schema: str) -> bool:
    sql = "SELECT count(*) FROM information_schema.schemata WHERE schema_name = ?"
    return bool(conn.execute(sql, [schema]).fetchall()[0][0])


def _columns(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> set[str]:
    sql = "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?"
    return {r[0] for r in conn.execute(sql, [schema, table]).fetchall()}


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return {"true": True, "t": True, "1": True, "false": False, "f": False, "0": False}.get(text)
