"""Salesforce destination: OAuth 2.0 (client credentials or JWT bearer), describe checks, sObject
Collections upsert by external id, and Bulk API 2.0 for large syncs.

There is no refresh token and no announced expiry: a 401 ``INVALID_SESSION_ID`` triggers one new token and
one resend (in :class:`activation.http.ApiClient`). ``Sforce-Limit-Info`` is read on every response so a
sync stops *before* the org's daily allocation is spent rather than after.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from activation.destination import MappedDestination, OutgoingRecord, RecordResult
from activation.encoding import salesforce_csv_value, salesforce_value
from activation.errors import AuthenticationError, ConfigurationError, RequestFailed
from activation.http import ApiClient, DailyBudget, HttpSettings, Outcome, Verdict, response_excerpt
from activation.mapping import ObjectMapping
from activation.redact import get_logger, register_secret
from activation.salesforce_schema import PERMISSION_SET, SHIPPED_DIR, describe_problems, field_specs

log = get_logger(__name__)

DEFAULT_LOGIN_URL = "https://login.salesforce.com"
MAX_COLLECTION_RECORDS = 200
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass(frozen=True)
class SalesforceSettings:
    login_url: str = DEFAULT_LOGIN_URL
    api_version: str = "62.0"
    bulk_threshold: int = 2_000  # above this many changed records, Bulk API 2.0 beats Collections
    bulk_max_bytes: int = 100 * 1024 * 1024  # per job; Salesforce allows 150 MB, keep a margin
    bulk_poll_interval: float = 2.0
    bulk_poll_max_interval: float = 15.0
    bulk_poll_timeout: float = 1800.0
    http: HttpSettings = field(default_factory=HttpSettings)


@dataclass(frozen=True)
class SalesforceCredentials:
    """Client credentials (``client_secret``) or JWT bearer (``private_key_pem`` + ``username``)."""

    client_id: str
    client_secret: str | None = None
    private_key_pem: str | None = None
    username: str | None = None

    def __post_init__(self) -> None:
        register_secret(self.client_secret)
        register_secret(self.private_key_pem)
        if not self.client_id:
            raise ConfigurationError("SALESFORCE_CLIENT_ID (the connected app's consumer key) is required")
        if not self.client_secret and not (self.private_key_pem and self.username):
            raise ConfigurationError(
                "Salesforce needs SALESFORCE_CLIENT_SECRET (client credentials flow) or "
                "SALESFORCE_JWT_KEY_FILE and SALESFORCE_USERNAME (JWT bearer flow)"
            )

    def __repr__(self) -> str:  # dataclass repr would print the secret
        flow = "jwt" if self.private_key_pem else "client_credentials"
        return f"SalesforceCredentials(client_id={self.client_id!r}, flow={flow})"


def jwt_assertion(credentials: SalesforceCredentials, audience: str, now: float | None = None) -> str:
    """An RS256-signed JWT for the bearer flow (needs the ``cryptography`` package)."""
    try:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding
    except ImportError as exc:  # pragma: no cover - cryptography ships with the project's dependencies
        raise ConfigurationError("the Salesforce JWT bearer flow needs the 'cryptography' package") from exc
    issued = int(now if now is not None else time.time())
    header = {"alg": "RS256", "typ": "JWT"}
    claims = {"iss": credentials.client_id, "sub": credentials.username, "aud": audience, "exp": issued + 180}
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
    key = serialization.load_pem_private_key((credentials.private_key_pem or "").encode(), password=None)
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr,call-arg]
    return f"{signing_input}.{_b64url(signature)}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SalesforceDestination(MappedDestination, ApiClient):
    name = "salesforce"
    encode_value = staticmethod(salesforce_value)
    batch_size = MAX_COLLECTION_RECORDS

    def __init__(
        self,
        credentials: SalesforceCredentials,
        settings: SalesforceSettings | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.sf_settings = settings = settings or SalesforceSettings()
        # No client-side pacing: Salesforce has no per-second limit, only the daily allocation.
        super().__init__(settings=settings.http, limiter=None, logger=log, sleep=sleep)
        self.credentials = credentials
        self.bulk_threshold: int | None = settings.bulk_threshold
        self._token: str | None = None
        self.instance_url: str | None = None
        self._auth_lock = threading.Lock()
        self.daily_budget = DailyBudget("the Salesforce daily API request allocation (Sforce-Limit-Info)")
        self.api_usage: tuple[int, int] | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **settings: Any) -> SalesforceDestination:
        """Build from ``SALESFORCE_LOGIN_URL``, ``SALESFORCE_CLIENT_ID`` and either ``SALESFORCE_CLIENT_SECRET``
        or ``SALESFORCE_JWT_KEY_FILE`` + ``SALESFORCE_USERNAME``."""
        env = os.environ if env is None else env
        key_file = env.get("SALESFORCE_JWT_KEY_FILE")
        credentials = SalesforceCredentials(
            client_id=env.get("SALESFORCE_CLIENT_ID", ""),
            client_secret=env.get("SALESFORCE_CLIENT_SECRET") or None,
            private_key_pem=Path(key_file).read_text() if key_file else None,
            username=env.get("SALESFORCE_USERNAME") or None,
        )
        defaults: dict[str, Any] = {"login_url": env.get("SALESFORCE_LOGIN_URL") or DEFAULT_LOGIN_URL}
        if env.get("SALESFORCE_API_VERSION"):
            defaults["api_version"] = env["SALESFORCE_API_VERSION"]
        if env.get("SALESFORCE_BULK_THRESHOLD"):
            defaults["bulk_threshold"] = int(env["SALESFORCE_BULK_THRESHOLD"])
        return cls(credentials, SalesforceSettings(**{**defaults, **settings}))

    # --- authentication ------------------------------------------------------------------------------
    def authenticate(self) -> None:
        """Get an access token (client credentials, or JWT bearer when a private key is configured)."""
        login = self.sf_settings.login_url.rstrip("/")
        creds = self.credentials
        if creds.private_key_pem:
            form = {"grant_type": JWT_GRANT, "assertion": jwt_assertion(creds, login)}
        else:
            form = {
                "grant_type": "client_credentials",
                "client_id": creds.client_id,
                "client_secret": creds.client_secret or "",
            }
        try:
            # Through the retry loop: a login endpoint can 503 or time out like any other.
            response = self.request("POST", f"{login}/services/oauth2/token", data=form, authenticated=False)
        except RequestFailed as exc:
            if exc.retryable:
                raise
            raise AuthenticationError(
                f"Salesforce refused the {form['grant_type']} grant for client {creds.client_id}: {exc}"
            ) from None
        body = response.json()
        register_secret(body["access_token"])
        self._token, self.instance_url = body["access_token"], body["instance_url"].rstrip("/")

    def auth_headers(self) -> dict[str, str]:
        with self._auth_lock:
            if self._token is None:
                self.authenticate()
            return {"Authorization": f"Bearer {self._token}"}

    def reauthenticate(self) -> None:
        with self._auth_lock:
            self.authenticate()

    # --- ApiClient hooks -----------------------------------------------------------------------------
    def before_request(self) -> None:
        self.daily_budget.reserve()

    def observe(self, response: requests.Response) -> None:
        usage = parse_limit_info(response.headers.get("Sforce-Limit-Info"))
        if usage is not None:
            self.api_usage = usage
            self.daily_budget.announce(usage[1] - usage[0])

    def classify(self, response: requests.Response) -> Verdict:
        status = response.status_code
        if 200 <= status < 300:
            return Verdict.ok()
        codes, message = _errors(response)
        if status == 401 and "INVALID_SESSION_ID" in codes:
            return Verdict(Outcome.REAUTHENTICATE, message)
        if "REQUEST_LIMIT_EXCEEDED" in codes:
            return Verdict(Outcome.DAILY_LIMIT, f"Salesforce: {message}")
        if status in {401, 403}:
            return Verdict(Outcome.AUTH, f"Salesforce {status}: {message}")
        if status >= 500 or "UNABLE_TO_LOCK_ROW" in codes:
            return Verdict(Outcome.RETRY, f"Salesforce {status}: {message}")
        return Verdict(Outcome.FAIL, f"Salesforce {status}: {message}")

    # --- schema --------------------------------------------------------------------------------------
    def _data_url(self, path: str) -> str:
        if self.instance_url is None:
            self.auth_headers()
        return f"{self.instance_url}/services/data/v{self.sf_settings.api_version}/{path}"

    def prepare(self, obj: ObjectMapping) -> None:
        """Check through describe that every mapped field exists, has a compatible type and is editable."""
        target = self.target(obj)
        describe = self.request("GET", self._data_url(f"sobjects/{target.object}/describe")).json()
        problems = describe_problems(field_specs(obj), describe.get("fields", []))
        if problems:
            raise ConfigurationError(
                f"Salesforce {target.object} is not ready for leadscore. An admin must:\n  - "
                + "\n  - ".join(problems)
                + f"\nThe definitions ship ready to deploy in {SHIPPED_DIR} (cd there and run "
                f"`sf project deploy start --source-dir force-app`, then assign permission set {PERMISSION_SET} "
                "to the integration user)."
            )

    # --- records -------------------------------------------------------------------------------------
    def send_batch(self, obj: ObjectMapping, records: Sequence[OutgoingRecord]) -> list[RecordResult]:
        if len(records) > MAX_COLLECTION_RECORDS:
            raise ValueError(f"sObject Collections take at most {MAX_COLLECTION_RECORDS} records, got {len(records)}")
        target = self.target(obj)
        body = {
            "allOrNone": False,
            "records": [{"attributes": {"type": target.object}, target.id_field: r.key, **r.payload} for r in records],
        }
        url = self._data_url(f"composite/sobjects/{target.object}/{target.id_field}")
        answer = self.request("PATCH", url, json=body).json()
        return collection_results(records, answer)

    def send_bulk(self, obj: ObjectMapping, records: Sequence[OutgoingRecord]) -> list[RecordResult]:
        """Upsert through Bulk API 2.0: one job per ``bulk_max_bytes`` of CSV."""
        target = self.target(obj)
        columns = [target.id_field, *(name for _, name in obj.fields_for("salesforce"))]
        results: list[RecordResult] = []
        for chunk, text in bulk_csv_chunks(records, columns, self.sf_settings.bulk_max_bytes):
            results.extend(self._run_job(target, chunk, text))
        return results

    def _run_job(self, target: Any, records: Sequence[OutgoingRecord], text: str) -> list[RecordResult]:
        job_spec = {
            "object": target.object,
            "operation": "upsert",
            "externalIdFieldName": target.id_field,
            "contentType": "CSV",
            "lineEnding": "LF",
        }
        job = self.request("POST", self._data_url("jobs/ingest"), json=job_spec).json()
        job_url = self._data_url(f"jobs/ingest/{job['id']}")
        self.request("PUT", f"{job_url}/batches", data=text.encode(), headers={"Content-Type": "text/csv"})
        self.request("PATCH", job_url, json={"state": "UploadComplete"})
        info = self._wait_for_job(job_url)
        if info["state"] != "JobComplete":
            reason = f"Bulk job {job['id']} ended {info['state']}: {info.get('errorMessage') or 'no message'}"
            log.error("%s", reason)
            return [RecordResult.failed(r.key, "BULK_JOB_FAILED", reason) for r in records]
        outcome = {
            kind: list(csv.DictReader(io.StringIO(self.request("GET", f"{job_url}/{kind}/").text)))
            for kind in ("successfulResults", "failedResults", "unprocessedrecords")
        }
        return bulk_results(records, target.id_field, outcome)

    def _wait_for_job(self, job_url: str) -> dict[str, Any]:
        settings = self.sf_settings
        deadline = time.monotonic() + settings.bulk_poll_timeout
        interval = settings.bulk_poll_interval
        while True:
            info = self.request("GET", job_url).json()
            if info["state"] in {"JobComplete", "Failed", "Aborted"}:
                return info
            if time.monotonic() > deadline:
                raise RequestFailed(
                    f"Bulk job still {info['state']} after {settings.bulk_poll_timeout:.0f}s", retryable=True
                )
            self._sleep(interval)
            interval = min(interval * 1.5, settings.bulk_poll_max_interval)


# --- pure helpers (unit-tested) -------------------------------------------------------------------------
def parse_limit_info(value: str | None) -> tuple[int, int] | None:
    """``api-usage=10018/100000`` -> (10018, 100000)."""
    if not value:
        return None
    for part in value.split(","):
        name, _, usage = part.strip().partition("=")
        if name == "api-usage" and "/" in usage:
            used, _, limit = usage.partition("/")
            if used.isdigit() and limit.isdigit():
                return int(used), int(limit)
    return None


def collection_results(records: Sequence[OutgoingRecord], answer: Any) -> list[RecordResult]:
    """Zip a Collections answer (one result per record, in input order) with the records."""
    if not isinstance(answer, list) or len(answer) != len(records):
        reason = f"expected {len(records)} results in input order, got {type(answer).__name__}"
        return [RecordResult.failed(r.key, "UNCONFIRMED", reason) for r in records]
    results = []
    for record, result in zip(records, answer, strict=True):
        if result.get("success"):
            results.append(RecordResult(record.key, True, created=bool(result.get("created")), crm_id=result.get("id")))
        else:
            errors = result.get("errors") or [{}]
            code = str(errors[0].get("statusCode") or "ERROR")
            message = "; ".join(f"{e.get('statusCode')}: {e.get('message')}" for e in errors)
            results.append(RecordResult.failed(record.key, code, message))
    return results


def bulk_csv_chunks(
    records: Sequence[OutgoingRecord], columns: Sequence[str], max_bytes: int
) -> list[tuple[list[OutgoingRecord], str]]:
    """Split records into CSV documents of at most ``max_bytes`` each (Bulk 2.0 caps a job's upload)."""
    header = _csv_line(columns)
    chunks: list[tuple[list[OutgoingRecord], str]] = []
    current: list[OutgoingRecord] = []
    lines = [header]
    size = len(header.encode())
    for record in records:
        row = {columns[0]: record.key, **record.payload}
        line = _csv_line([salesforce_csv_value(row.get(c)) for c in columns])
        line_size = len(line.encode())
        if current and size + line_size > max_bytes:
            chunks.append((current, "".join(lines)))
            current, lines, size = [], [header], len(header.encode())
        current.append(record)
        lines.append(line)
        size += line_size
    if current:
        chunks.append((current, "".join(lines)))
    return chunks


def _csv_line(values: Sequence[Any]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue()


def bulk_results(
    records: Sequence[OutgoingRecord], id_field: str, outcome: Mapping[str, list[dict[str, str]]]
) -> list[RecordResult]:
    """Join Bulk 2.0 result CSVs back to records on the external id (their order is not guaranteed)."""
    by_key: dict[str, RecordResult] = {}
    for row in outcome.get("successfulResults", []):
        key = row.get(id_field, "")
        by_key[key] = RecordResult(key, True, created=row.get("sf__Created") == "true", crm_id=row.get("sf__Id"))
    for row in outcome.get("failedResults", []):
        key = row.get(id_field, "")
        error = row.get("sf__Error", "")
        by_key[key] = RecordResult.failed(key, error.split(":", 1)[0] or "ERROR", error)
    for row in outcome.get("unprocessedrecords", []):
        key = row.get(id_field, "")
        by_key[key] = RecordResult.failed(key, "UNPROCESSED", "Bulk job did not process this record")
    return [
        by_key.get(r.key) or RecordResult.failed(r.key, "UNCONFIRMED", "missing from the Bulk job's results")
        for r in records
    ]


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _errors(response: requests.Response) -> tuple[set[str], str]:
    """Error codes and a message from Salesforce's ``[{"message", "errorCode"}]`` error arrays."""
    body = _json(response)
    if isinstance(body, list):
        items = [e for e in body if isinstance(e, dict)]
        codes = {str(e.get("errorCode")) for e in items}
        return codes, "; ".join(f"{e.get('errorCode')}: {e.get('message')}" for e in items)
    return set(), response_excerpt(response)
