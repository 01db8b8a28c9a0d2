"""HubSpot CRM v3 as crm-api-contracts.md describes it: properties, groups, batch create/upsert/update/read,
and the account-info endpoints that name the portal.

Strict where the real API is strict, so client bugs surface here and not in a customer's portal: values
must be strings, at most 100 inputs, unknown or read-only properties and any invalid value fail the whole
batch with 400 (nothing written), ``idProperty`` must have unique values, a value another record already owns
in a unique property fails the whole batch with 409, e-mails are unique case-insensitively, batch/update
never creates, and only per-record problems (not found, injected faults) answer 207 tied back by
``objectWriteTraceId``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from activation.sandbox.config import SandboxConfig
from activation.sandbox.faults import FaultDice
from activation.sandbox.hubspot_owners import OWNER_PROPERTY, HubSpotOwners
from activation.sandbox.hubspot_search import SecondlyLimit, parse_search, search_rate_limited, visible
from activation.sandbox.hubspot_values import canonical_value, value_problem
from activation.sandbox.shapes import hubspot_error
from activation.sandbox.store import Store, select_in
from activation.sandbox.web import Refusal, Request, Response, Router, json_object, json_response

log = logging.getLogger(__name__)

MAX_BATCH_INPUTS = 100
OBJECT_TYPES = {
    "contacts": "contacts", "0-1": "contacts", "companies": "companies", "0-2": "companies", "tasks": "tasks",
    "0-27": "tasks",
}  # fmt: skip
OBJECT_TYPE_IDS = {"contacts": "0-1", "companies": "0-2"}  # the records the company's CRM is made of (counts)
TYPE_IDS = {**OBJECT_TYPE_IDS, "tasks": "0-27"}
SINGULAR = {"contacts": "Contact", "companies": "Company", "tasks": "Task"}
# Tasks are engagements: HubSpot guards them with the contacts scopes.
SCOPE_OF = {"tasks": "contacts"}
# HUBSPOT_DEFINED association type id -> (from object type, to object type).
ASSOCIATION_TYPES = {204: ("tasks", "contacts"), 192: ("tasks", "companies")}
# Properties an object cannot be created without.
REQUIRED_ON_CREATE = {"tasks": ("hs_timestamp",)}
VALID_FIELD_TYPES = {
    "string": {"text", "textarea", "phonenumber", "html", "file"},
    "number": {"number"},
    "date": {"date"},
    "datetime": {"date"},
    "enumeration": {"select", "radio", "checkbox", "booleancheckbox"},
    "bool": {"booleancheckbox"},
}
# Properties every portal has. hs_object_id is not unique-valued: upserting by it fails, as in real life.
BUILTIN_PROPERTIES: dict[str, list[tuple[str, str, str, bool, bool]]] = {
    # name, type, fieldType, hasUniqueValue, read-only
    "contacts": [
        ("email", "string", "text", True, False),
        ("firstname", "string", "text", False, False),
        ("lastname", "string", "text", False, False),
        ("company", "string", "text", False, False),
        ("hs_object_id", "number", "number", False, True),
        ("createdate", "datetime", "date", False, True),
        ("lastmodifieddate", "datetime", "date", False, True),
        (OWNER_PROPERTY, "enumeration", "select", False, False),
    ],
    "companies": [
        ("name", "string", "text", False, False),
        ("domain", "string", "text", False, False),
        ("numberofemployees", "number", "number", False, False),
        ("hs_object_id", "number", "number", False, True),
        ("createdate", "datetime", "date", False, True),
        ("lastmodifieddate", "datetime", "date", False, True),
        (OWNER_PROPERTY, "enumeration", "select", False, False),
    ],
    "tasks": [
        ("hs_timestamp", "datetime", "date", False, False),
        ("hs_task_subject", "string", "text", False, False),
        ("hs_task_body", "string", "html", False, False),
        ("hs_task_status", "enumeration", "select", False, False),
        ("hs_task_priority", "enumeration", "select", False, False),
        ("hs_task_type", "enumeration", "select", False, False),
        ("hs_task_reminders", "string", "text", False, False),
        (OWNER_PROPERTY, "enumeration", "select", False, False),
        ("hs_object_id", "number", "number", False, True),
        ("hs_createdate", "datetime", "date", False, True),
        ("hs_lastmodifieddate", "datetime", "date", False, True),
    ],
}
# The options of HubSpot-defined dropdowns (hubspot_owner_id's are the owners themselves, checked on write).
BUILTIN_OPTIONS = {
    ("tasks", "hs_task_status"): ["NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED"],
    ("tasks", "hs_task_priority"): ["NONE", "LOW", "MEDIUM", "HIGH"],
    ("tasks", "hs_task_type"): ["CALL", "EMAIL", "TODO", "LINKED_IN", "MEETING"],
}
BUILTIN_GROUPS = {"contacts": "contactinformation", "companies": "companyinformation", "tasks": "task"}
_PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_HUBSPOT_ID = re.compile(r"^[1-9][0-9]{0,17}$")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def normalize_hubspot_id(value: object) -> str | None:
    """A HubSpot record id as its canonical digits (``"0042"`` and ``42.0`` are 42), None when not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip() if isinstance(value, int | str) else ""
    text = text.lstrip("0") or text
    return text if _HUBSPOT_ID.match(text) else None


@dataclass(frozen=True)
class BatchInput:
    """One input of a batch write, as sent (``key`` is the id, empty for batch/create)."""

    key: str
    properties: dict[str, str]
    trace: str | None
    id_property: str | None
    associations: tuple[tuple[str, int], ...] = ()  # create only: (target record id, association type id)


