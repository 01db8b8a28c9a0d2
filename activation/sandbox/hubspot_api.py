"""HubSpot CRM v3 as crm-api-contracts.md describes it: properties, groups, batch upsert/update/read.

Strict where the real API is strict, so client bugs surface here and not in a customer's portal: values
must be strings, at most 100 inputs, unknown properties are refused, ``idProperty`` must have unique values,
a value that another record already owns in a unique property fails the whole batch with 409, and single
records fail with 207 tied back by ``objectWriteTraceId``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sqlite3
import uuid
from collections.abc import Callable
from typing import Any

from activation.sandbox.config import SandboxConfig
from activation.sandbox.faults import FaultDice
from activation.sandbox.store import Store, select_in
from activation.sandbox.web import Request, Response, Router, json_response

MAX_BATCH_INPUTS = 100
OBJECT_TYPES = {"contacts": "contacts", "0-1": "contacts", "companies": "companies", "0-2": "companies"}
OBJECT_TYPE_IDS = {"contacts": "0-1", "companies": "0-2"}
SINGULAR = {"contacts": "Contact", "companies": "Company"}
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
    ],
    "companies": [
        ("name", "string", "text", False, False),
        ("domain", "string", "text", False, False),
        ("hs_object_id", "number", "number", False, True),
        ("createdate", "datetime", "date", False, True),
        ("lastmodifieddate", "datetime", "date", False, True),
    ],
}
BUILTIN_GROUPS = {"contacts": "contactinformation", "companies": "companyinformation"}


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def hubspot_error(status: int, message: str, category: str, **extra: Any) -> Response:
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category}
    body.update(extra)
    return json_response(status, body)


class HubSpotApi:
    def __init__(self, store: Store, config: SandboxConfig, dice_provider: Any) -> None:
        self.store = store
        self.config = config
        self._dice_provider = dice_provider  # callable returning the current FaultDice (reset with faults)
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
                    " VALUES (?, ?, ?, ?, ?, ?, '', ?, '[]', 1, ?, ?)",
                    [
                        (object_type, name, name, typ, field_type, group, int(unique), int(ro), now_iso())
                        for name, typ, field_type, unique, ro in props
                    ],
                )

    def register(self, router: Router) -> None:
        base = "/crm/v3"
        routes = [
            ("GET", "properties/{object_type}/groups", "hubspot.groups.list", self.list_groups),
            ("POST", "properties/{object_type}/groups", "hubspot.groups.create", self.create_group),
            ("GET", "properties/{object_type}", "hubspot.properties.list", self.list_properties),
            ("POST", "properties/{object_type}", "hubspot.properties.create", self.create_property),
            ("GET", "properties/{object_type}/{name}", "hubspot.properties.get", self.get_property),
            ("POST", "objects/{object_type}/batch/upsert", "hubspot.batch.upsert", self.batch_upsert),
            ("POST", "objects/{object_type}/batch/update", "hubspot.batch.update", self.batch_update),
            ("POST", "objects/{object_type}/batch/read", "hubspot.batch.read", self.batch_read),
        ]
        for method, path, name, handler in routes:
            router.add(method, f"{base}/{path}", name, _resolving_object_type(handler))

    # --- scopes --------------------------------------------------------------------------------------
    @staticmethod
    def required_scope(route: str, object_type: str) -> str:
        kind = "schemas" if route.startswith(("hubspot.groups", "hubspot.properties")) else "objects"
        access = "read" if route.endswith((".list", ".get", ".read")) else "write"
        return f"crm.{kind}.{OBJECT_TYPES.get(object_type, object_type)}.{access}"

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
        missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
        if missing:
            return hubspot_error(400, f"Missing required fields: {missing}", "VALIDATION_ERROR")
        name, typ, field_type = body["name"], body["type"], body["fieldType"]
        if typ not in VALID_FIELD_TYPES:
            return hubspot_error(400, f"Invalid property type {typ!r}", "VALIDATION_ERROR")
        if field_type not in VALID_FIELD_TYPES[typ]:
            return hubspot_error(400, f"fieldType {field_type!r} is not valid for type {typ!r}", "VALIDATION_ERROR")
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
                    json.dumps(body.get("options") or []),
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
        if not body.get("name") or not body.get("label"):
            return hubspot_error(400, "Missing required fields: name, label", "VALIDATION_ERROR")
        with self.store.transaction() as conn:
            if conn.execute(
                "SELECT 1 FROM hs_property_groups WHERE object_type = ? AND name = ?",
                (object_type, body["name"]),
            ).fetchone():
                return hubspot_error(409, f"Group {body['name']} already exists", "OBJECT_ALREADY_EXISTS")
            conn.execute(
                "INSERT INTO hs_property_groups VALUES (?, ?, ?, ?)",
                (object_type, body["name"], body["label"], int(body.get("displayOrder", -1))),
            )
        payload = {"name": body["name"], "label": body["label"], "displayOrder": body.get("displayOrder", -1)}
        return json_response(201, {**payload, "archived": False})

    # --- batch endpoints -----------------------------------------------------------------------------
    def batch_upsert(self, request: Request, object_type: str) -> Response:
        return self._batch_write(request, object_type, upsert=True)

    def batch_update(self, request: Request, object_type: str) -> Response:
        return self._batch_write(request, object_type, upsert=False)

    def _batch_write(self, request: Request, object_type: str, *, upsert: bool) -> Response:
        body = _json_object(request)
        inputs = _batch_inputs(body)
        faults = self.config.faults
        keys = [str(i.get("id")) for i in inputs]
        request_key = json.dumps(keys)
        if any(k in faults.conflict_keys for k in keys) or self.dice.hit("conflict", request_key, faults.p_conflict):
            culprit = next((k for k in keys if k in faults.conflict_keys), keys[0])
            return hubspot_error(409, f"{SINGULAR[object_type]} already exists. Existing ID: {culprit}", "CONFLICT")
        if self.dice.hit("empty_2xx", request_key, faults.p_empty_2xx):
            # The trap seen in the wild: a 2xx that confirms nothing. Nothing was written.
            return json_response(200, {"status": "COMPLETE", "results": [], "errors": [], **_timestamps()})

        with self.store.transaction() as conn:
            properties = _load_properties(conn, object_type)
            problem = _validate_inputs(inputs, properties, object_type, upsert=upsert)
            if problem:
                return problem
            id_property = inputs[0].get("idProperty")
            targets = self._resolve(conn, object_type, inputs, id_property)
            conflict = _unique_conflict(conn, object_type, inputs, properties, targets)
            if conflict:
                return hubspot_error(409, conflict, "CONFLICT")
            errors, accepted = [], []
            for item, target in zip(inputs, targets, strict=True):
                trace = item.get("objectWriteTraceId")
                record_errors = _value_errors(item["properties"], properties)
                key = str(item["id"])
                if key in faults.reject_keys or self.dice.hit("record_error", key, faults.p_record_error):
                    record_errors.append({"message": "Injected record failure (sandbox fault)", "code": "INJECTED"})
                if target is None and not upsert:
                    errors.append(_record_error("OBJECT_NOT_FOUND", f"Object {key} not found", trace, key, []))
                elif record_errors:
                    errors.append(
                        _record_error("VALIDATION_ERROR", "Property values were not valid", trace, key, record_errors)
                    )
                else:
                    accepted.append((item, target))
            results = self._write(conn, object_type, accepted, id_property, properties)
        payload: dict[str, Any] = {"status": "COMPLETE", "results": results, **_timestamps()}
        if errors:
            payload.update(numErrors=len(errors), errors=errors)
            return json_response(207, payload)
        return json_response(200, payload)

    def _resolve(
        self,
        conn: sqlite3.Connection,
        object_type: str,
        inputs: list[dict[str, Any]],
        id_property: str | None,
    ) -> list[int | None]:
        """The HubSpot id each input addresses (``None``: not found / to be created)."""
        ids = [str(i["id"]) for i in inputs]
        if id_property is None:  # batch/update by HubSpot id
            wanted = [int(i) for i in ids if i.isdigit()]
            found = {
                r[0]
                for r in select_in(
                    conn,
                    "SELECT id FROM hs_objects WHERE object_type = ? AND id IN ({})",
                    (object_type,),
                    wanted,
                )
            }
            return [int(i) if i.isdigit() and int(i) in found else None for i in ids]
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
        accepted: list[tuple[dict[str, Any], int | None]],
        id_property: str | None,
        properties: dict[str, sqlite3.Row],
    ) -> list[dict[str, Any]]:
        """Apply accepted inputs with a handful of executemany statements (fast enough for 100k records)."""
        stamp = now_iso()
        existing_ids = [t for _, t in accepted if t is not None]
        stored = {
            r[0]: (json.loads(r[1]), r[2])
            for r in select_in(
                conn, "SELECT id, properties, created_at FROM hs_objects WHERE id IN ({})", (), existing_ids
            )
        }
        rows, unique_rows, results = [], [], []
        for item, target in accepted:
            values = dict(item["properties"])
            if id_property is not None:
                values[id_property] = str(item["id"])
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
            if id_property is not None:
                result["new"] = created
            if item.get("objectWriteTraceId"):
                result["objectWriteTraceId"] = item["objectWriteTraceId"]
            results.append(result)
        conn.executemany("INSERT OR REPLACE INTO hs_objects VALUES (?, ?, ?, ?, ?)", rows)
        conn.executemany(
            "DELETE FROM hs_unique_values WHERE object_type = ? AND property = ? AND object_id = ?",
            [(t, n, o) for t, n, _, o in unique_rows],
        )
        conn.executemany(
            "INSERT OR REPLACE INTO hs_unique_values VALUES (?, ?, ?, ?)", [r for r in unique_rows if r[2]]
        )
        return results

    def batch_read(self, request: Request, object_type: str) -> Response:
        body = _json_object(request)
        inputs = _batch_inputs(body)
        id_property = body.get("idProperty")
        wanted_props = body.get("properties") or []
        if not isinstance(wanted_props, list):
            return hubspot_error(400, "properties must be a list of names", "VALIDATION_ERROR")
        with self.store.lock:
            properties = _load_properties(self.store.conn, object_type)
            if id_property is not None and not _is_unique(properties, id_property):
                return _non_unique(object_type, id_property)
            targets = self._resolve(self.store.conn, object_type, inputs, id_property)
            found_ids = [t for t in targets if t is not None]
            rows = {
                r["id"]: r
                for r in select_in(
                    self.store.conn,
                    "SELECT * FROM hs_objects WHERE object_type = ? AND id IN ({})",
                    (object_type,),
                    found_ids,
                )
            }
        results, missing = [], []
        for item, target in zip(inputs, targets, strict=True):
            if target is None:
                missing.append(str(item["id"]))
                continue
            row = rows[target]
            stored = json.loads(row["properties"])
            selected = {p: stored.get(p) for p in wanted_props} if wanted_props else stored
            selected["hs_object_id"] = str(target)
            results.append(
                {
                    "id": str(target),
                    "properties": selected,
                    "createdAt": row["created_at"],
                    "updatedAt": row["updated_at"],
                    "archived": False,
                }
            )
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

    # --- admin ---------------------------------------------------------------------------------------
    def dump_objects(self, object_type: str) -> list[dict[str, Any]]:
        object_type = OBJECT_TYPES.get(object_type, object_type)
        with self.store.lock:
            rows = self.store.conn.execute(
                "SELECT id, properties, created_at, updated_at FROM hs_objects WHERE object_type = ? ORDER BY id",
                (object_type,),
            ).fetchall()
        return [{"id": str(r[0]), "properties": json.loads(r[1]), "createdAt": r[2], "updatedAt": r[3]} for r in rows]


# --- helpers (module level: they hold no state) -------------------------------------------------------
def _timestamps() -> dict[str, str]:
    stamp = now_iso()
    return {"requestedAt": stamp, "startedAt": stamp, "completedAt": stamp}


class Refusal(Exception):
    """Raised by request parsing helpers to answer at once with ``response`` (an error)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _resolving_object_type(handler: Callable[[Request, str], Response]) -> Callable[[Request], Response]:
    """Wrap a handler: resolve ``{object_type}`` (400 when unknown) and turn a Refusal into its response."""

    def handle(request: Request) -> Response:
        object_type = OBJECT_TYPES.get(request.params["object_type"])
        if object_type is None:
            message = f"Unable to infer object type from: {request.params['object_type']}"
            return hubspot_error(400, message, "VALIDATION_ERROR")
        try:
            return handler(request, object_type)
        except Refusal as refusal:
            return refusal.response

    return handle


