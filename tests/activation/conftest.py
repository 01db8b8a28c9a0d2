"""Fixtures for the activation tests: an in-process CRM sandbox, a temp warehouse, fast clients.

Retry backoff, Retry-After caps, rate windows and Bulk polling are shrunk so fault runs take milliseconds;
nothing here asserts on time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from activation.errors import RequestFailed
from activation.http import HttpSettings
from activation.hubspot import HubSpotDestination, HubSpotSettings
from activation.mapping import SyncMapping, load_mapping
from activation.ratelimit import RetryPolicy
from activation.salesforce import SalesforceCredentials, SalesforceDestination, SalesforceSettings
from activation.sandbox import SandboxHandle, run_sandbox
from activation.sandbox.config import DEFAULT_HUBSPOT_TOKEN
from activation.sync import SyncOptions, SyncReport, sync_object

FAST_RETRY = RetryPolicy(max_attempts=6, base_delay=0.005, max_delay=0.04, max_retry_after=0.05)
FAST_HTTP = HttpSettings(timeout=5.0, pool_size=4, retry=FAST_RETRY, max_rate_limited_attempts=12)
TOKEN = DEFAULT_HUBSPOT_TOKEN


@pytest.fixture
def mapping() -> SyncMapping:
    return load_mapping()


@pytest.fixture
def start_sandbox(tmp_path: Path) -> Iterator[Callable[..., SandboxHandle]]:
    """Factory: start a sandbox with SandboxConfig overrides; all are stopped at teardown."""
    with contextlib.ExitStack() as stack:
        count = 0

        def start(**overrides: Any) -> SandboxHandle:
            nonlocal count
            count += 1
            overrides.setdefault("hubspot_window_seconds", 1.0)
            overrides.setdefault("salesforce_bulk_polls_before_complete", 1)
            return stack.enter_context(run_sandbox(state_path=tmp_path / f"crm{count}.sqlite", **overrides))

        yield start


@pytest.fixture
def sandbox(start_sandbox: Callable[..., SandboxHandle]) -> SandboxHandle:
    return start_sandbox()


def hubspot_for(
    sandbox: SandboxHandle, *, token: str = TOKEN, http: HttpSettings = FAST_HTTP, **settings: Any
) -> HubSpotDestination:
    settings.setdefault("tier", "professional")
    settings.setdefault("window_seconds", sandbox.app.config.hubspot_window_seconds)
    return HubSpotDestination(token, HubSpotSettings(base_url=sandbox.url, http=http, **settings))


def salesforce_for(sandbox: SandboxHandle, *, http: HttpSettings = FAST_HTTP, **settings: Any) -> SalesforceDestination:
    config = sandbox.app.config
    credentials = SalesforceCredentials(config.salesforce_client_id, config.salesforce_client_secret)
    settings.setdefault("bulk_poll_interval", 0.001)
    return SalesforceDestination(credentials, SalesforceSettings(login_url=sandbox.url, http=http, **settings))


@pytest.fixture
def hubspot_client() -> Callable[..., HubSpotDestination]:
    return hubspot_for


@pytest.fixture
def salesforce_client() -> Callable[..., SalesforceDestination]:
    return salesforce_for


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    conn = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield conn
    conn.close()


def write_leads(
    conn: duckdb.DuckDBPyConnection,
    count: int,
    *,
    as_of: str = "2026-11-02",
    start: int = 0,
    score_shift: float = 0.0,
    replace: bool = True,
) -> None:
    """``lead_scores`` rows for leads start..start+count-1 on ``as_of``; deterministic values."""
    verb = "CREATE OR REPLACE TABLE lead_scores AS" if replace else "INSERT INTO lead_scores"
    conn.execute(
        f"""
        {verb}
        SELECT printf('L-%07d', i) AS lead_id, DATE '{as_of}' AS as_of,
               ((i * 37) % 1000) / 10.0 + ? AS score, ((i * 11) % 100)::DOUBLE AS fit_score,
               ((i * 7) % 100)::DOUBLE AS engagement_score, 'B' || (1 + i % 4)::VARCHAR AS tier,
               ['Visited pricing', 'Director title'] AS reasons, -1.5 AS score_change_7d,
               'lead_scoring/3' AS model_version
        FROM range(?, ?) t(i)
        """,
        [score_shift, start, start + count],
    )


def write_accounts(conn: duckdb.DuckDBPyConnection, count: int) -> None:
    conn.execute(
        """
        CREATE OR REPLACE TABLE account_metrics AS
        SELECT printf('A-%05d', i) AS account_id, DATE '2026-11-02' AS as_of,
               ['starter', 'professional', 'enterprise'][1 + i % 3] AS plan,
               (i % 40)::INTEGER AS seats, (i * 12.5)::DECIMAL(12, 2) AS mrr, (i * 150.0) AS arr,
               (i * 990.0) AS ltv, 'customer' AS customer_status, (i % 9)::INTEGER AS workspaces_created,
               (i % 30)::INTEGER AS active_users_30d, (i % 12)::BIGINT AS marketing_touches_30d,
               (i % 5)::BIGINT AS pricing_views_30d, NULL::DOUBLE AS open_pipeline_amount
        FROM range(?) t(i)
        """,
        [count],
    )


@pytest.fixture
def leads_table() -> Callable[..., None]:
    return write_leads


@pytest.fixture
def accounts_table() -> Callable[..., None]:
    return write_accounts


def sync_until_done(
    conn: duckdb.DuckDBPyConnection,
    destination: Any,
    obj: Any,
    *,
    max_runs: int = 15,
    options: SyncOptions | None = None,
    between: Callable[[int], None] | None = None,
) -> list[SyncReport]:
    """Run syncs until one finds nothing left to send; returns every report (fails after max_runs).

    A run that fails on a transient error (retries exhausted while checking the schema) raises, as it
    should for the orchestrator; like a scheduler, this helper simply runs again.
    """
    reports = []
    for run in range(max_runs):
        try:
            report = sync_object(conn, destination, obj, options=options or SyncOptions(workers=3))
        except RequestFailed as exc:
            assert exc.retryable, exc
            continue
        reports.append(report)
        if report.to_create + report.to_update + report.to_clear == 0:
            return reports
        if between is not None:
            between(run)
    raise AssertionError(f"no convergence after {max_runs} runs: {[r.as_dict() for r in reports[-3:]]}")


@pytest.fixture
def converge() -> Callable[..., list[SyncReport]]:
    return sync_until_done


def expected_payloads(conn: duckdb.DuckDBPyConnection, destination: Any, obj: Any) -> dict[str, dict[str, Any]]:
    """What the CRM must hold per key: the destination's encoding of the latest warehouse rows."""
    from activation.sync import read_desired

    return {str(row[obj.key_column]): destination.encode(obj, row) for row in read_desired(conn, obj)}