class HubSpotApi:
    def __init__(self, store: Store, config: SandboxConfig, dice_provider: Callable[[], FaultDice]) -> None:
        self.store = store
        self.config = config
        self._dice_provider = dice_provider  # returns the current FaultDice (replaced when the seed changes)
        self.owners = HubSpotOwners(store)
        self._search_limit = SecondlyLimit()
        self._seed_builtins()
        with self.store.lock:
            row = self.store.conn.execute("SELECT coalesce(max(id), 0) FROM hs_objects").fetchone()
        self._next_id = int(row[0]) + 1

    @property
    def dice(self) -> FaultDice:
        return self._dice_provider()

    def _seed_builtins(self) -> None:
        with self.store.transaction() as conn:
            for object_type, props in BUILTIN_PROPERTIES.items():
                group = BUILTIN_GROUPS[object_type]
                conn.execute(
                    "INSERT OR IGNORE INTO hs_property_groups VALUES (?, ?, ?, 0)",
                    (object_type, group, f"{SINGULAR[object_type]} information"),
                )
                conn.executemany(
                    "INSERT OR IGNORE INTO hs_properties (object_type, name, label, type, field_type, group_name,"
                    " description, has_unique_value, options, hubspot_defined, read_only, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, '', ?, ?, 1, ?, ?)",
                    [
                        (object_type, name, name, typ, field_type, group, int(unique),
                         _options_json(BUILTIN_OPTIONS.get((object_type, name), [])), int(ro), now_iso())
                        for name, typ, field_type, unique, ro in props
                    ],
                )  # fmt: skip

    def register(self, router: Router) -> None:
        base = "/crm/v3"
        routes = [
            ("GET", "properties/{object_type}/groups", "hubspot.groups.list", self.list_groups),
            ("POST", "properties/{object_type}/groups", "hubspot.groups.create", self.create_group),
            ("GET", "properties/{object_type}", "hubspot.properties.list", self.list_properties),
            ("POST", "properties/{object_type}", "hubspot.properties.create", self.create_property),
            ("GET", "properties/{object_type}/{name}", "hubspot.properties.get", self.get_property),
            ("POST", "objects/{object_type}/batch/create", "hubspot.batch.create", self.batch_create),
            ("POST", "objects/{object_type}/batch/upsert", "hubspot.batch.upsert", self.batch_upsert),
            ("POST", "objects/{object_type}/batch/update", "hubspot.batch.update", self.batch_update),
            ("POST", "objects/{object_type}/batch/read", "hubspot.batch.read", self.batch_read),
            ("POST", "objects/{object_type}/search", "hubspot.search", self.search),
            ("POST", "objects/{object_type}", "hubspot.objects.create", self.create_one),
            ("GET", "objects/{object_type}/{id}", "hubspot.objects.get", self.get_one),
        ]
        router.add("GET", f"{base}/owners", "hubspot.owners.list", self.owners.list)
        router.add("GET", f"{base}/owners/{{id}}", "hubspot.owners.get", self.owners.get)
        for method, path, name, handler in routes:
            router.add(method, f"{base}/{path}", name, _resolving_object_type(handler))
        router.add("GET", "/account-info/v3/details", "hubspot.account.details", self.account_details)
        router.add("GET", "/integrations/v1/me", "hubspot.account.me", self.integrations_me)

    # --- scopes --------------------------------------------------------------------------------------
    @staticmethod
    def required_scope(route: str, object_type: str) -> str | None:
        """The scope a route needs; None for the account-info endpoints (any valid token may call them)."""
        if route.startswith("hubspot.account."):
            return None
        if route.startswith("hubspot.owners."):
            return "crm.objects.owners.read"
        kind = "schemas" if route.startswith(("hubspot.groups", "hubspot.properties")) else "objects"
        access = "read" if route.endswith((".list", ".get", ".read", ".search")) else "write"
        canonical = OBJECT_TYPES.get(object_type, object_type)
        return f"crm.{kind}.{SCOPE_OF.get(canonical, canonical)}.{access}"

    # --- account info --------------------------------------------------------------------------------
    def account_details(self, request: Request) -> Response:
        return json_response(
            200,
            {
                "portalId": self.config.hubspot_portal_id,
                "accountType": "STANDARD",
                "timeZone": "Etc/UTC",
                "companyCurrency": "USD",
                "additionalCurrencies": [],
                "utcOffset": "+00:00",
                "utcOffsetMilliseconds": 0,
                "uiDomain": "app.hubspot.com",
                "dataHostingLocation": "na1",
            },
        )

    def integrations_me(self, request: Request) -> Response:
        """The legacy v1 endpoint older SDKs still call to learn the portal id."""
        payload = {"timeZone": "Etc/UTC", "currency": "USD", "utcOffsetMilliseconds": 0, "utcOffset": "+00:00"}
        return json_response(200, {"portalId": self.config.hubspot_portal_id, **payload})

    # --- properties and groups -----------------------------------------------------------------------
    def list_properties(self, request: Request, object_type: str) -> Response:
        with self.store.lock:
            rows = self.store.conn.execute(
                "SELECT * FROM hs_properties WHERE object_type = ? ORDER BY name", (object_type,)
            ).fetchall()
        return json_response(200, {"results": [_property_json(r) for r in rows]})

    def get_property(self, request: Request, object_type: str) -> Response:
        with self.store.lock:
            row = self.store.conn.execute(
                "SELECT * FROM hs_properties WHERE object_type = ? AND name = ?",
                (object_type, request.params["name"]),
            ).fetchone()
        if row is None:
            return hubspot_error(404, f"Unable to find property {request.params['name']}", "OBJECT_NOT_FOUND")
        return json_response(200, _property_json(row))

    def create_property(self, request: Request, object_type: str) -> Response:
        body = _json_object(request)
        _require_types(
            body,
            {"name": str, "label": str, "type": str, "fieldType": str, "groupName": str, "description": str},
            {"hasUniqueValue": bool, "options": list, "displayOrder": int},
        )
        missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
        if missing:
            return hubspot_error(400, f"Missing required fields: {missing}", "VALIDATION_ERROR")
        name, typ, field_type = body["name"], body["type"], body["fieldType"]
        if not _PROPERTY_NAME.match(name):
            return hubspot_error(
                400, f"Invalid property name {name!r}: lower-case letters, digits, _", "VALIDATION_ERROR"
            )
        if typ not in VALID_FIELD_TYPES:
            return hubspot_error(400, f"Invalid property type {typ!r}", "VALIDATION_ERROR")
        if field_type not in VALID_FIELD_TYPES[typ]:
            return hubspot_error(400, f"fieldType {field_type!r} is not valid for type {typ!r}", "VALIDATION_ERROR")
        options = body.get("options") or []
        if not all(isinstance(o, dict) and isinstance(o.get("value"), str) for o in options):
            return hubspot_error(400, "options: each option needs a string 'value'", "VALIDATION_ERROR")
        unique = bool(body.get("hasUniqueValue", False))
        with self.store.transaction() as conn:
            if conn.execute(
                "SELECT 1 FROM hs_properties WHERE object_type = ? AND name = ?", (object_type, name)
            ).fetchone():
                return hubspot_error(409, f"A property named '{name}' already exists.", "OBJECT_ALREADY_EXISTS")
            if not conn.execute(
                "SELECT 1 FROM hs_property_groups WHERE object_type = ? AND name = ?",
                (object_type, body["groupName"]),
            ).fetchone():
                return hubspot_error(400, f"Property group {body['groupName']} does not exist", "VALIDATION_ERROR")
            if unique:
                count = conn.execute(
                    "SELECT count(*) FROM hs_properties WHERE object_type = ? AND has_unique_value = 1"
                    " AND hubspot_defined = 0",
                    (object_type,),
                ).fetchone()[0]
                if count >= self.config.hubspot_max_unique_properties:
                    return hubspot_error(400, "Too many unique properties on this object", "VALIDATION_ERROR")
            conn.execute(
                "INSERT INTO hs_properties VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?)",
                (
                    object_type,
                    name,
                    body["label"],
                    typ,
                    field_type,
                    body["groupName"],
                    body.get("description", ""),
                    int(unique),
                    json.dumps(options),
                    now_iso(),
                ),
            )
            row = conn.execute(
                "SELECT * FROM hs_properties WHERE object_type = ? AND name = ?", (object_type, name)
            ).fetchone()
        return json_response(201, _property_json(row))

    def list_groups(self, request: Request, object_type: str) -> Response:
        with self.store.lock:
            rows = self.store.conn.execute(
                "SELECT * FROM hs_property_groups WHERE object_type = ? ORDER BY name", (object_type,)
            ).fetchall()
        results = [
            {"name": r["name"], "label": r["label"], "displayOrder": r["display_order"], "archived": False}
            for r in rows
        ]
        return json_response(200, {"results": results})

    def create_group(self, request: Request, object_type: str) -> Response:
        body = _json_object(request)
        _require_types(body, {"name": str, "label": str}, {"displayOrder": int})
        if not body.get("name") or not body.get("label"):
            return hubspot_error(400, "Missing required fields: name, label", "VALIDATION_ERROR")
        display_order = body.get("displayOrder", -1)
        with self.store.transaction() as conn:
            if conn.execute(
                "SELECT 1 FROM hs_property_groups WHERE object_type = ? AND name = ?",
                (object_type, body["name"]),
            ).fetchone():
                return hubspot_error(409, f"Group {body['name']} already exists", "OBJECT_ALREADY_EXISTS")
            conn.execute(
                "INSERT INTO hs_property_groups VALUES (?, ?, ?, ?)",
                (object_type, body["name"], body["label"], display_order),
            )
        payload = {"name": body["name"], "label": body["label"], "displayOrder": display_order}
        return json_response(201, {**payload, "archived": False})

    # --- batch writes --------------------------------------------------------------------------------
    def batch_create(self, request: Request, object_type: str) -> Response:
        return self._batch_write(request, object_type, "create")

    def batch_upsert(self, request: Request, object_type: str) -> Response:
        return self._batch_write(request, object_type, "upsert")

    def batch_update(self, request: Request, object_type: str) -> Response:
        return self._batch_write(request, object_type, "update")

    def _batch_write(self, request: Request, object_type: str, mode: str) -> Response:
        return self._write_inputs(_parse_inputs(_json_object(request), mode), object_type, mode)

    def create_one(self, request: Request, object_type: str) -> Response:
        """``POST /crm/v3/objects/{type}``: one record (with its associations); 201 and the record."""
        body = _json_object(request)
        unknown = sorted(set(body) - {"properties", "associations", "objectWriteTraceId"})
        if unknown:
            raise Refusal(_invalid_input(f"unknown field {unknown[0]!r}"))
        response = self._write_inputs(_parse_inputs({"inputs": [body]}, "create"), object_type, "create")
        if response.status == 207:  # the one record failed: a plain error for a single create
            error = json.loads(response.body)["errors"][0]
            return hubspot_error(400, error["message"], error["category"], errors=error.get("errors", []))
        if response.status != 200:
            return response
        result = json.loads(response.body)["results"][0]
        return json_response(201, result)

    def get_one(self, request: Request, object_type: str) -> Response:
        """``GET /crm/v3/objects/{type}/{id}``: ``properties`` and ``associations`` as comma-separated lists."""
        number = normalize_hubspot_id(request.params["id"])
        wanted = [p for p in (request.query.get("properties") or [""])[0].split(",") if p]
        linked = [OBJECT_TYPES.get(t, t) for t in (request.query.get("associations") or [""])[0].split(",") if t]
        with self.store.lock:
            row = None
            if number is not None:
                row = self.store.conn.execute(
                    "SELECT * FROM hs_objects WHERE object_type = ? AND id = ? AND archived = 0",
                    (object_type, int(number)),
                ).fetchone()
            if row is None:
                return hubspot_error(404, "Object not found. objectId are usually numeric.", "OBJECT_NOT_FOUND")
            result = _object_json(row, wanted)
            if linked:
                result["associations"] = self._associations_json(self.store.conn, object_type, row["id"], linked)
        return json_response(200, result)

    def search(self, request: Request, object_type: str) -> Response:
        """``POST /crm/v3/objects/{type}/search`` (see :mod:`activation.sandbox.hubspot_search`)."""
        if not self._search_limit.allow(request.bearer_token() or "", self.config.hubspot_search_per_second):
            return search_rate_limited()
        body = _json_object(request)
        with self.store.lock:
            properties = _load_properties(self.store.conn, object_type)
            query = parse_search(body, set(properties))
            rows = self.store.conn.execute(
                "SELECT * FROM hs_objects WHERE object_type = ? AND archived = 0 ORDER BY id", (object_type,)
            ).fetchall()
        lag = self.config.hubspot_search_lag_seconds
        found = []
        for row in rows:
            stored = {**json.loads(row["properties"]), "hs_object_id": str(row["id"])}
            if visible(row["created_at"], lag) and query.matches(stored):
                found.append(row)
        page = found[query.after : query.after + query.limit]
        wanted = list(query.properties) or _DEFAULT_SEARCH_PROPERTIES.get(object_type, [])
        payload: dict[str, Any] = {"total": len(found), "results": [_object_json(r, wanted) for r in page]}
        if query.after + query.limit < len(found):
            payload["paging"] = {"next": {"after": str(query.after + query.limit)}}
        return json_response(200, payload)

    def _associations_json(
        self, conn: sqlite3.Connection, object_type: str, object_id: int, linked: list[str]
    ) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for to_type in linked:
            rows = conn.execute(
                "SELECT to_id, type_id FROM hs_associations WHERE from_type = ? AND from_id = ? AND to_type = ?"
                " ORDER BY to_id",
                (object_type, object_id, to_type),
            ).fetchall()
            if rows:
                label = f"{SINGULAR.get(object_type, object_type).lower()}_to_{SINGULAR.get(to_type, to_type).lower()}"
                found[to_type] = {"results": [{"id": str(r[0]), "type": label} for r in rows]}
        return found

    def _write_inputs(self, inputs: list[BatchInput], object_type: str, mode: str) -> Response:
        faults = self.config.faults
        keys = [item.key or item.trace or str(n) for n, item in enumerate(inputs)]
        request_key = json.dumps(keys)
        if any(k in faults.conflict_keys for k in keys) or self.dice.hit("conflict", request_key, faults.p_conflict):
            culprit = next((k for k in keys if k in faults.conflict_keys), keys[0])
            return hubspot_error(409, f"{SINGULAR[object_type]} already exists. Existing ID: {culprit}", "CONFLICT")
        if self.dice.hit("empty_2xx", request_key, faults.p_empty_2xx):
            # The trap seen in the wild: a 2xx that confirms nothing. Nothing was written.
            return json_response(200, {"status": "COMPLETE", "results": [], "errors": [], **_timestamps()})

        with self.store.transaction() as conn:
            properties = _load_properties(conn, object_type)
            owner_values = {i.properties[OWNER_PROPERTY] for i in inputs if i.properties.get(OWNER_PROPERTY)}
            owners = self.owners.active_among(conn, owner_values)
            problem = _check_batch(inputs, properties, object_type, mode, owners) or _association_problem(
                conn, object_type, inputs
            )
            if problem:
                return problem
            inputs = [_canonical_input(item) for item in inputs]
            targets = self._resolve(conn, object_type, [i.key for i in inputs], inputs[0].id_property, mode)
            conflict = _unique_conflict(conn, object_type, inputs, properties, targets)
            if conflict:
                return hubspot_error(409, conflict, "CONFLICT")
            errors, accepted = [], []
            for item, key, target in zip(inputs, keys, targets, strict=True):
                if mode == "update" and target is None:
                    message = f"Object {item.key} not found. objectId are usually numeric."
                    errors.append(_record_error("OBJECT_NOT_FOUND", message, item, []))
                elif key in faults.reject_keys or self.dice.hit("record_error", key, faults.p_record_error):
                    injected = [{"message": "Injected record failure (sandbox fault)", "code": "INJECTED"}]
                    errors.append(_record_error("VALIDATION_ERROR", "Property values were not valid", item, injected))
                else:
                    accepted.append((item, target))
            results = self._write(conn, object_type, accepted, mode, properties)
            conn.executemany(
                "INSERT OR IGNORE INTO hs_associations VALUES (?, ?, ?, ?, ?)",
                [
                    (object_type, int(result["id"]), ASSOCIATION_TYPES[type_id][1], int(to_id), type_id)
                    for (item, _), result in zip(accepted, results, strict=True)
                    for to_id, type_id in item.associations
                ],
            )
        payload: dict[str, Any] = {"status": "COMPLETE", "results": results, **_timestamps()}
        if errors:
            payload.update(numErrors=len(errors), errors=errors)
            return json_response(207, payload)
        return json_response(200, payload)

    def _resolve(
        self, conn: sqlite3.Connection, object_type: str, ids: list[str], id_property: str | None, mode: str
    ) -> list[int | None]:
        """The HubSpot id each input addresses (``None``: not found / to be created)."""
        if mode == "create":
            return [None] * len(ids)
        if id_property is None:  # by HubSpot record id
            wanted = [normalize_hubspot_id(i) for i in ids]
            sql = "SELECT id FROM hs_objects WHERE object_type = ? AND archived = 0 AND id IN ({})"
            found = {r[0] for r in select_in(conn, sql, (object_type,), [int(w) for w in wanted if w])}
            return [int(w) if w and int(w) in found else None for w in wanted]
        rows = select_in(
            conn,
            "SELECT value, object_id FROM hs_unique_values WHERE object_type = ? AND property = ? AND value IN ({})",
            (object_type, id_property),
            ids,
        )
        owners = {r[0]: r[1] for r in rows}
        return [owners.get(i) for i in ids]

    def _write(
        self,
        conn: sqlite3.Connection,
        object_type: str,
        accepted: list[tuple[BatchInput, int | None]],
        mode: str,
        properties: dict[str, sqlite3.Row],
    ) -> list[dict[str, Any]]:
        """Apply accepted inputs with a handful of executemany statements (fast enough for 100k records)."""
        stamp = now_iso()
        existing_ids = [t for _, t in accepted if t is not None]
        stored = {
            r[0]: (json.loads(r[1]), r[2])
            for r in select_in(
                conn,
                "SELECT id, properties, created_at FROM hs_objects WHERE object_type = ? AND id IN ({})",
                (object_type,),
                existing_ids,
            )
        }
        rows, unique_rows, results = [], [], []
        for item, target in accepted:
            values = dict(item.properties)
            if item.id_property is not None:
                values[item.id_property] = item.key
            if target is None:
                object_id, self._next_id = self._next_id, self._next_id + 1
                current, created_at, created = {}, stamp, True
            else:
                object_id, created = target, False
                current, created_at = stored[target]
            for name, value in values.items():
                if value == "":
                    current.pop(name, None)  # an empty string clears a property
                else:
                    current[name] = value
            rows.append((object_id, object_type, json.dumps(current, sort_keys=True), created_at, stamp))
            unique_rows += [(object_type, n, values[n], object_id) for n in values if properties[n]["has_unique_value"]]
            result: dict[str, Any] = {
                "id": str(object_id),
                "properties": {**values, "hs_object_id": str(object_id), "lastmodifieddate": stamp},
                "createdAt": created_at,
                "updatedAt": stamp,
                "archived": False,
            }
            if mode == "upsert":
                result["new"] = created
            if item.trace:
                result["objectWriteTraceId"] = item.trace
            results.append(result)
        conn.executemany(
            "INSERT OR REPLACE INTO hs_objects (id, object_type, properties, created_at, updated_at, archived)"
            " VALUES (?, ?, ?, ?, ?, 0)",
            rows,
        )
        _replace_unique_values(conn, unique_rows)
        return results

    # --- batch read ----------------------------------------------------------------------------------
    def batch_read(self, request: Request, object_type: str) -> Response:
        body = _json_object(request)
        _require_types(body, {"idProperty": str}, {"properties": list, "archived": bool})
        inputs = _batch_list(body)
        if not all(isinstance(i.get("id"), str) and i["id"] for i in inputs):
            raise Refusal(_invalid_input("every input needs a non-empty string 'id'"))
        id_property = body.get("idProperty")
        wanted_props = body.get("properties") or []
        if not all(isinstance(p, str) for p in wanted_props):
            return hubspot_error(400, "properties must be a list of names", "VALIDATION_ERROR")
        ids = [str(i["id"]) for i in inputs]
        lookup = [canonical_value(id_property, i) if id_property else i for i in ids]
        with self.store.lock:
            properties = _load_properties(self.store.conn, object_type)
            if id_property is not None and not _is_unique(properties, id_property):
                return _non_unique(object_type, id_property)
            targets = self._resolve(self.store.conn, object_type, lookup, id_property, "read")
            rows = {
                r["id"]: r
                for r in select_in(
                    self.store.conn,
                    "SELECT * FROM hs_objects WHERE object_type = ? AND id IN ({})",
                    (object_type,),
                    [t for t in targets if t is not None],
                )
            }
        results, missing = [], []
        for key, target in zip(ids, targets, strict=True):
            if target is None:
                missing.append(key)
                continue
            results.append(_object_json(rows[target], wanted_props))
        payload: dict[str, Any] = {"status": "COMPLETE", "results": results, **_timestamps()}
        if missing:
            error = {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": "Could not get some objects, they may be deleted or not exist.",
                "context": {"ids": missing},
            }
            payload.update(numErrors=1, errors=[error])
            return json_response(207, payload)
        return json_response(200, payload)

    # --- seeding and admin ---------------------------------------------------------------------------
    def seed(self, object_type: str, records: list[dict[str, Any]]) -> int:
        """Insert the records whose id is not held yet (never touches existing ones); returns how many.

        This is the CRM's own data (the sandbox starts as a copy of it), so values are stored as given
        apart from the e-mail normalisation; a contact whose e-mail another contact already owns cannot
        exist in HubSpot and is skipped with a warning. Raises ValueError on malformed records.
        """
        kind = _object_type(object_type)
        parsed = _parse_seed_records(records)
        with self.store.transaction() as conn:
            properties = _load_properties(conn, kind)
            unknown = sorted({n for _, values in parsed for n in values if n not in properties})
            if unknown:
                raise ValueError(f"unknown {kind} properties: {unknown}")
            held = {
                r[0]
                for r in select_in(
                    conn,
                    "SELECT id FROM hs_objects WHERE object_type = ? AND id IN ({})",
                    (kind,),
                    [i for i, _ in parsed],
                )
            }
            fresh = [(i, values) for i, values in parsed if i not in held]
            unique_names = {n for n, p in properties.items() if p["has_unique_value"]}
            accepted, unique_rows, skipped = _claim_unique_values(conn, kind, fresh, unique_names)
            stamp = now_iso()
            conn.executemany(
                "INSERT INTO hs_objects (id, object_type, properties, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                [(i, kind, json.dumps(values, sort_keys=True), stamp, stamp) for i, values in accepted],
            )
            conn.executemany("INSERT INTO hs_unique_values VALUES (?, ?, ?, ?)", unique_rows)
            if accepted:
                self._next_id = max(self._next_id, max(i for i, _ in accepted) + 1)
        if skipped:
            log.warning("seeding HubSpot %s: skipped %d records whose unique values another record owns", kind, skipped)
        return len(accepted)

    def archive(self, object_type: str, object_id: str) -> bool:
        """Delete a record as the CRM would (it answers not found afterwards); False when there is none."""
        kind, number = _object_type(object_type), normalize_hubspot_id(object_id)
        if number is None:
            return False
        with self.store.transaction() as conn:
            changed = conn.execute(
                "UPDATE hs_objects SET archived = 1 WHERE object_type = ? AND id = ? AND archived = 0",
                (kind, int(number)),
            ).rowcount
            conn.execute("DELETE FROM hs_unique_values WHERE object_type = ? AND object_id = ?", (kind, int(number)))
        return changed > 0

    def count(self, object_type: str) -> int:
        with self.store.lock:
            sql = "SELECT count(*) FROM hs_objects WHERE object_type = ? AND archived = 0"
            return int(self.store.conn.execute(sql, (object_type,)).fetchone()[0])

    def dump_objects(self, object_type: str) -> list[dict[str, Any]]:
        kind = _object_type(object_type)
        with self.store.lock:
            rows = self.store.conn.execute(
                "SELECT id, properties, created_at, updated_at FROM hs_objects WHERE object_type = ? AND archived = 0"
                " ORDER BY id",
                (kind,),
            ).fetchall()
        return [{"id": str(r[0]), "properties": json.loads(r[1]), "createdAt": r[2], "updatedAt": r[3]} for r in rows]


