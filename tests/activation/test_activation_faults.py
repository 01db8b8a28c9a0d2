"""Fault-injection runs: whatever the sandbox throws, repeated syncs end with the CRM matching the warehouse
— nothing lost, nothing duplicated — and each scenario checks that its fault really happened."""

from __future__ import annotations

from typing import Any

import pytest

from activation.http import HttpSettings
from activation.ratelimit import RetryPolicy
from activation.sync import SyncOptions, sync_object
from tests.activation.conftest import hubspot_contact_id, salesforce_contact_id, salesforce_lead_id

HUBSPOT_FAULTS = {
    "429 storm": ({"p_429": 0.5}, "429"),
    "5xx": ({"p_5xx": 0.4}, "5xx"),
    "timeouts": ({"p_timeout": 0.3, "timeout_delay": 0.6}, "timeout"),
    "partial failures": ({"p_record_error": 0.2}, None),
    "409 conflicts": ({"p_conflict": 0.4}, None),
    "empty 2xx": ({"p_empty_2xx": 0.4}, None),
    "everything at once": (
        {"p_429": 0.2, "p_5xx": 0.2, "p_timeout": 0.1, "timeout_delay": 0.6, "p_record_error": 0.1, "p_conflict": 0.2},
        "5xx",
    ),
}
# Short client timeout so injected timeouts (0.6 s) trip it; few attempts so some batches exhaust retries
# and are left for the next run — the path under test.
FAULTY_HTTP = HttpSettings(
    timeout=0.3,
    pool_size=4,
    retry=RetryPolicy(max_attempts=3, base_delay=0.005, max_delay=0.02, max_retry_after=0.02),
    max_rate_limited_attempts=4,
)


@pytest.mark.parametrize("scenario", list(HUBSPOT_FAULTS))
def test_hubspot_converges_under_faults(
    scenario,
    start_sandbox,
    hubspot_client,
    warehouse,
    leads_table,
    company,
    mapping,
    converge,
    expected,
    crm_hubspot,
    matches,
) -> None:
    faults, injected_kind = HUBSPOT_FAULTS[scenario]
    sandbox = start_sandbox(faults={"seed": 11, **faults})
    leads_table(warehouse, 400)
    company(sandbox, leads=400)
    client, leads = hubspot_client(sandbox, http=FAULTY_HTTP), mapping.object("leads")
    reports = converge(warehouse, client, leads)
    # Change some scores and drop some leads, then converge again under the same faults.
    warehouse.execute("UPDATE lead_scores SET score = score + 2 WHERE lead_id < 'L-0000100'")
    warehouse.execute("DELETE FROM lead_scores WHERE lead_id >= 'L-0000380'")
    reports += converge(warehouse, client, leads)
    crm = crm_hubspot(sandbox, "contacts")
    matches["hubspot"](crm, expected(warehouse, client, leads))
    assert len(crm) == 400, "nothing created, nothing lost"
    assert all(not any(p.startswith("leadscore_") for p in crm[hubspot_contact_id(i)]) for i in range(380, 400))
    stats = sandbox.admin.stats()
    if injected_kind:
        assert stats["injected"].get(injected_kind, 0) > 0
    else:
        assert sum(r.failed for r in reports) > 0 or stats["by_status"].get("409", 0) > 0
    assert warehouse.execute("SELECT count(*) FROM activation.rejects").fetchone()[0] == 0


def test_retry_after_is_honoured_by_every_worker(
    start_sandbox, hubspot_client, warehouse, leads_table, company, mapping
) -> None:
    sandbox = start_sandbox(faults={"seed": 3, "p_429": 0.3})  # injected 429s carry Retry-After: 0.100
    leads_table(warehouse, 300)
    company(sandbox, leads=300)
    http = HttpSettings(timeout=5.0, retry=RetryPolicy(base_delay=0.005, max_delay=0.02, max_retry_after=1.0))
    client = hubspot_client(sandbox, http=http)
    pauses: list[float] = []
    pause = client.limiter.pause
    client.limiter.pause = lambda seconds: (pauses.append(seconds), pause(seconds))  # type: ignore[method-assign]
    report = sync_object(warehouse, client, mapping.object("leads"))
    assert report.status == "complete" and report.updated == 300
    injected = sandbox.admin.stats()["injected"]["429"]
    assert injected > 0 and report.rate_limited == injected
    # Every 429 paused the shared limiter (so all workers wait) for exactly the server's Retry-After.
    assert pauses == [0.1] * injected


