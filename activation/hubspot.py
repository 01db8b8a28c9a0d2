"""HubSpot CRM v3 destination: private-app token, custom properties, batch update of existing records.

Update mode (the default) writes onto the contacts and companies that exist, by their HubSpot record id, with
``batch/update`` (the id in ``id``, no ``idProperty``: ``hs_object_id`` is not a unique property). Contacts
exported without their id are found by e-mail with ``batch/read`` (``idProperty: email``) first — never with
``batch/upsert`` by e-mail, which would create the contacts it does not find, and never with the search API
(5 requests/s, 10,000 results). An id HubSpot does not know is a per-record ``not_found`` reject. Upsert mode
(opt-in) uses ``batch/upsert`` on a unique property leadscore creates.

Create mode (tasks) uses ``batch/create`` with each task's association to its contact, and never resends a
create that may have landed (:class:`activation.errors.OutcomeUnknown`). Tasks carry their key in a
property leadscore creates (not unique-valued: HubSpot does not offer that on activities); the search API,
used only for that key and only after a lost answer, tells whether a task exists. HubSpot's search index
trails writes, so such a lookup waits ``search_settle_seconds`` after the write it checks. Owners written
into ``hubspot_owner_id`` are checked against ``GET /crm/v3/owners`` (active owners only) before sending,
since an invalid owner fails the whole batch like any invalid value.

Every input carries ``objectWriteTraceId`` = the record key, which is how a 207's errors are tied back to
records. One invalid value fails the whole batch with a 400 (nothing of it is written): the client rejects
what the property definitions already refuse before sending, and the engine splits a refused batch until
the record at fault stands alone.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from activation.destination import BY_EMAIL, BY_KEY, NOT_FOUND, MappedDestination, OutgoingRecord, RecordResult
from activation.encoding import hubspot_value
from activation.errors import AuthenticationError, BatchConflict, ConfigurationError, RequestFailed, checked_secret
from activation.http import ApiClient, DailyBudget, HttpSettings, Outcome, Verdict, parse_wait, response_excerpt
from activation.mapping import CREATE, UPSERT, DestinationTarget, FieldMapping, ObjectMapping
from activation.ratelimit import RateLimiter
from activation.redact import get_logger, register_secret

log = get_logger(__name__)

DEFAULT_BASE_URL = "https://api.hubapi.com"
# Requests per rolling 10 s and per day, by portal tier (crm-api-contracts.md); every value overridable.
TIER_LIMITS: dict[str, tuple[int, int]] = {
    "free": (100, 250_000),
    "starter": (100, 250_000),
    "professional": (190, 650_000),
    "enterprise": (190, 1_000_000),
}
MAX_BATCH_INPUTS = 100
MAX_SEARCH_VALUES = 100  # values of one IN filter *(unverified)*
SEARCH_PAGE = 200  # the search API's largest page
OWNER_PROPERTY = "hubspot_owner_id"
# Error codes of a 400 VALIDATION_ERROR that blame a value of some record (split the batch to find it), as
# opposed to the request's shape or the portal's schema (unknown or read-only property: fix the mapping).
VALUE_ERROR_CODES = {
    "INVALID_EMAIL", "INVALID_OPTION", "INVALID_DECIMAL", "INVALID_INTEGER", "INVALID_LONG", "INVALID_DATE",
    "INVALID_DATETIME", "INVALID_BOOLEAN", "TOO_LONG", "INVALID_PHONE_NUMBER", "INVALID_URL",
    "INVALID_OWNER_ID", "INVALID_ASSOCIATION", "REQUIRED_FIELD",
}  # fmt: skip
_EMBEDDED_CODE = re.compile(r'"error"\s*:\s*"([A-Z_]+)"')
DEFAULT_GROUPS = {"contacts": "contactinformation", "companies": "companyinformation", "tasks": "task"}
# Logical type -> (HubSpot type, fieldType) used when leadscore creates a property.
PROPERTY_TYPES = {
    "string": ("string", "text"),
    "text": ("string", "textarea"),
    "number": ("number", "number"),
    "integer": ("number", "number"),
    "date": ("date", "date"),
    "datetime": ("datetime", "date"),
    "bool": ("bool", "booleancheckbox"),
}
# Existing property types leadscore can write each logical type into.
COMPATIBLE_TYPES = {
    "string": {"string", "enumeration"},
    "text": {"string"},
    "number": {"number"},
    "integer": {"number"},
    "date": {"date"},
    "datetime": {"datetime"},
    "bool": {"bool", "enumeration"},
}


@dataclass(frozen=True)
class HubSpotSettings:
    base_url: str = DEFAULT_BASE_URL
    tier: str = "starter"  # the lowest: a wrong guess costs speed, not 429s (headers correct it upwards)
    requests_per_window: int | None = None  # default: from the tier
    window_seconds: float = 10.0
    headroom: int = 5  # requests left unused per window: the server counts arrivals, we count sends
    http: HttpSettings = field(default_factory=HttpSettings)
    search_per_second: int = 4  # the search API's own limit is about 5/s per token
    # How long after a write its lookup by search is trusted (HubSpot's index trails writes by seconds).
    search_settle_seconds: float = 30.0

    def window_limit(self) -> int:
        if self.tier not in TIER_LIMITS:
            raise ConfigurationError(f"unknown HubSpot tier {self.tier!r}; use one of {', '.join(TIER_LIMITS)}")
        return self.requests_per_window or TIER_LIMITS[self.tier][0]


class HubSpotDestination(MappedDestination, ApiClient):
    name = "hubspot"
    encode_value = staticmethod(hubspot_value)
    batch_size = MAX_BATCH_INPUTS
    bulk_threshold = None

    def __init__(
        self,
        access_token: str,
        settings: HubSpotSettings | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not access_token:
            raise ConfigurationError("a HubSpot private-app access token is required (HUBSPOT_ACCESS_TOKEN)")
        register_secret(access_token)
        self._token = access_token
        self.hub_settings = settings = settings or HubSpotSettings()
        limit = max(1, settings.window_limit() - settings.headroom)
        limiter = RateLimiter(limit, settings.window_seconds, sleep=sleep)
        super().__init__(settings=settings.http, limiter=limiter, logger=log, sleep=sleep)
        self.base_url = settings.base_url.rstrip("/")
        self.daily_budget = DailyBudget("the HubSpot daily request limit (X-HubSpot-RateLimit-Daily)")
        self._properties: dict[str, dict[str, Mapping[str, Any]]] = {}  # object type -> name -> definition
        self._portal_id: str | None = None
        self._search_limiter = RateLimiter(max(1, settings.search_per_second), 1.0, sleep=sleep)
        self.lookup_settle_seconds = settings.search_settle_seconds
        self._owners: set[str] | None = None  # active owner ids; None: not known (not needed, or no scope)

    @classmethod
    def from_env(cls, env: Mapping[str, str], **settings: Any) -> HubSpotDestination:
        """Build from the values of ``HUBSPOT_ACCESS_TOKEN``, ``HUBSPOT_BASE_URL`` and ``HUBSPOT_TIER``."""
        defaults = {"base_url": env.get("HUBSPOT_BASE_URL") or DEFAULT_BASE_URL}
        if env.get("HUBSPOT_TIER"):
            defaults["tier"] = env["HUBSPOT_TIER"].lower()
        token = checked_secret(env.get("HUBSPOT_ACCESS_TOKEN", ""), "HUBSPOT_ACCESS_TOKEN")
        return cls(token, HubSpotSettings(**{**defaults, **settings}))

    # --- ApiClient hooks ---------------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def before_request(self) -> None:
        self.daily_budget.reserve()

    def observe(self, response: requests.Response) -> None:
        headers = response.headers
        daily_remaining = headers.get("X-HubSpot-RateLimit-Daily-Remaining", "")
        if daily_remaining.isdigit():
            self.daily_budget.announce(int(daily_remaining))
        announced = headers.get("X-HubSpot-RateLimit-Max")
        interval = headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
        if announced and interval and self.limiter is not None:
            wanted = max(1, int(announced) - self.hub_settings.headroom)
            if wanted != self.limiter.max_requests:
                log.info("HubSpot announces %s requests per %s ms; pacing to %d", announced, interval, wanted)
                self.limiter.configure(wanted, int(interval) / 1000)

    def classify(self, response: requests.Response) -> Verdict:
        status = response.status_code
        if 200 <= status < 300:
            return Verdict.ok()
        message = _error_message(response)
        if status == 401:
            return Verdict(Outcome.AUTH, f"HubSpot rejected the access token (401): {message}")
        if status == 403:
            return Verdict(Outcome.AUTH, f"the HubSpot private app lacks a scope (403): {message}")
        if status == 429:
            if _json(response).get("policyName") == "DAILY":
                return Verdict(Outcome.DAILY_LIMIT, f"HubSpot daily limit reached: {message}")
            return Verdict(Outcome.RATE_LIMITED, message, wait=parse_wait(response) or self._window_wait(response))
        if status == 409:
            return Verdict(Outcome.CONFLICT, f"HubSpot 409: {message}")
        if status == 400:
            code = value_error_code(_json(response))
            if code:
                return Verdict(Outcome.INVALID, f"HubSpot 400 {code}: {message}", code=code)
        if status == 423:
            return Verdict(Outcome.RETRY, f"HubSpot 423 locked: {message}", wait=2.0)
        if status >= 500:
            return Verdict(Outcome.RETRY, f"HubSpot {status}: {message}")
        return Verdict(Outcome.FAIL, f"HubSpot {status}: {message}")

    @staticmethod
    def _window_wait(response: requests.Response) -> float | None:
        """Without Retry-After, wait a tenth of the announced window before trying again."""
        interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
        return int(interval) / 10_000 if interval and interval.isdigit() else None

    # --- identity and schema ----------------------------------------------------------------------
    def identify(self) -> str:
        """The portal id (Hub ID) of the token's account: sync state belongs to one portal."""
        if self._portal_id is None:
            try:
                body = self.request("GET", f"{self.base_url}/account-info/v3/details").json()
            except (AuthenticationError, RequestFailed) as exc:
                # Some apps may not read account-info (403) or a portal may not serve it (404): the legacy
                # endpoint answers the same question. A bad token (401) fails there too, with its message.
                if isinstance(exc, RequestFailed) and exc.status not in (403, 404):
                    raise
                log.info("HubSpot account-info refused (%s); asking /integrations/v1/me", exc)
                body = self.request("GET", f"{self.base_url}/integrations/v1/me").json()
            portal = body.get("portalId") if isinstance(body, dict) else None
            if portal in (None, ""):
                raise ConfigurationError(f"HubSpot account info carries no portalId: {str(body)[:200]}")
            self._portal_id = str(portal)
        return self._portal_id

    def prepare(self, obj: ObjectMapping) -> None:
        """Create leadscore's property group and missing properties; refuse a property of the wrong type.

        The definitions found are kept for :meth:`check`."""
        target = self.target(obj)
        if any(name == OWNER_PROPERTY for _, name in obj.fields_for(self.name)) and self._owners is None:
            self._owners = self._active_owners()
        if target.object in self._properties:
            return
        url = f"{self.base_url}/crm/v3/properties/{target.object}"
        existing = {p["name"]: p for p in self.request("GET", url).json().get("results", [])}
        wanted = [_property_definition(f, n, target) for f, n in obj.fields_for(self.name)]
        if target.mode in (UPSERT, CREATE):
            wanted.insert(0, _id_property_definition(obj, target))
        problems, missing = [], []
        for definition, logical_type in wanted:
            found = existing.get(definition["name"])
            if found is None:
                missing.append(definition)
            elif logical_type == "id" and not found.get("hasUniqueValue"):
                problems.append(
                    f"{target.object}.{definition['name']} exists but does not have unique values; HubSpot can "
                    "only upsert by a unique property (create another one with hasUniqueValue, or use mode update)"
                )
            elif logical_type != "id" and found.get("type") not in COMPATIBLE_TYPES[logical_type]:
                problems.append(
                    f"{target.object}.{definition['name']} has type {found.get('type')!r}; leadscore writes "
                    f"{logical_type} values and expects type {definition['type']!r}. Rename the mapped property in "
                    "mapping.yaml or change the property in HubSpot"
                )
        if problems:
            raise ConfigurationError("HubSpot properties do not fit the mapping:\n  - " + "\n  - ".join(problems))
        if missing:
            self._ensure_group(target.object, target.property_group)
            for definition in missing:
                log.info("creating HubSpot property %s.%s", target.object, definition["name"])
                try:
                    self.request("POST", url, json=definition)
                except BatchConflict:  # created meanwhile by a concurrent run: the next prepare checks it
                    log.info("HubSpot property %s.%s already exists", target.object, definition["name"])
                existing[definition["name"]] = definition
        self._properties[target.object] = existing

    def check(self, obj: ObjectMapping, record: OutgoingRecord) -> RecordResult | None:
        """Reject locally a value HubSpot would refuse for the whole batch: an option a dropdown lacks, an
        owner that is not an active owner of the portal."""
        properties = self._properties.get(self.target(obj).object, {})
        for name, value in record.payload.items():
            if name == OWNER_PROPERTY:
                if value and self._owners is not None and str(value) not in self._owners:
                    reason = f"{name}: {value} is not an active owner of this portal (unknown or deactivated)"
                    return RecordResult.failed(record.key, "INVALID_OWNER_ID", reason)
                continue
            problem = property_value_problem(properties.get(name), value)
            if problem:
                return RecordResult.failed(record.key, "INVALID_OPTION", f"{name}: {problem}")
        return None

    def _active_owners(self) -> set[str] | None:
        """The ids of the portal's active owners (``GET /crm/v3/owners``, archived ones are not listed);
        None when the token may not read them (then HubSpot's own 400 and the batch split catch bad ones)."""
        owners: set[str] = set()
        after: str | None = None
        try:
            while True:
                url = f"{self.base_url}/crm/v3/owners?limit=500" + (f"&after={after}" if after else "")
                body = self.request("GET", url).json()
                owners |= {str(o["id"]) for o in body.get("results") or [] if not o.get("archived")}
                after = ((body.get("paging") or {}).get("next") or {}).get("after")
                if not after:
                    return owners
        except AuthenticationError as exc:
            log.warning("cannot list HubSpot owners (%s): owners are checked by HubSpot only", exc)
            return None

    def _ensure_group(self, object_type: str, group: str | None) -> None:
        if not group:
            return
        url = f"{self.base_url}/crm/v3/properties/{object_type}/groups"
        names = {g["name"] for g in self.request("GET", url).json().get("results", [])}
        if group not in names:
            log.info("creating HubSpot property group %s.%s", object_type, group)
            self.request(
                "POST", url, json={"name": group, "label": group.replace("_", " ").title(), "displayOrder": -1}
            )

    # --- records -----------------------------------------------------------------------------------
    def send_batch(self, obj: ObjectMapping, records: Sequence[OutgoingRecord]) -> list[RecordResult]:
        """Write one batch of records found the same way: by record id, or by key in upsert mode. (Records
        addressed by e-mail were found first, by :meth:`resolve`.)"""
        if len(records) > MAX_BATCH_INPUTS:
            raise ValueError(f"HubSpot batches hold at most {MAX_BATCH_INPUTS} inputs, got {len(records)}")
        if not records:
            return []
        address = records[0].address
        assert address is not None and address.match != BY_EMAIL, "e-mail addresses are resolved before sending"
        target = self.target(obj)
        if target.mode == CREATE:
            return self._create(target, records)
        if address.match == BY_KEY:
            return self._upsert(target, records)
        ids = [r.address.value for r in records if r.address]
        inputs = [
            {"id": record_id, "properties": dict(r.payload), "objectWriteTraceId": r.key}
            for r, record_id in zip(records, ids, strict=True)
        ]
        url = f"{self.base_url}/crm/v3/objects/{address.object}/batch/update"
        body = self.request("POST", url, json={"inputs": inputs}, accept=_confirms_something).json()
        return update_results(records, ids, body)

    def resolve(self, obj: ObjectMapping, records: Sequence[OutgoingRecord]) -> dict[str, str]:
        """Find contacts by e-mail with ``batch/read`` (``idProperty: email``), 100 at a time: unlike
        ``batch/upsert`` by e-mail, it never creates the contacts it does not find."""
        found: dict[str, str] = {}
        target = self.target(obj)
        for start in range(0, len(records), MAX_BATCH_INPUTS):
            chunk = [r for r in records[start : start + MAX_BATCH_INPUTS] if r.address]
            object_type = chunk[0].address.object if chunk and chunk[0].address else "contacts"
            if target.mode == CREATE and target.attach is not None:  # the record a new one is attached to
                object_type = target.attach.routes[0].object
            emails = sorted({r.address.value for r in chunk if r.address})
            body = {"idProperty": "email", "inputs": [{"id": e} for e in emails], "properties": ["email"]}
            url = f"{self.base_url}/crm/v3/objects/{object_type}/batch/read"
            by_email = contacts_by_email(self.request("POST", url, json=body).json())
            found.update((r.key, by_email[r.address.value]) for r in chunk if r.address and r.address.value in by_email)
        return found

    def _upsert(self, target: DestinationTarget, records: Sequence[OutgoingRecord]) -> list[RecordResult]:
        """Upsert mode (opt-in): ``batch/upsert`` on leadscore's unique property; creates missing records."""
        inputs = [
            {"idProperty": target.id_field, "id": r.key, "properties": dict(r.payload), "objectWriteTraceId": r.key}
            for r in records
        ]
        url = f"{self.base_url}/crm/v3/objects/{target.object}/batch/upsert"
        body = self.request("POST", url, json={"inputs": inputs}, accept=_confirms_something).json()
        return batch_results(records, body, target.id_field or "")

    def _create(self, target: DestinationTarget, records: Sequence[OutgoingRecord]) -> list[RecordResult]:
        """Create mode: ``batch/create``, each input associated with its record (the address's value) and
        carrying its key in the key property. Never resent blindly: an unanswered batch raises OutcomeUnknown."""
        assert target.attach is not None and target.id_field is not None
        kind = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": target.attach.association_type_id}]
        inputs = [
            {
                "properties": {**r.payload, target.id_field: r.key},
                "associations": [{"to": {"id": r.address.value}, "types": kind}] if r.address else [],
                "objectWriteTraceId": r.key,
            }
            for r in records
        ]
        url = f"{self.base_url}/crm/v3/objects/{target.object}/batch/create"
        body = self.request("POST", url, json={"inputs": inputs}, accept=_confirms_something, idempotent=False)
        return [
            dataclasses.replace(r, created=True) if r.ok else r
            for r in batch_results(records, body.json(), target.id_field)
        ]

    def find_created(self, obj: ObjectMapping, keys: Sequence[str]) -> dict[str, str]:
        """Create mode: the tasks that carry these keys, by search (``IN`` on the key property, 100 values a
        request, paged), at the search API's own pace. When a key was created twice (by an older version),
        the oldest record is the one kept."""
        target = self.target(obj)
        found: dict[str, str] = {}
        url = f"{self.base_url}/crm/v3/objects/{target.object}/search"
        for start in range(0, len(keys), MAX_SEARCH_VALUES):
            # IN matches lower-case input only (the search index lower-cases values): ask in lower case and map
            # each hit back to the key as leadscore spells it.
            spelled = {key.lower(): key for key in keys[start : start + MAX_SEARCH_VALUES]}
            chunk = sorted(spelled)
            after: str | None = None
            while True:
                body: dict[str, Any] = {
                    "filterGroups": [{"filters": [{"propertyName": target.id_field, "operator": "IN",
                                                   "values": chunk}]}],
                    "properties": [target.id_field],
                    "limit": SEARCH_PAGE,
                }  # fmt: skip
                if after:
                    body["after"] = after
                self._search_limiter.acquire()
                answer = self.request("POST", url, json=body).json()
                for result in answer.get("results") or []:
                    stored = str((result.get("properties") or {}).get(target.id_field) or "")
                    key = spelled.get(stored.lower())
                    if key is not None and (key not in found or int(result["id"]) < int(found[key])):
                        found[key] = str(result["id"])
                after = ((answer.get("paging") or {}).get("next") or {}).get("after")
                if not after:
                    break
        return found

    def send_bulk(
        self, obj: ObjectMapping, records: Sequence[OutgoingRecord]
    ) -> Iterator[tuple[list[OutgoingRecord], list[RecordResult]]]:
        raise NotImplementedError("HubSpot has no bulk path; the engine batches by 100")