# --- helpers (module level: they hold no state) -------------------------------------------------------
def _timestamps() -> dict[str, str]:
    stamp = now_iso()
    return {"requestedAt": stamp, "startedAt": stamp, "completedAt": stamp}


def _object_type(name: str) -> str:
    if name not in OBJECT_TYPES:
        raise ValueError(f"unknown HubSpot object type {name!r} (known: contacts, companies, tasks)")
    return OBJECT_TYPES[name]


# What a search answers with when no properties are asked for.
_DEFAULT_SEARCH_PROPERTIES = {
    "contacts": ["createdate", "email", "firstname", "lastmodifieddate", "lastname"],
    "companies": ["createdate", "domain", "name", "lastmodifieddate"],
    "tasks": ["hs_createdate", "hs_lastmodifieddate", "hs_task_subject", "hs_timestamp"],
}


def _resolving_object_type(handler: Callable[[Request, str], Response]) -> Callable[[Request], Response]:
    """Wrap a handler: resolve ``{object_type}`` (400 when unknown) before calling it."""

    def handle(request: Request) -> Response:
        object_type = OBJECT_TYPES.get(request.params["object_type"])
        if object_type is None:
            message = f"Unable to infer object type from: {request.params['object_type']}"
            return hubspot_error(400, message, "VALIDATION_ERROR")
        return handler(request, object_type)

    return handle


