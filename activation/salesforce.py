"""Salesforce destination: OAuth 2.0 (client credentials or JWT bearer), describe checks, sObject
Collections update by record Id, and Bulk API 2.0 for large syncs.

Update mode (the default) writes onto the Leads, Contacts and Accounts that exist, by their Salesforce Id,
with ``PATCH /composite/sobjects`` (one object type per request) or a Bulk 2.0 ``update`` job; an Id the org
does not hold is a per-record ``not_found`` reject, never a create. Upsert mode (opt-in) matches on an
external id field and creates what is missing (Salesforce then needs the required fields mapped).

The client-credentials flow works only on the org's My Domain URL (login.salesforce.com answers
``invalid_grant: request not supported on this domain``), so that flow refuses the generic login hosts before
asking. There is no refresh token and no announced expiry: a 401 ``INVALID_SESSION_ID`` triggers one new
token and one resend (in :class:`activation.http.ApiClient`). ``Sforce-Limit-Info`` is read on every
response so a sync stops *before* the org's daily allocation (or the app's share of it) is spent; the
short-lived concurrent-request limit, which shares the ``REQUEST_LIMIT_EXCEEDED`` code, is retried.

Create mode (tasks) uses ``POST /composite/sobjects`` (``allOrNone: false``, Collections only, never Bulk),
sets the attachment's lookup field (``WhoId``) to the row's record, and never resends a create that may have
landed (:class:`activation.errors.OutcomeUnknown`); SOQL on the field carrying the key (``SELECT Id, ...
WHERE Leadscore_Alert_Id__c IN (...)``) tells whether an unanswered create landed.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from activation.csvtext import csv_text, read_csv_dicts
from activation.destination import BY_KEY, NOT_FOUND, MappedDestination, OutgoingRecord, RecordResult
from activation.encoding import salesforce_csv_value, salesforce_value
from activation.errors import AuthenticationError, ConfigurationError, RequestFailed, checked_secret
from activation.http import ApiClient, DailyBudget, HttpSettings, Outcome, Verdict, response_excerpt
from activation.mapping import CREATE, UPSERT, ObjectMapping
from activation.redact import get_logger, register_secret
from activation.salesforce_schema import PERMISSION_SET, SHIPPED_DIR, describe_problems, field_specs

log = get_logger(__name__)
BULK_FINISHED = {"JobComplete", "Failed", "Aborted"}


class BulkJobTimedOut(RequestFailed):
    """A Bulk job still queued or processing when ``bulk_poll_timeout`` ran out."""


class BulkJobAborted(RequestFailed):
    """A job aborted after it timed out, with the results it reported: what it wrote before the abort is
    confirmed, the rest is ``UNPROCESSED``."""

    def __init__(self, message: str, results: list[RecordResult]) -> None:
        super().__init__(message, retryable=True)
        self.results = results


DEFAULT_LOGIN_URL = "https://login.salesforce.com"  # JWT bearer only; client credentials need the My Domain URL
GENERIC_LOGIN_HOSTS = {"login.salesforce.com", "test.salesforce.com"}
MAX_COLLECTION_RECORDS = 200
MAX_QUERY_VALUES = 200  # keys per SOQL IN list: ~7 KB of URL for 32-character keys
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Per-record errors that mean "this record is not in the org (any more)".
NOT_FOUND_CODES = {"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY", "NOT_FOUND", "INVALID_ID_FIELD"}


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
        self.org_id: str | None = None
        check_login_url(settings.login_url, jwt=bool(credentials.private_key_pem))

    @classmethod
    def from_env(cls, env: Mapping[str, str], **settings: Any) -> SalesforceDestination:
        """Build from the values of ``SALESFORCE_LOGIN_URL``, ``SALESFORCE_CLIENT_ID`` and either
        ``SALESFORCE_CLIENT_SECRET`` or ``SALESFORCE_JWT_KEY_FILE`` + ``SALESFORCE_USERNAME``."""
        key_file = env.get("SALESFORCE_JWT_KEY_FILE")
        credentials = SalesforceCredentials(
            client_id=env.get("SALESFORCE_CLIENT_ID", "").strip(),
            client_secret=checked_secret(env.get("SALESFORCE_CLIENT_SECRET"), "SALESFORCE_CLIENT_SECRET") or None,
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
        self.org_id = org_id_from_identity_url(str(body.get("id") or ""))

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
            if is_daily_limit(message, self.api_usage):
                return Verdict(Outcome.DAILY_LIMIT, f"Salesforce: {message}")
            # The concurrent long-running-request limit: it passes in seconds, unlike the daily allocation.
            return Verdict(Outcome.RETRY, f"Salesforce concurrency limit: {message}", wait=1.0)
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

    def identify(self) -> str:
        """The org id, read from the identity URL the token response carries: sync state belongs to one org."""
        if self.org_id is None:
            self.auth_headers()
        if not self.org_id:
            raise ConfigurationError("the Salesforce token response carries no identity URL with an org id")
        return self.org_id

    def prepare(self, obj: ObjectMapping) -> None:
        """Check through describe that every mapped field exists on every object the mapping routes to, has a
        compatible type and is editable."""
        target = self.target(obj)
        specs = field_specs(obj)
        problems = []
        for sobject in target.objects:
            describe = self.request("GET", self._data_url(f"sobjects/{sobject}/describe")).json()
            wanted = [spec for spec in specs if spec.sobject == sobject]
            problems += describe_problems(wanted, describe.get("fields", []), creates=target.mode in (UPSERT, CREATE))
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
        """Write one batch of records of one object: by Id (update mode) or by external id (upsert)."""
        if len(records) > MAX_COLLECTION_RECORDS:
            raise ValueError(f"sObject Collections take at most {MAX_COLLECTION_RECORDS} records, got {len(records)}")
        if not records:
            return []
        target = self.target(obj)
        sobject = _object_of(records)
        if target.mode == CREATE:
            return self._create(obj, records)
        if _match_of(records) == BY_KEY:
            rows = [{"attributes": {"type": sobject}, target.id_field: r.key, **r.payload} for r in records]
            url = self._data_url(f"composite/sobjects/{sobject}/{target.id_field}")
        else:
            rows = [{"attributes": {"type": sobject}, "Id": _record_id(r), **r.payload} for r in records]
            url = self._data_url("composite/sobjects")
        answer = self.request("PATCH", url, json={"allOrNone": False, "records": rows}).json()
        return collection_results(records, answer)

    def _create(self, obj: ObjectMapping, records: Sequence[OutgoingRecord]) -> list[RecordResult]:
        """Create mode: one request of new records, each carrying its key and pointing at its person (the
        address's value in the attachment's lookup field). Never resent blindly (OutcomeUnknown)."""
        target = self.target(obj)
        assert target.attach is not None and target.attach.field and target.id_field
        sobject = _object_of(records)
        rows = [
            {"attributes": {"type": sobject}, target.attach.field: _record_id(r), target.id_field: r.key, **r.payload}
            for r in records
        ]
        url = self._data_url("composite/sobjects")
        answer = self.request("POST", url, json={"allOrNone": False, "records": rows}, idempotent=False).json()
        return [
            RecordResult(r.key, True, created=True, crm_id=r.crm_id) if r.ok else r
            for r in collection_results(records, answer)
        ]

    def find_created(self, obj: ObjectMapping, keys: Sequence[str]) -> dict[str, str]:
        """Create mode: the records carrying these keys, by SOQL on the key field (200 keys a query, every
        page read). The oldest record wins when a key was created twice."""
        target = self.target(obj)
        field_name, sobject = str(target.id_field), target.objects[0]
        found: dict[str, str] = {}
        for start in range(0, len(keys), MAX_QUERY_VALUES):
            chunk = sorted(set(keys[start : start + MAX_QUERY_VALUES]))
            listed = ", ".join(soql_literal(k) for k in chunk)
            soql = f"SELECT Id, {field_name} FROM {sobject} WHERE {field_name} IN ({listed}) ORDER BY Id"
            url: str | None = self._data_url("query") + "?q=" + quote(soql)
            while url:
                page = self.request("GET", url).json()
                for record in page.get("records") or []:
                    key = record.get(field_name)
                    if key in chunk:
                        found.setdefault(str(key), str(record["Id"]))
                more = page.get("nextRecordsUrl")
                url = f"{self.instance_url}{more}" if more and not page.get("done", True) else None
        return found

    def send_bulk(
        self, obj: ObjectMapping, records: Sequence[OutgoingRecord]
    ) -> Iterator[tuple[list[OutgoingRecord], list[RecordResult]]]:
        """Bulk API 2.0 for records of one object found one way (the engine groups them): ``update`` by Id,
        or ``upsert`` by external id in upsert mode; one job per ``bulk_max_bytes`` of CSV, in order, each
        yielded with its results as soon as it is done (the engine records it before the next one starts)."""
        if not records:
            return
        if len({(r.address.object, r.address.match) for r in records if r.address}) > 1:
            raise ValueError("a bulk job holds records of one object, found one way")
        target = self.target(obj)
        upsert = _match_of(records) == BY_KEY
        key_column = str(target.id_field) if upsert else "Id"
        columns = [key_column, *(name for _, name in obj.fields_for("salesforce"))]
        job = {"object": _object_of(records), "operation": "upsert" if upsert else "update", "contentType": "CSV",
               "lineEnding": "LF"}  # fmt: skip
        if upsert:
            job["externalIdFieldName"] = key_column
        for chunk, text in bulk_csv_chunks(records, columns, self.sf_settings.bulk_max_bytes, _bulk_key):
            try:
                results = self._run_job(job, chunk, text, key_column)
            except BulkJobAborted as exc:
                # The org's queue is too slow tonight: what the aborted job wrote is confirmed, and the jobs
                # after it are not sent (each would wait as long); their records are kept for the next run.
                yield chunk, exc.results
                raise RequestFailed(f"{exc}; the rest were not sent", retryable=True) from exc
            yield chunk, results

    def _run_job(
        self, job_spec: Mapping[str, Any], records: Sequence[OutgoingRecord], text: str, key_column: str
    ) -> list[RecordResult]:
        job = self.request("POST", self._data_url("jobs/ingest"), json=dict(job_spec)).json()
        job_url = self._data_url(f"jobs/ingest/{job['id']}")
        try:
            self.request("PUT", f"{job_url}/batches", data=text.encode(), headers={"Content-Type": "text/csv"})
            self._close(job_url)
        except RequestFailed:
            self._abort(job_url)  # an open job nobody completes would linger in the org's job list
            raise
        timed_out: BulkJobTimedOut | None = None
        try:
            info = self._wait_for_job(job_url)
        except BulkJobTimedOut as exc:
            # Left running, the job would write these records behind the engine's back after they were
            # counted failed. Aborted, it stops where it stands and reports what it did.
            self._abort(job_url)
            info = self.request("GET", job_url).json()
            if info["state"] not in BULK_FINISHED:
                raise
            timed_out = exc
        # A job that ends Failed or Aborted may still have written records: read every result before deciding.
        # Rows are parsed lazily while they are joined: a dict per row of a 200,000-row job is ~240 MiB.
        outcome = {
            kind: read_csv_dicts(self.request("GET", f"{job_url}/{kind}/").text)
            for kind in ("successfulResults", "failedResults", "unprocessedrecords")
        }
        keys = {_bulk_key(r): r.key for r in records}
        aborted_by_us = timed_out is not None and info["state"] == "Aborted"
        failure = None
        if aborted_by_us:
            failure = f"Bulk job {job['id']} aborted: {timed_out}"
        elif info["state"] != "JobComplete":
            failure = f"Bulk job {job['id']} ended {info['state']}: {info.get('errorMessage') or 'no message'}"
        if failure:
            log.error("%s", failure)
        results = bulk_results(records, key_column, outcome, keys, failure)
        if aborted_by_us:
            raise BulkJobAborted(str(failure), results)
        return results

    def _close(self, job_url: str) -> None:
        """Mark the upload complete. A close whose answer never came (a timeout) is resent, and the resend is
        refused when the first one landed: the job is no longer Open. Then the job's own state says whether
        it was closed; a job being or done processing goes on to be polled instead of being counted failed."""
        try:
            self.request("PATCH", job_url, json={"state": "UploadComplete"})
        except RequestFailed:
            state = self.request("GET", job_url).json().get("state")
            if state not in {"UploadComplete", "InProgress", "JobComplete", "Failed"}:
                raise
            log.warning("the close of Bulk job %s was answered late; the job is %s", job_url.rsplit("/", 1)[-1], state)

    def _abort(self, job_url: str) -> None:
        try:
            self.request("PATCH", job_url, json={"state": "Aborted"})
        except RequestFailed as exc:
            log.warning("could not abort the Bulk job %s: %s", job_url.rsplit("/", 1)[-1], exc)

    def _wait_for_job(self, job_url: str) -> dict[str, Any]:
        settings = self.sf_settings
        deadline = time.monotonic() + settings.bulk_poll_timeout
        interval = settings.bulk_poll_interval
        while True:
            info = self.request("GET", job_url).json()
            if info["state"] in BULK_FINISHED:
                return info
            if time.monotonic() > deadline:
                raise BulkJobTimedOut(f"still {info['state']} after {settings.bulk_poll_timeout:g} s", retryable=True)
            self._sleep(interval)
            interval = min(interval * 1.5, settings.bulk_poll_max_interval)


# --- pure helpers (unit-tested) -------------------------------------------------------------------------
_USAGE = re.compile(r"^\s*([a-z-]+)=(\d+)/(\d+)")


def parse_limit_info(value: str | None) -> tuple[int, int] | None:
    """The tightest allocation in ``Sforce-Limit-Info`` as (used, limit).

    The header lists entries separated by ``;`` (or ``,``): ``api-usage=25/5000`` for the org and, when the
    connected app has its own cap, ``per-app-api-usage=17/250(appName=x)``. Whichever has fewer requests left
    is the one that stops the run.
    """
    if not value:
        return None
    entries = []
    for part in re.split(r"[;,]", value):
        found = _USAGE.match(part)
        if found and found.group(1) in {"api-usage", "per-app-api-usage"}:
            entries.append((int(found.group(2)), int(found.group(3))))
    return min(entries, key=lambda usage: usage[1] - usage[0]) if entries else None


def is_daily_limit(message: str, usage: tuple[int, int] | None) -> bool:
    """``REQUEST_LIMIT_EXCEEDED`` means the daily allocation only when it says so (``TotalRequests``) or the
    last ``Sforce-Limit-Info`` showed it spent; otherwise it is the short-lived concurrent-request limit."""
    if "TotalRequests" in message:
        return True
    return usage is not None and usage[0] >= usage[1]


def check_login_url(login_url: str, *, jwt: bool) -> None:
    """Refuse before asking what Salesforce refuses: client credentials on the generic login hosts."""
    host = (urlsplit(login_url).hostname or "").lower()
    if not jwt and host in GENERIC_LOGIN_HOSTS:
        raise ConfigurationError(
            f"SALESFORCE_LOGIN_URL is {login_url}: the client-credentials flow works only on your org's My Domain "
            "URL (e.g. https://yourco.my.salesforce.com); Salesforce answers 'request not supported on this "
            "domain' on login.salesforce.com and test.salesforce.com"
        )


def org_id_from_identity_url(url: str) -> str | None:
    """``https://login.salesforce.com/id/00D.../005...`` -> the org id (``00D...``)."""
    parts = [p for p in urlsplit(url).path.split("/") if p]
    if len(parts) >= 3 and parts[-3] == "id" and parts[-2].startswith("00D"):
        return parts[-2]
    return None