def batch_results(records: Sequence[OutgoingRecord], body: Mapping[str, Any], id_field: str) -> list[RecordResult]:
    """One result per record from a batch/upsert answer (200 or 207); pure, so it is unit-tested.

    A record is confirmed only when a result names it (by ``objectWriteTraceId``, else by its id property).
    Errors are tied back by ``objectWriteTraceId``; a record neither confirmed nor named in an error
    failed with the errors nobody could tie (or as "unconfirmed").
    """
    confirmed: dict[str, Mapping[str, Any]] = {}
    for result in body.get("results") or []:
        key = result.get("objectWriteTraceId") or (result.get("properties") or {}).get(id_field)
        if key:
            confirmed[str(key)] = result
    failed: dict[str, tuple[str, str]] = {}
    untied: list[str] = []
    for error in body.get("errors") or []:
        text = _describe_error(error)
        traces = _trace_ids(error)
        for trace in traces:
            failed[trace] = (str(error.get("category") or "ERROR"), text)
        if not traces:
            untied.append(text)
    results = []
    for record in records:
        if record.key in failed:
            results.append(RecordResult.failed(record.key, *failed[record.key]))
        elif record.key in confirmed:
            result = confirmed[record.key]
            results.append(RecordResult(record.key, True, created=bool(result.get("new")), crm_id=result.get("id")))
        else:
            reason = "; ".join(untied) or "HubSpot returned no result for this record"
            results.append(RecordResult.failed(record.key, "UNCONFIRMED", reason))
    return results


