"""Salesforce REST as crm-api-contracts.md describes it: OAuth token and identity, describe, sObject
Collections upsert (by external id) and update (by record id), Bulk API 2.0 ingest, the daily request
allocation and expiring sessions.

Whole-request problems (malformed JSON, wrong JSON types, unknown fields, more than 200 records, more than
10 type chunks) are 400s with an error array and write nothing; per-record problems come back in the
result list, in input order, and ``allOrNone`` rolls the whole request back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from itertools import groupby
from typing import Any

from activation.sandbox.config import SandboxConfig
from activation.sandbox.faults import FaultDice
from activation.sandbox.salesforce_auth import SalesforceAuth
from activation.sandbox.salesforce_bulk import BulkIngest, check_external_id, sf_json_object
from activation.sandbox.salesforce_query import QueryCursors, parse_query, run_query
from activation.sandbox.salesforce_records import (
    PICKLISTS,
    RowResult,
    SalesforceRecords,
    expected_prefix,
    json_type_ok,
)
from activation.sandbox.shapes import sf_errors
from activation.sandbox.store import Store
from activation.sandbox.web import Refusal, Request, Response, Router, json_response

MAX_COLLECTION_RECORDS = 200
MAX_CHUNKS = 10
ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
    "fields": [],
}


class SalesforceApi:
    def __init__(self, store: Store, config: SandboxConfig, dice_provider: Callable[[], FaultDice]) -> None:
        self.store = store
        self.config = config
        self.auth = SalesforceAuth(config)
        self.records = SalesforceRecords(store, config, dice_provider)
        self.bulk = BulkIngest(store, self.records, config)
        self.cursors = QueryCursors()

    @property
    def base_url(self) -> str:
        return self.auth.base_url

    @base_url.setter
    def base_url(self, url: str) -> None:
        self.auth.base_url = url

    def register(self, router: Router) -> None:
        router.add("POST", "/services/oauth2/token", "salesforce.oauth.token", self.auth.token)
        router.add("GET", "/id/{org}/{user}", "salesforce.identity", self.auth.identity)
        data = "/services/data/v{version}"
        router.add("GET", f"{data}/sobjects/{{sobject}}/describe", "salesforce.describe", self.describe)
        router.add("PATCH", f"{data}/composite/sobjects", "salesforce.collections.update", self.collections_update)
        router.add("POST", f"{data}/composite/sobjects", "salesforce.collections.create", self.collections_create)
        router.add("GET", f"{data}/query", "salesforce.query", self.query)
        router.add("GET", f"{data}/query/{{id}}", "salesforce.query.more", self.query_more)
        router.add(
            "PATCH",
            f"{data}/composite/sobjects/{{sobject}}/{{field}}",
            "salesforce.collections.upsert",
            self.collections_upsert,
        )
        self.bulk.register(router, data)

    # --- describe ------------------------------------------------------------------------------------
    def describe(self, request: Request) -> Response:
        sobject = request.params["sobject"]
        with self.store.lock:
            fields = self.records.fields(self.store.conn, sobject)
        if not fields:
            return sf_errors(404, f"The requested resource does not exist: sObject type '{sobject}'", "NOT_FOUND")
        payload = {
            "name": sobject,
            "keyPrefix": expected_prefix(sobject),
            "custom": False,
            "createable": True,
            "updateable": True,
            "fields": [_describe_field(f, PICKLISTS.get((sobject, f["name"]))) for f in fields.values()],
        }
        return json_response(200, payload)

    # --- SOQL ----------------------------------------------------------------------------------------
    def query(self, request: Request) -> Response:
        """``GET .../query?q=SELECT ...`` for the subset in :mod:`activation.sandbox.salesforce_query`."""
        texts = request.query.get("q") or []
        if len(texts) != 1 or not texts[0].strip():
            return sf_errors(400, "A query string (q) is required", "MALFORMED_QUERY")
        query = parse_query(texts[0])
        with self.store.lock:
            sobject = self.records.sobject_named(self.store.conn, query.sobject)
            if sobject is None:
                message = f"sObject type '{query.sobject}' is not supported."
                return sf_errors(400, message, "INVALID_TYPE")
            fields = self.records.fields(self.store.conn, sobject)
            rows = run_query(fields, query, self.records.live(self.store.conn, sobject))
        version = request.params["version"]
        rows = [{"attributes": _attributes(sobject, row.get("Id"), version), **row} for row in rows]
        size = self.config.salesforce_query_batch_size
        return json_response(200, self.cursors.page(rows, size, version))

    def query_more(self, request: Request) -> Response:
        taken = self.cursors.take(request.params["id"])
        if taken is None:
            return sf_errors(400, "invalid query locator", "INVALID_QUERY_LOCATOR")
        rows, total = taken
        return json_response(200, self.cursors.page(rows, self.config.salesforce_query_batch_size,
                                                    request.params["version"], total))  # fmt: skip

    # --- sObject Collections -------------------------------------------------------------------------
    def collections_upsert(self, request: Request) -> Response:
        sobject, ext_field = request.params["sobject"], request.params["field"]
        records, all_or_none = _collection_body(request)
        with self.store.transaction() as conn:
            fields = self.records.fields(conn, sobject)
            if not fields:
                return sf_errors(404, f"sObject type '{sobject}' is not supported", "NOT_FOUND")
            problem = check_external_id(fields, sobject, ext_field)
            if problem:
                return problem
            for record in records:
                if record["attributes"]["type"] != sobject:
                    return sf_errors(400, f"Each record needs attributes.type = {sobject}", "INVALID_TYPE")
            rows = [_checked_values(fields, sobject, record, exclude=("attributes",)) for record in records]
            outcomes = self.records.upsert(conn, sobject, ext_field, fields, rows)
            results = _finish(conn, [_save_result(o, created=True) for o in outcomes], all_or_none)
        return json_response(200, results)

    def collections_create(self, request: Request) -> Response:
        """Create records of one or more types (no Id: Salesforce assigns them); one result per record, in
        order. As for updates, consecutive records of a type form a chunk and 10 chunks at most are allowed."""
        records, all_or_none = _collection_body(request)
        for record in records:
            if "Id" in record:
                return sf_errors(400, "Id not allowed when creating records: use PATCH to update", "INVALID_FIELD")
        chunks = [(sobject, list(group)) for sobject, group in groupby(records, key=lambda r: r["attributes"]["type"])]
        if len(chunks) > MAX_CHUNKS:
            message = (
                "Cannot have more than 10 chunks in a single operation. Please rearrange the data to reduce chunking."
            )
            return sf_errors(400, message, "EXCEEDED_MAX_TYPES_LIMIT")
        with self.store.transaction() as conn:
            planned = []
            for sobject, group in chunks:
                fields = self.records.fields(conn, sobject)
                if not fields:
                    return sf_errors(400, f"sObject type '{sobject}' is not supported", "INVALID_TYPE")
                planned.append(
                    (sobject, fields, [_checked_values(fields, sobject, r, exclude=("attributes",)) for r in group])
                )
            outcomes = [
                o for sobject, fields, rows in planned for o in self.records.create(conn, sobject, fields, rows)
            ]
            results = _finish(conn, [_save_result(o, created=False) for o in outcomes], all_or_none)
        return json_response(200, results)

    def collections_update(self, request: Request) -> Response:
        """Update records of one or more types by ``Id``; never creates. Consecutive records of the same type
        form a chunk, and Salesforce refuses requests of more than 10 chunks."""
        records, all_or_none = _collection_body(request)
        for record in records:
            if not isinstance(record.get("Id"), str):
                return sf_errors(400, "Each record needs an Id (a string) in an update call", "MISSING_ARGUMENT")
        chunks = [(sobject, list(group)) for sobject, group in groupby(records, key=lambda r: r["attributes"]["type"])]
        if len(chunks) > MAX_CHUNKS:
            message = (
                "Cannot have more than 10 chunks in a single operation. Please rearrange the data to reduce chunking."
            )
            return sf_errors(400, message, "EXCEEDED_MAX_TYPES_LIMIT")
        with self.store.transaction() as conn:
            planned = []
            for sobject, group in chunks:  # every whole-request check before the first write
                fields = self.records.fields(conn, sobject)
                if not fields:
                    return sf_errors(400, f"sObject type '{sobject}' is not supported", "INVALID_TYPE")
                rows = [(r["Id"], _checked_values(fields, sobject, r, exclude=("attributes", "Id"))) for r in group]
                planned.append((sobject, fields, rows))
            outcomes = [
                o for sobject, fields, rows in planned for o in self.records.update(conn, sobject, fields, rows)
            ]
            results = _finish(conn, [_save_result(o, created=False) for o in outcomes], all_or_none)
        return json_response(200, results)

    # --- what the server and the admin API use ---------------------------------------------------------
    def authenticate(self, request: Request) -> Response | None:
        return self.auth.authenticate(request)

    def count_request(self) -> tuple[bool, str]:
        return self.auth.count_request()

    def expire_tokens(self) -> int:
        return self.auth.expire_tokens()

    def issued_tokens(self) -> list[str]:
        """Every access token issued so far (tests check that none of them leaks into a log line)."""
        return self.auth.issued_tokens()

    @property
    def _tokens(self) -> dict[str, float]:
        """Kept for tests written before the OAuth code moved to :class:`SalesforceAuth`."""
        return self.auth.tokens_snapshot()


# --- helpers --------------------------------------------------------------------------------------------
def _collection_body(request: Request) -> tuple[list[dict[str, Any]], bool]:
    """``records`` and ``allOrNone`` of a Collections request, every JSON type checked (400 otherwise)."""
    body = sf_json_object(request)
    unknown = sorted(set(body) - {"allOrNone", "records"})
    if unknown:
        raise Refusal(sf_errors(400, f'Unrecognized field "{unknown[0]}"', "JSON_PARSER_ERROR"))
    all_or_none, records = body.get("allOrNone", False), body.get("records")
    if not isinstance(all_or_none, bool):
        raise Refusal(sf_errors(400, "allOrNone: Cannot deserialize value as boolean", "JSON_PARSER_ERROR"))
    if not isinstance(records, list) or not records:
        raise Refusal(sf_errors(400, "records: a non-empty list is required", "INVALID_FIELD"))
    if len(records) > MAX_COLLECTION_RECORDS:
        message = f"record limit reached. cannot submit more than {MAX_COLLECTION_RECORDS} records into this call"
        raise Refusal(sf_errors(400, message, "EXCEEDED_ID_LIMIT"))
    for record in records:
        attributes = record.get("attributes") if isinstance(record, dict) else None
        if not isinstance(attributes, dict) or not isinstance(attributes.get("type"), str):
            raise Refusal(sf_errors(400, "Each record needs an attributes map with a type", "INVALID_TYPE"))
    return records, all_or_none


def _checked_values(
    fields: dict[str, sqlite3.Row], sobject: str, record: dict[str, Any], exclude: tuple[str, ...]
) -> dict[str, Any]:
    """The record's field values; unknown fields and JSON values of the wrong type are whole-request 400s,
    as Salesforce's parser answers them."""
    values = {k: v for k, v in record.items() if k not in exclude}
    for name, value in values.items():
        field = fields.get(name)
        if field is None:
            raise Refusal(
                sf_errors(400, f"No such column '{name}' on sobject of type {sobject}", "INVALID_FIELD", [name])
            )
        if not json_type_ok(field, value):
            message = f"Cannot deserialize value {value!r} of field {name} as {field['type']}"
            raise Refusal(sf_errors(400, message, "JSON_PARSER_ERROR", [name]))
    return values