def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = request.json()
    except ValueError as exc:
        raise Refusal(hubspot_error(400, f"Invalid input JSON: {exc}", "VALIDATION_ERROR")) from None
    if not isinstance(body, dict):
        raise Refusal(hubspot_error(400, "Invalid input JSON: expected an object", "VALIDATION_ERROR"))
    return body


def _batch_inputs(body: dict[str, Any]) -> list[dict[str, Any]]:
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, dict) for i in inputs):
        message = "Invalid input JSON: 'inputs' must be a non-empty list of objects"
        raise Refusal(hubspot_error(400, message, "VALIDATION_ERROR"))
    if len(inputs) > MAX_BATCH_INPUTS:
        message = f"Batch input too large: {len(inputs)} inputs, at most {MAX_BATCH_INPUTS}"
        raise Refusal(hubspot_error(400, message, "VALIDATION_ERROR"))
    for item in inputs:
        if not isinstance(item.get("id"), str) or not item["id"]:
            message = "Invalid input JSON: every input needs a string 'id'"
            raise Refusal(hubspot_error(400, message, "VALIDATION_ERROR"))
    return inputs


def _load_properties(conn: sqlite3.Connection, object_type: str) -> dict[str, sqlite3.Row]:
    rows = conn.execute("SELECT * FROM hs_properties WHERE object_type = ?", (object_type,)).fetchall()
    return {r["name"]: r for r in rows}


