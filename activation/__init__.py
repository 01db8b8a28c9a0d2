"""Reverse ETL: leadscore's warehouse -> HubSpot and Salesforce (pure Python; knows nothing of Dagster).

Public API (what the orchestration layer calls)::

    from activation import run_sync, SyncOptions
    reports = run_sync(conn, "hubspot")             # credentials from HUBSPOT_* env vars
    reports = run_sync(conn, "salesforce", dry_run=True)

and, to run against the local CRM sandbox instead of a real portal/org::

    from activation.sandbox import run_sandbox
    with run_sandbox(state_path="data/crm_sandbox.sqlite") as sandbox:
        run_sync(conn, "hubspot", env=sandbox.env())
"""

from activation.errors import (
    ActivationError,
    AuthenticationError,
    ConfigurationError,
    DailyLimitReached,
    RequestFailed,
)
from activation.mapping import DEFAULT_MAPPING_PATH, MappingError, SyncMapping, load_mapping
from activation.sync import SyncOptions, SyncReport, make_destination, run_sync, sync_object

__all__ = [
    "DEFAULT_MAPPING_PATH",
    "ActivationError",
    "AuthenticationError",
    "ConfigurationError",
    "DailyLimitReached",
    "MappingError",
    "RequestFailed",
    "SyncMapping",
    "SyncOptions",
    "SyncReport",
    "load_mapping",
    "make_destination",
    "run_sync",
    "sync_object",
]