def update_results(
    records: Sequence[OutgoingRecord], ids: Sequence[str], body: Mapping[str, Any]
) -> list[RecordResult]:
    """One result per record from a ``batch/update`` answer (200 or 207); pure, so it is unit-tested.

    Results and errors are tied back by ``objectWriteTraceId`` when HubSpot echoes it, else by record id.
    An id HubSpot reports as not found is a ``not_found`` reject; a record nobody mentions is unconfirmed.
    """
    key_of_id = {record_id: r.key for r, record_id in zip(records, ids, strict=True)}
    confirmed: dict[str, str] = {}
    for result in body.get("results") or []:
        key = result.get("objectWriteTraceId") or key_of_id.get(str(result.get("id")))
        if key:
            confirmed[str(key)] = str(result.get("id"))
    failed: dict[str, tuple[str, str]] = {}
    untied: list[str] = []
    for error in body.get("errors") or []:
        category = str(error.get("category") or "ERROR")
        code = NOT_FOUND if category == "OBJECT_NOT_FOUND" else category
        context = error.get("context") or {}
        keys = _trace_ids(error) or [key_of_id[i] for i in map(str, context.get("ids") or []) if i in key_of_id]
        for key in keys:
            failed[key] = (code, f"{category}: {_describe_error(error)}")
        if not keys:
            untied.append(_describe_error(error))
    results = []
    for record in records:
        if record.key in failed:
            results.append(RecordResult.failed(record.key, *failed[record.key]))
        elif record.key in confirmed:
            results.append(RecordResult(record.key, True, crm_id=confirmed[record.key]))
        else:
            reason = "; ".join(untied) or "HubSpot returned no result for this record"
            results.append(RecordResult.failed(record.key, "UNCONFIRMED", reason))
    return results