def test_hubspot_daily_limit_stops_cleanly_and_the_next_day_finishes(
    start_sandbox, hubspot_client, warehouse, leads_table, company, mapping, expected, crm_hubspot, matches
) -> None:
    sandbox = start_sandbox(hubspot_daily_limit=14)  # portal id + 9 schema calls + 4 batches
    leads_table(warehouse, 1000)
    company(sandbox, leads=1000)
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    report = sync_object(warehouse, client, leads, options=SyncOptions(workers=2))
    assert report.status == "daily_limit"
    assert report.updated == 400 and report.deferred == 600 and report.failed == 0
    assert sandbox.admin.stats()["by_status"].get("429", 0) == 0  # stopped on the header, before a 429
    assert warehouse.execute("SELECT count(*) FROM activation.sync_state").fetchone()[0] == 400
    assert warehouse.execute("SELECT count(*) FROM activation.rejects").fetchone()[0] == 0
    sandbox.admin.reset_limits()  # a new day
    final = sync_object(warehouse, hubspot_client(sandbox), leads)
    assert (final.status, final.updated, final.sent) == ("complete", 600, 600)
    matches["hubspot"](crm_hubspot(sandbox, "contacts"), expected(warehouse, client, leads))


def test_hubspot_daily_429_is_a_clean_stop_too(
    start_sandbox, hubspot_client, warehouse, leads_table, company, mapping
) -> None:
    sandbox = start_sandbox()
    leads_table(warehouse, 300)
    company(sandbox, leads=300)
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    client.identify()
    client.prepare(leads)
    sandbox.admin.set_limits(hubspot_daily_limit=1)  # already spent: the next call gets 429 DAILY
    report = sync_object(warehouse, client, leads, options=SyncOptions(workers=1))
    assert (report.status, report.sent, report.deferred) == ("daily_limit", 0, 300)
    assert "daily" in report.message
    # A portal whose allocation is spent before leadscore even learns which portal it is: a clean stop too.
    fresh = hubspot_client(sandbox)
    early = sync_object(warehouse, fresh, leads)
    assert (early.status, early.sent) == ("daily_limit", 0) and "daily" in early.message


SALESFORCE_FAULTS = {
    "5xx": {"p_5xx": 0.4},
    "timeouts": {"p_timeout": 0.3, "timeout_delay": 0.6},
    "locked rows": {"p_record_error": 0.2},
}


@pytest.mark.parametrize("bulk", [False, True], ids=["collections", "bulk"])
@pytest.mark.parametrize("scenario", list(SALESFORCE_FAULTS))
def test_salesforce_converges_under_faults(
    scenario,
    bulk,
    start_sandbox,
    salesforce_client,
    warehouse,
    leads_table,
    company,
    mapping,
    converge,
    expected,
    crm_salesforce,
    matches,
) -> None:
    sandbox = start_sandbox(faults={"seed": 5, **SALESFORCE_FAULTS[scenario]})
    leads_table(warehouse, 500)
    company(sandbox, leads=500)
    client = salesforce_client(sandbox, http=FAULTY_HTTP, bulk_threshold=100 if bulk else 10_000)
    leads = mapping.object("leads")
    reports = converge(warehouse, client, leads)
    warehouse.execute("DELETE FROM lead_scores WHERE lead_id >= 'L-0000450'")
    reports += converge(warehouse, client, leads)
    crm = {**crm_salesforce(sandbox, "Lead"), **crm_salesforce(sandbox, "Contact")}
    matches["salesforce"](crm, expected(warehouse, client, leads))
    assert len(crm) == 500 + 125, "500 Leads and the 125 Contacts of the converted ones: nothing created"
    assert not any(f.startswith("Leadscore_") for f in crm[salesforce_lead_id(499)])  # cleared
    assert not any(f.startswith("Leadscore_") for f in crm[salesforce_contact_id(496) or ""])
    assert len(reports) > 2  # the faults forced at least one extra run
    assert sandbox.admin.stats()["by_route"].get("salesforce.bulk.create", 0) > 0 or not bulk


