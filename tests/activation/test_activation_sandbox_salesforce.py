"""Contract tests of the sandbox's Salesforce API, over real HTTP (crm-api-contracts.md, Salesforce section)."""

from __future__ import annotations

import base64
import csv
import io
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from activation.salesforce_ids import make_salesforce_id, normalize_salesforce_id
from activation.sandbox import SandboxHandle, run_sandbox, salesforce_bulk
from activation.sandbox.__main__ import build_parser, config_from_args

V = "/services/data/v62.0"
EXT = "Leadscore_Lead_Id__c"
# Deployed by the tests themselves: the mapping decides which leadscore fields exist, and changes.
TEST_FIELDS = [
    {"name": EXT, "type": "string", "length": 255, "externalId": True},
    {"name": "Leadscore_Score__c", "type": "double"},
    {"name": "Leadscore_Tier__c", "type": "string", "length": 255},
]


def client_credentials_grant(sandbox: SandboxHandle, login_url: str | None = None, **kwargs: Any) -> requests.Response:
    config = sandbox.app.config
    form = {
        "grant_type": "client_credentials",
        "client_id": config.salesforce_client_id,
        "client_secret": config.salesforce_client_secret,
    }
    url = f"{login_url or sandbox.salesforce_login_url}/services/oauth2/token"
    return requests.post(url, data=kwargs.pop("data", form), timeout=10, **kwargs)


def get_token(sandbox: SandboxHandle) -> str:
    response = client_credentials_grant(sandbox)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


class Org:
    """A logged-in caller of the sandbox's Salesforce API."""

    def __init__(self, sandbox: SandboxHandle) -> None:
        self.sandbox = sandbox
        self.token = get_token(sandbox)
        for sobject in ("Lead", "Contact"):
            sandbox.admin.add_salesforce_fields(sobject, TEST_FIELDS)

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return requests.request(
            method, f"{self.sandbox.url}{V}{path}", json=body, headers=headers, timeout=10, **kwargs
        )

    def upsert(self, records: list[dict[str, Any]], all_or_none: bool = False, field: str = EXT) -> requests.Response:
        body = {"allOrNone": all_or_none, "records": [{"attributes": {"type": "Lead"}, **r} for r in records]}
        return self.call("PATCH", f"/composite/sobjects/Lead/{field}", body)

    def update(self, records: list[dict[str, Any]], all_or_none: bool = False) -> requests.Response:
        """Collections update: each record is ``{"type": sObject, "Id": ..., fields...}``."""
        body = {
            "allOrNone": all_or_none,
            "records": [{"attributes": {"type": r.pop("type", "Lead")}, **r} for r in map(dict, records)],
        }
        return self.call("PATCH", "/composite/sobjects", body)


def new_lead(key: str, **fields: Any) -> dict[str, Any]:
    """A Lead upsert record that may create (LastName and Company are required on create)."""
    return {EXT: key, "LastName": "Lovelace", "Company": "Analytical Engines", **fields}


@pytest.fixture
def org(sandbox: SandboxHandle) -> Org:
    return Org(sandbox)


# --- OAuth ----------------------------------------------------------------------------------------------
def test_each_state_file_is_its_own_portal_and_org(tmp_path: Path) -> None:
    """A sandbox restarted on its state is the same CRM; a new state file is another one (a deleted state
    must not pass for the CRM leadscore synced to before)."""
    with run_sandbox(state_path=tmp_path / "a.sqlite") as first:
        ids = (first.portal_id, first.org_id)
    with run_sandbox(state_path=tmp_path / "a.sqlite") as again:
        assert (again.portal_id, again.org_id) == ids
    with run_sandbox(state_path=tmp_path / "b.sqlite") as other:
        assert other.portal_id != ids[0] and other.org_id != ids[1]
        assert normalize_salesforce_id(other.org_id) == other.org_id


def test_client_credentials_token_shape(sandbox: SandboxHandle) -> None:
    response = client_credentials_grant(sandbox)
    body = response.json()
    assert {"access_token", "instance_url", "id", "token_type", "issued_at", "signature", "scope"} <= body.keys()
    assert body["token_type"] == "Bearer" and body["instance_url"] == sandbox.salesforce_login_url
    assert sandbox.salesforce_login_url == f"{sandbox.url}/my/leadscore-sandbox"
    assert "refresh_token" not in body
    org_id, user_id = body["id"].rsplit("/", 2)[-2:]
    assert org_id == sandbox.org_id and org_id.startswith("00D") and user_id.startswith("005")
    assert body["id"] == f"{sandbox.salesforce_login_url}/id/{org_id}/{user_id}"
    assert body["access_token"].startswith(org_id[:15] + "!")


@pytest.mark.parametrize(
    ("form", "error"),
    [
        (
            {"grant_type": "client_credentials", "client_id": "sandbox-consumer-key", "client_secret": "wrong"},
            "invalid_client",
        ),
        ({"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"}, "invalid_client_id"),
        ({"grant_type": "password", "username": "u", "password": "p"}, "unsupported_grant_type"),
        ({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "not-a-jwt"}, "invalid_grant"),
    ],
)
def test_token_failures_are_400_with_oauth_error(sandbox: SandboxHandle, form: dict[str, str], error: str) -> None:
    response = client_credentials_grant(sandbox, data=form)
    assert response.status_code == 400
    assert response.json()["error"] == error


def test_token_request_must_be_form_encoded(sandbox: SandboxHandle) -> None:
    response = requests.post(
        f"{sandbox.url}/services/oauth2/token", json={"grant_type": "client_credentials"}, timeout=10
    )
    assert response.status_code == 400


