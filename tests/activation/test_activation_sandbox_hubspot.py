"""Contract tests of the sandbox's HubSpot API, over real HTTP (crm-api-contracts.md, HubSpot section)."""

from __future__ import annotations

import json
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
        ([upsert_input("L-1", leadscore_unknown="1")], "does not exist"),
        ([upsert_input("L-1", leadscore_score="1"), upsert_input("L-1", leadscore_score="2")], "Duplicate IDs"),
        ([{"id": "L-1", "properties": {"leadscore_score": "1"}}], "idProperty"),
        ([{**upsert_input("L-1"), "idProperty": "hs_object_id"}], "non-unique"),
        ([{**upsert_input("L-1"), "idProperty": "leadscore_score"}], "non-unique"),
        ([upsert_input("L-1", hs_object_id="5")], "read only property"),
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


def test_injected_record_failures_are_207_tied_to_trace_ids(portal: SandboxHandle) -> None:
    portal.admin.set_faults(reject_keys=["L-2"])
    inputs = [upsert_input("L-1", leadscore_score="1"), upsert_input("L-2", leadscore_score="2")]
    response = call(portal, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": inputs})
    assert response.status_code == 207
    body = response.json()
    assert body["numErrors"] == 1
    assert body["errors"][0]["context"]["objectWriteTraceId"] == ["L-2"]
    assert [r["objectWriteTraceId"] for r in body["results"]] == ["L-1"]


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


# --- whole-batch validation ------------------------------------------------------------------------------
@pytest.fixture
def typed_portal(portal: SandboxHandle) -> SandboxHandle:
    """A portal with one property of each type, for the value rules."""
    create_property(portal, "leadscore_day", "date", "date")
    create_property(portal, "leadscore_at", "datetime", "date")
    create_property(portal, "leadscore_flag", "bool", "booleancheckbox")
    body = {
        "name": "leadscore_tier",
        "label": "Tier",
        "type": "enumeration",
        "fieldType": "select",
        "groupName": "contactinformation",
        "options": [
            {"label": "A1", "value": "A1", "displayOrder": 0},
            {"label": "B2", "value": "B2", "displayOrder": 1},
        ],
    }
    assert call(portal, "POST", "/crm/v3/properties/contacts", body).status_code == 201
    return portal


INVALID_VALUES = [
    ("email", "not-an-address", "INVALID_EMAIL"),
    ("email", "ada@localhost", "INVALID_EMAIL"),
    ("email", '"ada lovelace"@x.io', "INVALID_EMAIL"),
    ("leadscore_tier", "Z9", "INVALID_OPTION"),
    ("leadscore_score", "eighty", "INVALID_DECIMAL"),
    ("leadscore_score", "NaN", "INVALID_DECIMAL"),
    ("leadscore_score", "inf", "INVALID_DECIMAL"),
    ("leadscore_score", " 87", "LEADING_TRAILING_WHITESPACE"),
    ("leadscore_day", "2026-01-02", "INVALID_DATE"),
    ("leadscore_day", "1767312000001", "INVALID_DATE"),
    ("leadscore_at", "yesterday", "INVALID_DATE"),
    ("leadscore_flag", "True", "INVALID_BOOLEAN"),
    ("firstname", "x" * 65_537, "TOO_LONG"),
]


@pytest.mark.parametrize(("name", "value", "code"), INVALID_VALUES, ids=[f"{c}-{n}" for n, _, c in INVALID_VALUES])
def test_one_invalid_value_fails_the_whole_batch_and_writes_nothing(
    typed_portal: SandboxHandle, name: str, value: str, code: str
) -> None:
    inputs = [upsert_input("L-1", leadscore_score="1"), upsert_input("L-2", **{name: value})]
    response = call(typed_portal, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": inputs})
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR" and body["correlationId"]
    prefix = "Property values were not valid: "
    assert body["message"].startswith(prefix)
    listed = json.loads(body["message"][len(prefix) :])
    assert listed == [{"isValid": False, "message": listed[0]["message"], "error": code, "name": name}]
    assert body["errors"] == [{"message": listed[0]["message"], "code": code, "context": {"propertyName": [name]}}]
    assert typed_portal.admin.hubspot_objects("contacts") == []


def test_valid_values_of_every_type_are_accepted(typed_portal: SandboxHandle) -> None:
    values = {
        "email": " Ada@Example.COM ",
        "leadscore_tier": "B2",
        "leadscore_score": "-1.5e3",
        "leadscore_day": "1767312000000",
        "leadscore_at": "1767312012345",
        "leadscore_flag": "false",
    }
    response = call(
        typed_portal, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": [upsert_input("L-1", **values)]}
    )
    assert response.status_code == 200, response.text
    assert typed_portal.admin.hubspot_objects("contacts")[0]["properties"]["email"] == "ada@example.com"


@pytest.mark.parametrize("route", ["update", "create"])
def test_invalid_values_fail_batch_update_and_create_too(typed_portal: SandboxHandle, route: str) -> None:
    created = call(
        typed_portal,
        "POST",
        "/crm/v3/objects/contacts/batch/upsert",
        {"inputs": [upsert_input("L-1", leadscore_score="1")]},
    ).json()["results"][0]["id"]
    good, bad = {"leadscore_score": "2"}, {"leadscore_tier": "nope"}
    if route == "update":
        inputs = [{"id": created, "properties": good}, {"id": created + "0", "properties": bad}]
    else:
        inputs = [{"properties": good}, {"properties": bad}]
    response = call(typed_portal, "POST", f"/crm/v3/objects/contacts/batch/{route}", {"inputs": inputs})
    assert response.status_code == 400 and response.json()["errors"][0]["code"] == "INVALID_OPTION"
    stored = typed_portal.admin.hubspot_objects("contacts")
    assert [o["properties"]["leadscore_score"] for o in stored] == ["1"]  # nothing of the batch was written


def test_unknown_and_read_only_properties_are_listed_together(portal: SandboxHandle) -> None:
    inputs = [upsert_input("L-1", leadscore_nope="1", hs_object_id="2", leadscore_score="x")]
    body = call(portal, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": inputs}).json()
    assert [e["code"] for e in body["errors"]] == ["PROPERTY_DOESNT_EXIST", "READ_ONLY_VALUE", "INVALID_DECIMAL"]


# --- e-mail addresses ---------------------------------------------------------------------------------------
def test_emails_are_stored_lower_cased_and_matched_case_insensitively(sandbox: SandboxHandle) -> None:
    first = {"idProperty": "email", "id": "  Foo@X.com ", "properties": {"firstname": "Ada"}}
    created = call(sandbox, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": [first]}).json()["results"][0]
    assert created["new"] is True
    again = {"idProperty": "email", "id": "FOO@x.COM", "properties": {"lastname": "Lovelace"}}
    matched = call(sandbox, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": [again]}).json()["results"][0]
    assert (matched["new"], matched["id"]) == (False, created["id"])
    stored = sandbox.admin.hubspot_objects("contacts")
    assert len(stored) == 1
    assert stored[0]["properties"] == {"email": "foo@x.com", "firstname": "Ada", "lastname": "Lovelace"}
    read = call(
        sandbox,
        "POST",
        "/crm/v3/objects/contacts/batch/read",
        {"idProperty": "email", "properties": ["email"], "inputs": [{"id": "Foo@X.com"}, {"id": "nobody@x.com"}]},
    )
    assert read.status_code == 207
    assert read.json()["results"][0]["id"] == created["id"]
    assert read.json()["errors"][0]["context"]["ids"] == ["nobody@x.com"]


def test_a_second_contact_with_the_same_email_in_another_casing_is_a_conflict(sandbox: SandboxHandle) -> None:
    assert (
        call(
            sandbox,
            "POST",
            "/crm/v3/objects/contacts/batch/create",
            {"inputs": [{"properties": {"email": "foo@x.com"}}]},
        ).status_code
        == 200
    )
    response = call(
        sandbox, "POST", "/crm/v3/objects/contacts/batch/create", {"inputs": [{"properties": {"email": "FOO@X.COM"}}]}
    )
    assert response.status_code == 409 and response.json()["category"] == "CONFLICT"
    assert len(sandbox.admin.hubspot_objects("contacts")) == 1


def test_upsert_by_a_malformed_email_is_invalid_email(sandbox: SandboxHandle) -> None:
    inputs = [{"idProperty": "email", "id": "not-an-email", "properties": {}}]
    response = call(sandbox, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": inputs})
    assert response.status_code == 400 and response.json()["errors"][0]["code"] == "INVALID_EMAIL"


def test_duplicate_emails_in_one_batch_differing_in_case_are_refused(sandbox: SandboxHandle) -> None:
    inputs = [{"idProperty": "email", "id": i, "properties": {}} for i in ("a@x.io", "A@X.IO")]
    response = call(sandbox, "POST", "/crm/v3/objects/contacts/batch/upsert", {"inputs": inputs})
    assert response.status_code == 400 and "Duplicate IDs" in response.json()["message"]


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


def test_batch_update_by_hs_object_id_is_the_known_whole_batch_400(sandbox: SandboxHandle) -> None:
    seeded = sandbox.admin.seed_hubspot("contacts", [{"id": "501", "properties": {"email": "a@x.io"}}])
    assert seeded == 1
    body = {"inputs": [{"id": "501", "idProperty": "hs_object_id", "properties": {"firstname": "Ada"}}]}
    response = call(sandbox, "POST", "/crm/v3/objects/contacts/batch/update", body)
    assert response.status_code == 400
    assert response.json()["message"] == "Unable to perform update/upsert by non-unique 0-1 property hs_object_id"
    assert "firstname" not in sandbox.admin.hubspot_objects("contacts")[0]["properties"]


def test_batch_update_by_record_id_never_creates(portal: SandboxHandle) -> None:
    portal.admin.seed_hubspot("contacts", [{"id": "501", "properties": {"email": "a@x.io"}}])
    inputs = [
        {"id": "501", "properties": {"leadscore_score": "87"}, "objectWriteTraceId": "L-1"},
        {"id": "999999", "properties": {"leadscore_score": "1"}, "objectWriteTraceId": "L-2"},
        {"id": "L-000123", "properties": {"leadscore_score": "1"}, "objectWriteTraceId": "L-3"},
    ]
    response = call(portal, "POST", "/crm/v3/objects/contacts/batch/update", {"inputs": inputs})
    assert response.status_code == 207
    body = response.json()
    assert [(r["id"], r["objectWriteTraceId"]) for r in body["results"]] == [("501", "L-1")]
    assert "new" not in body["results"][0]
    assert [e["category"] for e in body["errors"]] == ["OBJECT_NOT_FOUND", "OBJECT_NOT_FOUND"]
    assert [e["context"] for e in body["errors"]] == [
        {"ids": ["999999"], "objectWriteTraceId": ["L-2"]},
        {"ids": ["L-000123"], "objectWriteTraceId": ["L-3"]},
    ]
    stored = portal.admin.hubspot_objects("contacts")
    assert [(o["id"], o["properties"]["leadscore_score"]) for o in stored] == [("501", "87")]


def test_batch_update_refuses_the_same_record_twice(sandbox: SandboxHandle) -> None:
    sandbox.admin.seed_hubspot("contacts", [{"id": "501", "properties": {}}])
    inputs = [{"id": "501", "properties": {"firstname": "A"}}, {"id": "0501", "properties": {"firstname": "B"}}]
    response = call(sandbox, "POST", "/crm/v3/objects/contacts/batch/update", {"inputs": inputs})
    assert response.status_code == 400 and "Duplicate IDs" in response.json()["message"]


def test_batch_update_of_a_deleted_record_is_not_found(portal: SandboxHandle) -> None:
    portal.admin.seed_hubspot("contacts", [{"id": "501", "properties": {"email": "a@x.io"}}])
    portal.admin.delete_hubspot_object("contacts", "501")
    update = {"inputs": [{"id": "501", "properties": {"leadscore_score": "1"}}]}
    response = call(portal, "POST", "/crm/v3/objects/contacts/batch/update", update)
    assert response.status_code == 207 and response.json()["results"] == []
    read = call(portal, "POST", "/crm/v3/objects/contacts/batch/read", {"inputs": [{"id": "501"}]})
    assert read.status_code == 207 and read.json()["errors"][0]["context"]["ids"] == ["501"]
    assert portal.admin.counts()["hubspot"]["contacts"] == 0
    # The address is free again, as after a deletion in HubSpot.
    create = {"inputs": [{"properties": {"email": "a@x.io"}}]}
    assert call(portal, "POST", "/crm/v3/objects/contacts/batch/create", create).status_code == 200


def test_batch_create_creates_and_echoes_trace_ids(portal: SandboxHandle) -> None:
    inputs = [{"properties": {"leadscore_score": "1"}, "objectWriteTraceId": "t-1"}, {"properties": {}}]
    body = call(portal, "POST", "/crm/v3/objects/contacts/batch/create", {"inputs": inputs}).json()
    assert body["results"][0]["objectWriteTraceId"] == "t-1" and len(body["results"]) == 2
    assert (
        call(
            portal, "POST", "/crm/v3/objects/contacts/batch/create", {"inputs": [{"id": "1", "properties": {}}]}
        ).status_code
        == 400
    )


def test_batch_read_by_record_id(sandbox: SandboxHandle) -> None:
    sandbox.admin.seed_hubspot("companies", [{"id": "7", "properties": {"name": "Acme", "domain": "acme.io"}}])
    body = {"properties": ["name"], "inputs": [{"id": "7"}]}
    read = call(sandbox, "POST", "/crm/v3/objects/companies/batch/read", body)
    assert read.status_code == 200
    assert read.json()["results"][0]["properties"] == {"name": "Acme", "hs_object_id": "7"}


# --- account info ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/account-info/v3/details", "/integrations/v1/me"])
def test_account_info_names_the_portal_for_any_valid_token(
    start_sandbox: Callable[..., SandboxHandle], path: str
) -> None:
    sandbox = start_sandbox(hubspot_tokens={"pat-no-scopes": ()}, hubspot_portal_id=123456, hubspot_max_per_window=2)
    response = call(sandbox, "GET", path, token="pat-no-scopes")
    assert response.status_code == 200 and response.json()["portalId"] == 123456 == sandbox.portal_id
    assert response.headers["X-HubSpot-RateLimit-Remaining"] == "1"  # counted like any other call
    assert call(sandbox, "GET", path, token="wrong").status_code == 401
    assert call(sandbox, "GET", path, token="pat-no-scopes").status_code == 200
    assert call(sandbox, "GET", path, token="pat-no-scopes").status_code == 429


def test_account_details_shape(sandbox: SandboxHandle) -> None:
    body = call(sandbox, "GET", "/account-info/v3/details").json()
    assert body == {
        "portalId": sandbox.portal_id,
        "accountType": "STANDARD",
        "timeZone": "Etc/UTC",
        "companyCurrency": "USD",
        "additionalCurrencies": [],
        "utcOffset": "+00:00",
        "utcOffsetMilliseconds": 0,
        "uiDomain": "app.hubspot.com",
        "dataHostingLocation": "na1",
    }
    me = call(sandbox, "GET", "/integrations/v1/me").json()
    assert me == {
        "portalId": sandbox.portal_id,
        "timeZone": "Etc/UTC",
        "currency": "USD",
        "utcOffsetMilliseconds": 0,
        "utcOffset": "+00:00",
    }


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
