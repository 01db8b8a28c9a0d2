"""No credential ever reaches a log line or an exception message, across full syncs with faults and failures."""

from __future__ import annotations

import logging

import pytest

from activation.errors import ActivationError
from activation.http import HttpSettings
from activation.hubspot import HubSpotDestination, HubSpotSettings
from activation.ratelimit import RetryPolicy
from activation.redact import get_logger
from activation.salesforce import SalesforceCredentials, SalesforceDestination, SalesforceSettings
from activation.sandbox.config import ALL_HUBSPOT_SCOPES
from activation.sync import sync_object

FAST_HTTP = HttpSettings(timeout=5.0, retry=RetryPolicy(max_attempts=4, base_delay=0.005, max_delay=0.02))

HUBSPOT_TOKEN = "pat-na1-11112222-3333-4444-5555-666677778888"
SF_SECRET = "sf-consumer-secret-ABCDEF123456"


def test_no_token_in_logs_or_errors(
    start_sandbox, warehouse, leads_table, company, mapping, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = start_sandbox(
        hubspot_tokens={HUBSPOT_TOKEN: ALL_HUBSPOT_SCOPES},
        salesforce_client_secret=SF_SECRET,
        faults={"seed": 1, "p_5xx": 0.3, "p_record_error": 0.1},
    )
    leads_table(warehouse, 300)
    company(sandbox, leads=300)
    leads = mapping.object("leads")
    errors: list[str] = []
    with caplog.at_level(logging.DEBUG):
        hubspot = HubSpotDestination(
            HUBSPOT_TOKEN, HubSpotSettings(base_url=sandbox.url, tier="professional", http=FAST_HTTP)
        )
        salesforce = SalesforceDestination(
            SalesforceCredentials("sandbox-consumer-key", client_secret=SF_SECRET),
            SalesforceSettings(login_url=sandbox.salesforce_login_url, http=FAST_HTTP, bulk_poll_interval=0.001),
        )
        for destination in (hubspot, salesforce):
            for _ in range(3):
                try:
                    sync_object(warehouse, destination, leads)
                except ActivationError as exc:
                    errors.append(str(exc))
        sandbox.admin.expire_salesforce_tokens()
        warehouse.execute("UPDATE lead_scores SET score = score + 1")
        sync_object(warehouse, salesforce, leads)
        for bad in (
            HubSpotDestination(HUBSPOT_TOKEN + "-revoked", HubSpotSettings(base_url=sandbox.url, http=FAST_HTTP)),
            SalesforceDestination(
                SalesforceCredentials("sandbox-consumer-key", client_secret=SF_SECRET + "-old"),
                SalesforceSettings(login_url=sandbox.salesforce_login_url, http=FAST_HTTP),
            ),
        ):
            with pytest.raises(ActivationError) as failure:
                sync_object(warehouse, bad, leads)
            errors.append(str(failure.value))
            logging.getLogger("activation.test").error("sync failed: %s", failure.value)
        # Even code that carelessly logs request headers through a package logger leaks nothing.
        get_logger("activation.careless").debug("headers: %s %s", hubspot.auth_headers(), salesforce.auth_headers())
    assert "Bearer [REDACTED]" in caplog.text
    access_tokens = list(salesforce_tokens(sandbox))
    assert access_tokens, "the Salesforce client should have obtained tokens"
    text = caplog.text + "\n".join(errors)
    assert "rate" in text.lower() or "retry" in text.lower()  # the logs did record the faults
    for secret in (HUBSPOT_TOKEN, SF_SECRET, *access_tokens):
        assert secret not in text
    assert any("401" in e for e in errors)


def salesforce_tokens(sandbox) -> list[str]:
    return list(sandbox.app.salesforce._tokens)
