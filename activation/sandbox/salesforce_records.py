"""Salesforce's records and their schema, without HTTP: describe data, upsert by external id, update by
record id, seeding, deletion. Collections and Bulk 2.0 both write through here, so a record fails the same
way whichever API a client chose.

Record ids follow :mod:`activation.salesforce_ids`: new ones are ``make_salesforce_id`` with the object's
key prefix and the org's pod, and every id received is matched through ``normalize_salesforce_id`` (15 or
18 characters; an 18-character id in any case is the same record). Unique external ids match
case-insensitively, as Salesforce's are unless defined case-sensitive.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from activation.mapping import load_mapping
from activation.salesforce_ids import KEY_PREFIXES, make_salesforce_id, normalize_salesforce_id
from activation.salesforce_schema import all_field_specs
from activation.sandbox.config import SandboxConfig
from activation.sandbox.faults import FaultDice
from activation.sandbox.salesforce_query import TEXT_TYPES
from activation.sandbox.store import Store, select_in

NUMERIC = {"double", "currency", "percent", "int", "long"}
TEXTUAL = TEXT_TYPES | {"id", "reference"}
_EMAIL = re.compile(r"^[^@\s\"]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}$")


@dataclass(frozen=True)
class FieldDef:
    """A standard field as describe shows it."""

    name: str
    type: str
    length: int | None = None
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    defaulted_on_create: bool = False
    id_lookup: bool = False
    reference_to: str | None = None


ID_FIELD = FieldDef("Id", "id", 18, False, False, False, True, True)
# Records are owned by a User: required, but Salesforce fills in the running user when a create omits it.
OWNER_FIELD = FieldDef("OwnerId", "reference", 18, nillable=False, defaulted_on_create=True, reference_to="User")
STANDARD_FIELDS: dict[str, list[FieldDef]] = {
    "Lead": [
        ID_FIELD,
        FieldDef("FirstName", "string", 40),
        FieldDef("LastName", "string", 80, nillable=False),
        FieldDef("Company", "string", 255, nillable=False),
        FieldDef("Email", "email", 80, id_lookup=True),
        FieldDef("Status", "picklist", 255, nillable=False, defaulted_on_create=True),
        FieldDef("IsConverted", "boolean", None, False, False, False, True),
        FieldDef("ConvertedContactId", "reference", 18, False, False, reference_to="Contact"),
        FieldDef("ConvertedAccountId", "reference", 18, False, False, reference_to="Account"),
        OWNER_FIELD,
    ],
    "Contact": [
        ID_FIELD,
        FieldDef("FirstName", "string", 40),
        FieldDef("LastName", "string", 80, nillable=False),
        FieldDef("Email", "email", 80, id_lookup=True),
        FieldDef("AccountId", "reference", 18, reference_to="Account"),
        OWNER_FIELD,
    ],
    "Account": [
        ID_FIELD,
        FieldDef("Name", "string", 255, nillable=False),
        FieldDef("Website", "url", 255),
        OWNER_FIELD,
    ],
    # Users are managed in Setup, not written through the data API (every field read-only here).
    "User": [
        ID_FIELD,
        FieldDef("Username", "string", 80, False, False),
        FieldDef("FirstName", "string", 40, False, False),
        FieldDef("LastName", "string", 80, False, False),
        FieldDef("Email", "email", 128, False, False),
        FieldDef("IsActive", "boolean", None, False, False),
    ],
    "Task": [
        ID_FIELD,
        FieldDef("Subject", "combobox", 255),  # a picklist of suggestions that takes any text
        FieldDef("Description", "textarea", 32_000),
        FieldDef("ActivityDate", "date"),
        FieldDef("Status", "picklist", 40, nillable=False, defaulted_on_create=True),
        FieldDef("Priority", "picklist", 40, nillable=False, defaulted_on_create=True),
        FieldDef("WhoId", "reference", 18, reference_to="Contact,Lead"),  # a person: Contact or Lead
        FieldDef("WhatId", "reference", 18, reference_to="Account"),
        FieldDef("IsClosed", "boolean", None, False, False),
        OWNER_FIELD,
    ],
}
# Restricted picklists: a value outside the list is refused (INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST).
PICKLISTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("Task", "Status"): ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred"),
    ("Task", "Priority"): ("High", "Normal", "Low"),
}
# What Salesforce fills in on create when the caller does not.
CREATE_DEFAULTS: dict[str, dict[str, Any]] = {
    "Lead": {"Status": "Open - Not Contacted", "IsConverted": False},
    "Task": {"Status": "Not Started", "Priority": "Normal", "IsClosed": False},
}
FIELD_COLUMNS = (
    "sobject, name, label, type, length, external_id, id_lookup, createable, updateable, nillable,"
    " defaulted_on_create, is_unique, custom, reference_to"
)


@dataclass(frozen=True)
class RowResult:
    """What happened to one record: its id and whether it was created, or an error."""

    record_id: str | None
    created: bool = False
    code: str = ""
    message: str = ""
    fields: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.code


def failure(code: str, message: str, *fields: str) -> RowResult:
    return RowResult(None, False, code, message, fields)


def now_sf() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def json_type_ok(field: sqlite3.Row, value: Any) -> bool:
    """Whether a JSON value has the type the field takes (null fits every field here)."""
    typ = field["type"]
    if value is None:
        return True
    if typ in NUMERIC:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if typ == "boolean":
        return isinstance(value, bool)
    if typ in {"date", "datetime"}:
        return isinstance(value, str) and parse_temporal(typ, value) is not None
    return typ in TEXTUAL and isinstance(value, str)


def parse_temporal(typ: str, value: str) -> object | None:
    try:
        if typ == "date":
            return dt.date.fromisoformat(value) if len(value) == 10 else None
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def expected_prefix(sobject: str) -> str | None:
    return KEY_PREFIXES.get(sobject)


# Seeding normalises each of 100k+ ids two or three times on its way in; the pure function is worth caching.
normalize_id = functools.lru_cache(maxsize=1 << 18)(normalize_salesforce_id)


def canonical_id(sobject: str, raw: Any) -> str | None:
    """The canonical id of ``raw`` when it is an id of ``sobject`` (right key prefix), else None."""
    canonical = normalize_id(raw) if isinstance(raw, str) else None
    prefix = expected_prefix(sobject)
    if canonical is None or (prefix is not None and canonical[:3] != prefix):
        return None
    return canonical


class SalesforceRecords:
    def __init__(self, store: Store, config: SandboxConfig, dice_provider: Callable[[], FaultDice]) -> None:
        self.store = store
        self.config = config
        self._dice_provider = dice_provider
        self._deploy_schema()
        self._seed_running_user()
        with store.lock:
            self._next_number = store.conn.execute("SELECT count(*) FROM sf_records").fetchone()[0] + 1

    @property
    def dice(self) -> FaultDice:
        return self._dice_provider()

    # --- schema --------------------------------------------------------------------------------------
    def _deploy_schema(self) -> None:
        rows = [
            field_row(
                sobject,
                f.name,
                f.type,
                f.length,
                id_lookup=f.id_lookup,
                createable=f.createable,
                updateable=f.updateable,
                nillable=f.nillable,
                defaulted=f.defaulted_on_create,
                reference_to=f.reference_to,
            )
            for sobject, defs in STANDARD_FIELDS.items()
            for f in defs
        ]
        if self.config.salesforce_deploy_leadscore_fields:
            rows += [
                field_row(
                    spec.sobject,
                    spec.name,
                    spec.describe_type,
                    spec.length or spec.precision,
                    label=spec.label,
                    external=spec.external_id,
                    custom=True,
                )
                for spec in all_field_specs(load_mapping())
            ]
        with self.store.transaction() as conn:
            conn.executemany(f"INSERT OR IGNORE INTO sf_fields ({FIELD_COLUMNS}) VALUES ({', '.join('?' * 14)})", rows)

    def _seed_running_user(self) -> None:
        """The integration user the tokens log in as: an active User, and what owns records it creates."""
        user = {"Id": self.config.salesforce_user_id, "Username": self.config.salesforce_username,
                "LastName": "Integration", "IsActive": True}  # fmt: skip
        self.seed("User", [user])

    def add_fields(self, sobject: str, fields: Any) -> None:
        """Admin: deploy custom fields (``name``, ``type``, optional ``label``, ``externalId``, ``length``,
        ``createable``, ``updateable``, ``nillable``); ValueError when a definition is malformed."""
        if not isinstance(fields, list):
            raise ValueError("fields must be a list")
        rows = [_custom_field_row(sobject, f) for f in fields]
        with self.store.transaction() as conn:
            conn.executemany(f"INSERT OR REPLACE INTO sf_fields ({FIELD_COLUMNS}) VALUES ({', '.join('?' * 14)})", rows)

    def fields(self, conn: sqlite3.Connection, sobject: str) -> dict[str, sqlite3.Row]:
        rows = conn.execute("SELECT * FROM sf_fields WHERE sobject = ? ORDER BY rowid", (sobject,)).fetchall()
        return {r["name"]: r for r in rows}

    # --- writes --------------------------------------------------------------------------------------
    def upsert(
        self, conn: sqlite3.Connection, sobject: str, ext_field: str, fields: dict[str, sqlite3.Row], rows: list[dict]
    ) -> list[RowResult]:
        """Upsert parsed rows matched by ``ext_field`` (case-insensitively); one result per row, in order."""
        keys = [None if r.get(ext_field) is None else str(r[ext_field]) for r in rows]
        lowered = [k.lower() if k else None for k in keys]
        owners = self._owners(conn, sobject, ext_field, [k for k in lowered if k])
        stored = self._load(conn, owners.values())
        duplicates = {k for k, n in Counter(lowered).items() if k and n > 1}
        plan: list[tuple[int, str | None, dict[str, Any]]] = []
        results: list[RowResult] = []
        for index, (key, low, values) in enumerate(zip(keys, lowered, rows, strict=True)):
            target = owners.get(low) if low else None
            problem = _key_problem(ext_field, key, low in duplicates) or (
                self._injected(key or "")
                or _converted_lead(sobject, stored.get(target) if target else None)
                or self._value_problem(conn, sobject, fields, values, target, exempt=ext_field)
            )
            results.append(problem or RowResult(target))
            if problem is None:
                plan.append((index, target, values))
        return self._apply(conn, sobject, fields, plan, stored, results)

    def update(
        self, conn: sqlite3.Connection, sobject: str, fields: dict[str, sqlite3.Row], rows: list[tuple[str, dict]]
    ) -> list[RowResult]:
        """Update existing records by id; never creates. One result per ``(raw id, values)``, in order."""
        ids = [canonical_id(sobject, raw) for raw, _ in rows]
        stored = self._load(conn, [i for i in ids if i])
        duplicates = {i for i, n in Counter(ids).items() if i and n > 1}
        plan: list[tuple[int, str | None, dict[str, Any]]] = []
        results: list[RowResult] = []
        for index, ((raw, values), record_id) in enumerate(zip(rows, ids, strict=True)):
            problem = _id_problem(sobject, raw, record_id, duplicates, stored) or (
                self._injected(record_id or "", raw)
                or _converted_lead(sobject, stored.get(record_id or ""))
                or self._value_problem(conn, sobject, fields, values, record_id)
            )
            results.append(problem or RowResult(record_id))
            if problem is None:
                plan.append((index, record_id, values))
        return self._apply(conn, sobject, fields, plan, stored, results)

    def create(
        self, conn: sqlite3.Connection, sobject: str, fields: dict[str, sqlite3.Row], rows: list[dict]
    ) -> list[RowResult]:
        """Insert new records (no Id: Salesforce assigns one); one result per row, in order."""
        plan: list[tuple[int, str | None, dict[str, Any]]] = []
        results: list[RowResult] = []
        for index, values in enumerate(rows):
            # A new record has no id yet: a fault key is its content, and reject_keys may name any text value.
            key = json.dumps(values, sort_keys=True, default=str)
            texts = [v for v in values.values() if isinstance(v, str)]
            problem = self._injected(key, *texts) or self._value_problem(conn, sobject, fields, values, None)
            results.append(problem or RowResult(None))
            if problem is None:
                plan.append((index, None, values))
        return self._apply(conn, sobject, fields, plan, {}, results)

    def _injected(self, key: str, *aliases: str) -> RowResult | None:
        faults = self.config.faults
        if {key, *aliases} & set(faults.reject_keys) or self.dice.hit("record_error", key, faults.p_record_error):
            return failure("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record")
        return None

    def _value_problem(
        self,
        conn: sqlite3.Connection,
        sobject: str,
        fields: dict[str, sqlite3.Row],
        values: dict[str, Any],
        target: str | None,
        exempt: str = "",
    ) -> RowResult | None:
        """Field-level errors of one row: access, required, length, e-mail, reference ids, unique values."""
        creating = target is None
        for name, value in values.items():
            if name == exempt:
                continue
            problem = (
                _field_problem(fields[name], value, creating)
                or _picklist_problem(sobject, fields[name], value)
                or self._reference_problem(conn, sobject, fields[name], value)
                or self._unique_clash(conn, sobject, fields[name], value, target)
            )
            if problem:
                return problem
        if creating and self.config.salesforce_required_on_create:
            required = [n for n, f in fields.items() if f["createable"] and not f["nillable"]]
            missing = [n for n in required if not fields[n]["defaulted_on_create"] and values.get(n) in (None, "")]
            if missing:
                message = f"Required fields are missing: [{', '.join(missing)}]"
                return failure("REQUIRED_FIELD_MISSING", message, *missing)
        return None

    def _reference_problem(
        self, conn: sqlite3.Connection, sobject: str, field: sqlite3.Row, value: Any
    ) -> RowResult | None:
        """A lookup must name a live record of the referenced object(s): an active User for an owner, and a
        person that is not a converted Lead for a task's WhoId."""
        if field["type"] != "reference" or not field["reference_to"] or value is None:
            return None
        name, targets = field["name"], field["reference_to"].split(",")
        record_id = normalize_id(str(value))
        if record_id is None:
            return None  # _field_problem answered MALFORMED_ID already
        if record_id[:3] not in {KEY_PREFIXES.get(t) for t in targets}:
            message = f"{name}: id value of incorrect type: {value}"
            return failure("FIELD_INTEGRITY_EXCEPTION", message, name)
        row = conn.execute("SELECT sobject, fields, deleted FROM sf_records WHERE id = ?", (record_id,)).fetchone()
        if row is None or row["deleted"] or row["sobject"] not in targets:
            return failure("INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {name}", name)
        referenced = json.loads(row["fields"])
        if row["sobject"] == "User" and referenced.get("IsActive") is not True:
            message = f"operation performed with inactive user [{record_id}] as owner of {sobject.lower()}"
            return failure("INACTIVE_OWNER_OR_USER", message, name)
        if row["sobject"] == "Lead" and referenced.get("IsConverted") is True:
            return failure("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", name)
        return None

    def _unique_clash(
        self, conn: sqlite3.Connection, sobject: str, field: sqlite3.Row, value: Any, target: str | None
    ) -> RowResult | None:
        if not field["external_id"] or value is None:
            return None
        owner = self._owners(conn, sobject, field["name"], [str(value).lower()]).get(str(value).lower())
        if owner is None or owner == target:
            return None
        message = f"duplicate value found: {field['name']} duplicates value on record with id: {owner}"
        return failure("DUPLICATE_VALUE", message, field["name"])

    def _apply(
        self,
        conn: sqlite3.Connection,
        sobject: str,
        fields: dict[str, sqlite3.Row],
        plan: list[tuple[int, str | None, dict[str, Any]]],
        stored: dict[str, tuple[dict[str, Any], str, bool]],
        results: list[RowResult],
    ) -> list[RowResult]:
        """Write the planned rows (``None`` target: create) with a few executemany statements."""
        stamp = now_sf()
        record_rows, index_rows = [], []
        for index, target, values in plan:
            if target is None:
                record_id, created_at = self._new_id(conn, sobject), stamp
                current = dict(CREATE_DEFAULTS.get(sobject, {}))
                if "OwnerId" in fields:  # owned by the running user unless the create says otherwise
                    current["OwnerId"] = self.config.salesforce_user_id
            else:
                record_id, (current, created_at, _) = target, stored[target]
            for name, value in values.items():
                value = normalize_salesforce_id(value) if fields[name]["type"] == "reference" and value else value
                if value is None:
                    current.pop(name, None)
                else:
                    current[name] = value
            record_rows.append((record_id, sobject, json.dumps(current, sort_keys=True), created_at, stamp))
            index_rows += [(sobject, n, v, record_id) for n, v in values.items() if fields[n]["external_id"]]
            results[index] = RowResult(record_id, created=target is None)
        conn.executemany(
            "INSERT OR REPLACE INTO sf_records (id, sobject, fields, created_at, updated_at, deleted)"
            " VALUES (?, ?, ?, ?, ?, 0)",
            record_rows,
        )
        conn.executemany(
            "DELETE FROM sf_external_ids WHERE sobject = ? AND field = ? AND record_id = ?",
            [(s, n, r) for s, n, _, r in index_rows],
        )
        conn.executemany(
            "INSERT OR REPLACE INTO sf_external_ids VALUES (?, ?, ?, ?)",
            [(s, n, str(v).lower(), r) for s, n, v, r in index_rows if v is not None],
        )
        return results

    def _owners(self, conn: sqlite3.Connection, sobject: str, field: str, lowered: list[str]) -> dict[str, str]:
        sql = "SELECT value, record_id FROM sf_external_ids WHERE sobject = ? AND field = ? AND value IN ({})"
        return {r[0]: r[1] for r in select_in(conn, sql, (sobject, field), lowered)}

    def _load(self, conn: sqlite3.Connection, ids: Iterable[str]) -> dict[str, tuple[dict[str, Any], str, bool]]:
        """id -> (fields, created_at, deleted) of the stored records among ``ids``."""
        sql = "SELECT id, fields, created_at, deleted FROM sf_records WHERE id IN ({})"
        return {r[0]: (json.loads(r[1]), r[2], bool(r[3])) for r in select_in(conn, sql, (), list(ids))}

    def _new_id(self, conn: sqlite3.Connection, sobject: str) -> str:
        """The next free id with the object's key prefix and the org's pod (seeded ids are skipped)."""
        prefix = KEY_PREFIXES.get(sobject, "a00")
        while True:
            number, self._next_number = self._next_number, self._next_number + 1
            record_id = make_salesforce_id(prefix, number, self.config.salesforce_pod)
            if conn.execute("SELECT 1 FROM sf_records WHERE id = ?", (record_id,)).fetchone() is None:
                return record_id

    # --- seeding and admin ---------------------------------------------------------------------------
    def seed(self, sobject: str, records: list[dict[str, Any]]) -> int:
        """Insert the records whose ``Id`` is not held yet (deleted ones count as held); never touches
        existing records. Returns how many were inserted; ValueError on a malformed record."""
        with self.store.transaction() as conn:
            fields = self.fields(conn, sobject)
            if not fields:
                raise ValueError(f"unknown sObject {sobject!r}")
            parsed = _parse_seed_records(sobject, fields, records)
            held = {r[0] for r in select_in(conn, "SELECT id FROM sf_records WHERE id IN ({})", (), list(parsed))}
            fresh = {i: v for i, v in parsed.items() if i not in held}
            stamp = now_sf()
            conn.executemany(
                "INSERT INTO sf_records (id, sobject, fields, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                [(i, sobject, json.dumps(v, sort_keys=True), stamp, stamp) for i, v in fresh.items()],
            )
            external = [n for n, f in fields.items() if f["external_id"]]
            conn.executemany(
                "INSERT OR IGNORE INTO sf_external_ids VALUES (?, ?, ?, ?)",
                [(sobject, n, str(v[n]).lower(), i) for i, v in fresh.items() for n in external if n in v],
            )
        return len(fresh)

    def delete(self, sobject: str, raw_id: str) -> bool:
        """Delete a record as a user would (to the recycle bin): updates then answer ENTITY_IS_DELETED."""
        record_id = canonical_id(sobject, raw_id)
        if record_id is None:
            return False
        with self.store.transaction() as conn:
            changed = conn.execute(
                "UPDATE sf_records SET deleted = 1 WHERE id = ? AND sobject = ? AND deleted = 0", (record_id, sobject)
            ).rowcount
            conn.execute("DELETE FROM sf_external_ids WHERE record_id = ?", (record_id,))
        return changed > 0

    def sobject_named(self, conn: sqlite3.Connection, name: str) -> str | None:
        """The sObject's API name for ``name`` in any case (SOQL names are case-insensitive)."""
        row = conn.execute("SELECT sobject FROM sf_fields WHERE lower(sobject) = lower(?) LIMIT 1", (name,)).fetchone()
        return row[0] if row else None

    def live(self, conn: sqlite3.Connection, sobject: str) -> list[tuple[str, dict[str, Any]]]:
        """(Id, fields) of every record of ``sobject`` that is not deleted, in Id order."""
        rows = conn.execute(
            "SELECT id, fields FROM sf_records WHERE sobject = ? AND deleted = 0 ORDER BY id", (sobject,)
        ).fetchall()
        return [(r[0], json.loads(r[1])) for r in rows]

    def count(self, sobject: str) -> int:
        with self.store.lock:
            sql = "SELECT count(*) FROM sf_records WHERE sobject = ? AND deleted = 0"
            return int(self.store.conn.execute(sql, (sobject,)).fetchone()[0])

    def dump(self, sobject: str) -> list[dict[str, Any]]:
        with self.store.lock:
            rows = self.store.conn.execute(
                "SELECT id, fields FROM sf_records WHERE sobject = ? AND deleted = 0 ORDER BY id", (sobject,)
            ).fetchall()
        return [{"Id": r[0], **json.loads(r[1])} for r in rows]