def contacts_by_email(body: Mapping[str, Any]) -> dict[str, str]:
    """Lower-cased e-mail -> contact id from a ``batch/read`` answer by e-mail (HubSpot matches addresses
    case-insensitively and stores them lower-cased)."""
    found = {}
    for result in body.get("results") or []:
        email = (result.get("properties") or {}).get("email")
        if email and result.get("id"):
            found[str(email).strip().lower()] = str(result["id"])
    return found


def value_error_code(body: Mapping[str, Any]) -> str | None:
    """The value error a 400 VALIDATION_ERROR blames (``INVALID_OPTION``...), or None when the 400 is about
    something else (the request's shape, an unknown property): only the former is worth splitting for.

    Real HubSpot names the code inside its message (``Property values were not valid: [{..."error":"X"...}]``);
    some answers also list ``errors`` with a ``code``.
    """
    if body.get("category") != "VALIDATION_ERROR":
        return None
    codes = [str(e.get("code")) for e in body.get("errors") or [] if isinstance(e, dict) and e.get("code")]
    codes += _EMBEDDED_CODE.findall(str(body.get("message") or ""))
    if not codes or any(code not in VALUE_ERROR_CODES for code in codes):
        return None
    return codes[0]


def property_value_problem(definition: Mapping[str, Any] | None, value: Any) -> str | None:
    """Why HubSpot would refuse ``value`` for a property (from its definition), or None."""
    if definition is None or value in ("", None) or definition.get("type") != "enumeration":
        return None
    options = {str(o.get("value")) for o in definition.get("options") or []}
    chosen = str(value).split(";") if definition.get("fieldType") == "checkbox" else [str(value)]
    missing = [c for c in chosen if c not in options]
    if missing and options:
        return f"{missing[0]!r} is not one of the dropdown's options {sorted(options)[:10]}"
    return None