def _is_unique(properties: dict[str, sqlite3.Row], name: str) -> bool:
    return name in properties and bool(properties[name]["has_unique_value"])


def _non_unique(object_type: str, name: str) -> Response:
    return hubspot_error(
        400,
        f"Unable to perform update/upsert by non-unique {OBJECT_TYPE_IDS[object_type]} property {name}",
        "VALIDATION_ERROR",
    )


def _validate_inputs(
    inputs: list[dict[str, Any]], properties: dict[str, sqlite3.Row], object_type: str, *, upsert: bool
) -> Response | None:
    """Whole-request problems: wrong shapes, unknown or read-only properties, non-strings, duplicate ids."""
    id_properties = {i.get("idProperty") for i in inputs}
    if len(id_properties) > 1:
        return hubspot_error(400, "All inputs of a batch must use the same idProperty", "VALIDATION_ERROR")
    id_property = id_properties.pop()
    if upsert and not id_property:
        return hubspot_error(400, "Upsert inputs need an 'idProperty'", "VALIDATION_ERROR")
    if id_property is not None and not _is_unique(properties, id_property):
        return _non_unique(object_type, id_property)
    unknown: set[str] = set()
    for item in inputs:
        props = item.get("properties")
        if not isinstance(props, dict):
            return hubspot_error(400, "Invalid input JSON: 'properties' must be an object", "VALIDATION_ERROR")
        for name, value in props.items():
            if not isinstance(value, str):
                return hubspot_error(
                    400,
                    f"Invalid input JSON: property {name!r} must be a string, got {type(value).__name__}",
                    "VALIDATION_ERROR",
                )
            if name not in properties:
                unknown.add(name)
            elif properties[name]["read_only"]:
                return hubspot_error(400, f"Property {name!r} is read-only", "VALIDATION_ERROR")
        trace = item.get("objectWriteTraceId")
        if trace is not None and not isinstance(trace, str):
            return hubspot_error(400, "objectWriteTraceId must be a string", "VALIDATION_ERROR")
    if unknown:
        errors = [
            {
                "message": f'Property "{n}" does not exist',
                "code": "PROPERTY_DOESNT_EXIST",
                "context": {"propertyName": [n]},
            }
            for n in sorted(unknown)
        ]
        return hubspot_error(
            400,
            f"Property values were not valid: {sorted(unknown)} do not exist",
            "VALIDATION_ERROR",
            errors=errors,
        )
    ids = [str(i["id"]) for i in inputs]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        return hubspot_error(400, f"Duplicate IDs found in batch input: {duplicates}", "VALIDATION_ERROR")
    return None