def _object_of(records: Sequence[OutgoingRecord]) -> str:
    address = records[0].address
    assert address is not None, "records are addressed before they are sent"
    return address.object


def _match_of(records: Sequence[OutgoingRecord]) -> str:
    return records[0].address.match if records[0].address else BY_KEY


def _record_id(record: OutgoingRecord) -> str:
    assert record.address is not None
    return record.address.value


def _bulk_key(record: OutgoingRecord) -> str:
    """What the key column of a Bulk CSV row holds: the Id (update) or leadscore's key (upsert)."""
    return record.key if record.address is None or record.address.match == BY_KEY else record.address.value


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
            message = "; ".join(f"{e.get('statusCode')}: {e.get('message')}" for e in errors)
            code = _reject_code(str(errors[0].get("statusCode")), errors[0].get("fields") or ())
            results.append(RecordResult.failed(record.key, code, message))
    return results


def _reject_code(status_code: str, fields: Sequence[str] = ()) -> str:
    """The CRM's code, except that every flavour of "no such record" is ``not_found`` — when it is about the
    record itself; a bad reference in a field (an unknown OwnerId) keeps Salesforce's code."""
    about_record = not fields or "Id" in fields
    return NOT_FOUND if status_code in NOT_FOUND_CODES and about_record else status_code or "ERROR"