def _invalid_input(detail: str) -> Response:
    return hubspot_error(400, f"Invalid input JSON: {detail}", "VALIDATION_ERROR")


def _json_object(request: Request) -> dict[str, Any]:
    return json_object(request, _invalid_input)


def _require_types(body: dict[str, Any], required: dict[str, type], optional: dict[str, type]) -> None:
    """400 when a present field has the wrong JSON type (``true`` is not an int, as Jackson would say)."""
    for name, typ in {**required, **optional}.items():
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise Refusal(_invalid_input(f"{name!r} must be a {typ.__name__}, got {type(value).__name__}"))


def _batch_list(body: dict[str, Any]) -> list[dict[str, Any]]:
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, dict) for i in inputs):
        raise Refusal(_invalid_input("'inputs' must be a non-empty list of objects"))
    if len(inputs) > MAX_BATCH_INPUTS:
        message = f"Batch input too large: {len(inputs)} inputs, at most {MAX_BATCH_INPUTS}"
        raise Refusal(hubspot_error(400, message, "VALIDATION_ERROR"))
    return inputs


def _parse_inputs(body: dict[str, Any], mode: str) -> list[BatchInput]:
    """The inputs of a batch write, with every JSON type checked (a wrong type is a whole-batch 400)."""
    parsed = []
    for item in _batch_list(body):
        key, id_property, props, trace = (item.get(k) for k in ("id", "idProperty", "properties", "objectWriteTraceId"))
        if mode != "create" and (not isinstance(key, str) or not key):
            raise Refusal(_invalid_input("every input needs a non-empty string 'id'"))
        if mode == "create" and (key is not None or id_property is not None):
            raise Refusal(_invalid_input("batch/create inputs take no 'id' or 'idProperty'"))
        if id_property is not None and not isinstance(id_property, str):
            raise Refusal(_invalid_input("'idProperty' must be a string"))
        if not isinstance(props, dict):
            raise Refusal(_invalid_input("'properties' must be an object"))
        for name, value in props.items():
            if not isinstance(value, str):
                raise Refusal(_invalid_input(f"property {name!r} must be a string, got {type(value).__name__}"))
        if trace is not None and not isinstance(trace, str):
            raise Refusal(_invalid_input("objectWriteTraceId must be a string"))
        associations = _parse_associations(item.get("associations"), mode)
        parsed.append(BatchInput(key or "", props, trace, id_property, associations))
    return parsed