def test_salesforce_session_expiry_mid_sync(
    start_sandbox, salesforce_client, warehouse, leads_table, company, mapping, expected, crm_salesforce, matches
) -> None:
    sandbox = start_sandbox()
    leads_table(warehouse, 1000)
    company(sandbox, leads=1000)
    client, leads = salesforce_client(sandbox), mapping.object("leads")

    expired: list[int] = []
    original = client.send_batch

    def expire_then_send(obj: Any, records: Any) -> Any:
        if not expired and records[0].key >= "L-0000400":
            expired.append(sandbox.admin.expire_salesforce_tokens())
        return original(obj, records)

    client.send_batch = expire_then_send  # type: ignore[method-assign]
    report = sync_object(warehouse, client, leads, options=SyncOptions(workers=1))
    assert (report.status, report.updated) == ("complete", 1000)
    assert expired and client.stats.snapshot()["reauthentications"] == 1
    crm = {**crm_salesforce(sandbox, "Lead"), **crm_salesforce(sandbox, "Contact")}
    matches["salesforce"](crm, expected(warehouse, client, leads))


@pytest.mark.parametrize("bulk", [False, True], ids=["collections", "bulk"])
def test_salesforce_daily_allocation_stops_cleanly(
    bulk,
    start_sandbox,
    salesforce_client,
    warehouse,
    leads_table,
    company,
    mapping,
    converge,
    expected,
    crm_salesforce,
    matches,
) -> None:
    sandbox = start_sandbox(salesforce_daily_limit=4)
    leads_table(warehouse, 1000)
    company(sandbox, leads=1000)
    client, leads = salesforce_client(sandbox, bulk_threshold=100 if bulk else 10_000), mapping.object("leads")
    report = sync_object(warehouse, client, leads, options=SyncOptions(workers=1))
    assert report.status == "daily_limit" and report.deferred > 0 and report.failed == 0
    # Two describes (Contact, Lead) and the two batches of the 250 Contacts fit in 4 requests.
    assert report.updated == (0 if bulk else 250)
    assert sandbox.admin.stats()["by_status"].get("403", 0) == 0  # stopped on Sforce-Limit-Info, not a 403

    def new_day(_: int) -> None:
        sandbox.admin.reset_limits()

    sandbox.admin.set_limits(salesforce_daily_limit=100_000)
    converge(warehouse, salesforce_client(sandbox, bulk_threshold=100 if bulk else 10_000), leads, between=new_day)
    crm = {**crm_salesforce(sandbox, "Lead"), **crm_salesforce(sandbox, "Contact")}
    matches["salesforce"](crm, expected(warehouse, client, leads))


def test_request_limit_exceeded_403_stops_cleanly(
    start_sandbox, salesforce_client, warehouse, leads_table, company, mapping
) -> None:
    sandbox = start_sandbox()
    leads_table(warehouse, 300)
    company(sandbox, leads=300)
    client, leads = salesforce_client(sandbox), mapping.object("leads")
    client.prepare(leads)
    sandbox.admin.set_limits(salesforce_daily_limit=1)  # another integration spent the allocation
    report = sync_object(warehouse, client, leads)
    assert (report.status, report.sent, report.deferred) == ("daily_limit", 0, 300)
    assert "REQUEST_LIMIT_EXCEEDED" in report.message


def test_the_short_lived_concurrency_limit_is_retried_not_taken_for_the_daily_one(
    start_sandbox, salesforce_client, warehouse, leads_table, company, mapping
) -> None:
    sandbox = start_sandbox(faults={"seed": 2, "p_concurrent_limit": 0.4})
    leads_table(warehouse, 600)
    company(sandbox, leads=600)
    patient = HttpSettings(timeout=5.0, retry=RetryPolicy(max_attempts=8, base_delay=0.005, max_delay=0.02))
    client = salesforce_client(sandbox, http=patient)
    report = sync_object(warehouse, client, mapping.object("leads"), options=SyncOptions(workers=1))
    assert sandbox.admin.stats()["injected"].get("concurrent_limit", 0) > 0
    assert (report.status, report.updated, report.failed) == ("complete", 600, 0)
    assert report.retries > 0
