"""Settings of the CRM sandbox: credentials it accepts, limits it enforces, faults it injects."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

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
)

DEFAULT_HUBSPOT_TOKEN = "pat-sandbox-0000-leadscore"
DEFAULT_SALESFORCE_CLIENT_ID = "sandbox-consumer-key"
DEFAULT_SALESFORCE_CLIENT_SECRET = "sandbox-consumer-secret"
DEFAULT_SALESFORCE_USERNAME = "integration@leadscore.example"


@dataclass
class FaultConfig:
    """Probabilities (0..1) of injected faults; decisions are seeded so a run can be replayed.

    ``p_429`` applies to HubSpot (Salesforce REST has no 429). ``p_timeout`` holds the response for
    ``timeout_delay`` seconds *after* processing the request, like a real timeout where the write landed
    but the answer never arrived. ``p_record_error`` fails single records (HubSpot 207, Salesforce
    ``UNABLE_TO_LOCK_ROW``). ``p_conflict`` fails a whole HubSpot batch with 409. ``p_empty_2xx`` answers a
    HubSpot batch with the known 2xx-with-nothing-in-it trap. ``conflict_keys`` always 409 a HubSpot batch
    containing them (a record that clashes with CRM data), ``reject_keys`` always fail those records.
    """

    seed: int = 0
    p_429: float = 0.0
    p_5xx: float = 0.0
    p_timeout: float = 0.0
    timeout_delay: float = 1.0
    p_record_error: float = 0.0
    p_conflict: float = 0.0
    p_empty_2xx: float = 0.0
    latency: float = 0.0
    conflict_keys: list[str] = field(default_factory=list)
    reject_keys: list[str] = field(default_factory=list)

    def updated(self, changes: dict[str, Any]) -> FaultConfig:
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)} (known: {sorted(known)})")
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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

    salesforce_client_id: str = DEFAULT_SALESFORCE_CLIENT_ID
    salesforce_client_secret: str = DEFAULT_SALESFORCE_CLIENT_SECRET
    salesforce_username: str = DEFAULT_SALESFORCE_USERNAME
    salesforce_jwt_public_key_pem: str | None = None  # checked only when `cryptography` is importable
    salesforce_token_lifetime: float = 7200.0
    salesforce_daily_limit: int = 100_000
    salesforce_api_version: str = "62.0"
    salesforce_required_on_create: bool = False  # enforce LastName/Company (Lead) and Name (Account)
    # Deploy the leadscore custom fields of the default mapping at start (as an admin would have done).
    salesforce_deploy_leadscore_fields: bool = True
    salesforce_bulk_polls_before_complete: int = 1

    faults: FaultConfig = field(default_factory=FaultConfig)

    def hubspot_limits(self) -> tuple[int, int]:
        if self.hubspot_tier not in HUBSPOT_TIERS:
            raise ValueError(f"unknown HubSpot tier {self.hubspot_tier!r} (known: {', '.join(HUBSPOT_TIERS)})")
        per_window, daily = HUBSPOT_TIERS[self.hubspot_tier]
        return (self.hubspot_max_per_window or per_window, self.hubspot_daily_limit or daily)