def _unsigned_jwt(claims: dict[str, Any], alg: str = "RS256") -> str:
    def enc(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{enc({'alg': alg, 'typ': 'JWT'})}.{enc(claims)}.c2ln"


@pytest.mark.parametrize(
    ("claims", "alg", "ok"),
    [
        (
            {
                "iss": "sandbox-consumer-key",
                "sub": "integration@leadscore.example",
                "aud": "https://login.salesforce.com",
            },
            "RS256",
            True,
        ),
        (
            {"iss": "other-app", "sub": "integration@leadscore.example", "aud": "https://login.salesforce.com"},
            "RS256",
            False,
        ),
        ({"iss": "sandbox-consumer-key", "sub": "someone@else", "aud": "https://login.salesforce.com"}, "RS256", False),
        (
            {"iss": "sandbox-consumer-key", "sub": "integration@leadscore.example", "aud": "https://evil.example"},
            "RS256",
            False,
        ),
        (
            {
                "iss": "sandbox-consumer-key",
                "sub": "integration@leadscore.example",
                "aud": "https://login.salesforce.com",
            },
            "HS256",
            False,
        ),
    ],
)
def test_jwt_claims_are_checked_without_a_configured_key(
    sandbox: SandboxHandle, claims: dict[str, Any], alg: str, ok: bool
) -> None:
    assertion = _unsigned_jwt({**claims, "exp": int(time.time()) + 120}, alg)
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
    response = requests.post(f"{sandbox.url}/services/oauth2/token", data=form, timeout=10)
    assert (response.status_code == 200) is ok, response.text


def test_expired_jwt_is_refused(sandbox: SandboxHandle) -> None:
    claims = {
        "iss": "sandbox-consumer-key",
        "sub": "integration@leadscore.example",
        "aud": "https://login.salesforce.com",
        "exp": int(time.time()) - 1,
    }
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": _unsigned_jwt(claims)}
    assert (
        requests.post(f"{sandbox.url}/services/oauth2/token", data=form, timeout=10).json()["error"] == "invalid_grant"
    )


def test_jwt_signature_is_verified_when_a_key_is_configured(start_sandbox: Callable[..., SandboxHandle]) -> None:
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from activation.salesforce import SalesforceCredentials, jwt_assertion

    key, other = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    sandbox = start_sandbox(salesforce_jwt_public_key_pem=public_pem)

    def pem(k: Any) -> str:
        return k.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    def grant(private_pem: str) -> requests.Response:
        creds = SalesforceCredentials(
            "sandbox-consumer-key", private_key_pem=private_pem, username="integration@leadscore.example"
        )
        form = {
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": jwt_assertion(creds, sandbox.url),
        }
        return requests.post(f"{sandbox.url}/services/oauth2/token", data=form, timeout=10)

    assert grant(pem(key)).status_code == 200
    refused = grant(pem(other))
    assert refused.status_code == 400 and "signature" in refused.json()["error_description"]


# --- My Domain, client authentication, identity ------------------------------------------------------------
def test_client_credentials_only_on_my_domain(sandbox: SandboxHandle) -> None:
    generic = client_credentials_grant(sandbox, sandbox.salesforce_generic_login_url)
    assert generic.status_code == 400
    assert generic.json() == {"error": "invalid_grant", "error_description": "request not supported on this domain"}
    assert client_credentials_grant(sandbox).status_code == 200
    other_domain = client_credentials_grant(sandbox, f"{sandbox.url}/my/someone-else")
    assert other_domain.status_code == 404


def jwt_form(sandbox: SandboxHandle, **claims: Any) -> dict[str, str]:
    base = {
        "iss": "sandbox-consumer-key",
        "sub": "integration@leadscore.example",
        "aud": "https://login.salesforce.com",
    }
    assertion = _unsigned_jwt({**base, "exp": int(time.time()) + 120, **claims})
    return {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}


@pytest.mark.parametrize("host", ["generic", "my_domain"])
def test_jwt_bearer_works_on_both_hosts_and_instance_url_is_my_domain(sandbox: SandboxHandle, host: str) -> None:
    login = sandbox.salesforce_generic_login_url if host == "generic" else sandbox.salesforce_login_url
    for audience in ("https://test.salesforce.com", sandbox.url, sandbox.salesforce_login_url):
        response = requests.post(f"{login}/services/oauth2/token", data=jwt_form(sandbox, aud=audience), timeout=10)
        assert response.status_code == 200, response.text
        assert response.json()["instance_url"] == sandbox.salesforce_login_url
        assert response.json()["id"].startswith(f"{login}/id/")


@pytest.mark.parametrize(
    ("exp", "ok"), [("STRING_FUTURE", True), ("STRING_PAST", False), ("soon", False), (True, False)]
)
def test_jwt_exp_may_be_a_numeric_string(sandbox: SandboxHandle, exp: Any, ok: bool) -> None:
    value = {"STRING_FUTURE": str(int(time.time()) + 120), "STRING_PAST": str(int(time.time()) - 5)}.get(exp, exp)
    response = requests.post(f"{sandbox.url}/services/oauth2/token", data=jwt_form(sandbox, exp=value), timeout=10)
    assert (response.status_code == 200) is ok, response.text


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def test_client_authentication_by_http_basic(sandbox: SandboxHandle) -> None:
    config = sandbox.app.config
    header = basic(config.salesforce_client_id, config.salesforce_client_secret)
    only_grant = {"grant_type": "client_credentials"}
    assert client_credentials_grant(sandbox, data=only_grant, headers=header).status_code == 200
    both = {**only_grant, "client_id": config.salesforce_client_id, "client_secret": config.salesforce_client_secret}
    assert client_credentials_grant(sandbox, data=both, headers=header).status_code == 200
    wrong_secret = basic(config.salesforce_client_id, "wrong")
    assert client_credentials_grant(sandbox, data=only_grant, headers=wrong_secret).json()["error"] == "invalid_client"
    disagree = client_credentials_grant(sandbox, data=both, headers=wrong_secret)
    assert disagree.status_code == 400 and disagree.json()["error"] == "invalid_client"
    malformed = client_credentials_grant(sandbox, data=only_grant, headers={"Authorization": "Basic %%%"})
    assert malformed.json()["error"] == "invalid_client"


def test_identity_url_names_the_org(start_sandbox: Callable[..., SandboxHandle]) -> None:
    org_id = make_salesforce_id("00D", 42, "xy")
    sandbox = start_sandbox(salesforce_org_id=org_id[:15])  # a 15-character id is configured as 18
    body = client_credentials_grant(sandbox).json()
    assert sandbox.org_id == org_id and f"/id/{org_id}/" in body["id"]
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    identity = requests.get(body["id"], headers=headers, timeout=10)
    assert identity.status_code == 200 and identity.json()["organization_id"] == org_id
    assert requests.get(body["id"], timeout=10).status_code == 401
    usage = requests.get(f"{body['instance_url']}{V}/sobjects/Lead/describe", headers=headers, timeout=10)
    assert usage.headers["Sforce-Limit-Info"] == "api-usage=1/100000"  # the identity call was not charged


def test_data_calls_are_served_on_both_hosts(org: Org) -> None:
    headers = {"Authorization": f"Bearer {org.token}"}
    for base in (org.sandbox.salesforce_login_url, org.sandbox.url):
        assert requests.get(f"{base}{V}/sobjects/Lead/describe", headers=headers, timeout=10).status_code == 200
    hubspot_under_my_domain = requests.get(f"{org.sandbox.salesforce_login_url}/crm/v3/properties/contacts", timeout=10)
    assert hubspot_under_my_domain.status_code == 404 and hubspot_under_my_domain.json()[0]["errorCode"] == "NOT_FOUND"


# --- sessions and limits -----------------------------------------------------------------------------------
def test_data_calls_need_a_valid_session(sandbox: SandboxHandle, org: Org) -> None:
    response = requests.get(f"{sandbox.url}{V}/sobjects/Lead/describe", timeout=10)
    assert response.status_code == 401 and response.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    assert org.call("GET", "/sobjects/Lead/describe").status_code == 200
    assert sandbox.admin.expire_salesforce_tokens() >= 1
    expired = org.call("GET", "/sobjects/Lead/describe")
    assert expired.status_code == 401 and expired.json()[0]["errorCode"] == "INVALID_SESSION_ID"


def test_tokens_expire_after_their_lifetime(start_sandbox: Callable[..., SandboxHandle]) -> None:
    org = Org(start_sandbox(salesforce_token_lifetime=0.0))
    assert org.call("GET", "/sobjects/Lead/describe").status_code == 401


def test_limit_info_header_and_request_limit_exceeded(start_sandbox: Callable[..., SandboxHandle]) -> None:
    org = Org(start_sandbox(salesforce_daily_limit=2))
    assert org.call("GET", "/sobjects/Lead/describe").headers["Sforce-Limit-Info"] == "api-usage=1/2"
    assert org.call("GET", "/sobjects/Lead/describe").headers["Sforce-Limit-Info"] == "api-usage=2/2"
    refused = org.call("GET", "/sobjects/Lead/describe")
    assert refused.status_code == 403
    assert refused.json() == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED", "fields": []}
    ]