def _parse_associations(raw: Any, mode: str) -> tuple[tuple[str, int], ...]:
    """``[{"to": {"id"}, "types": [{"associationCategory", "associationTypeId"}]}]`` (create only)."""
    if raw is None:
        return ()
    if mode != "create":
        raise Refusal(_invalid_input("associations are only accepted when creating records"))
    if not isinstance(raw, list):
        raise Refusal(_invalid_input("'associations' must be a list"))
    found = []
    for entry in raw:
        target = entry.get("to") if isinstance(entry, dict) else None
        types = entry.get("types") if isinstance(entry, dict) else None
        if (
            not isinstance(target, dict)
            or not isinstance(target.get("id"), str | int)
            or isinstance(target.get("id"), bool)
        ):
            raise Refusal(_invalid_input("each association needs 'to': {'id': ...}"))
        if not isinstance(types, list) or not types:
            raise Refusal(_invalid_input("each association needs a non-empty 'types' list"))
        for kind in types:
            category = kind.get("associationCategory") if isinstance(kind, dict) else None
            type_id = kind.get("associationTypeId") if isinstance(kind, dict) else None
            if not isinstance(type_id, int) or isinstance(type_id, bool) or not isinstance(category, str):
                raise Refusal(_invalid_input("association types need 'associationCategory' and an integer "
                                             "'associationTypeId'"))  # fmt: skip
            if category != "HUBSPOT_DEFINED" or type_id not in ASSOCIATION_TYPES:
                known = sorted(ASSOCIATION_TYPES)
                message = f"Invalid association type {category}/{type_id} (the sandbox knows {known})"
                raise Refusal(hubspot_error(400, message, "VALIDATION_ERROR"))
            found.append((str(target["id"]).strip(), type_id))
    return tuple(found)


