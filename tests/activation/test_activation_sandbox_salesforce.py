"""Contract tests of the sandbox's Salesforce API, over real HTTP (crm-api-contracts.md, Salesforce section)."""

from __future__ import annotations

import base64
import csv
import io
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from activation.sandbox import SandboxHandle
from activation.sandbox.__main__ import build_parser, config_from_args

V = "/services/data/v62.0"
EXT = "Leadscore_Lead_Id__c"


def client_credentials_grant(sandbox: SandboxHandle) -> requests.Response:
    config = sandbox.app.config
    form = {
        "grant_type": "client_credentials",
        "client_id": config.salesforce_client_id,
        "client_secret": config.salesforce_client_secret,
    }
    return requests.post(f"{sandbox.url}/services/oauth2/token", data=form, timeout=10)


def get_token(sandbox: SandboxHandle) -> str:
    response = client_credentials_grant(sandbox)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


class Org:
    """A logged-in caller of the sandbox's Salesforce API."""

    def __init__(self, sandbox: SandboxHandle) -> None:
        self.sandbox = sandbox
        self.token = get_token(sandbox)

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return requests.request(
            method, f"{self.sandbox.url}{V}{path}", json=body, headers=headers, timeout=10, **kwargs
        )

    def upsert(self, records: list[dict[str, Any]], all_or_none: bool = False, field: str = EXT) -> requests.Response:
        body = {"allOrNone": all_or_none, "records": [{"attributes": {"type": "Lead"}, **r} for r in records]}
        return self.call("PATCH", f"/composite/sobjects/Lead/{field}", body)


@pytest.fixture
def org(sandbox: SandboxHandle) -> Org:
    return Org(sandbox)


# --- OAuth ----------------------------------------------------------------------------------------------
def test_client_credentials_token_shape(sandbox: SandboxHandle) -> None:
    response = client_credentials_grant(sandbox)
    body = response.json()
    assert {"access_token", "instance_url", "id", "token_type", "issued_at", "signature", "scope"} <= body.keys()
    assert body["token_type"] == "Bearer" and body["instance_url"] == sandbox.url
    assert "refresh_token" not in body


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
    response = requests.post(f"{sandbox.url}/services/oauth2/token", data=form, timeout=10)
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


# --- describe ------------------------------------------------------------------------------------------------
def test_describe_lists_fields_with_external_ids(org: Org) -> None:
    fields = {f["name"]: f for f in org.call("GET", "/sobjects/Lead/describe").json()["fields"]}
    assert fields[EXT]["externalId"] is True and fields[EXT]["type"] == "string"
    assert fields["Leadscore_Score__c"]["type"] == "double" and fields["Leadscore_Score__c"]["updateable"]
    assert fields["Id"]["updateable"] is False
    assert org.call("GET", "/sobjects/Nope__c/describe").status_code == 404


# --- sObject Collections ------------------------------------------------------------------------------------------
def test_collections_upsert_returns_one_result_per_record_in_order(org: Org) -> None:
    org.upsert([{EXT: "L-2", "Leadscore_Score__c": 1.0}])
    response = org.upsert([{EXT: "L-1", "Leadscore_Score__c": 87}, {EXT: "L-2", "Leadscore_Score__c": 5.5}])
    assert response.status_code == 200
    results = response.json()
    assert [(r["success"], r["created"]) for r in results] == [(True, True), (True, False)]
    assert all(r["id"].startswith("00Q") and r["errors"] == [] for r in results)
    stored = {r[EXT]: r for r in org.sandbox.admin.salesforce_records("Lead")}
    assert stored["L-2"]["Leadscore_Score__c"] == 5.5


def test_null_clears_a_field(org: Org) -> None:
    org.upsert([{EXT: "L-1", "Leadscore_Score__c": 1.0, "Leadscore_Tier__c": "A1"}])
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
    records = [{EXT: "L-1", "Leadscore_Score__c": 1.0}, {EXT: "L-2", "Leadscore_Tier__c": too_long}]
    results = org.upsert(records).json()
    assert results[0]["success"] and not results[1]["success"]
    assert results[1]["errors"][0]["statusCode"] == "STRING_TOO_LONG"
    rolled = org.upsert(
        [{EXT: "L-3", "Leadscore_Score__c": 1.0}, {EXT: "L-4", "Leadscore_Tier__c": too_long}], all_or_none=True
    ).json()
    assert [r["success"] for r in rolled] == [False, False]
    assert rolled[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert sorted(r[EXT] for r in org.sandbox.admin.salesforce_records("Lead")) == ["L-1"]


def test_required_fields_on_create_when_enforced(start_sandbox: Callable[..., SandboxHandle]) -> None:
    org = Org(start_sandbox(salesforce_required_on_create=True))
    result = org.upsert([{EXT: "L-1", "Leadscore_Score__c": 1.0}]).json()[0]
    assert result["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert org.upsert([{EXT: "L-1", "LastName": "Lovelace", "Company": "Analytical"}]).json()[0]["success"]


def test_injected_record_errors(org: Org) -> None:
    org.sandbox.admin.set_faults(reject_keys=["L-2"])
    results = org.upsert([{EXT: "L-1"}, {EXT: "L-2"}]).json()
    assert results[0]["success"] and results[1]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"


# --- Bulk API 2.0 ----------------------------------------------------------------------------------------------------
def run_job(org: Org, text: str, ext: str = EXT) -> tuple[str, dict[str, Any]]:
    job = org.call(
        "POST",
        "/jobs/ingest",
        {"object": "Lead", "operation": "upsert", "externalIdFieldName": ext, "contentType": "CSV", "lineEnding": "LF"},
    )
    assert job.status_code == 200 and job.json()["state"] == "Open"
    job_id = job.json()["id"]
    upload = org.call("PUT", f"/jobs/ingest/{job_id}/batches", data=text.encode(), headers={"Content-Type": "text/csv"})
    assert upload.status_code == 201
    closed = org.call("PATCH", f"/jobs/ingest/{job_id}", {"state": "UploadComplete"})
    assert closed.status_code == 200
    states = [org.call("GET", f"/jobs/ingest/{job_id}").json() for _ in range(2)]
    return job_id, {"polls": [s["state"] for s in states], "info": states[-1]}


def read_csv(response: requests.Response) -> list[dict[str, str]]:
    assert response.headers["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


def test_bulk_ingest_lifecycle(org: Org) -> None:
    org.upsert([{EXT: "L-2", "Leadscore_Score__c": 1.0, "Leadscore_Tier__c": "A1"}])
    text = f"{EXT},Leadscore_Score__c,Leadscore_Tier__c\nL-1,87.5,B2\nL-2,#N/A,\nL-3,not-a-number,C1\n"
    job_id, run = run_job(org, text)
    assert run["polls"] == ["InProgress", "JobComplete"]
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


# --- the CLI ---------------------------------------------------------------------------------------------
def test_cli_arguments_build_a_config(tmp_path: Any) -> None:
    args = build_parser().parse_args(
        ["--port", "0", "--tier", "starter", "--p-429", "0.2", "--seed", "3", "--no-salesforce-fields"]
    )
    config = config_from_args(args)
    assert config.hubspot_tier == "starter" and config.faults.p_429 == 0.2 and config.faults.seed == 3
    assert config.salesforce_deploy_leadscore_fields is False


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