def test_limit_info_with_a_per_app_allocation(start_sandbox: Callable[..., SandboxHandle]) -> None:
    org = Org(start_sandbox(salesforce_per_app_limit=2, salesforce_daily_limit=10))
    headers = [org.call("GET", "/sobjects/Lead/describe").headers["Sforce-Limit-Info"] for _ in range(2)]
    assert headers == [
        "api-usage=1/10; per-app-api-usage=1/2(appName=leadscore)",
        "api-usage=2/10; per-app-api-usage=2/2(appName=leadscore)",
    ]
    refused = org.call("GET", "/sobjects/Lead/describe")
    assert refused.status_code == 403
    assert refused.json()[0]["message"] == "TotalRequests Limit exceeded."
    assert refused.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    org.sandbox.admin.reset_limits()
    assert org.call("GET", "/sobjects/Lead/describe").status_code == 200


def test_concurrent_request_limit_fault_is_not_charged(start_sandbox: Callable[..., SandboxHandle]) -> None:
    org = Org(start_sandbox(faults={"p_concurrent_limit": 1.0}))
    refused = org.call("GET", "/sobjects/Lead/describe")
    assert refused.status_code == 403
    assert refused.json()[0] == {
        "message": "ConcurrentPerOrgLongTxn Limit exceeded.",
        "errorCode": "REQUEST_LIMIT_EXCEEDED",
        "fields": [],
    }
    assert refused.headers["Sforce-Limit-Info"] == "api-usage=0/100000"
    assert org.sandbox.admin.stats()["injected"]["concurrent_limit"] == 1
    org.sandbox.admin.set_faults(p_concurrent_limit=0.0)
    assert org.call("GET", "/sobjects/Lead/describe").headers["Sforce-Limit-Info"] == "api-usage=1/100000"


def test_concurrent_limit_fault_is_deterministic(start_sandbox: Callable[..., SandboxHandle]) -> None:
    def statuses() -> list[int]:
        org = Org(start_sandbox(faults={"seed": 4, "p_concurrent_limit": 0.5}))
        return [org.call("GET", "/sobjects/Lead/describe").status_code for _ in range(12)]

    first = statuses()
    assert first == statuses() and set(first) == {200, 403}


# --- describe ------------------------------------------------------------------------------------------------
def test_describe_lists_fields_with_external_ids(org: Org) -> None:
    fields = {f["name"]: f for f in org.call("GET", "/sobjects/Lead/describe").json()["fields"]}
    assert fields[EXT]["externalId"] is True and fields[EXT]["type"] == "string"
    assert fields["Leadscore_Score__c"]["type"] == "double" and fields["Leadscore_Score__c"]["updateable"]
    assert fields["Id"]["updateable"] is False
    assert org.call("GET", "/sobjects/Nope__c/describe").status_code == 404


def flags(field: dict[str, Any]) -> tuple[str, bool, bool, bool]:
    return field["type"], field["createable"], field["updateable"], field["nillable"]


def test_describe_lists_the_standard_fields(org: Org) -> None:
    def described(sobject: str) -> dict[str, dict[str, Any]]:
        return {f["name"]: f for f in org.call("GET", f"/sobjects/{sobject}/describe").json()["fields"]}

    lead, contact, account = described("Lead"), described("Contact"), described("Account")
    assert flags(lead["Id"]) == ("id", False, False, False)
    assert flags(lead["LastName"]) == ("string", True, True, False)
    assert flags(lead["Company"]) == ("string", True, True, False)
    assert flags(lead["Email"]) == ("email", True, True, True)
    assert flags(lead["Status"])[:3] == ("picklist", True, True)
    assert flags(lead["IsConverted"]) == ("boolean", False, False, False)
    assert flags(lead["ConvertedContactId"]) == ("reference", False, False, True)
    assert lead["ConvertedAccountId"]["referenceTo"] == ["Account"] and not lead["ConvertedAccountId"]["updateable"]
    assert {"FirstName", "LastName", "Email", "AccountId"} <= contact.keys()
    assert flags(contact["AccountId"]) == ("reference", True, True, True)
    assert flags(account["Name"]) == ("string", True, True, False) and account["Website"]["type"] == "url"


def test_the_mappings_fields_are_deployed_at_start(sandbox: SandboxHandle) -> None:
    from activation.mapping import load_mapping
    from activation.salesforce_schema import all_field_specs

    org = Org(sandbox)
    for spec in all_field_specs(load_mapping()):
        fields = {f["name"]: f for f in org.call("GET", f"/sobjects/{spec.sobject}/describe").json()["fields"]}
        if spec.custom:  # standard fields a mapping names (Task.Subject, OwnerId) are the org's: only checked
            assert fields[spec.name]["type"] == spec.describe_type and fields[spec.name]["custom"]
        else:
            assert spec.name in fields and not fields[spec.name]["custom"]


# --- sObject Collections ------------------------------------------------------------------------------------------
def test_collections_upsert_returns_one_result_per_record_in_order(org: Org) -> None:
    org.upsert([new_lead("L-2", Leadscore_Score__c=1.0)])
    response = org.upsert([new_lead("L-1", Leadscore_Score__c=87), {EXT: "L-2", "Leadscore_Score__c": 5.5}])
    assert response.status_code == 200
    results = response.json()
    assert [(r["success"], r["created"]) for r in results] == [(True, True), (True, False)]
    assert all(r["id"].startswith("00Q") and r["errors"] == [] for r in results)
    # New ids: key prefix, the org's pod, canonical 18 characters.
    assert all(r["id"][3:5] == "5g" and normalize_salesforce_id(r["id"]) == r["id"] for r in results)
    stored = {r[EXT]: r for r in org.sandbox.admin.salesforce_records("Lead")}
    assert stored["L-2"]["Leadscore_Score__c"] == 5.5


def test_null_clears_a_field(org: Org) -> None:
    org.upsert([new_lead("L-1", Leadscore_Score__c=1.0, Leadscore_Tier__c="A1")])
    org.upsert([{EXT: "L-1", "Leadscore_Score__c": None}])
    stored = org.sandbox.admin.salesforce_records("Lead")[0]
    assert "Leadscore_Score__c" not in stored and stored["Leadscore_Tier__c"] == "A1"