def _association_problem(conn: sqlite3.Connection, object_type: str, inputs: list[BatchInput]) -> Response | None:
    """Every association must fit the object type and point at a record that exists, else the batch fails."""
    wanted: dict[str, set[int]] = {}
    problems = []
    for item in inputs:
        for to_id, type_id in item.associations:
            from_type, to_type = ASSOCIATION_TYPES[type_id]
            number = normalize_hubspot_id(to_id)
            if from_type != object_type:
                return hubspot_error(
                    400, f"association type {type_id} links {from_type} to {to_type}, not {object_type}",
                    "VALIDATION_ERROR",
                )  # fmt: skip
            if number is None:
                problems.append((to_type, to_id))
            else:
                wanted.setdefault(to_type, set()).add(int(number))
    for to_type, numbers in wanted.items():
        sql = "SELECT id FROM hs_objects WHERE object_type = ? AND archived = 0 AND id IN ({})"
        held = {r[0] for r in select_in(conn, sql, (to_type,), sorted(numbers))}
        problems += [(to_type, str(n)) for n in sorted(numbers - held)]
    if not problems:
        return None
    listed = ", ".join(f"{SINGULAR.get(t, t).lower()} {i}" for t, i in problems[:10])
    message = f"One or more associations are invalid: {listed} not found"
    errors = [
        {"message": f"{SINGULAR.get(t, t)} {i} does not exist", "code": "INVALID_ASSOCIATION"} for t, i in problems
    ]
    return hubspot_error(400, message, "VALIDATION_ERROR", errors=errors)


