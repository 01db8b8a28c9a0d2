"""Contract tests of the sandbox's HubSpot API, over real HTTP (crm-api-contracts.md, HubSpot section)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from activation.sandbox import SandboxHandle
from activation.sandbox.config import ALL_HUBSPOT_SCOPES

TOKEN = "pat-sandbox-0000-leadscore"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def call(sandbox: SandboxHandle, method: str, path: str, body: Any = None, token: str = TOKEN) -> requests.Response:
    return requests.request(
        method, f"{sandbox.url}{path}", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def create_id_property(sandbox: SandboxHandle, object_type: str = "contacts", name: str = "leadscore_lead_id") -> None:
    body = {
        "name": name,
        "label": "Id",
        "type": "string",
        "fieldType": "text",
        "groupName": "contactinformation" if object_type == "contacts" else "companyinformation",
        "hasUniqueValue": True,
    }
    assert call(sandbox, "POST", f"/crm/v3/properties/{object_type}", body).status_code == 201


def create_property(sandbox: SandboxHandle, name: str, typ: str = "number", field_type: str = "number") -> None:
    body = {"name": name, "label": name, "type": typ, "fieldType": field_type, "groupName": "contactinformation"}
    assert call(sandbox, "POST", "/crm/v3/properties/contacts", body).status_code == 201


def upsert_input(key: str, **properties: Any) -> dict[str, Any]:
    return {"idProperty": "leadscore_lead_id", "id": key, "properties": properties, "objectWriteTraceId": key}


@pytest.fixture
def portal(sandbox: SandboxHandle) -> SandboxHandle:
    create_id_property(sandbox)
    create_property(sandbox, "leadscore_score")
    return sandbox


# --- auth ----------------------------------------------------------------------------------------------
def test_bad_token_is_401(sandbox: SandboxHandle) -> None:
    response = call(sandbox, "GET", "/crm/v3/properties/contacts", token="wrong")
    assert response.status_code == 401
    assert response.json()["category"] == "INVALID_AUTHENTICATION"


def test_missing_header_is_401(sandbox: SandboxHandle) -> None:
    assert requests.get(f"{sandbox.url}/crm/v3/properties/contacts", timeout=10).status_code == 401


def test_missing_scope_is_403(start_sandbox: Callable[..., SandboxHandle]) -> None:
    read_only = tuple(s for s in ALL_HUBSPOT_SCOPES if not s.endswith(".write"))
    sandbox = start_sandbox(hubspot_tokens={"read-only-token": read_only})
    assert call(sandbox, "GET", "/crm/v3/properties/contacts", token="read-only-token").status_code == 200
    response = call(sandbox, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": []}, token="read-only-token")
    assert response.status_code == 403
    assert response.json()["category"] == "MISSING_SCOPES"
    assert "crm.objects.contacts.write" in str(response.json()["errors"])


# --- properties and groups --------------------------------------------------------------------------------
def test_properties_list_create_and_get(sandbox: SandboxHandle) -> None:
    listed = {p["name"]: p for p in call(sandbox, "GET", "/crm/v3/properties/contacts").json()["results"]}
    assert listed["email"]["hasUniqueValue"] is True
    assert listed["hs_object_id"]["hasUniqueValue"] is False
    create_property(sandbox, "leadscore_tier", "string", "text")
    got = call(sandbox, "GET", "/crm/v3/properties/contacts/leadscore_tier").json()
    assert (got["type"], got["fieldType"], got["groupName"]) == ("string", "text", "contactinformation")
    duplicate = {
        "name": "leadscore_tier",
        "label": "x",
        "type": "string",
        "fieldType": "text",
        "groupName": "contactinformation",
    }
    assert call(sandbox, "POST", "/crm/v3/properties/contacts", duplicate).status_code == 409
    assert call(sandbox, "GET", "/crm/v3/properties/contacts/nope").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x1", "label": "x", "type": "number", "fieldType": "text", "groupName": "contactinformation"},
        {"name": "x2", "label": "x", "type": "weird", "fieldType": "text", "groupName": "contactinformation"},
        {"name": "x3", "label": "x", "type": "string", "fieldType": "text", "groupName": "no_such_group"},
        {"name": "x4", "type": "string", "fieldType": "text", "groupName": "contactinformation"},
    ],
)
def test_invalid_property_definitions_are_400(sandbox: SandboxHandle, body: dict[str, Any]) -> None:
    assert call(sandbox, "POST", "/crm/v3/properties/contacts", body).status_code == 400


def test_unique_properties_are_capped(start_sandbox: Callable[..., SandboxHandle]) -> None:
    sandbox = start_sandbox(hubspot_max_unique_properties=1)
    create_id_property(sandbox, name="first_unique")
    body = {
        "name": "second",
        "label": "x",
        "type": "string",
        "fieldType": "text",
        "groupName": "contactinformation",
        "hasUniqueValue": True,
    }
    assert call(sandbox, "POST", "/crm/v3/properties/contacts", body).status_code == 400


def test_property_groups(sandbox: SandboxHandle) -> None:
    body = {"name": "leadscore", "label": "Leadscore", "displayOrder": -1}
    assert call(sandbox, "POST", "/crm/v3/properties/companies/groups", body).status_code == 201
    assert call(sandbox, "POST", "/crm/v3/properties/companies/groups", body).status_code == 409
    names = [g["name"] for g in call(sandbox, "GET", "/crm/v3/properties/companies/groups").json()["results"]]
    assert "leadscore" in names and "companyinformation" in names


# --- batch upsert -------------------------------------------------------------------------------------------
def test_upsert_creates_then_updates(portal: SandboxHandle) -> None:
    first = call(
        portal, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": [upsert_input("L-1", leadscore_score="87")]}
    )
    assert first.status_code == 200
    body = first.json()
    assert body["status"] == "COMPLETE" and {"requestedAt", "startedAt", "completedAt"} <= body.keys()
    assert body["results"][0]["new"] is True
    again = call(
        portal, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": [upsert_input("L-1", leadscore_score="88")]}
    )
    assert again.json()["results"][0]["new"] is False
    assert again.json()["results"][0]["id"] == body["results"][0]["id"]
    stored = portal.admin.hubspot_objects("contacts")
    assert len(stored) == 1 and stored[0]["properties"]["leadscore_score"] == "88"


def test_empty_string_clears_a_property(portal: SandboxHandle) -> None:
    call(
        portal, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": [upsert_input("L-1", leadscore_score="87")]}
    )
    call(portal, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": [upsert_input("L-1", leadscore_score="")]})
    assert "leadscore_score" not in portal.admin.hubspot_objects("contacts")[0]["properties"]


@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        ([upsert_input("L-1", leadscore_score=87)], "must be a string"),
        ([upsert_input(f"L-{i}", leadscore_score="1") for i in range(101)], "at most 100"),
        ([upsert_input("L-1", leadscore_unknown="1")], "do not exist"),
        ([upsert_input("L-1", leadscore_score="1"), upsert_input("L-1", leadscore_score="2")], "Duplicate IDs"),
        ([{"id": "L-1", "properties": {"leadscore_score": "1"}}], "idProperty"),
        ([{**upsert_input("L-1"), "idProperty": "hs_object_id"}], "non-unique"),
        ([{**upsert_input("L-1"), "idProperty": "leadscore_score"}], "non-unique"),
        ([upsert_input("L-1", hs_object_id="5")], "read-only"),
    ],
)
def test_upsert_rejects_what_hubspot_rejects(
    portal: SandboxHandle, inputs: list[dict[str, Any]], fragment: str
) -> None:
    response = call(portal, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": inputs})
    assert response.status_code == 400
    assert fragment in response.json()["message"]
    assert portal.admin.hubspot_objects("contacts") == []


def test_malformed_json_is_400(portal: SandboxHandle) -> None:
    response = requests.post(
        f"{portal.url}/crm/v3/objects/contacts/batch/upsert", data=b"{nope", headers=AUTH, timeout=10
    )
    assert response.status_code == 400


def test_partial_failure_is_207_tied_to_trace_ids(portal: SandboxHandle) -> None:
    inputs = [upsert_input("L-1", leadscore_score="1"), upsert_input("L-2", leadscore_score="not a number")]
    response = call(portal, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": inputs})
    assert response.status_code == 207
    body = response.json()
    assert body["numErrors"] == 1
    assert body["errors"][0]["context"]["objectWriteTraceId"] == ["L-2"]
    assert body["errors"][0]["errors"][0]["code"] == "INVALID_DECIMAL"
    assert [r["objectWriteTraceId"] for r in body["results"]] == ["L-1"]


def test_date_properties_need_midnight_epoch_millis(portal: SandboxHandle) -> None:
    create_property(portal, "leadscore_day", "date", "date")
    inputs = [upsert_input("L-1", leadscore_day="1767312000000"), upsert_input("L-2", leadscore_day="2026-01-02")]
    body = call(portal, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": inputs}).json()
    assert [r["objectWriteTraceId"] for r in body["results"]] == ["L-1"]
    assert body["errors"][0]["context"]["objectWriteTraceId"] == ["L-2"]


def test_unique_value_owned_by_another_record_fails_the_whole_batch_with_409(portal: SandboxHandle) -> None:
    call(portal, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": [upsert_input("L-1", email="a@x.io")]})
    inputs = [upsert_input("L-2", leadscore_score="1"), upsert_input("L-3", email="a@x.io")]
    response = call(portal, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": inputs})
    assert response.status_code == 409
    assert response.json()["category"] == "CONFLICT"
    assert len(portal.admin.hubspot_objects("contacts")) == 1  # nothing of the batch was written


def test_upsert_by_email(sandbox: SandboxHandle) -> None:
    inputs = [{"idProperty": "email", "id": "a@x.io", "properties": {"firstname": "Ada"}, "objectWriteTraceId": "1"}]
    assert call(sandbox, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": inputs}).json()["results"][0][
        "new"
    ]
    assert sandbox.admin.hubspot_objects("contacts")[0]["properties"] == {"email": "a@x.io", "firstname": "Ada"}


# --- update and read ----------------------------------------------------------------------------------------
def test_batch_update_by_hubspot_id_and_read(portal: SandboxHandle) -> None:
    created = call(
        portal, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": [upsert_input("L-1", leadscore_score="1")]}
    )
    hs_id = created.json()["results"][0]["id"]
    update = {"inputs": [{"id": hs_id, "properties": {"leadscore_score": "2"}}, {"id": "999999", "properties": {}}]}
    response = call(portal, "POST", "/crm/v3/objects/contacts/batch/update", update)
    assert response.status_code == 207
    assert response.json()["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    read = call(
        portal,
        "POST",
        "/crm/v3/objects/contacts/batch/read",
        {
            "idProperty": "leadscore_lead_id",
            "properties": ["leadscore_score"],
            "inputs": [{"id": "L-1"}, {"id": "L-404"}],
        },
    )
    assert read.status_code == 207
    assert read.json()["results"][0]["properties"]["leadscore_score"] == "2"
    assert read.json()["errors"][0]["context"]["ids"] == ["L-404"]


def test_batch_update_by_non_unique_property_fails(portal: SandboxHandle) -> None:
    body = {"inputs": [{"id": "x", "idProperty": "firstname", "properties": {}}]}
    assert call(portal, "POST", "/crm/v3/objects/contacts/batch/update", body).status_code == 400


# --- rate limits ------------------------------------------------------------------------------------------------
def test_rate_limit_headers_on_every_response(sandbox: SandboxHandle) -> None:
    headers = call(sandbox, "GET", "/crm/v3/properties/contacts").headers
    assert headers["X-HubSpot-RateLimit-Max"] == "190"
    assert headers["X-HubSpot-RateLimit-Remaining"] == "189"
    assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "1000"
    assert headers["X-HubSpot-RateLimit-Daily"] == "650000"
    assert headers["X-HubSpot-RateLimit-Daily-Remaining"] == "649999"


@pytest.mark.parametrize(("tier", "per_window", "daily"), [("starter", 100, 250_000), ("enterprise", 190, 1_000_000)])
def test_tiers_set_the_limits(
    start_sandbox: Callable[..., SandboxHandle], tier: str, per_window: int, daily: int
) -> None:
    headers = call(start_sandbox(hubspot_tier=tier), "GET", "/crm/v3/properties/contacts").headers
    assert (headers["X-HubSpot-RateLimit-Max"], headers["X-HubSpot-RateLimit-Daily"]) == (str(per_window), str(daily))


def test_ten_secondly_limit_answers_429_with_the_documented_body(start_sandbox: Callable[..., SandboxHandle]) -> None:
    sandbox = start_sandbox(hubspot_max_per_window=3, hubspot_window_seconds=30.0)
    statuses = [call(sandbox, "GET", "/crm/v3/properties/contacts").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = call(sandbox, "GET", "/crm/v3/properties/contacts")
    body = response.json()
    assert body["status"] == "error" and body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert body["correlationId"]
    assert float(response.headers["Retry-After"]) > 0


def test_daily_limit_answers_429_daily(start_sandbox: Callable[..., SandboxHandle]) -> None:
    sandbox = start_sandbox(hubspot_daily_limit=2)
    assert [call(sandbox, "GET", "/crm/v3/properties/contacts").status_code for _ in range(2)] == [200, 200]
    response = call(sandbox, "GET", "/crm/v3/properties/contacts")
    assert response.status_code == 429
    assert response.json()["policyName"] == "DAILY"
    assert response.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
    sandbox.admin.reset_limits()
    assert call(sandbox, "GET", "/crm/v3/properties/contacts").status_code == 200


# --- injected faults ---------------------------------------------------------------------------------------------
def test_injected_faults_are_deterministic_per_seed(start_sandbox: Callable[..., SandboxHandle]) -> None:
    def statuses(seed: int) -> list[int]:
        sandbox = start_sandbox(faults={"seed": seed, "p_5xx": 0.5})
        return [call(sandbox, "GET", "/crm/v3/properties/contacts").status_code for _ in range(12)]

    first, again = statuses(7), statuses(7)
    assert first == again
    assert set(first) == {200, 503}


def test_injected_empty_2xx_writes_nothing(portal: SandboxHandle) -> None:
    portal.admin.set_faults(p_empty_2xx=1.0)
    response = call(
        portal, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": [upsert_input("L-1", leadscore_score="1")]}
    )
    assert response.status_code == 200 and response.json()["results"] == [] and response.json()["errors"] == []
    assert portal.admin.hubspot_objects("contacts") == []


def test_conflict_keys_fail_any_batch_containing_them(portal: SandboxHandle) -> None:
    portal.admin.set_faults(conflict_keys=["L-2"])
    inputs = [upsert_input("L-1", leadscore_score="1"), upsert_input("L-2", leadscore_score="1")]
    assert call(portal, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": inputs}).status_code == 409
    assert call(portal, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": inputs[:1]}).status_code == 200


def test_unknown_fault_settings_are_refused(sandbox: SandboxHandle) -> None:
    with pytest.raises(requests.HTTPError):
        sandbox.admin.set_faults(p_meteor=1.0)


def test_binds_loopback_only(sandbox: SandboxHandle) -> None:
    assert sandbox.url.startswith("http://127.0.0.1:")
