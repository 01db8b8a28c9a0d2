"""Settings of the CRM sandbox: credentials it accepts, limits it enforces, faults it injects, identities."""

from __future__ import annotations

import re
import types
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from activation.salesforce_ids import key_prefix, make_salesforce_id, normalize_salesforce_id

# HubSpot limits per portal tier (crm-api-contracts.md): requests per rolling ten seconds, per day.
HUBSPOT_TIERS: dict[str, tuple[int, int]] = {
    "free": (100, 250_000),
    "starter": (100, 250_000),
    "professional": (190, 650_000),
    "enterprise": (190, 1_000_000),
}

ALL_HUBSPOT_SCOPES = (
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.schemas.contacts.read",
    "crm.schemas.contacts.write",
    "crm.schemas.companies.read",
    "crm.schemas.companies.write",
    "crm.objects.owners.read",
)

DEFAULT_HUBSPOT_TOKEN = "pat-sandbox-0000-leadscore"
DEFAULT_SALESFORCE_CLIENT_ID = "sandbox-consumer-key"
DEFAULT_SALESFORCE_CLIENT_SECRET = "sandbox-consumer-secret"
DEFAULT_SALESFORCE_USERNAME = "integration@leadscore.example"
DEFAULT_SALESFORCE_USER_ID = make_salesforce_id("005", 1, "5g")
DEFAULT_MY_DOMAIN = "leadscore-sandbox"
SALESFORCE_APP_NAME = "leadscore"  # the connected app named in Sforce-Limit-Info's per-app entry
_MY_DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")