def _options_json(values: list[str]) -> str:
    options = [{"label": v.replace("_", " ").title(), "value": v, "displayOrder": n} for n, v in enumerate(values)]
    return json.dumps(options)


def _load_properties(conn: sqlite3.Connection, object_type: str) -> dict[str, sqlite3.Row]:
    rows = conn.execute("SELECT * FROM hs_properties WHERE object_type = ?", (object_type,)).fetchall()
    return {r["name"]: r for r in rows}


def _is_unique(properties: dict[str, sqlite3.Row], name: str) -> bool:
    return name in properties and bool(properties[name]["has_unique_value"])


def _non_unique(object_type: str, name: str) -> Response:
    return hubspot_error(
        400,
        f"Unable to perform update/upsert by non-unique {TYPE_IDS[object_type]} property {name}",
        "VALIDATION_ERROR",
    )


def _check_batch(
    inputs: list[BatchInput], properties: dict[str, sqlite3.Row], object_type: str, mode: str, owners: set[str]
) -> Response | None:
    """Whole-batch problems: the idProperty, then every property problem at once, then duplicate ids."""
    id_properties = {i.id_property for i in inputs}
    if len(id_properties) > 1:
        return hubspot_error(400, "All inputs of a batch must use the same idProperty", "VALIDATION_ERROR")
    id_property = id_properties.pop()
    if mode == "upsert" and not id_property:
        return hubspot_error(400, "Upsert inputs need an 'idProperty'", "VALIDATION_ERROR")
    if id_property is not None and not _is_unique(properties, id_property):
        return _non_unique(object_type, id_property)
    problems = _property_problems(inputs, properties, id_property if mode == "upsert" else None, owners)
    if mode == "create":
        for name in REQUIRED_ON_CREATE.get(object_type, ()):
            if any(not item.properties.get(name) for item in inputs):
                problems.append(("REQUIRED_FIELD", name, f"{name} is required to create a {object_type[:-1]}"))
    if problems:
        return _invalid_values(problems)
    ids = [canonical_value(id_property, i.key) if id_property else normalize_hubspot_id(i.key) or i.key for i in inputs]
    ids = [i for i in ids if i]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        return hubspot_error(400, f"Duplicate IDs found in batch input: {duplicates}", "VALIDATION_ERROR")
    return None


def _property_problems(
    inputs: list[BatchInput],
    properties: dict[str, sqlite3.Row],
    written_id_property: str | None,
    owners: set[str] = frozenset(),  # type: ignore[assignment]
) -> list[tuple[str, str, str]]:
    """``(code, property, message)`` for every unknown, read-only or invalid value in the batch, in order.

    With upsert the id is written into ``idProperty`` too, so it is checked like a value (an upsert by a
    malformed e-mail is INVALID_EMAIL).
    """
    problems: list[tuple[str, str, str]] = []
    for item in inputs:
        values = dict(item.properties)
        if written_id_property:
            values[written_id_property] = item.key
        for name, value in values.items():
            prop = properties.get(name)
            if prop is None:
                problems.append(("PROPERTY_DOESNT_EXIST", name, f'Property "{name}" does not exist'))
            elif prop["read_only"]:
                problems.append(("READ_ONLY_VALUE", name, f"{name} is a read only property; its value cannot be set."))
            elif name == OWNER_PROPERTY:  # its options are the active owners
                if value and value not in owners:
                    problems.append(("INVALID_OWNER_ID", name, f"{value} is not a valid owner id"))
            else:
                found = value_problem(prop, canonical_value(name, value))
                if found:
                    problems.append((found[0], name, found[1]))
    return list(dict.fromkeys(problems))