def soql_literal(value: str) -> str:
    """A SOQL string literal: backslashes and quotes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def bulk_csv_chunks(
    records: Sequence[OutgoingRecord],
    columns: Sequence[str],
    max_bytes: int,
    key_of: Callable[[OutgoingRecord], str] = lambda record: record.key,
) -> Iterator[tuple[list[OutgoingRecord], str]]:
    """Split records into CSV documents of at most ``max_bytes`` each (Bulk 2.0 caps a job's upload); the
    first column holds ``key_of(record)``. Documents are yielded one at a time, each built when the previous
    job is done: at 2x the bench scale the Lead jobs' CSV is ~600 MiB, which a list would hold all at once."""
    header = csv_text([columns])
    current: list[OutgoingRecord] = []
    lines = [header]
    size = len(header.encode())
    for record in records:
        row = {columns[0]: key_of(record), **record.payload}
        line = csv_text([[salesforce_csv_value(row.get(c)) for c in columns]])
        line_size = len(line.encode())
        if current and size + line_size > max_bytes:
            yield current, "".join(lines)
            current, lines, size = [], [header], len(header.encode())
        current.append(record)
        lines.append(line)
        size += line_size
    if current:
        yield current, "".join(lines)


def bulk_results(
    records: Sequence[OutgoingRecord],
    key_column: str,
    outcome: Mapping[str, Iterable[Mapping[str, str]]],
    keys: Mapping[str, str] | None = None,
    failure: str | None = None,
) -> list[RecordResult]:
    """Join Bulk 2.0 result CSVs back to records on the key column (their order is not guaranteed).

    ``keys`` maps the key column's values (Ids in update mode) to record keys. What the job wrote counts as
    confirmed even when the job as a whole ended ``Failed`` (``failure`` is then the reason for the rest).
    """
    keys = keys or {r.key: r.key for r in records}
    by_key: dict[str, RecordResult] = {}
    for row in outcome.get("successfulResults", []):
        key = keys.get(row.get(key_column, ""), "")
        by_key[key] = RecordResult(key, True, created=row.get("sf__Created") == "true", crm_id=row.get("sf__Id"))
    for row in outcome.get("failedResults", []):
        key = keys.get(row.get(key_column, ""), "")
        error = row.get("sf__Error", "")
        by_key[key] = RecordResult.failed(key, _reject_code(error.split(":", 1)[0]), error)
    for row in outcome.get("unprocessedrecords", []):
        key = keys.get(row.get(key_column, ""), "")
        by_key[key] = RecordResult.failed(key, "UNPROCESSED", failure or "Bulk job did not process this record")
    missing = failure or "missing from the Bulk job's results"
    return [by_key.get(r.key) or RecordResult.failed(r.key, "UNCONFIRMED", missing) for r in records]


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