def _unique_conflict(
    conn: sqlite3.Connection,
    object_type: str,
    inputs: list[dict[str, Any]],
    properties: dict[str, sqlite3.Row],
    targets: list[int | None],
) -> str | None:
    """A unique value (other than the id) already owned by another record: HubSpot fails the batch (409)."""
    id_property = inputs[0].get("idProperty")
    claimed: dict[tuple[str, str], int] = {}
    for index, item in enumerate(inputs):
        for name, value in item["properties"].items():
            if name == id_property or not value or not properties[name]["has_unique_value"]:
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


def _value_errors(values: dict[str, str], properties: dict[str, sqlite3.Row]) -> list[dict[str, str]]:
    errors = []
    for name, value in values.items():
        if value == "":
            continue
        problem = _value_problem(properties[name], value)
        if problem:
            code, message = problem
            errors.append({"message": f"{value!r} is not valid for {name}: {message}", "code": code, "in": name})
    return errors


def _value_problem(prop: sqlite3.Row, value: str) -> tuple[str, str] | None:
    typ = prop["type"]
    if typ == "number":
        try:
            number = float(value)
        except ValueError:
            return "INVALID_DECIMAL", "not a number"
        if math.isnan(number) or math.isinf(number):
            return "INVALID_DECIMAL", "not a finite number"
    elif typ in {"date", "datetime"}:
        if not value.lstrip("-").isdigit():
            return "INVALID_DATE", "dates travel as epoch milliseconds"
        if typ == "date" and int(value) % 86_400_000 != 0:
            return "INVALID_DATE", "a date must be midnight UTC in epoch milliseconds"
    elif typ == "bool":
        if value not in {"true", "false"}:
            return "INVALID_BOOLEAN", "must be 'true' or 'false'"
    elif typ == "enumeration":
        allowed = {o.get("value") for o in json.loads(prop["options"] or "[]")}
        chosen = value.split(";") if prop["field_type"] == "checkbox" else [value]
        if not set(chosen) <= allowed:
            return "INVALID_OPTION", f"allowed options are {sorted(allowed)}"
    elif len(value) > 65_536:
        return "TOO_LONG", "strings hold at most 65536 characters"
    return None


def _record_error(
    category: str, message: str, trace: str | None, key: str, errors: list[dict[str, str]]
) -> dict[str, Any]:
    context: dict[str, list[str]] = {"ids": [key]}
    if trace:
        context["objectWriteTraceId"] = [trace]
    return {"status": "error", "category": category, "message": message, "context": context, "errors": errors}


def _property_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
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