def _invalid_values(problems: list[tuple[str, str, str]]) -> Response:
    """HubSpot's whole-batch 400: the JSON list inside ``message``, and the same facts in ``errors``."""
    listed = [{"isValid": False, "message": m, "error": code, "name": name} for code, name, m in problems]
    return hubspot_error(
        400,
        "Property values were not valid: " + json.dumps(listed, separators=(",", ":")),
        "VALIDATION_ERROR",
        errors=[{"message": m, "code": code, "context": {"propertyName": [name]}} for code, name, m in problems],
    )


def _canonical_input(item: BatchInput) -> BatchInput:
    """The input with e-mails as HubSpot stores them (trimmed, lower case), in the properties and the id."""
    key = canonical_value(item.id_property, item.key) if item.id_property else item.key
    props = {name: canonical_value(name, value) for name, value in item.properties.items()}
    associations = tuple((normalize_hubspot_id(to) or to, type_id) for to, type_id in item.associations)
    return BatchInput(key, props, item.trace, item.id_property, associations)


def _unique_conflict(
    conn: sqlite3.Connection,
    object_type: str,
    inputs: list[BatchInput],
    properties: dict[str, sqlite3.Row],
    targets: list[int | None],
) -> str | None:
    """A unique value (other than the id) already owned by another record: HubSpot fails the batch (409)."""
    claimed: dict[tuple[str, str], int] = {}
    for index, item in enumerate(inputs):
        for name, value in item.properties.items():
            if name == item.id_property or not value or not properties[name]["has_unique_value"]:
                continue
            if (name, value) in claimed:
                return f"{SINGULAR[object_type]} already exists: two inputs set {name}={value}"
            claimed[(name, value)] = index
            owner = conn.execute(
                "SELECT object_id FROM hs_unique_values WHERE object_type = ? AND property = ? AND value = ?",
                (object_type, name, value),
            ).fetchone()
            if owner is not None and owner[0] != targets[index]:
                return f"{SINGULAR[object_type]} already exists. Existing ID: {owner[0]}"
    return None


def _replace_unique_values(conn: sqlite3.Connection, unique_rows: list[tuple[str, str, str, int]]) -> None:
    conn.executemany(
        "DELETE FROM hs_unique_values WHERE object_type = ? AND property = ? AND object_id = ?",
        [(t, n, o) for t, n, _, o in unique_rows],
    )
    conn.executemany("INSERT OR REPLACE INTO hs_unique_values VALUES (?, ?, ?, ?)", [r for r in unique_rows if r[2]])


def _parse_seed_records(records: Any) -> list[tuple[int, dict[str, str]]]:
    """``(id, properties)`` per record, first of each id; ValueError naming the first malformed record."""
    if not isinstance(records, list):
        raise ValueError("records must be a list")
    parsed: dict[int, dict[str, str]] = {}
    for index, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("properties", {}), dict):
            raise ValueError(f"record {index}: an object with 'id' and 'properties' is expected")
        number = normalize_hubspot_id(record.get("id"))
        if number is None:
            raise ValueError(f"record {index}: {record.get('id')!r} is not a HubSpot record id")
        values = {}
        for name, value in record.get("properties", {}).items():
            if value is None:
                continue
            if not isinstance(value, str):
                raise ValueError(f"record {index}: property {name!r} must be a string")
            value = canonical_value(name, value)
            if value:
                values[name] = value
        parsed.setdefault(int(number), values)
    return list(parsed.items())


def _claim_unique_values(
    conn: sqlite3.Connection, object_type: str, records: list[tuple[int, dict[str, str]]], unique_names: set[str]
) -> tuple[list[tuple[int, dict[str, str]]], list[tuple[str, str, str, int]], int]:
    """Keep the records whose unique values nobody owns yet: (accepted, unique-value rows, skipped count)."""
    owned: set[tuple[str, str]] = set()
    for name in unique_names:
        values = [v[name] for _, v in records if name in v]
        sql = "SELECT value FROM hs_unique_values WHERE object_type = ? AND property = ? AND value IN ({})"
        owned |= {(name, r[0]) for r in select_in(conn, sql, (object_type, name), values)}
    accepted, rows, skipped = [], [], 0
    for record_id, values in records:
        claims = {(n, values[n]) for n in unique_names if n in values}
        if claims & owned:
            skipped += 1
            continue
        owned |= claims
        accepted.append((record_id, values))
        rows += [(object_type, n, v, record_id) for n, v in claims]
    return accepted, rows, skipped


def _record_error(category: str, message: str, item: BatchInput, errors: list[dict[str, str]]) -> dict[str, Any]:
    context: dict[str, list[str]] = {"ids": [item.key or item.trace or ""]}
    if item.trace:
        context["objectWriteTraceId"] = [item.trace]
    return {"status": "error", "category": category, "message": message, "context": context, "errors": errors}


def _object_json(row: sqlite3.Row, wanted: list[str]) -> dict[str, Any]:
    stored = json.loads(row["properties"])
    selected = {p: stored.get(p) for p in wanted} if wanted else stored
    selected["hs_object_id"] = str(row["id"])
    return {
        "id": str(row["id"]),
        "properties": selected,
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
        "archived": False,
    }


def _property_json(row: sqlite3.Row) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if row["name"] == OWNER_PROPERTY:  # a dropdown whose options are the owners (GET /crm/v3/owners)
        extra = {"externalOptions": True, "referencedObjectType": "OWNER"}
    return {
        **extra,
        "name": row["name"],
        "label": row["label"],
        "type": row["type"],
        "fieldType": row["field_type"],
        "groupName": row["group_name"],
        "description": row["description"] or "",
        "hasUniqueValue": bool(row["has_unique_value"]),
        "options": json.loads(row["options"] or "[]"),
        "hubspotDefined": bool(row["hubspot_defined"]),
        "modificationMetadata": {"readOnlyValue": bool(row["read_only"]), "archivable": True},
        "createdAt": row["created_at"],
        "archived": False,
    }