def _save_result(outcome: RowResult, *, created: bool) -> dict[str, Any]:
    if not outcome.ok:
        error = {"statusCode": outcome.code, "message": outcome.message, "fields": list(outcome.fields)}
        return {"success": False, "errors": [error]}
    result: dict[str, Any] = {"id": outcome.record_id, "success": True, "errors": []}
    if created:
        result["created"] = outcome.created
    return result


def _finish(conn: sqlite3.Connection, results: list[dict[str, Any]], all_or_none: bool) -> list[dict[str, Any]]:
    """With allOrNone, one failure undoes this request's writes and marks every other record rolled back."""
    if not all_or_none or all(r["success"] for r in results):
        return results
    conn.execute("ROLLBACK")  # undo this request's writes, then reopen for the transaction context manager
    conn.execute("BEGIN IMMEDIATE")
    return [r if not r["success"] else {"success": False, "errors": [ROLLED_BACK]} for r in results]


def _attributes(sobject: str, record_id: Any, version: str) -> dict[str, str]:
    attributes = {"type": sobject}
    if record_id:
        attributes["url"] = f"/services/data/v{version}/sobjects/{sobject}/{record_id}"
    return attributes


def _describe_field(field: sqlite3.Row, picklist: tuple[str, ...] | None = None) -> dict[str, Any]:
    values = [{"value": v, "label": v, "active": True, "defaultValue": n == 0} for n, v in enumerate(picklist or ())]
    return {
        "picklistValues": values,
        "restrictedPicklist": picklist is not None,
        "name": field["name"],
        "label": field["label"],
        "type": field["type"],
        "length": field["length"] or 0,
        "externalId": bool(field["external_id"]),
        "idLookup": bool(field["id_lookup"]),
        "createable": bool(field["createable"]),
        "updateable": bool(field["updateable"]),
        "nillable": bool(field["nillable"]),
        "defaultedOnCreate": bool(field["defaulted_on_create"]),
        "unique": bool(field["is_unique"]),
        "caseSensitive": False,
        "custom": bool(field["custom"]),
        "referenceTo": field["reference_to"].split(",") if field["reference_to"] else [],
        "polymorphicForeignKey": "," in (field["reference_to"] or ""),
    }
