"""Salesforce REST as crm-api-contracts.md describes it: OAuth token, describe, sObject Collections upsert,
Bulk API 2.0 ingest, the daily request allocation and expiring sessions.

JWT bearer: the assertion's header and claims are checked (RS256, ``iss`` = consumer key, ``sub`` = the
configured user, ``aud`` = a login URL, ``exp`` in the future). Its signature is verified against the
configured public key only when the ``cryptography`` package is importable; without it the signature is
accepted unchecked (a sandbox limitation, logged once at start).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import io
import json
import logging
import random
import secrets
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from activation.mapping import load_mapping
from activation.salesforce_schema import all_field_specs
from activation.sandbox.config import SandboxConfig
from activation.sandbox.faults import FaultDice
from activation.sandbox.store import Store, select_in
from activation.sandbox.web import Request, Response, Router, csv_response, json_response

log = logging.getLogger(__name__)

MAX_COLLECTION_RECORDS = 200
MAX_JOB_BYTES = 150 * 1024 * 1024
BULK_NULL = "#N/A"
ID_PREFIX = {"Lead": "00Q", "Account": "001", "Contact": "003"}
NUMERIC = {"double", "currency", "percent", "int", "long"}
TEXTUAL = {"string", "textarea", "picklist", "email", "phone", "url", "id", "reference"}
# Standard fields: name, type, length, idLookup, createable/updateable, required on create.
STANDARD_FIELDS: dict[str, list[tuple[str, str, int | None, bool, bool, bool]]] = {
    "Lead": [
        ("Id", "id", 18, True, False, False),
        ("FirstName", "string", 40, False, True, False),
        ("LastName", "string", 80, False, True, True),
        ("Company", "string", 255, False, True, True),
        ("Email", "email", 80, True, True, False),
        ("Status", "picklist", 255, False, True, False),
    ],
    "Account": [
        ("Id", "id", 18, True, False, False),
        ("Name", "string", 255, False, True, True),
        ("Website", "url", 255, False, True, False),
    ],
}
DEFAULT_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")


def sf_errors(status: int, message: str, code: str, fields: list[str] | None = None) -> Response:
    return json_response(status, [{"message": message, "errorCode": code, "fields": fields or []}])


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


class SalesforceApi:
    def __init__(self, store: Store, config: SandboxConfig, dice_provider: Callable[[], FaultDice]) -> None:
        self.store = store
        self.config = config
        self._dice_provider = dice_provider
        self.base_url = ""  # set by the server once it knows its port
        self._tokens: dict[str, float] = {}  # access token -> expiry (monotonic); in memory on purpose
        self._tokens_lock = threading.Lock()
        self._usage_lock = threading.Lock()
        self.api_usage = 0
        self._shuffle = random.Random(config.faults.seed)
        self._seed_schema()
        with store.lock:
            self._next_id = store.conn.execute("SELECT count(*) FROM sf_records").fetchone()[0] + 1
            self._next_job = store.conn.execute("SELECT count(*) FROM sf_jobs").fetchone()[0] + 1
        self._public_key = self._load_public_key()

    @property
    def dice(self) -> FaultDice:
        return self._dice_provider()

    def _seed_schema(self) -> None:
        rows = []
        for sobject, fields in STANDARD_FIELDS.items():
            for name, typ, length, id_lookup, editable, _ in fields:
                rows.append((sobject, name, name, typ, length, 0, int(id_lookup), int(editable), int(editable), 0, 0))
        if self.config.salesforce_deploy_leadscore_fields:
            for spec in all_field_specs(load_mapping()):
                rows.append(
                    (
                        spec.sobject,
                        spec.name,
                        spec.label,
                        spec.describe_type,
                        spec.length or spec.precision,
                        int(spec.external_id),
                        int(spec.external_id),
                        1,
                        1,
                        int(spec.external_id),
                        1,
                    )
                )
        with self.store.transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO sf_fields (sobject, name, label, type, length, external_id, id_lookup,"
                " createable, updateable, is_unique, custom) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def add_fields(self, sobject: str, fields: list[dict[str, Any]]) -> None:
        """Admin: deploy custom fields (``name``, ``type``, optional ``externalId``, ``length``, ``updateable``)."""
        with self.store.transaction() as conn:
            for f in fields:
                conn.execute(
                    "INSERT OR REPLACE INTO sf_fields (sobject, name, label, type, length, external_id, id_lookup,"
                    " createable, updateable, is_unique, custom) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                    (
                        sobject,
                        f["name"],
                        f.get("label", f["name"]),
                        f["type"],
                        f.get("length"),
                        int(f.get("externalId", False)),
                        int(f.get("externalId", False)),
                        int(f.get("createable", True)),
                        int(f.get("updateable", True)),
                        int(f.get("externalId", False)),
                    ),
                )

    def _load_public_key(self) -> Any:
        pem = self.config.salesforce_jwt_public_key_pem
        if not pem:
            return None
        try:
            from cryptography.hazmat.primitives.serialization import load_pem_public_key
            from cryptography.x509 import load_pem_x509_certificate
        except ImportError:
            log.warning("`cryptography` is not installed: JWT signatures are accepted without verification")
            return None
        data = pem.encode()
        if b"CERTIFICATE" in data:
            return load_pem_x509_certificate(data).public_key()
        return load_pem_public_key(data)

    def register(self, router: Router) -> None:
        router.add("POST", "/services/oauth2/token", "salesforce.oauth.token", self.token)
        data = "/services/data/{version}"
        router.add("GET", f"{data}/sobjects/{{sobject}}/describe", "salesforce.describe", self.describe)
        router.add(
            "PATCH",
            f"{data}/composite/sobjects/{{sobject}}/{{field}}",
            "salesforce.collections.upsert",
            self.collections_upsert,
        )
        router.add("POST", f"{data}/jobs/ingest", "salesforce.bulk.create", self.bulk_create)
        router.add("PUT", f"{data}/jobs/ingest/{{job}}/batches", "salesforce.bulk.upload", self.bulk_upload)
        router.add("PATCH", f"{data}/jobs/ingest/{{job}}", "salesforce.bulk.state", self.bulk_set_state)
        router.add("GET", f"{data}/jobs/ingest/{{job}}", "salesforce.bulk.info", self.bulk_info)
        for kind in ("successfulResults", "failedResults", "unprocessedrecords"):
            router.add("GET", f"{data}/jobs/ingest/{{job}}/{kind}", f"salesforce.bulk.{kind}", self.bulk_results)

    # --- auth, limits -------------------------------------------------------------------------------
    def token(self, request: Request) -> Response:
        content_type = request.headers.get("Content-Type", "")
        if "application/x-www-form-urlencoded" not in content_type:
            return _oauth_error("invalid_request", "the token request must be form-encoded")
        form = request.form()
        grant = form.get("grant_type")
        if grant == "client_credentials":
            if form.get("client_id") != self.config.salesforce_client_id:
                return _oauth_error("invalid_client_id", "client identifier invalid")
            if form.get("client_secret") != self.config.salesforce_client_secret:
                return _oauth_error("invalid_client", "invalid client credentials")
        elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            problem = self._check_jwt(form.get("assertion", ""))
            if problem:
                return _oauth_error(*problem)
        elif grant == "password":
            return _oauth_error("unsupported_grant_type", "the username-password flow is disabled in this org")
        else:
            return _oauth_error("unsupported_grant_type", "grant type not supported")
        token = "00DSANDBOX!" + secrets.token_urlsafe(32)
        with self._tokens_lock:
            self._tokens[token] = time.monotonic() + self.config.salesforce_token_lifetime
        issued = str(int(time.time() * 1000))
        signature = base64.b64encode(hashlib.sha256(f"{token}{issued}".encode()).digest()).decode()
        return json_response(
            200,
            {
                "access_token": token,
                "instance_url": self.base_url,
                "id": f"{self.base_url}/id/00DSANDBOX000001/005SANDBOX000001",
                "token_type": "Bearer",
                "issued_at": issued,
                "signature": signature,
                "scope": "api",
            },
        )

    def _check_jwt(self, assertion: str) -> tuple[str, str] | None:
        parts = assertion.split(".")
        if len(parts) != 3:
            return ("invalid_grant", "invalid assertion: not a JWT")
        try:
            header, claims = (json.loads(_b64url_decode(p)) for p in parts[:2])
            signature = _b64url_decode(parts[2])
        except (ValueError, json.JSONDecodeError):
            return ("invalid_grant", "invalid assertion: undecodable")
        if header.get("alg") != "RS256":
            return ("invalid_grant", "invalid assertion: alg must be RS256")
        if claims.get("iss") != self.config.salesforce_client_id:
            return ("invalid_client_id", "client identifier invalid")
        if claims.get("sub") != self.config.salesforce_username:
            return ("invalid_grant", "user hasn't approved this consumer")
        audiences = {*DEFAULT_AUDIENCES, self.base_url}
        if claims.get("aud") not in audiences:
            return ("invalid_grant", "audience is invalid")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= time.time():
            return ("invalid_grant", "expired authorization code")
        if self._public_key is not None:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import padding

            try:
                signed = f"{parts[0]}.{parts[1]}".encode()
                self._public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                return ("invalid_grant", "invalid assertion: signature does not verify")
        return None

    def expire_tokens(self) -> int:
        with self._tokens_lock:
            count = len(self._tokens)
            self._tokens = dict.fromkeys(self._tokens, 0.0)
        return count

    def authenticate(self, request: Request) -> Response | None:
        """401 ``INVALID_SESSION_ID`` unless the bearer token is one we issued and it has not expired."""
        token = request.bearer_token()
        with self._tokens_lock:
            expiry = self._tokens.get(token or "")
        if expiry is None or expiry <= time.monotonic():
            return sf_errors(401, "Session expired or invalid", "INVALID_SESSION_ID")
        return None

    def count_request(self) -> tuple[bool, str]:
        """Charge one request to the daily allocation; (allowed, Sforce-Limit-Info value)."""
        with self._usage_lock:
            limit = self.config.salesforce_daily_limit
            if self.api_usage >= limit:
                return False, f"api-usage={self.api_usage}/{limit}"
            self.api_usage += 1
            return True, f"api-usage={self.api_usage}/{limit}"

    # --- describe ------------------------------------------------------------------------------------
    def _fields(self, conn: sqlite3.Connection, sobject: str) -> dict[str, sqlite3.Row]:
        rows = conn.execute("SELECT * FROM sf_fields WHERE sobject = ?", (sobject,)).fetchall()
        return {r["name"]: r for r in rows}

    def describe(self, request: Request) -> Response:
        sobject = request.params["sobject"]
        with self.store.lock:
            fields = self._fields(self.store.conn, sobject)
        if not fields:
            return sf_errors(404, f"The requested resource does not exist: sObject type '{sobject}'", "NOT_FOUND")
        described = [
            {
                "name": f["name"],
                "label": f["label"],
                "type": f["type"],
                "length": f["length"] or 0,
                "externalId": bool(f["external_id"]),
                "idLookup": bool(f["id_lookup"]),
                "createable": bool(f["createable"]),
                "updateable": bool(f["updateable"]),
                "nillable": f["type"] != "boolean",
                "unique": bool(f["is_unique"]),
                "custom": bool(f["custom"]),
            }
            for f in fields.values()
        ]
        return json_response(
            200,
            {"name": sobject, "custom": False, "createable": True, "updateable": True, "fields": described},
        )

    # --- sObject Collections upsert ------------------------------------------------------------------
    def collections_upsert(self, request: Request) -> Response:
        sobject, ext_field = request.params["sobject"], request.params["field"]
        try:
            body = request.json()
        except ValueError as exc:
            return sf_errors(400, f"Unexpected character: {exc}", "JSON_PARSER_ERROR")
        if not isinstance(body, dict) or not isinstance(body.get("records"), list) or not body["records"]:
            return sf_errors(400, "records: a non-empty list is required", "INVALID_FIELD")
        records = body["records"]
        all_or_none = bool(body.get("allOrNone", False))
        if len(records) > MAX_COLLECTION_RECORDS:
            return sf_errors(
                400,
                f"Record limit reached: at most {MAX_COLLECTION_RECORDS} records per call",
                "EXCEEDED_ID_LIMIT",
            )
        with self.store.transaction() as conn:
            fields = self._fields(conn, sobject)
            if not fields:
                return sf_errors(404, f"sObject type '{sobject}' is not supported", "NOT_FOUND")
            problem = _check_external_id(fields, sobject, ext_field)
            if problem:
                return problem
            parsed: list[dict[str, Any]] = []
            for record in records:
                if not isinstance(record, dict) or (record.get("attributes") or {}).get("type") != sobject:
                    return sf_errors(400, f"Each record needs attributes.type = {sobject}", "INVALID_TYPE")
                values = {k: v for k, v in record.items() if k != "attributes"}
                problem = _check_json_values(fields, sobject, values)
                if problem:
                    return problem
                parsed.append(values)
            outcomes = self._upsert_rows(conn, sobject, ext_field, fields, parsed)
            results = [_collection_result(o) for o in outcomes]
            if all_or_none and any(not r["success"] for r in results):
                conn.execute("ROLLBACK")  # undo this request's writes, then reopen for the context manager
                conn.execute("BEGIN IMMEDIATE")
                rolled_back = {
                    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "message": "Record rolled back because not all records were valid and the request was using "
                    "AllOrNone header",
                    "fields": [],
                }
                results = [
                    r if not r["success"] else {"id": None, "success": False, "errors": [rolled_back]} for r in results
                ]
        return json_response(200, results)

    def _upsert_rows(
        self,
        conn: sqlite3.Connection,
        sobject: str,
        ext_field: str,
        fields: dict[str, sqlite3.Row],
        rows: list[dict[str, Any]],
    ) -> list[tuple[str | None, bool, str, str]]:
        """Upsert parsed rows; one ``(id, created, error_code, message)`` per row, in order."""
        keys = [None if r.get(ext_field) is None else str(r.get(ext_field)) for r in rows]
        existing = self._existing(conn, sobject, ext_field, [k for k in keys if k])
        duplicates = {k for k, n in Counter(keys).items() if k and n > 1}
        required = [n for n, *_, req in STANDARD_FIELDS.get(sobject, []) if req]
        stamp = _now()
        outcomes: list[tuple[str | None, bool, str, str] | None] = []
        accepted: list[tuple[int, str, dict[str, Any]]] = []
        for index, (key, values) in enumerate(zip(keys, rows, strict=True)):
            outcome = self._row_problem(sobject, ext_field, fields, key, values, existing, duplicates, required)
            outcomes.append(outcome)
            if outcome is None:
                accepted.append((index, str(key), values))
        stored = {
            r[0]: (json.loads(r[1]), r[2])
            for r in select_in(
                conn, "SELECT id, fields, created_at FROM sf_records WHERE id IN ({})", (), list(existing.values())
            )
        }
        record_rows, id_rows = [], []
        for index, key, values in accepted:
            record_id = existing.get(key)
            created = record_id is None
            if record_id is None:
                record_id = self._new_id(sobject)
                current, created_at = {}, stamp
                id_rows.append((sobject, ext_field, key, record_id))
            else:
                current, created_at = stored[record_id]
            for name, value in values.items():
                if value is None:
                    current.pop(name, None)
                else:
                    current[name] = value
            current[ext_field] = key
            record_rows.append((record_id, sobject, json.dumps(current, sort_keys=True), created_at, stamp))
            outcomes[index] = (record_id, created, "", "")
        conn.executemany("INSERT OR REPLACE INTO sf_records VALUES (?, ?, ?, ?, ?)", record_rows)
        conn.executemany("INSERT INTO sf_external_ids VALUES (?, ?, ?, ?)", id_rows)
        return [o for o in outcomes if o is not None]

    def _row_problem(
        self,
        sobject: str,
        ext_field: str,
        fields: dict[str, sqlite3.Row],
        key: str | None,
        values: dict[str, Any],
        existing: dict[str, str],
        duplicates: set[str],
        required: list[str],
    ) -> tuple[None, bool, str, str] | None:
        """Why this row fails on its own (missing/duplicate key, injected fault, bad value), or None."""
        faults = self.config.faults
        if not key:
            return (None, False, "MISSING_ARGUMENT", f"{ext_field} not specified")
        if key in duplicates:
            return (None, False, "DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {key}")
        if key in faults.reject_keys or self.dice.hit("record_error", key, faults.p_record_error):
            return (None, False, "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record")
        problem = _record_problem(fields, values, ext_field)
        if problem:
            return (None, False, *problem)
        if key not in existing and self.config.salesforce_required_on_create:
            missing = [n for n in required if values.get(n) in (None, "")]
            if missing:
                return (None, False, "REQUIRED_FIELD_MISSING", f"Required fields are missing: {missing}")
        return None

    def _existing(self, conn: sqlite3.Connection, sobject: str, ext_field: str, keys: list[str]) -> dict[str, str]:
        sql = "SELECT value, record_id FROM sf_external_ids WHERE sobject = ? AND field = ? AND value IN ({})"
        return {r[0]: r[1] for r in select_in(conn, sql, (sobject, ext_field), keys)}

    def _new_id(self, sobject: str) -> str:
        number, self._next_id = self._next_id, self._next_id + 1
        return f"{ID_PREFIX.get(sobject, 'a00')}5G{number:010d}SBX"

    # --- Bulk API 2.0 --------------------------------------------------------------------------------
    def bulk_create(self, request: Request) -> Response:
        try:
            body = request.json()
        except ValueError as exc:
            return sf_errors(400, f"Unexpected character: {exc}", "JSON_PARSER_ERROR")
        if not isinstance(body, dict):
            return sf_errors(400, "a JSON object is required", "JSON_PARSER_ERROR")
        sobject, operation = body.get("object"), body.get("operation")
        ext_field = body.get("externalIdFieldName")
        if operation != "upsert":
            return sf_errors(400, "InvalidJob : the sandbox supports operation 'upsert' only", "INVALIDJOB")
        if body.get("contentType", "CSV") != "CSV":
            return sf_errors(400, "InvalidJob : contentType must be CSV", "INVALIDJOB")
        line_ending = body.get("lineEnding", "LF")
        if line_ending not in {"LF", "CRLF"}:
            return sf_errors(400, "InvalidJob : lineEnding must be LF or CRLF", "INVALIDJOB")
        with self.store.transaction() as conn:
            fields = self._fields(conn, str(sobject))
            if not fields:
                return sf_errors(400, f"InvalidJob : Unable to find object: {sobject}", "INVALIDJOB")
            problem = _check_external_id(fields, str(sobject), str(ext_field))
            if problem:
                return problem
            job_id = f"750SBX{self._next_job:012d}"
            self._next_job += 1
            conn.execute(
                "INSERT INTO sf_jobs (id, object, operation, external_id_field, line_ending, state, created_at)"
                " VALUES (?, ?, ?, ?, ?, 'Open', ?)",
                (job_id, sobject, operation, ext_field, line_ending, _now()),
            )
            job = conn.execute("SELECT * FROM sf_jobs WHERE id = ?", (job_id,)).fetchone()
        return json_response(200, _job_json(job, self.config.salesforce_api_version))

    def _job(self, conn: sqlite3.Connection, job_id: str) -> sqlite3.Row | None:
        return conn.execute("SELECT * FROM sf_jobs WHERE id = ?", (job_id,)).fetchone()

    def bulk_upload(self, request: Request) -> Response:
        if "text/csv" not in request.headers.get("Content-Type", ""):
            return sf_errors(400, "Content-Type must be text/csv", "INVALIDCONTENTTYPE")
        if len(request.body) > MAX_JOB_BYTES:
            return sf_errors(400, "The upload exceeds 150 MB; split it into several jobs", "INVALIDBATCH")
        with self.store.transaction() as conn:
            job = self._job(conn, request.params["job"])
            if job is None:
                return sf_errors(404, "Job not found", "NOT_FOUND")
            if job["state"] != "Open" or job["csv"] is not None:
                return sf_errors(400, "Job is not open for data upload (one upload per job)", "INVALIDJOBSTATE")
            conn.execute("UPDATE sf_jobs SET csv = ? WHERE id = ?", (request.body.decode("utf-8"), job["id"]))
        return Response(201)

    def bulk_set_state(self, request: Request) -> Response:
        try:
            state = request.json().get("state")
        except (ValueError, AttributeError):
            return sf_errors(400, "a JSON object with 'state' is required", "JSON_PARSER_ERROR")
        with self.store.transaction() as conn:
            job = self._job(conn, request.params["job"])
            if job is None:
                return sf_errors(404, "Job not found", "NOT_FOUND")
            if job["state"] != "Open" or state not in {"UploadComplete", "Aborted"}:
                return sf_errors(400, f"Cannot change state from {job['state']} to {state}", "INVALIDJOBSTATE")
            if state == "Aborted":
                unprocessed = job["csv"] or ""
                conn.execute(
                    "UPDATE sf_jobs SET state = 'Aborted', unprocessed_csv = ? WHERE id = ?",
                    (unprocessed, job["id"]),
                )
            else:
                self._process_job(conn, job)
            job = self._job(conn, job["id"])
        return json_response(200, _job_json(job, self.config.salesforce_api_version))

    def _process_job(self, conn: sqlite3.Connection, job: sqlite3.Row) -> None:
        """Run the whole job now; polls report ``InProgress`` a configurable number of times first."""
        text = job["csv"] or ""
        if job["line_ending"] == "CRLF":
            text = text.replace("\r\n", "\n")
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        fields = self._fields(conn, job["object"])
        ext_field = job["external_id_field"]
        if not header:
            conn.execute(
                "UPDATE sf_jobs SET state = 'Failed', error_message = 'InvalidBatch : no data' WHERE id = ?",
                (job["id"],),
            )
            return
        unknown = [h for h in header if h not in fields]
        if unknown or ext_field not in header:
            message = (
                f"InvalidBatch : Field name not found : {unknown[0]}"
                if unknown
                else f"InvalidBatch : missing external id column {ext_field}"
            )
            conn.execute("UPDATE sf_jobs SET state = 'Failed', error_message = ? WHERE id = ?", (message, job["id"]))
            return
        raw_rows = [row for row in reader if row]
        parsed, parse_errors = [], []
        for row in raw_rows:
            values, error = _parse_csv_row(fields, header, row)
            parsed.append(values)
            parse_errors.append(error)
        to_write = [v for v, e in zip(parsed, parse_errors, strict=True) if not e]
        written = iter(self._upsert_rows(conn, job["object"], ext_field, fields, to_write))
        ok_rows, failed_rows = [], []
        for row, error in zip(raw_rows, parse_errors, strict=True):
            record_id, created, code, message = (None, False, *error) if error else next(written)
            if code:
                failed_rows.append(["", f"{code}:{message}", *row])
            else:
                ok_rows.append([record_id, "true" if created else "false", *row])
        # Result order is not guaranteed by Salesforce: shuffle so clients must join on the external id.
        self._shuffle.shuffle(ok_rows)
        self._shuffle.shuffle(failed_rows)
        conn.execute(
            "UPDATE sf_jobs SET state = 'UploadComplete', processed = ?, failed = ?, successful_csv = ?,"
            " failed_csv = ?, unprocessed_csv = ? WHERE id = ?",
            (
                len(raw_rows),
                len(failed_rows),
                _to_csv(["sf__Id", "sf__Created", *header], ok_rows),
                _to_csv(["sf__Id", "sf__Error", *header], failed_rows),
                _to_csv(header, []),
                job["id"],
            ),
        )

    def bulk_info(self, request: Request) -> Response:
        with self.store.transaction() as conn:
            job = self._job(conn, request.params["job"])
            if job is None:
                return sf_errors(404, "Job not found", "NOT_FOUND")
            if job["state"] in {"UploadComplete", "InProgress"}:
                polls = job["polls"] + 1
                done = polls > self.config.salesforce_bulk_polls_before_complete
                conn.execute(
                    "UPDATE sf_jobs SET polls = ?, state = ? WHERE id = ?",
                    (polls, "JobComplete" if done else "InProgress", job["id"]),
                )
                job = self._job(conn, job["id"])
        return json_response(200, _job_json(job, self.config.salesforce_api_version))

    def bulk_results(self, request: Request) -> Response:
        kind = request.path.rstrip("/").rsplit("/", 1)[-1]
        column = {
            "successfulResults": "successful_csv",
            "failedResults": "failed_csv",
            "unprocessedrecords": "unprocessed_csv",
        }[kind]
        with self.store.lock:
            job = self._job(self.store.conn, request.params["job"])
        if job is None:
            return sf_errors(404, "Job not found", "NOT_FOUND")
        if job["state"] not in {"JobComplete", "Failed", "Aborted"}:
            return sf_errors(400, "Job results are available once the job has completed", "INVALIDJOBSTATE")
        return csv_response(200, job[column] or "")

    # --- admin ---------------------------------------------------------------------------------------
    def dump_records(self, sobject: str) -> list[dict[str, Any]]:
        with self.store.lock:
            rows = self.store.conn.execute(
                "SELECT id, fields FROM sf_records WHERE sobject = ? ORDER BY id", (sobject,)
            ).fetchall()
        return [{"Id": r[0], **json.loads(r[1])} for r in rows]


# --- helpers --------------------------------------------------------------------------------------------
def _oauth_error(error: str, description: str) -> Response:
    return json_response(400, {"error": error, "error_description": description})


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _check_external_id(fields: dict[str, sqlite3.Row], sobject: str, ext_field: str) -> Response | None:
    field = fields.get(ext_field)
    if field is None:
        return sf_errors(
            404, f"Provided external ID field does not exist or is not accessible: {ext_field}", "NOT_FOUND"
        )
    if not (field["external_id"] or field["id_lookup"]):
        return sf_errors(
            400,
            f"Field {ext_field} is not an external ID or indexed field for {sobject}",
            "INVALID_FIELD",
            [ext_field],
        )
    return None


def _check_json_values(fields: dict[str, sqlite3.Row], sobject: str, values: dict[str, Any]) -> Response | None:
    """Whole-request 400s: unknown fields and JSON values of the wrong type (as Salesforce's parser does)."""
    for name, value in values.items():
        field = fields.get(name)
        if field is None:
            return sf_errors(400, f"No such column '{name}' on sobject of type {sobject}", "INVALID_FIELD", [name])
        typ = field["type"]
        if value is None:
            continue
        ok = (
            (typ in NUMERIC and isinstance(value, int | float) and not isinstance(value, bool))
            or (typ in TEXTUAL and isinstance(value, str))
            or (typ == "boolean" and isinstance(value, bool))
            or (typ in {"date", "datetime"} and isinstance(value, str) and _parse_temporal(typ, value) is not None)
        )
        if not ok:
            return sf_errors(
                400,
                f"Cannot deserialize value {value!r} of field {name} as {typ}",
                "JSON_PARSER_ERROR",
                [name],
            )
    return None


def _record_problem(fields: dict[str, sqlite3.Row], values: dict[str, Any], ext_field: str) -> tuple[str, str] | None:
    for name, value in values.items():
        field = fields[name]
        if name != ext_field and not field["updateable"]:
            return "INVALID_FIELD_FOR_INSERT_UPDATE", f"Unable to create/update fields: {name}"
        if field["type"] == "boolean" and value is None:
            return "INVALID_FIELD", f"{name}: a checkbox cannot be null"
        if isinstance(value, str) and field["length"] and field["type"] in TEXTUAL and len(value) > field["length"]:
            return "STRING_TOO_LONG", f"{name}: data value too large (max length={field['length']})"
    return None


def _parse_temporal(typ: str, value: str) -> object | None:
    try:
        if typ == "date":
            return dt.date.fromisoformat(value) if len(value) == 10 else None
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _parse_csv_row(
    fields: dict[str, sqlite3.Row], header: list[str], row: list[str]
) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """Bulk CSV cell -> value: empty leaves the field unchanged, ``#N/A`` sets it to null."""
    values: dict[str, Any] = {}
    if len(row) != len(header):
        return values, ("INVALID_FIELD", f"row has {len(row)} columns, header has {len(header)}")
    for name, cell in zip(header, row, strict=True):
        if cell == "":
            continue
        if cell == BULK_NULL:
            values[name] = None
            continue
        typ = fields[name]["type"]
        try:
            if typ in NUMERIC:
                values[name] = float(cell)
            elif typ == "boolean":
                if cell.lower() not in {"true", "false", "1", "0"}:
                    raise ValueError(cell)
                values[name] = cell.lower() in {"true", "1"}
            elif typ in {"date", "datetime"}:
                if _parse_temporal(typ, cell) is None:
                    raise ValueError(cell)
                values[name] = cell
            else:
                values[name] = cell
        except ValueError:
            return values, ("INVALID_FIELD", f"{name}: value not of required type: {cell}")
    return values, None


def _collection_result(outcome: tuple[str | None, bool, str, str]) -> dict[str, Any]:
    record_id, created, code, message = outcome
    if code:
        return {"success": False, "errors": [{"statusCode": code, "message": message, "fields": []}]}
    return {"id": record_id, "success": True, "errors": [], "created": created}


def _to_csv(header: list[str], rows: list[list[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _job_json(job: sqlite3.Row, version: str) -> dict[str, Any]:
    return {
        "id": job["id"],
        "operation": job["operation"],
        "object": job["object"],
        "createdById": "005SANDBOX000001",
        "createdDate": job["created_at"],
        "systemModstamp": _now(),
        "state": job["state"],
        "externalIdFieldName": job["external_id_field"],
        "concurrencyMode": "Parallel",
        "contentType": "CSV",
        "apiVersion": float(version),
        "lineEnding": job["line_ending"],
        "columnDelimiter": "COMMA",
        "numberRecordsProcessed": job["processed"] or 0,
        "numberRecordsFailed": job["failed"] or 0,
        "errorMessage": job["error_message"],
    }