@pytest.mark.parametrize(
    ("records", "field", "code"),
    [
        ([{EXT: f"L-{i}"} for i in range(201)], EXT, "EXCEEDED_ID_LIMIT"),
        ([{EXT: "L-1", "Unknown__c": 1}], EXT, "INVALID_FIELD"),
        ([{EXT: "L-1", "Leadscore_Score__c": "87"}], EXT, "JSON_PARSER_ERROR"),
        ([{EXT: "L-1", "Leadscore_Tier__c": 3}], EXT, "JSON_PARSER_ERROR"),
        ([{"LastName": "x"}], "LastName", "INVALID_FIELD"),
    ],
)
def test_collections_reject_what_salesforce_rejects(
    org: Org, records: list[dict[str, Any]], field: str, code: str
) -> None:
    response = org.upsert(records, field=field)
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == code
    assert org.sandbox.admin.salesforce_records("Lead") == []


def test_record_level_failures_and_all_or_none(org: Org) -> None:
    too_long = "x" * 300
    records = [new_lead("L-1", Leadscore_Score__c=1.0), new_lead("L-2", Leadscore_Tier__c=too_long)]
    results = org.upsert(records).json()
    assert results[0]["success"] and not results[1]["success"]
    assert results[1]["errors"][0]["statusCode"] == "STRING_TOO_LONG"
    rolled = org.upsert(
        [new_lead("L-3", Leadscore_Score__c=1.0), new_lead("L-4", Leadscore_Tier__c=too_long)], all_or_none=True
    ).json()
    assert [r["success"] for r in rolled] == [False, False]
    assert rolled[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert sorted(r[EXT] for r in org.sandbox.admin.salesforce_records("Lead")) == ["L-1"]


def test_required_fields_on_create_by_default(org: Org) -> None:
    result = org.upsert([{EXT: "L-1", "Leadscore_Score__c": 1.0}]).json()[0]
    assert result["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert result["errors"][0]["fields"] == ["LastName", "Company"]
    assert org.upsert([{EXT: "L-1", "LastName": "Lovelace", "Company": "Analytical"}]).json()[0]["success"]
    # Once the record exists, an upsert that omits them is an update and needs neither.
    assert org.upsert([{EXT: "L-1", "Leadscore_Score__c": 2.0}]).json()[0]["success"]
    cleared = org.upsert([{EXT: "L-1", "LastName": None}]).json()[0]
    assert cleared["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"  # a required field cannot be emptied


@pytest.mark.parametrize(("sobject", "required"), [("Contact", ["LastName"]), ("Account", ["Name"])])
def test_required_fields_of_contacts_and_accounts(
    start_sandbox: Callable[..., SandboxHandle], sobject: str, required: list[str]
) -> None:
    org = Org(start_sandbox())
    org.sandbox.admin.add_salesforce_fields(sobject, [{"name": "Key__c", "type": "string", "externalId": True}])
    body = {"records": [{"attributes": {"type": sobject}, "Key__c": "k-1"}]}
    result = org.call("PATCH", f"/composite/sobjects/{sobject}/Key__c", body).json()[0]
    assert (result["errors"][0]["statusCode"], result["errors"][0]["fields"]) == ("REQUIRED_FIELD_MISSING", required)


def test_required_fields_can_be_relaxed(start_sandbox: Callable[..., SandboxHandle]) -> None:
    org = Org(start_sandbox(salesforce_required_on_create=False))
    assert org.upsert([{EXT: "L-1", "Leadscore_Score__c": 1.0}]).json()[0]["success"]


def test_injected_record_errors(org: Org) -> None:
    org.sandbox.admin.set_faults(reject_keys=["L-2"])
    results = org.upsert([new_lead("L-1"), new_lead("L-2")]).json()
    assert results[0]["success"] and results[1]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"


def test_external_ids_match_case_insensitively(org: Org) -> None:
    created = org.upsert([new_lead("L-abc")]).json()[0]
    again = org.upsert([{EXT: "l-ABC", "Leadscore_Score__c": 3.0}]).json()[0]
    assert (again["id"], again["created"]) == (created["id"], False)
    assert len(org.sandbox.admin.salesforce_records("Lead")) == 1
    twice = org.upsert([new_lead("L-X"), new_lead("l-x")]).json()
    assert [r["errors"][0]["statusCode"] for r in twice] == ["DUPLICATE_EXTERNAL_ID"] * 2


# --- sObject Collections update by Id -------------------------------------------------------------------------------
LEAD_IDS = [make_salesforce_id("00Q", 100 + i, "8d") for i in range(4)]
CONTACT_ID = make_salesforce_id("003", 100, "8d")
ACCOUNT_ID = make_salesforce_id("001", 100, "8d")


@pytest.fixture
def crm(org: Org) -> Org:
    """An org holding the company's records: three open Leads, one converted Lead, its Contact and Account."""
    admin = org.sandbox.admin
    assert admin.seed_salesforce("Account", [{"Id": ACCOUNT_ID, "Name": "Acme"}]) == 1
    assert admin.seed_salesforce("Contact", [{"Id": CONTACT_ID, "LastName": "Hopper", "AccountId": ACCOUNT_ID}]) == 1
    leads = [{"Id": i, "LastName": f"L{n}", "Company": "Acme", "IsConverted": False} for n, i in enumerate(LEAD_IDS)]
    leads[3].update(IsConverted=True, ConvertedContactId=CONTACT_ID, ConvertedAccountId=ACCOUNT_ID)
    assert admin.seed_salesforce("Lead", leads) == 4
    return org


def lead_field(org: Org, record_id: str, name: str) -> Any:
    return {r["Id"]: r for r in org.sandbox.admin.salesforce_records("Lead")}[record_id].get(name)


def test_update_by_id_accepts_15_and_any_case_18_character_ids(crm: Org) -> None:
    records = [
        {"Id": LEAD_IDS[0], "Leadscore_Score__c": 1.0},
        {"Id": LEAD_IDS[1][:15], "Leadscore_Score__c": 2.0},
        {"Id": LEAD_IDS[2].lower(), "Leadscore_Score__c": 3.0},
    ]
    response = crm.update(records)
    assert response.status_code == 200
    assert response.json() == [{"id": i, "success": True, "errors": []} for i in LEAD_IDS[:3]]
    assert [lead_field(crm, i, "Leadscore_Score__c") for i in LEAD_IDS[:3]] == [1.0, 2.0, 3.0]


def test_update_by_id_never_creates_and_fails_per_record(crm: Org) -> None:
    admin = crm.sandbox.admin
    admin.delete_salesforce_record("Lead", LEAD_IDS[1])
    before = admin.counts()
    missing = make_salesforce_id("00Q", 999_999, "8d")
    records = [
        {"Id": LEAD_IDS[0], "Leadscore_Score__c": 1.0},
        {"Id": "not-an-id", "Leadscore_Score__c": 1.0},
        {"Id": CONTACT_ID, "Leadscore_Score__c": 1.0},  # a Contact id sent as a Lead
        {"Id": LEAD_IDS[1], "Leadscore_Score__c": 1.0},
        {"Id": missing, "Leadscore_Score__c": 1.0},
        {"Id": LEAD_IDS[3], "Leadscore_Score__c": 1.0},
        {"Id": LEAD_IDS[2], "IsConverted": True},
        {"Id": LEAD_IDS[2].lower(), "Leadscore_Tier__c": "x" * 300},
    ]
    results = crm.update(records).json()
    codes = [r["errors"][0]["statusCode"] if r["errors"] else "ok" for r in results]
    assert codes == [
        "ok",
        "MALFORMED_ID",
        "MALFORMED_ID",
        "ENTITY_IS_DELETED",
        "INVALID_CROSS_REFERENCE_KEY",
        "CANNOT_UPDATE_CONVERTED_LEAD",
        "DUPLICATE_VALUE",  # the same record twice in one call
        "DUPLICATE_VALUE",
    ]
    assert results[5]["errors"][0]["message"] == "cannot reference converted lead"
    assert all("id" not in r for r in results[1:])
    assert admin.counts() == before  # nothing created
    assert lead_field(crm, LEAD_IDS[0], "Leadscore_Score__c") == 1.0


@pytest.mark.parametrize(
    ("values", "code"),
    [
        ({"IsConverted": True}, "INVALID_FIELD_FOR_INSERT_UPDATE"),
        ({"Leadscore_Tier__c": "x" * 300}, "STRING_TOO_LONG"),
        ({"ConvertedContactId": CONTACT_ID}, "INVALID_FIELD_FOR_INSERT_UPDATE"),
        ({"LastName": None}, "REQUIRED_FIELD_MISSING"),
        ({"Email": "not-an-address"}, "INVALID_EMAIL_ADDRESS"),
    ],
)
def test_update_field_errors(crm: Org, values: dict[str, Any], code: str) -> None:
    result = crm.update([{"Id": LEAD_IDS[0], **values}]).json()[0]
    assert not result["success"] and result["errors"][0]["statusCode"] == code
    assert result["errors"][0]["fields"] == list(values)


def test_update_mixes_types_in_chunks(crm: Org) -> None:
    records = [
        {"type": "Contact", "Id": CONTACT_ID, "Leadscore_Score__c": 5.0},
        {"type": "Lead", "Id": LEAD_IDS[0], "Leadscore_Score__c": 6.0},
        {"type": "Account", "Id": ACCOUNT_ID, "Name": "Acme Inc"},
    ]
    assert [r["success"] for r in crm.update(records).json()] == [True, True, True]
    assert crm.sandbox.admin.salesforce_records("Account")[0]["Name"] == "Acme Inc"
    assert crm.sandbox.admin.salesforce_records("Contact")[0]["Leadscore_Score__c"] == 5.0
    ten_chunks = [{"type": ("Lead", "Contact")[n % 2], "Id": (LEAD_IDS[0], CONTACT_ID)[n % 2]} for n in range(10)]
    assert crm.update(ten_chunks).status_code == 200
    eleven = [*ten_chunks, {"type": "Account", "Id": ACCOUNT_ID}]
    refused = crm.update(eleven)
    assert refused.status_code == 400 and refused.json()[0]["errorCode"] == "EXCEEDED_MAX_TYPES_LIMIT"


@pytest.mark.parametrize(
    ("records", "code"),
    [
        ([{"Id": LEAD_IDS[0]}] * 201, "EXCEEDED_ID_LIMIT"),
        ([{"Leadscore_Score__c": 1.0}], "MISSING_ARGUMENT"),
        ([{"Id": 5}], "MISSING_ARGUMENT"),
        ([{"Id": LEAD_IDS[0], "Unknown__c": 1}], "INVALID_FIELD"),
        ([{"Id": LEAD_IDS[0], "Leadscore_Score__c": "87"}], "JSON_PARSER_ERROR"),
        ([{"type": "Nope__c", "Id": LEAD_IDS[0]}], "INVALID_TYPE"),
    ],
)
def test_update_whole_request_errors_write_nothing(crm: Org, records: list[dict[str, Any]], code: str) -> None:
    response = crm.update([{"Id": LEAD_IDS[1], "Leadscore_Score__c": 9.0}, *records][-201:])
    assert response.status_code == 400 and response.json()[0]["errorCode"] == code
    assert lead_field(crm, LEAD_IDS[1], "Leadscore_Score__c") is None


def test_update_all_or_none_rolls_back(crm: Org) -> None:
    results = crm.update([{"Id": LEAD_IDS[0], "Leadscore_Score__c": 1.0}, {"Id": "bad"}], all_or_none=True).json()
    assert [r["errors"][0]["statusCode"] for r in results] == ["ALL_OR_NONE_OPERATION_ROLLED_BACK", "MALFORMED_ID"]
    assert lead_field(crm, LEAD_IDS[0], "Leadscore_Score__c") is None


# --- Bulk API 2.0 ----------------------------------------------------------------------------------------------------
def run_job(org: Org, text: str, ext: str = EXT, operation: str = "upsert") -> tuple[str, dict[str, Any]]:
    job = org.call(
        "POST",
        "/jobs/ingest",
        {
            "object": "Lead",
            "operation": operation,
            "externalIdFieldName": ext,
            "contentType": "CSV",
            "lineEnding": "LF",
        },
    )
    assert job.status_code == 200 and job.json()["state"] == "Open"
    job_id = job.json()["id"]
    upload = org.call("PUT", f"/jobs/ingest/{job_id}/batches", data=text.encode(), headers={"Content-Type": "text/csv"})
    assert upload.status_code == 201
    closed = org.call("PATCH", f"/jobs/ingest/{job_id}", {"state": "UploadComplete"})
    assert closed.status_code == 200
    states = poll_job(org, job_id)
    return job_id, {"polls": [s["state"] for s in states], "info": states[-1], "closed": closed.json()}


def poll_job(org: Org, job_id: str, limit: int = 2_000) -> list[dict[str, Any]]:
    """Every state a client polling the job sees, up to and including a finished one (``InProgress`` runs of
    the same state are collapsed: how many polls the worker takes is not the sandbox's contract)."""
    states: list[dict[str, Any]] = []
    for _ in range(limit):
        info = org.call("GET", f"/jobs/ingest/{job_id}").json()
        if not states or info["state"] != states[-1]["state"]:
            states.append(info)
        else:
            states[-1] = info
        if info["state"] in {"JobComplete", "Failed", "Aborted"}:
            return states
        time.sleep(0.005)
    raise AssertionError(f"job {job_id} not finished after {limit} polls: {states[-1]}")


def read_csv(response: requests.Response) -> list[dict[str, str]]:
    assert response.headers["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


def test_bulk_ingest_lifecycle(org: Org) -> None:
    org.upsert([new_lead("L-2", Leadscore_Score__c=1.0, Leadscore_Tier__c="A1")])
    text = f"{EXT},LastName,Company,Leadscore_Score__c,Leadscore_Tier__c\nL-1,L,C,87.5,B2\nL-2,,,#N/A,\nL-3,L,C,x,C1\n"
    job_id, run = run_job(org, text)
    assert run["closed"]["state"] == "UploadComplete"  # the close queues the job and is answered at once
    assert run["polls"][-2:] == ["InProgress", "JobComplete"] and run["polls"][0] in {"UploadComplete", "InProgress"}
    assert (run["info"]["numberRecordsProcessed"], run["info"]["numberRecordsFailed"]) == (3, 1)
    ok = {r[EXT]: r for r in read_csv(org.call("GET", f"/jobs/ingest/{job_id}/successfulResults/"))}
    assert ok["L-1"]["sf__Created"] == "true" and ok["L-2"]["sf__Created"] == "false" and ok["L-1"]["sf__Id"]
    failed = read_csv(org.call("GET", f"/jobs/ingest/{job_id}/failedResults/"))
    assert [(r[EXT], r["sf__Error"].split(":")[0]) for r in failed] == [("L-3", "INVALID_FIELD")]
    assert read_csv(org.call("GET", f"/jobs/ingest/{job_id}/unprocessedrecords/")) == []
    stored = {r[EXT]: r for r in org.sandbox.admin.salesforce_records("Lead")}
    # "#N/A" nulled the score, the empty cell left the tier unchanged.
    assert "Leadscore_Score__c" not in stored["L-2"] and stored["L-2"]["Leadscore_Tier__c"] == "A1"


def test_bulk_job_fails_on_unknown_column(org: Org) -> None:
    _, run = run_job(org, f"{EXT},Nope__c\nL-1,1\n")
    assert run["info"]["state"] == "Failed"
    assert run["info"]["errorMessage"] == "InvalidBatch : Field name not found : Nope__c"
    assert org.sandbox.admin.salesforce_records("Lead") == []


def test_bulk_job_rules(org: Org) -> None:
    bad = org.call("POST", "/jobs/ingest", {"object": "Lead", "operation": "upsert", "externalIdFieldName": "LastName"})
    assert bad.status_code == 400
    job_id = org.call(
        "POST", "/jobs/ingest", {"object": "Lead", "operation": "upsert", "externalIdFieldName": EXT}
    ).json()["id"]
    assert (
        org.call(
            "PUT", f"/jobs/ingest/{job_id}/batches", data=b"x", headers={"Content-Type": "application/json"}
        ).status_code
        == 400
    )
    assert org.call("GET", f"/jobs/ingest/{job_id}/successfulResults/").status_code == 400  # not complete yet
    assert (
        org.call(
            "PUT", f"/jobs/ingest/{job_id}/batches", data=f"{EXT}\nL-1\n".encode(), headers={"Content-Type": "text/csv"}
        ).status_code
        == 201
    )
    again = org.call(
        "PUT", f"/jobs/ingest/{job_id}/batches", data=f"{EXT}\nL-2\n".encode(), headers={"Content-Type": "text/csv"}
    )
    assert again.status_code == 400  # one upload per job
    aborted = org.call("PATCH", f"/jobs/ingest/{job_id}", {"state": "Aborted"}).json()
    assert aborted["state"] == "Aborted"
    assert [r[EXT] for r in read_csv(org.call("GET", f"/jobs/ingest/{job_id}/unprocessedrecords/"))] == ["L-1"]
    assert org.call("GET", f"/jobs/ingest/{job_id}/nonsenseResults/").status_code == 404


def test_bulk_update_by_id_never_creates(crm: Org) -> None:
    crm.sandbox.admin.delete_salesforce_record("Lead", LEAD_IDS[2])
    before = crm.sandbox.admin.counts()
    text = (
        "Id,Leadscore_Score__c\n"
        f"{LEAD_IDS[0]},10\n{LEAD_IDS[1][:15]},11\n{LEAD_IDS[2]},12\n{LEAD_IDS[3]},13\n"
        f"{make_salesforce_id('00Q', 999_999, '8d')},14\nnope,15\n"
    )
    job_id, run = run_job(crm, text, ext="", operation="update")
    assert run["info"]["state"] == "JobComplete" and run["info"]["operation"] == "update"
    assert (run["info"]["numberRecordsProcessed"], run["info"]["numberRecordsFailed"]) == (6, 4)
    ok = read_csv(crm.call("GET", f"/jobs/ingest/{job_id}/successfulResults/"))
    assert sorted((r["sf__Id"], r["sf__Created"]) for r in ok) == sorted(
        [(LEAD_IDS[0], "false"), (LEAD_IDS[1], "false")]
    )
    failed = {
        r["Id"]: r["sf__Error"].split(":")[0]
        for r in read_csv(crm.call("GET", f"/jobs/ingest/{job_id}/failedResults/"))
    }
    assert failed == {
        LEAD_IDS[2]: "ENTITY_IS_DELETED",
        LEAD_IDS[3]: "CANNOT_UPDATE_CONVERTED_LEAD",
        make_salesforce_id("00Q", 999_999, "8d"): "INVALID_CROSS_REFERENCE_KEY",
        "nope": "MALFORMED_ID",
    }
    assert crm.sandbox.admin.counts() == before
    assert lead_field(crm, LEAD_IDS[1], "Leadscore_Score__c") == 11.0


def test_bulk_update_needs_an_id_column(crm: Org) -> None:
    _, run = run_job(crm, "Leadscore_Score__c\n1\n", ext="", operation="update")
    assert run["info"]["state"] == "Failed" and "Id" in run["info"]["errorMessage"]


@pytest.mark.parametrize(
    "kind", ["unprocessedrecords", "unprocessedRecords", "UNPROCESSEDRECORDS", "SuccessfulResults"]
)
def test_bulk_result_paths_are_case_insensitive(org: Org, kind: str) -> None:
    job_id, _ = run_job(org, f"{EXT},LastName,Company\nL-1,L,C\n")
    response = org.call("GET", f"/jobs/ingest/{job_id}/{kind}")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv")


def test_a_failed_bulk_job_keeps_what_it_wrote_and_serves_its_results(
    start_sandbox: Callable[..., SandboxHandle],
) -> None:
    org = Org(start_sandbox(faults={"bulk_fail_after": 3}))
    rows = "".join(f"L-{i},L,C,{i}\n" for i in range(5))
    rows = rows.replace("L-1,L,C,1", "L-1,L,C,x")  # one processed row fails on its own
    job_id, run = run_job(org, f"{EXT},LastName,Company,Leadscore_Score__c\n{rows}")
    info = run["info"]
    assert info["state"] == "Failed" and "after 3 of 5" in info["errorMessage"]
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (3, 1)
    ok = sorted(r[EXT] for r in read_csv(org.call("GET", f"/jobs/ingest/{job_id}/successfulResults/")))
    failed = [r[EXT] for r in read_csv(org.call("GET", f"/jobs/ingest/{job_id}/failedResults/"))]
    unprocessed = [r[EXT] for r in read_csv(org.call("GET", f"/jobs/ingest/{job_id}/unprocessedRecords/"))]
    assert (ok, failed, unprocessed) == (["L-0", "L-2"], ["L-1"], ["L-3", "L-4"])
    assert sorted(r[EXT] for r in org.sandbox.admin.salesforce_records("Lead")) == ["L-0", "L-2"]


def start_bulk_job(org: Org, text: str) -> str:
    """Create, upload and close an upsert job on Lead; the close must be answered with the job queued."""
    job_id = org.call("POST", "/jobs/ingest", {"object": "Lead", "operation": "upsert", "externalIdFieldName": EXT})
    job_id = job_id.json()["id"]
    headers = {"Content-Type": "text/csv"}
    assert org.call("PUT", f"/jobs/ingest/{job_id}/batches", data=text.encode(), headers=headers).status_code == 201
    closed = org.call("PATCH", f"/jobs/ingest/{job_id}", {"state": "UploadComplete"}).json()
    assert (closed["state"], closed["numberRecordsProcessed"]) == ("UploadComplete", 0)
    return job_id


def test_a_closed_bulk_job_waits_in_the_queue_then_runs(start_sandbox: Callable[..., SandboxHandle]) -> None:
    org = Org(start_sandbox(faults={"bulk_queue_delay": 2.0}))
    job_id = start_bulk_job(org, f"{EXT},LastName,Company\nL-1,L,C\nL-2,L,C\n")
    queued = org.call("GET", f"/jobs/ingest/{job_id}").json()
    assert (queued["state"], queued["numberRecordsProcessed"]) == ("UploadComplete", 0)
    assert org.call("GET", f"/jobs/ingest/{job_id}/successfulResults/").status_code == 400  # not finished
    assert org.sandbox.admin.salesforce_records("Lead") == []
    states = poll_job(org, job_id)
    assert [s["state"] for s in states][-2:] == ["InProgress", "JobComplete"]
    assert states[-1]["numberRecordsProcessed"] == 2
    assert sorted(r[EXT] for r in org.sandbox.admin.salesforce_records("Lead")) == ["L-1", "L-2"]


def start_a_job_stopped_after_its_first_chunk(
    state: Path, rows: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, dict[str, Any]]:
    """An upsert of ``rows`` on a sandbox whose worker stops after the first chunk (as when the sandbox is
    stopped mid-job) and which is then stopped: the job id and the job as it was left."""
    process_chunk = salesforce_bulk.BulkIngest._process_chunk

    def first_chunk_then_stop(self: salesforce_bulk.BulkIngest, *args: Any) -> None:
        process_chunk(self, *args)
        self._stopping.set()

    with monkeypatch.context() as patch:
        patch.setattr(salesforce_bulk.BulkIngest, "_process_chunk", first_chunk_then_stop)
        with run_sandbox(state_path=state) as sandbox:
            org = Org(sandbox)
            job_id = start_bulk_job(org, f"{EXT},LastName,Company,Leadscore_Score__c\n{rows}")
            for _ in range(2_000):
                stopped = org.call("GET", f"/jobs/ingest/{job_id}").json()
                if stopped["numberRecordsProcessed"]:
                    break
                time.sleep(0.005)
    return job_id, stopped


def test_a_bulk_job_runs_in_chunks_and_resumes_after_a_sandbox_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker stops after its first chunk (as when the sandbox is stopped mid-job); a sandbox started
    again on the same state file finishes the job from the next chunk: every row written and reported once."""
    monkeypatch.setattr(salesforce_bulk, "CHUNK_ROWS", 2)
    state = tmp_path / "crm.sqlite"
    rows = "".join(f"L-{i},L,C,{i}\n" for i in range(5)).replace("L-3,L,C,3", "L-3,L,C,x")
    job_id, stopped = start_a_job_stopped_after_its_first_chunk(state, rows, monkeypatch)
    assert (stopped["state"], stopped["numberRecordsProcessed"]) == ("InProgress", 2)
    with run_sandbox(state_path=state) as sandbox:
        org = Org(sandbox)
        info = poll_job(org, job_id)[-1]
        assert (info["state"], info["numberRecordsProcessed"], info["numberRecordsFailed"]) == ("JobComplete", 5, 1)
        ok = sorted(r[EXT] for r in read_csv(org.call("GET", f"/jobs/ingest/{job_id}/successfulResults/")))
        failed = [r[EXT] for r in read_csv(org.call("GET", f"/jobs/ingest/{job_id}/failedResults/"))]
        assert (ok, failed) == (["L-0", "L-1", "L-2", "L-4"], ["L-3"])
        assert sorted(r[EXT] for r in sandbox.admin.salesforce_records("Lead")) == ["L-0", "L-1", "L-2", "L-4"]


def test_two_sandboxes_on_one_state_file_never_run_a_chunk_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two sandboxes started on the same state file both resume the unfinished job. Worker B has read the job
    and is about to run its next chunk when worker A runs that chunk; B goes on from the chunk after it, so
    every row is written and reported exactly once."""
    monkeypatch.setattr(salesforce_bulk, "CHUNK_ROWS", 2)
    process_chunk = salesforce_bulk.BulkIngest._process_chunk
    chunks: list[int] = []  # first row of every chunk run after the restart

    def noted_chunk(self: salesforce_bulk.BulkIngest, *args: Any) -> None:
        process_chunk(self, *args)
        chunks.append(args[4])
        if len(chunks) == 1:
            self._stopping.set()

    state = tmp_path / "crm.sqlite"
    rows = "".join(f"L-{i},L,C,{i}\n" for i in range(9)).replace("L-5,L,C,5", "L-5,L,C,x")
    job_id, _ = start_a_job_stopped_after_its_first_chunk(state, rows, monkeypatch)
    monkeypatch.setattr(salesforce_bulk.BulkIngest, "_process_chunk", noted_chunk)
    # Both workers hold the resumed job in their queue delay; the test runs their turns itself.
    held = {"bulk_queue_delay": 60.0}
    with run_sandbox(state_path=state, faults=held) as first, run_sandbox(state_path=state, faults=held) as second:
        worker_a, worker_b = first.app.salesforce.bulk, second.app.salesforce.bulk
        stopping = worker_b._stopping

        class ARunsAChunkFirst:
            """B's stop flag, asked before each chunk: the first time, A runs the next chunk meanwhile."""

            def __init__(self) -> None:
                self.asked = False

            def is_set(self) -> bool:
                if not self.asked:
                    self.asked = True
                    worker_a._process(job_id)  # one chunk, then A is stopped (as its sandbox would be)
                return stopping.is_set()

            def set(self) -> None:
                stopping.set()

            def wait(self, timeout: float | None = None) -> bool:
                return stopping.wait(timeout)

        worker_b._stopping = ARunsAChunkFirst()  # type: ignore[assignment]
        worker_b._process(job_id)
        info = poll_job(Org(first), job_id)[-1]
        assert (info["state"], info["numberRecordsProcessed"], info["numberRecordsFailed"]) == ("JobComplete", 9, 1)
        org = Org(second)
        ok = sorted(r[EXT] for r in read_csv(org.call("GET", f"/jobs/ingest/{job_id}/successfulResults/")))
        failed = [r[EXT] for r in read_csv(org.call("GET", f"/jobs/ingest/{job_id}/failedResults/"))]
        assert (ok, failed) == ([f"L-{i}" for i in range(9) if i != 5], ["L-5"])
    assert chunks == [2, 4, 6, 8]  # each chunk once: A ran the first, B the rest


def test_a_queued_bulk_job_can_be_aborted_and_writes_nothing(start_sandbox: Callable[..., SandboxHandle]) -> None:
    """Aborted while it waits in the queue, a job never runs: every row comes back unprocessed."""
    org = Org(start_sandbox(faults={"bulk_queue_delay": 0.5}))
    job_id = start_bulk_job(org, f"{EXT},LastName,Company\nL-1,L,C\nL-2,L,C\n")
    aborted = org.call("PATCH", f"/jobs/ingest/{job_id}", {"state": "Aborted"}).json()
    assert (aborted["state"], aborted["numberRecordsProcessed"]) == ("Aborted", 0)
    again = org.call("PATCH", f"/jobs/ingest/{job_id}", {"state": "Aborted"})
    assert again.status_code == 400  # an outcome is final
    # A job closed after it runs after it (one queue, in order): once it is done, the aborted one had its turn.
    assert poll_job(org, start_bulk_job(org, f"{EXT},LastName,Company\nL-3,L,C\n"))[-1]["state"] == "JobComplete"
    assert org.call("GET", f"/jobs/ingest/{job_id}").json()["state"] == "Aborted"
    assert sorted(r[EXT] for r in org.sandbox.admin.salesforce_records("Lead")) == ["L-3"]
    unprocessed = [r[EXT] for r in read_csv(org.call("GET", f"/jobs/ingest/{job_id}/unprocessedrecords/"))]
    assert unprocessed == ["L-1", "L-2"]
    successful = org.call("GET", f"/jobs/ingest/{job_id}/successfulResults/").text
    assert successful.splitlines() == [f"sf__Id,sf__Created,{EXT},LastName,Company"]


def test_a_bulk_job_aborted_between_chunks_keeps_what_it_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An abort that lands after the first chunk: that chunk stays written and reported, the rows after it are
    unprocessed and never written, and a sandbox started again on the same file does not resume the job."""
    monkeypatch.setattr(salesforce_bulk, "CHUNK_ROWS", 2)
    process_chunk = salesforce_bulk.BulkIngest._process_chunk

    def abort_after_the_first_chunk(self: salesforce_bulk.BulkIngest, conn: Any, job: Any, *args: Any) -> None:
        process_chunk(self, conn, job, *args)
        if args[2] == 0:  # first_row: the abort commits with the chunk, as if it came right after it
            self._abort(conn, self._job(conn, job["id"]))

    state = tmp_path / "crm.sqlite"
    with monkeypatch.context() as patch:
        patch.setattr(salesforce_bulk.BulkIngest, "_process_chunk", abort_after_the_first_chunk)
        with run_sandbox(state_path=state, salesforce_bulk_polls_before_complete=1) as sandbox:
            org = Org(sandbox)
            job_id = start_bulk_job(org, f"{EXT},LastName,Company\n" + "".join(f"L-{i},L,C\n" for i in range(5)))
            info = poll_job(org, job_id)[-1]
            assert (info["state"], info["numberRecordsProcessed"]) == ("Aborted", 2)
    with run_sandbox(state_path=state) as sandbox:
        org = Org(sandbox)
        assert poll_job(org, start_bulk_job(org, f"{EXT},LastName,Company\nL-9,L,C\n"))[-1]["state"] == "JobComplete"
        assert org.call("GET", f"/jobs/ingest/{job_id}").json()["numberRecordsProcessed"] == 2
        ok = sorted(r[EXT] for r in read_csv(org.call("GET", f"/jobs/ingest/{job_id}/successfulResults/")))
        unprocessed = [r[EXT] for r in read_csv(org.call("GET", f"/jobs/ingest/{job_id}/unprocessedrecords/"))]
        assert (ok, unprocessed) == (["L-0", "L-1"], ["L-2", "L-3", "L-4"])
        assert sorted(r[EXT] for r in sandbox.admin.salesforce_records("Lead")) == ["L-0", "L-1", "L-9"]


def test_the_bulk_worker_outlives_a_locked_store_and_a_failing_job(
    start_sandbox: Callable[..., SandboxHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone holding the state file's write lock (the sqlite3 prompt) delays a job, it does not fail it;
    a job that breaks the sandbox fails alone, and the next job still runs."""
    monkeypatch.setattr(salesforce_bulk, "RETRY_LOCKED_S", 0.01)
    process = salesforce_bulk.BulkIngest._process
    # Calls in order: job 1 meets the lock, job 1 again, job 2 breaks, job 3.
    troubles: list[Exception | None] = [sqlite3.OperationalError("database is locked"), None, RuntimeError("boom")]

    def troubled(self: salesforce_bulk.BulkIngest, job_id: str) -> None:
        trouble = troubles.pop(0) if troubles else None
        if trouble is not None:
            raise trouble
        process(self, job_id)

    monkeypatch.setattr(salesforce_bulk.BulkIngest, "_process", troubled)
    org = Org(start_sandbox())
    delayed = poll_job(org, start_bulk_job(org, f"{EXT},LastName,Company\nL-1,L,C\n"))[-1]
    assert (delayed["state"], delayed["numberRecordsProcessed"]) == ("JobComplete", 1)  # the lock, then the job
    broken = poll_job(org, start_bulk_job(org, f"{EXT},LastName,Company\nL-2,L,C\n"))[-1]
    assert (broken["state"], broken["errorMessage"]) == ("Failed", "InternalServerError : boom")
    after = poll_job(org, start_bulk_job(org, f"{EXT},LastName,Company\nL-3,L,C\n"))[-1]
    assert (after["state"], after["numberRecordsProcessed"]) == ("JobComplete", 1)
    assert sorted(r[EXT] for r in org.sandbox.admin.salesforce_records("Lead")) == ["L-1", "L-3"]


# --- the CLI ---------------------------------------------------------------------------------------------
def test_cli_arguments_build_a_config(tmp_path: Any) -> None:
    args = build_parser().parse_args(
        [
            *("--port", "0", "--tier", "starter", "--p-429", "0.2", "--seed", "3", "--no-salesforce-fields"),
            *("--portal-id", "77", "--my-domain", "acme", "--salesforce-per-app-limit", "50"),
            *("--p-concurrent-limit", "0.1", "--bulk-fail-after", "4", "--no-required-on-create"),
        ]
    )
    config = config_from_args(args)
    assert config.hubspot_tier == "starter" and config.faults.p_429 == 0.2 and config.faults.seed == 3
    assert config.salesforce_deploy_leadscore_fields is False
    assert (config.hubspot_portal_id, config.salesforce_my_domain, config.salesforce_per_app_limit) == (77, "acme", 50)
    assert (config.faults.p_concurrent_limit, config.faults.bulk_fail_after) == (0.1, 4)
    assert config.salesforce_required_on_create is False


def test_cli_starts_a_server(tmp_path: Any) -> None:
    command = [sys.executable, "-m", "activation.sandbox", "--port", "0", "--state", str(tmp_path / "s.sqlite")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        url = first_line.split(" on ", 1)[1].split(" ", 1)[0]
        assert url.startswith("http://127.0.0.1:")
        assert requests.get(f"{url}/_admin/stats", timeout=10).json()["requests"] == 0
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert (tmp_path / "s.sqlite").exists()
