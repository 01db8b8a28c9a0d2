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
from activation.salesforce_ids import make_salesforce_id
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
    return SalesforceDestination(
        credentials, SalesforceSettings(login_url=sandbox.salesforce_login_url, http=http, **settings)
    )


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


# --- the company: the same people and companies in the warehouse (with their CRM ids) and in the CRM ------
def hubspot_contact_id(i: int) -> str:
    return str(51_000_000_000 + i)


def salesforce_lead_id(i: int) -> str:
    return make_salesforce_id("00Q", 1_000 + i)


def salesforce_contact_id(i: int) -> str | None:
    """Every fourth lead was converted: it lives on as a Contact (its Lead stays, read-only)."""
    return make_salesforce_id("003", 1_000 + i) if i % 4 == 0 else None


def hubspot_company_id(i: int) -> str:
    return str(9_100_000_000 + i)


def salesforce_account_id(i: int) -> str:
    return make_salesforce_id("001", 500 + i)


def write_leads(
    conn: duckdb.DuckDBPyConnection,
    count: int,
    *,
    as_of: str = "2026-11-02",
    start: int = 0,
    score_shift: float = 0.0,
    replace: bool = True,
) -> None:
    """``lead_scores`` rows for leads start..start+count-1 on ``as_of``; deterministic values. A replace also
    writes ``lead_crm_ids`` for those leads (HubSpot id, Salesforce Lead id, a Contact id for every 4th)."""
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
    if replace:
        write_lead_ids(conn, range(start, start + count))


def write_lead_ids(conn: duckdb.DuckDBPyConnection, numbers: range) -> None:
    rows = [
        (f"L-{i:07d}", f"lead{i}@example.com", hubspot_contact_id(i), salesforce_lead_id(i), salesforce_contact_id(i))
        for i in numbers
    ]
    conn.execute(
        "CREATE OR REPLACE TABLE lead_crm_ids (lead_id VARCHAR, email VARCHAR, hubspot_contact_id VARCHAR, "
        "salesforce_lead_id VARCHAR, salesforce_contact_id VARCHAR)"
    )
    if rows:
        conn.executemany("INSERT INTO lead_crm_ids VALUES (?, ?, ?, ?, ?)", rows)


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
    conn.execute(
        "CREATE OR REPLACE TABLE account_crm_ids (account_id VARCHAR, hubspot_company_id VARCHAR, "
        "salesforce_account_id VARCHAR)"
    )
    rows = [(f"A-{i:05d}", hubspot_company_id(i), salesforce_account_id(i)) for i in range(count)]
    if rows:
        conn.executemany("INSERT INTO account_crm_ids VALUES (?, ?, ?)", rows)


def seed_crm(sandbox: SandboxHandle, leads: int = 0, accounts: int = 0, *, start: int = 0) -> None:
    """Put the company's records into the CRM sandbox, with the ids the warehouse exports (see write_*)."""
    numbers = range(start, start + leads)
    app = sandbox.app
    app.seed_hubspot(
        "contacts",
        [{"id": hubspot_contact_id(i), "properties": {"email": f"lead{i}@example.com", "lastname": f"L{i}"}}
         for i in numbers],
    )  # fmt: skip
    app.seed_salesforce(
        "Lead",
        [{"Id": salesforce_lead_id(i), "LastName": f"L{i}", "Company": "Acme", "Email": f"lead{i}@example.com",
          "IsConverted": salesforce_contact_id(i) is not None, "ConvertedContactId": salesforce_contact_id(i)}
         for i in numbers],
    )  # fmt: skip
    app.seed_salesforce(
        "Contact",
        [{"Id": salesforce_contact_id(i), "LastName": f"L{i}", "Email": f"lead{i}@example.com"}
         for i in numbers if salesforce_contact_id(i)],
    )  # fmt: skip
    app.seed_hubspot(
        "companies", [{"id": hubspot_company_id(i), "properties": {"name": f"Account {i}"}} for i in range(accounts)]
    )
    app.seed_salesforce("Account", [{"Id": salesforce_account_id(i), "Name": f"Account {i}"} for i in range(accounts)])


@pytest.fixture
def company() -> Callable[..., None]:
    return seed_crm


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
        if report.to_send_new + report.to_update + report.to_clear == 0:
            return reports
        if between is not None:
            between(run)
    raise AssertionError(f"no convergence after {max_runs} runs: {[r.as_dict() for r in reports[-3:]]}")


@pytest.fixture
def converge() -> Callable[..., list[SyncReport]]:
    return sync_until_done


def expected_payloads(conn: duckdb.DuckDBPyConnection, destination: Any, obj: Any) -> dict[str, dict[str, Any]]:
    """What the CRM must hold per record id: the destination's encoding of the latest warehouse rows, at the
    record each row is addressed to."""
    from activation.destination import resolve_address
    from activation.sync import read_desired

    target = obj.target(destination.name)
    expected = {}
    for row in read_desired(conn, obj, target.identity_columns):
        address = resolve_address(target, str(row[obj.key_column]), row)
        if address is not None:
            expected[address.value] = destination.encode(obj, row)
    return expected


@pytest.fixture
def expected() -> Callable[..., dict[str, dict[str, Any]]]:
    return expected_payloads


def hubspot_state(sandbox: SandboxHandle, object_type: str) -> dict[str, dict[str, str]]:
    """CRM records keyed by their HubSpot id."""
    return {o["id"]: o["properties"] for o in sandbox.admin.hubspot_objects(object_type)}


def salesforce_state(sandbox: SandboxHandle, sobject: str) -> dict[str, dict[str, Any]]:
    """CRM records keyed by their Salesforce Id."""
    return {r["Id"]: r for r in sandbox.admin.salesforce_records(sobject)}


@pytest.fixture
def crm_hubspot() -> Callable[..., dict[str, dict[str, str]]]:
    return hubspot_state


@pytest.fixture
def crm_salesforce() -> Callable[..., dict[str, dict[str, Any]]]:
    return salesforce_state


def assert_hubspot_matches(crm: dict[str, dict[str, str]], expected: dict[str, dict[str, Any]]) -> None:
    """Every expected record holds exactly its payload (empty strings = property absent)."""
    for record_id, payload in expected.items():
        assert record_id in crm, f"{record_id} missing in HubSpot"
        for name, value in payload.items():
            got = crm[record_id].get(name, "")
            assert got == value, f"{record_id}.{name}: {got!r} != {value!r}"


def assert_salesforce_matches(crm: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]]) -> None:
    for record_id, payload in expected.items():
        assert record_id in crm, f"{record_id} missing in Salesforce"
        for name, value in payload.items():
            assert crm[record_id].get(name) == value, f"{record_id}.{name}: {crm[record_id].get(name)!r} != {value!r}"


@pytest.fixture
def matches() -> dict[str, Callable[..., None]]:
    return {"hubspot": assert_hubspot_matches, "salesforce": assert_salesforce_matches}