@dataclass
class FaultConfig:
    """Probabilities (0..1) of injected faults; decisions are seeded so a run can be replayed.

    ``p_429`` applies to HubSpot (Salesforce REST has no 429). ``p_timeout`` holds the response for
    ``timeout_delay`` seconds *after* processing the request, like a real timeout where the write landed
    but the answer never arrived. ``p_record_error`` fails single records (HubSpot 207, Salesforce
    ``UNABLE_TO_LOCK_ROW``). ``p_conflict`` fails a whole HubSpot batch with 409. ``p_empty_2xx`` answers a
    HubSpot batch with the known 2xx-with-nothing-in-it trap. ``conflict_keys`` always 409 a HubSpot batch
    containing them (a record that clashes with CRM data), ``reject_keys`` always fail those records.
    ``p_concurrent_limit`` refuses a Salesforce data request with the short-lived concurrent-request
    ``REQUEST_LIMIT_EXCEEDED`` before processing it (not charged to the daily allocation).
    ``bulk_fail_after`` makes every Bulk job process that many rows and then end ``Failed``.
    ``p_5xx_after_commit`` processes a request (its writes commit) and then answers 502/503/504 instead of the
    result; ``p_disconnect_after_commit`` processes it and then closes the connection without an answer. With
    ``p_timeout`` they are the ways a write lands without its client hearing so: what breaks exactly-once
    creation when a client simply resends.
    """

    seed: int = 0
    p_429: float = 0.0
    p_5xx: float = 0.0
    p_timeout: float = 0.0
    timeout_delay: float = 1.0
    p_record_error: float = 0.0
    p_conflict: float = 0.0
    p_empty_2xx: float = 0.0
    p_concurrent_limit: float = 0.0
    p_5xx_after_commit: float = 0.0
    p_disconnect_after_commit: float = 0.0
    latency: float = 0.0
    conflict_keys: list[str] = field(default_factory=list)
    reject_keys: list[str] = field(default_factory=list)
    bulk_fail_after: int | None = None
    # Seconds the answer to a Bulk job's close is held after the job was queued: a close that outlasts the
    # client's timeout (as a 100 MiB job's did at 2x the bench scale, when the sandbox processed it inside
    # the close).
    bulk_close_delay: float = 0.0
    # Seconds a closed Bulk job waits in the queue before it is processed (it reads UploadComplete meanwhile):
    # in a busy org the queue, not the job, is what a client waits for.
    bulk_queue_delay: float = 0.0

    def updated(self, changes: dict[str, Any]) -> FaultConfig:
        """A copy with ``changes`` applied; refuses unknown names and values of the wrong type, because a
        bad value would otherwise only fail later, inside some unrelated request."""
        hints = typing.get_type_hints(FaultConfig)
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)} (known: {sorted(known)})")
        for name, value in changes.items():
            check_setting(name, value, hints[name])
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_setting(name: str, value: Any, hint: Any) -> None:
    """Raise ValueError unless ``value`` fits the annotation ``hint`` (int, float, bool, str, list[str], X | None)."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if option is type(None) and value is None:
            return
        if option is float and isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return
        if option is int and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return
        if option in (bool, str) and isinstance(value, option):
            return
        if typing.get_origin(option) is list and isinstance(value, list) and all(isinstance(v, str) for v in value):
            return
    raise ValueError(f"{name}: {value!r} is not a valid {hint}")


@dataclass
class SandboxConfig:
    """Everything the sandbox can be told at start. Windows are shrinkable so tests need not wait 10 s."""

    hubspot_tier: str = "professional"
    hubspot_tokens: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {DEFAULT_HUBSPOT_TOKEN: ALL_HUBSPOT_SCOPES}
    )
    hubspot_window_seconds: float = 10.0
    hubspot_max_per_window: int | None = None  # None: from the tier
    hubspot_daily_limit: int | None = None  # None: from the tier
    hubspot_max_unique_properties: int = 10
    hubspot_search_per_second: int = 5  # the CRM search API's own limit, per token
    # HubSpot's search index trails writes: an object created this recently is not found by search yet.
    hubspot_search_lag_seconds: float = 0.0
    # None: the state file's own, drawn when it is created (each sandbox is its own portal and org).
    hubspot_portal_id: int | None = None

    salesforce_client_id: str = DEFAULT_SALESFORCE_CLIENT_ID
    salesforce_client_secret: str = DEFAULT_SALESFORCE_CLIENT_SECRET
    salesforce_username: str = DEFAULT_SALESFORCE_USERNAME
    salesforce_jwt_public_key_pem: str | None = None  # checked only when `cryptography` is importable
    salesforce_token_lifetime: float = 7200.0
    salesforce_daily_limit: int = 100_000
    salesforce_per_app_limit: int | None = None  # adds per-app-api-usage to Sforce-Limit-Info when set
    salesforce_api_version: str = "62.0"
    salesforce_required_on_create: bool = True  # REQUIRED_FIELD_MISSING for LastName/Company/Name on create
    # Deploy the leadscore custom fields of the default mapping at start (as an admin would have done).
    salesforce_deploy_leadscore_fields: bool = True
    salesforce_bulk_polls_before_complete: int = 1
    salesforce_query_batch_size: int = 2000  # SOQL records per page before nextRecordsUrl
    salesforce_org_id: str | None = None  # None: the state file's own, like the portal id
    salesforce_user_id: str = DEFAULT_SALESFORCE_USER_ID
    salesforce_my_domain: str = DEFAULT_MY_DOMAIN  # served under {url}/my/{salesforce_my_domain}

    # How long the server waits for a request body that is shorter than its Content-Length.
    body_read_timeout: float = 5.0

    faults: FaultConfig = field(default_factory=FaultConfig)

    def hubspot_limits(self) -> tuple[int, int]:
        if self.hubspot_tier not in HUBSPOT_TIERS:
            raise ValueError(f"unknown HubSpot tier {self.hubspot_tier!r} (known: {', '.join(HUBSPOT_TIERS)})")
        per_window, daily = HUBSPOT_TIERS[self.hubspot_tier]
        return (self.hubspot_max_per_window or per_window, self.hubspot_daily_limit or daily)

    def validate(self) -> None:
        """Fail at start on settings that would make the sandbox answer nonsense later."""
        self.hubspot_limits()
        for name, prefix in (("salesforce_org_id", "00D"), ("salesforce_user_id", "005")):
            if getattr(self, name) is None:
                continue  # taken from the state file at start
            canonical = normalize_salesforce_id(getattr(self, name))
            if canonical is None or key_prefix(canonical) != prefix:
                raise ValueError(f"{name} must be a Salesforce id with key prefix {prefix}")
            setattr(self, name, canonical)
        if not _MY_DOMAIN.match(self.salesforce_my_domain):
            raise ValueError("salesforce_my_domain: lower-case letters, digits and inner hyphens only")

    @property
    def salesforce_pod(self) -> str:
        """The 2 characters after the key prefix of the org id: new record ids carry the org's pod."""
        assert self.salesforce_org_id is not None, "the org id is settled when the sandbox starts"
        return self.salesforce_org_id[3:5]