@pytest.fixture
def expected() -> Callable[..., dict[str, dict[str, Any]]]:
    return expected_payloads


def hubspot_state(sandbox: SandboxHandle, object_type: str, id_property: str) -> dict[str, dict[str, str]]:
    """CRM records keyed by leadscore's id; asserts no key is stored twice (nothing duplicated)."""
    objects = [o["properties"] for o in sandbox.admin.hubspot_objects(object_type)]
    keys = [p.get(id_property) for p in objects]
    assert len(keys) == len(set(keys)), "duplicate records in HubSpot"
    return {p[id_property]: p for p in objects}


def salesforce_state(sandbox: SandboxHandle, sobject: str, id_field: str) -> dict[str, dict[str, Any]]:
    records = sandbox.admin.salesforce_records(sobject)
    keys = [r.get(id_field) for r in records]
    assert len(keys) == len(set(keys)), "duplicate records in Salesforce"
    return {r[id_field]: r for r in records}


@pytest.fixture
def crm_hubspot() -> Callable[..., dict[str, dict[str, str]]]:
    return hubspot_state


@pytest.fixture
def crm_salesforce() -> Callable[..., dict[str, dict[str, Any]]]:
    return salesforce_state


def assert_hubspot_matches(crm: dict[str, dict[str, str]], expected: dict[str, dict[str, Any]]) -> None:
    """Every expected key holds exactly its payload (empty strings = property absent)."""
    for key, payload in expected.items():
        assert key in crm, f"{key} missing in HubSpot"
        for name, value in payload.items():
            assert crm[key].get(name, "") == value, f"{key}.{name}: {crm[key].get(name)!r} != {value!r}"


def assert_salesforce_matches(crm: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]]) -> None:
    for key, payload in expected.items():
        assert key in crm, f"{key} missing in Salesforce"
        for name, value in payload.items():
            assert crm[key].get(name) == value, f"{key}.{name}: {crm[key].get(name)!r} != {value!r}"


@pytest.fixture
def matches() -> dict[str, Callable[..., None]]:
    return {"hubspot": assert_hubspot_matches, "salesforce": assert_salesforce_matches}
