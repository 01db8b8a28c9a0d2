"""Make the sandbox a copy of the company's CRM, read from the warehouse.

leadscore updates records that already exist in the CRM (the people and companies it scores come *from*
the CRM), so a sandbox that starts empty would test nothing real. The records come from schema
``synthetic_crm`` when it exists (written by the synthetic-data generator, exactly the CRM's shape), else
they are derived from the raw CRM export (``raw.accounts``, ``raw.contacts``), whose ids are normalised and
whose malformed ids are skipped. Seeding only inserts records whose id the sandbox does not hold yet: the
CRM already has the others, and whatever a sync wrote there must survive a restart.

Owners come along when the source has them (an older warehouse has none, and seeding works without them):
``synthetic_crm.hubspot_owners`` / ``salesforce_users`` and the records' owner columns, or, from the raw
export, ``raw.crm_users`` with each account's and contact's ``owner_user_id``. Owners are seeded before the
records that name them; an inactive rep stays the owner of their records (archived in HubSpot, inactive in
Salesforce), exactly as the CRM keeps them until someone reassigns them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from activation.rows import iter_dicts
from activation.sandbox.hubspot_api import normalize_hubspot_id
from activation.sandbox.salesforce_records import canonical_id

if TYPE_CHECKING:
    import duckdb

    from activation.sandbox.server import CrmSandbox

log = logging.getLogger(__name__)

SYNTHETIC_SCHEMA = "synthetic_crm"
# The tables and columns every synthetic_crm has; OWNER_TABLES and OWNER_COLUMNS only newer ones.
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
OWNER_TABLES: dict[str, tuple[str, ...]] = {
    "hubspot_owners": ("id", "email", "firstName", "lastName", "userId", "archived"),
    "salesforce_users": ("Id", "FirstName", "LastName", "Email", "IsActive"),
}
OWNER_COLUMNS = {
    "hubspot_contacts": "hubspot_owner_id",
    "hubspot_companies": "hubspot_owner_id",
    "salesforce_accounts": "OwnerId",
    "salesforce_leads": "OwnerId",
    "salesforce_contacts": "OwnerId",
}
RAW_USER_COLUMNS = ("user_id", "hubspot_owner_id", "salesforce_user_id", "full_name", "email", "is_active")
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
REFERENCE_FIELDS = {
    "ConvertedContactId": "Contact",
    "ConvertedAccountId": "Account",
    "AccountId": "Account",
    "OwnerId": "User",
}
OPEN_STATUS, CONVERTED_STATUS = "Open - Not Contacted", "Closed - Converted"


@dataclass
class CrmCopy:
    """The record sets, in the shapes ``seed_hubspot`` / ``seed_salesforce`` take, and the owners (``None``
    when the source has none: an older warehouse).

    With a ``sink``, the copy is a buffer: every ``batch_records`` records it hands what it holds to the sink
    and empties, so a CRM of millions of records is never held at once (``flush`` hands over the rest)."""

    hubspot: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"contacts": [], "companies": []})
    salesforce: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"Lead": [], "Contact": [], "Account": []}
    )
    hubspot_owners: list[dict[str, Any]] | None = None
    salesforce_users: list[dict[str, Any]] | None = None
    skipped: int = 0  # records with a malformed id
    sink: Callable[[CrmCopy], None] | None = None
    batch_records: int = 50_000
    held: int = 0  # records added since the last hand-over

    def _added(self) -> None:
        self.held += 1
        if self.sink is not None and self.held >= self.batch_records:
            self.flush()

    def flush(self) -> None:
        """Hand what is held to the sink (owners first, then the records), and empty the buffers."""
        if self.sink is None or not self.held:
            return
        self.sink(self)
        for records in (*self.hubspot.values(), *self.salesforce.values()):
            records.clear()
        for owners in (self.hubspot_owners, self.salesforce_users):
            if owners is not None:
                owners.clear()
        self.held = 0

    def add_hubspot_owner(self, values: dict[str, Any], *, active: bool) -> None:
        owner_id = normalize_hubspot_id(values.get("id"))
        if owner_id is None:
            self.skipped += values.get("id") is not None
            return
        owner: dict[str, Any] = {"id": owner_id, "archived": not active}
        owner |= _texts(values, ("email", "firstName", "lastName"))
        user_id = normalize_hubspot_id(values.get("userId"))
        if user_id:
            owner["userId"] = user_id
        self.hubspot_owners = self.hubspot_owners if self.hubspot_owners is not None else []
        self.hubspot_owners.append(owner)
        self._added()

    def add_salesforce_user(self, values: dict[str, Any], *, active: bool) -> None:
        user_id = canonical_id("User", values.get("Id"))
        if user_id is None:
            self.skipped += values.get("Id") is not None
            return
        user = {"Id": user_id, "IsActive": active, **_texts(values, ("FirstName", "LastName", "Email"))}
        self.salesforce_users = self.salesforce_users if self.salesforce_users is not None else []
        self.salesforce_users.append(user)
        self._added()

    def add_hubspot(self, object_type: str, raw_id: Any, properties: dict[str, Any]) -> None:
        record_id = normalize_hubspot_id(raw_id)
        if record_id is None:
            self.skipped += raw_id is not None
            return
        values = {k: str(v) for k, v in properties.items() if v is not None and str(v) != ""}
        if "hubspot_owner_id" in values:  # an owner id as HubSpot holds it (digits), or none if malformed
            owner = normalize_hubspot_id(values.pop("hubspot_owner_id"))
            values |= {"hubspot_owner_id": owner} if owner else {}
        self.hubspot[object_type].append({"id": record_id, "properties": values})
        self._added()

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
            elif name in ("IsConverted", "IsActive"):
                value = _as_bool(value)
            else:
                value = str(value)
            if value is not None:
                record[name] = value
        self.salesforce.setdefault(sobject, []).append(record)
        self._added()


def seed_from_warehouse(
    app: CrmSandbox, conn: duckdb.DuckDBPyConnection, batch_records: int = 50_000
) -> dict[str, int]:
    """Insert the CRM's records the sandbox does not hold yet; returns the number inserted per object,
    e.g. ``{"hubspot.contacts": 20112, "hubspot.companies": 1960, "salesforce.Lead": ..., ...}``.

    Records go in ``batch_records`` at a time, each batch its own transaction: at 2.4M leads the whole copy
    would take gigabytes. Seeding only inserts what is missing, so a seed that dies part-way is finished by
    the next one, and a record seen twice keeps its first (newest) version across batches as within one."""
    counts: Counter[str] = Counter()

    def seed(batch: CrmCopy) -> None:
        if batch.hubspot_owners:  # before the records that name them
            counts["hubspot.owners"] += app.hubspot.owners.seed(batch.hubspot_owners)
        if batch.salesforce_users:
            counts["salesforce.User"] += app.seed_salesforce("User", batch.salesforce_users)
        for kind, records in batch.hubspot.items():
            counts[f"hubspot.{kind}"] += app.seed_hubspot(kind, records) if records else 0
        for sobject, records in batch.salesforce.items():
            counts[f"salesforce.{sobject}"] += app.seed_salesforce(sobject, records) if records else 0

    copy = CrmCopy(sink=seed, batch_records=batch_records)
    if _schema_exists(conn, SYNTHETIC_SCHEMA):
        source = f"schema {SYNTHETIC_SCHEMA}"
        read_synthetic_crm(conn, copy)
    else:
        source = "the raw CRM export"
        read_raw_export(conn, copy)
    copy.flush()
    if copy.skipped:
        log.warning("seeding the CRM sandbox from %s: skipped %d records with malformed ids", source, copy.skipped)
    owners = {"hubspot.owners": copy.hubspot_owners, "salesforce.User": copy.salesforce_users}
    result = {name: counts[name] for name, held in owners.items() if held is not None}
    result |= {f"hubspot.{kind}": counts[f"hubspot.{kind}"] for kind in copy.hubspot}
    result |= {f"salesforce.{sobject}": counts[f"salesforce.{sobject}"] for sobject in copy.salesforce}
    log.info("seeded the CRM sandbox from %s: %s", source, result)
    return result


def read_synthetic_crm(conn: duckdb.DuckDBPyConnection, copy: CrmCopy | None = None) -> CrmCopy:
    """The tables of ``synthetic_crm``, exactly as the CRM holds them (owners when the schema has them),
    added to ``copy`` (a new one when not given)."""
    missing = [t for t in SYNTHETIC_TABLES if not _columns(conn, SYNTHETIC_SCHEMA, t)]
    if missing:
        raise ValueError(f"schema {SYNTHETIC_SCHEMA} lacks tables {missing} (expected {sorted(SYNTHETIC_TABLES)})")
    copy = copy if copy is not None else CrmCopy()
    if _columns(conn, SYNTHETIC_SCHEMA, "hubspot_owners"):
        copy.hubspot_owners = []
        for row in _select(conn, SYNTHETIC_SCHEMA, "hubspot_owners"):
            copy.add_hubspot_owner(row, active=_as_bool(row.get("archived")) is not True)
    if _columns(conn, SYNTHETIC_SCHEMA, "salesforce_users"):
        copy.salesforce_users = []
        for row in _select(conn, SYNTHETIC_SCHEMA, "salesforce_users"):
            copy.add_salesforce_user(row, active=_as_bool(row.get("IsActive")) is not False)
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


def read_raw_export(conn: duckdb.DuckDBPyConnection, copy: CrmCopy | None = None) -> CrmCopy:
    """The same five record sets derived from ``raw.accounts`` and ``raw.contacts``, added to ``copy`` (a new
    one when not given).

    A contact row with both a Salesforce lead id and a contact id is a converted Lead (and that Contact).
    Rows are read newest ``_loaded_at`` first, so the first row of a duplicated id — the one kept — is the
    latest export of it. Without the CRM id columns there is nothing to copy (logged, not an error).
    """
    copy = copy if copy is not None else CrmCopy()
    accounts, contacts = _columns(conn, "raw", "accounts"), _columns(conn, "raw", "contacts")
    if not set(RAW_ACCOUNT_COLUMNS) <= accounts or not set(RAW_CONTACT_COLUMNS) <= contacts:
        log.warning("the raw CRM export has no CRM id columns (%s): the sandbox starts empty", RAW_CONTACT_COLUMNS)
        return copy
    owner_of = _raw_owners(conn, copy)
    account_owner = ("owner_user_id",) if "owner_user_id" in accounts else ()
    for row in _raw_rows(conn, "accounts", RAW_ACCOUNT_COLUMNS + account_owner, accounts):
        hubspot_owner, salesforce_owner = owner_of.get(row.get("owner_user_id"), (None, None))
        company = {"name": row["account_name"], "domain": row["domain"], "hubspot_owner_id": hubspot_owner}
        copy.add_hubspot("companies", row["hubspot_company_id"], company)
        copy.add_salesforce(
            "Account",
            {"Id": row["salesforce_account_id"], "Name": row["account_name"], "Website": row["domain"],
             "OwnerId": salesforce_owner},
        )  # fmt: skip
    account_of = _salesforce_accounts(conn, accounts)
    contact_owner = ("owner_user_id",) if "owner_user_id" in contacts else ()
    for row in _raw_rows(conn, "contacts", RAW_CONTACT_COLUMNS + contact_owner, contacts):
        hubspot_owner, salesforce_owner = owner_of.get(row.get("owner_user_id"), (None, None))
        names = {"email": row["email"], "firstname": row["first_name"], "lastname": row["last_name"],
                 "hubspot_owner_id": hubspot_owner}  # fmt: skip
        copy.add_hubspot("contacts", row["hubspot_contact_id"], names)
        account_id, company = account_of.get(row["account_id"], (None, None))
        person = {"FirstName": row["first_name"], "LastName": row["last_name"], "Email": row["email"],
                  "OwnerId": salesforce_owner}  # fmt: skip
        if row["salesforce_contact_id"] is not None:
            copy.add_salesforce("Contact", {"Id": row["salesforce_contact_id"], **person, "AccountId": account_id})
        if row["salesforce_lead_id"] is not None:
            copy.add_salesforce("Lead", _lead(row, person, company, account_id))
    return copy


def _raw_owners(conn: duckdb.DuckDBPyConnection, copy: CrmCopy) -> dict[Any, tuple[str | None, str | None]]:
    """Add ``raw.crm_users`` to ``copy`` as HubSpot owners and Salesforce Users (when the export has them);
    returns user_id -> (HubSpot owner id, Salesforce User id) for the records' ``owner_user_id``."""
    columns = _columns(conn, "raw", "crm_users")
    if not set(RAW_USER_COLUMNS) <= columns:
        return {}
    copy.hubspot_owners, copy.salesforce_users = [], []
    owners: dict[Any, tuple[str | None, str | None]] = {}
    for row in _raw_rows(conn, "crm_users", RAW_USER_COLUMNS, columns):
        if row["user_id"] is None or row["user_id"] in owners:
            continue  # the newest export row of each user wins
        active = _as_bool(row["is_active"]) is not False  # empty counts as active
        first, _, last = str(row["full_name"] or "").strip().partition(" ")
        hubspot_id = normalize_hubspot_id(row["hubspot_owner_id"])
        salesforce_id = canonical_id("User", row["salesforce_user_id"])
        if hubspot_id:
            person = {"id": hubspot_id, "email": row["email"], "firstName": first, "lastName": last}
            copy.add_hubspot_owner(person, active=active)
        if salesforce_id:
            person = {"Id": salesforce_id, "Email": row["email"], "FirstName": first, "LastName": last or first}
            copy.add_salesforce_user(person, active=active)
        owners[row["user_id"]] = (hubspot_id, salesforce_id)
    return owners


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
) -> Iterator[dict[str, Any]]:
    order = " ORDER BY _loaded_at DESC NULLS LAST" if "_loaded_at" in columns else ""
    select = ", ".join(f'"{c}"' for c in wanted)
    return iter_dicts(conn.execute(f"SELECT {select} FROM raw.{table}{order}"), wanted)


def _select(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> Iterator[dict[str, Any]]:
    """The table's known columns, the owner column included when this warehouse has it."""
    available = _columns(conn, schema, table)
    wanted = SYNTHETIC_TABLES.get(table) or OWNER_TABLES[table]
    owner = OWNER_COLUMNS.get(table)
    columns = [c for c in wanted if c in available or table in SYNTHETIC_TABLES] + (
        [owner] if owner and owner in available else []
    )
    select = ", ".join(f'"{c}"' for c in columns)
    return iter_dicts(conn.execute(f'SELECT {select} FROM "{schema}"."{table}"'), columns)


def _texts(values: dict[str, Any], names: Sequence[str]) -> dict[str, str]:
    return {name: str(values[name]) for name in names if values.get(name) not in (None, "")}


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
