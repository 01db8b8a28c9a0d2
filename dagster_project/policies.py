"""Who owns each asset, how it is tagged and when it must be fresh, applied in one place.

``apply_policies`` takes the assets definitions of ``Definitions`` and returns them with, on every asset:

- **owners**: the team that answers for it, by group (sources: data engineering; the dbt layers: analytics;
  ml: the ML team; activation: revenue operations). Owners already set (e.g. from dbt meta) are kept.
- **tags**: ``layer`` (the group) and ``domain`` (what the data is about: leads, accounts, billing...).
- **freshness**: the assets a person relies on in the morning - the raw tables, ``lead_scores`` and the
  CRM syncs - must have materialised since midnight UTC by 06:00 UTC (the nightly starts at 02:00 UTC and
  builds yesterday, the latest complete day). The UI shows them failing their freshness policy otherwise.

The raw tables also report the newest ``_loaded_at`` they hold (``dagster/last_updated_timestamp``, see
``assets_sources.py``): an export that was landed on time but extracted long ago shows its real age.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence

from dagster import AssetKey, AssetsDefinition, AssetSpec, FreshnessPolicy, map_asset_specs

OWNERS_BY_GROUP: Mapping[str, str] = {
    "sources": "team:data-engineering",
    "staging": "team:analytics",
    "intermediate": "team:analytics",
    "marts": "team:analytics",
    "ml": "team:ml",
    "activation": "team:revops",
    "workflow": "team:revops",
}

# What an asset is about, by the first word of its name that says so (raw tables and dbt models alike).
DOMAIN_WORDS: Sequence[tuple[str, str]] = (
    ("sync", "crm"),
    ("task", "crm"),
    ("alert", "workflow"),
    ("routing", "workflow"),
    ("digest", "workflow"),
    ("crm_users", "crm"),
    ("crm_ids", "crm"),
    ("scor", "lead_scoring"),
    ("lead", "leads"),
    ("contact", "leads"),
    ("marketing", "marketing"),
    ("opportunit", "sales"),
    ("subscription", "billing"),
    ("invoice", "billing"),
    ("payment", "billing"),
    ("product", "product"),
    ("workspace", "product"),
    ("account", "accounts"),
    ("quarantine", "data_quality"),
    ("unknown_values", "data_quality"),
    ("data_window", "data_quality"),
)
DEFAULT_DOMAIN = "lead_scoring"

# The nightly runs at 02:00 UTC for yesterday; what it builds must be there by 06:00 UTC, and count only
# if it was built after midnight UTC (when yesterday became the latest complete day).
FRESH_BY_UTC = "0 6 * * *"
NIGHTLY_WINDOW = dt.timedelta(hours=6)
NIGHTLY_FRESHNESS = FreshnessPolicy.cron(deadline_cron=FRESH_BY_UTC, lower_bound_delta=NIGHTLY_WINDOW, timezone="UTC")
FRESH_BY_06_UTC = {AssetKey("lead_scores"), AssetKey("hubspot_sync"), AssetKey("salesforce_sync")}
RAW_PREFIX = "raw"


def owner_for(group_name: str | None) -> str:
    """The team that owns an asset of this group; refuses a group nobody was assigned (add it above)."""
    if group_name not in OWNERS_BY_GROUP:
        raise ValueError(f"no owner for asset group {group_name!r}: add it to OWNERS_BY_GROUP in {__name__}")
    return OWNERS_BY_GROUP[group_name]


def domain_for(key: AssetKey) -> str:
    name = key.path[-1]
    return next((domain for word, domain in DOMAIN_WORDS if word in name), DEFAULT_DOMAIN)


def freshness_for(key: AssetKey) -> FreshnessPolicy | None:
    if key in FRESH_BY_06_UTC or key.path[0] == RAW_PREFIX:
        return NIGHTLY_FRESHNESS
    return None


def apply_to_spec(spec: AssetSpec) -> AssetSpec:
    """One asset's owners, tags and freshness (attributes already set on the asset win)."""
    tags = {"layer": spec.group_name or "default", "domain": domain_for(spec.key)}
    spec = spec.merge_attributes(
        owners=[] if spec.owners else [owner_for(spec.group_name)],
        tags={k: v for k, v in tags.items() if k not in spec.tags},
    )
    policy = spec.freshness_policy or freshness_for(spec.key)
    return spec.replace_attributes(freshness_policy=policy) if policy else spec


def apply_policies(assets: Iterable[AssetsDefinition]) -> list[AssetsDefinition]:
    """The assets definitions with owners, tags and freshness applied to every asset they hold (multi-assets
    and ``@dbt_assets`` included); keys, ops, checks and everything else are unchanged."""
    return list(map_asset_specs(apply_to_spec, list(assets)))