def _trace_ids(error: Mapping[str, Any]) -> list[str]:
    context = error.get("context") or {}
    found = error.get("objectWriteTraceId") or context.get("objectWriteTraceId") or []
    return [str(t) for t in ([found] if isinstance(found, str) else found)]


def _describe_error(error: Mapping[str, Any]) -> str:
    details = "; ".join(str(e.get("message")) for e in error.get("errors") or [] if e.get("message"))
    message = str(error.get("message") or "error")
    return f"{message}: {details}" if details else message


def _confirms_something(response: requests.Response) -> Verdict:
    """The known trap: a 2xx batch answer with neither results nor errors is a failure, not a success."""
    body = _json(response)
    if not body.get("results") and not body.get("errors"):
        return Verdict(Outcome.RETRY, f"2xx without results or errors ({response_excerpt(response, 200)})")
    return Verdict.ok()


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_message(response: requests.Response) -> str:
    body = _json(response)
    return str(body.get("message") or response_excerpt(response, 200))


def _group_name(target: DestinationTarget) -> str:
    """leadscore's own group when the mapping names one, else the object's standard information group."""
    return target.property_group or DEFAULT_GROUPS.get(target.object, "contactinformation")


def _id_property_definition(obj: ObjectMapping, target: DestinationTarget) -> tuple[dict[str, Any], str]:
    if target.mode == CREATE:  # looked up after a lost answer; unique values are not offered on activities
        description = f"leadscore's {obj.key_column}: which alert made this record (one record per alert)."
        definition = {"name": target.id_field, "label": target.id_label, "type": "string", "fieldType": "text",
                      "groupName": _group_name(target), "description": description}  # fmt: skip
        return definition, "string"
    definition = {
        "name": target.id_field,
        "label": target.id_label,
        "type": "string",
        "fieldType": "text",
        "groupName": _group_name(target),
        "description": f"leadscore's {obj.key_column}; the unique key leadscore upserts by.",
        "hasUniqueValue": True,
    }
    return definition, "id"


def _property_definition(field: FieldMapping, name: str, target: DestinationTarget) -> tuple[dict[str, Any], str]:
    typ, field_type = PROPERTY_TYPES[field.type]
    definition: dict[str, Any] = {
        "name": name,
        "label": field.label,
        "type": typ,
        "fieldType": field_type,
        "groupName": _group_name(target),
        "description": field.description,
    }
    if typ == "bool":
        definition["options"] = [
            {"label": "Yes", "value": "true", "displayOrder": 0},
            {"label": "No", "value": "false", "displayOrder": 1},
        ]
    return definition, field.type