# --- row checks ---------------------------------------------------------------------------------------
def _key_problem(ext_field: str, key: str | None, duplicated: bool) -> RowResult | None:
    if not key:
        return failure("MISSING_ARGUMENT", f"{ext_field} not specified", ext_field)
    if duplicated:
        return failure("DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {key}", ext_field)
    return None


def _id_problem(
    sobject: str,
    raw: str,
    record_id: str | None,
    duplicates: set[str],
    stored: dict[str, tuple[dict[str, Any], str, bool]],
) -> RowResult | None:
    if not raw:
        return failure("MISSING_ARGUMENT", "Id not specified in an update call", "Id")
    if record_id is None:
        return failure("MALFORMED_ID", f"{sobject} ID: id value of incorrect type: {raw}", "Id")
    if record_id in duplicates:
        return failure("DUPLICATE_VALUE", f"Duplicate id in list: {record_id}", "Id")
    if record_id not in stored:
        return failure("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", "Id")
    if stored[record_id][2]:
        return failure("ENTITY_IS_DELETED", "entity is deleted", "Id")
    return None


def _converted_lead(sobject: str, record: tuple[dict[str, Any], str, bool] | None) -> RowResult | None:
    """A converted Lead is read-only: write the Contact (and Account) it became instead."""
    if sobject == "Lead" and record is not None and record[0].get("IsConverted") is True:
        return failure("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
    return None


def _picklist_problem(sobject: str, field: sqlite3.Row, value: Any) -> RowResult | None:
    allowed = PICKLISTS.get((sobject, field["name"]))
    if allowed is None or value is None or value in allowed:
        return None
    message = f"{field['name']}: bad value for restricted picklist field: {value}"
    return failure("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", message, field["name"])


def _field_problem(field: sqlite3.Row, value: Any, creating: bool) -> RowResult | None:
    name, typ = field["name"], field["type"]
    if not (field["createable"] if creating else field["updateable"]):
        message = f"Unable to create/update fields: {name}. Please check the security settings of this field."
        return failure("INVALID_FIELD_FOR_INSERT_UPDATE", message, name)
    if value is None:
        if typ == "boolean":
            return failure("INVALID_FIELD", f"{name}: a checkbox cannot be null", name)
        if not field["nillable"]:
            return failure("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{name}]", name)
        return None
    if isinstance(value, str) and field["length"] and typ in TEXTUAL and len(value) > field["length"]:
        return failure("STRING_TOO_LONG", f"{name}: data value too large (max length={field['length']})", name)
    if typ == "email" and not _EMAIL.match(str(value)):
        return failure("INVALID_EMAIL_ADDRESS", f"{name}: invalid email address: {value}", name)
    if typ == "reference" and normalize_salesforce_id(str(value)) is None:
        return failure("MALFORMED_ID", f"{name}: id value of incorrect type: {value}", name)
    return None


def field_row(
    sobject: str,
    name: str,
    typ: str,
    length: int | None,
    *,
    label: str | None = None,
    external: bool = False,
    id_lookup: bool = False,
    createable: bool = True,
    updateable: bool = True,
    nillable: bool | None = None,
    defaulted: bool | None = None,
    custom: bool = False,
    reference_to: str | None = None,
) -> tuple[Any, ...]:
    """A ``sf_fields`` row in FIELD_COLUMNS order. Checkboxes are never null and default to false; unique
    external ids are also id lookups."""
    boolean = typ == "boolean"
    return (
        sobject,
        name,
        label or name,
        typ,
        length,
        int(external),
        int(external or id_lookup),
        int(createable),
        int(updateable),
        int(not boolean if nillable is None else nillable),
        int(boolean if defaulted is None else defaulted),
        int(external),
        int(custom),
        reference_to,
    )


def _custom_field_row(sobject: str, spec: Any) -> tuple[Any, ...]:
    if not isinstance(spec, dict) or not all(isinstance(spec.get(k), str) for k in ("name", "type")):
        raise ValueError("each field needs a string 'name' and 'type'")
    flags = {k: spec.get(k, True) for k in ("createable", "updateable")}
    flags["externalId"] = spec.get("externalId", False)
    flags["nillable"] = spec.get("nillable", spec["type"] != "boolean")
    length, label = spec.get("length"), spec.get("label", spec["name"])
    if not all(isinstance(v, bool) for v in flags.values()) or not (length is None or type(length) is int):
        raise ValueError("externalId/createable/updateable/nillable are booleans, length an integer")
    if not isinstance(label, str):
        raise ValueError("label must be a string")
    return field_row(
        sobject,
        spec["name"],
        spec["type"],
        length,
        label=label,
        external=flags["externalId"],
        createable=flags["createable"],
        updateable=flags["updateable"],
        nillable=flags["nillable"],
        custom=True,
    )


def _parse_seed_records(sobject: str, fields: dict[str, sqlite3.Row], records: Any) -> dict[str, dict[str, Any]]:
    """Canonical id -> fields (nulls dropped, reference ids canonical); first of each id wins."""
    if not isinstance(records, list):
        raise ValueError("records must be a list")
    parsed: dict[str, dict[str, Any]] = {}
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise ValueError(f"record {index}: an object with 'Id' is expected")
        record_id = canonical_id(sobject, record.get("Id"))
        if record_id is None:
            raise ValueError(f"record {index}: {record.get('Id')!r} is not a {sobject} id")
        values = {}
        for name, value in record.items():
            if name == "Id" or value is None:
                continue
            if name not in fields or not json_type_ok(fields[name], value):
                raise ValueError(f"record {index}: {name}={value!r} does not fit {sobject}'s fields")
            if fields[name]["type"] == "reference":
                value = normalize_id(value)
                if value is None:
                    raise ValueError(f"record {index}: {name} is not a Salesforce id")
            values[name] = value
        parsed.setdefault(record_id, {**CREATE_DEFAULTS.get(sobject, {}), **values})
    return parsed
