"""Malformed requests against every route: always a 4xx in the shape of the API the path belongs to.

A sandbox that answers a client mistake with 500 (or with the wrong error shape) tests the client's
fallback instead of the path that runs against the real CRM. Cases x routes, over real HTTP, plus raw
sockets for what ``requests`` will not send (bad Content-Length, broken chunking).
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from activation.sandbox import SandboxHandle, run_sandbox
from activation.sandbox.shapes import api_of

TOKEN = "pat-sandbox-0000-leadscore"
PARAMS = {
    "object_type": "contacts",
    "name": "email",
    "version": "62.0",
    "sobject": "Lead",
    "field": "Email",
    "kind": "successfulResults",
    "id": "1",
}
BODIES: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("invalid-json", b"{nope"),
    ("non-utf8", b'{"inputs": "\xff\xfe"}'),
    ("array", b"[]"),
    ("string", b'"x"'),
    ("number", b"1"),
    ("null", b"null"),
    ("nan", b'{"a": NaN}'),
    ("huge-number", b'{"a": 1e999}'),
    ("deep", b"[" * 5000 + b"]" * 5000),
    ("inputs-object", b'{"inputs": {}}'),
    ("inputs-scalars", b'{"inputs": [1, "x", null]}'),
    ("id-number", b'{"inputs": [{"id": 5, "properties": {}}]}'),
    ("properties-list", b'{"inputs": [{"id": "1", "properties": []}]}'),
    ("value-number", b'{"inputs": [{"id": "1", "idProperty": "email", "properties": {"email": 5}}]}'),
    ("idproperty-list", b'{"inputs": [{"id": "1", "idProperty": [], "properties": {}}]}'),
    ("records-object", b'{"records": {}}'),
    ("records-scalars", b'{"records": [1, "x"]}'),
    ("attributes-string", b'{"records": [{"attributes": "Lead"}]}'),
    ("type-number", b'{"records": [{"attributes": {"type": 5}, "Id": 5}]}'),
    ("all-or-none-string", b'{"allOrNone": "yes", "records": [{"attributes": {"type": "Lead"}, "Id": "x"}]}'),
    ("ids-numbers", b'{"records": [{"attributes": {"type": "Lead"}, "Id": 12}], "properties": 3, "idProperty": 4}'),
    ("state-number", b'{"state": 5, "object": 5, "operation": []}'),
    ("property-types", b'{"name": 5, "label": [], "type": {}, "fieldType": 1, "groupName": null, "options": "x"}'),
    ("display-order", b'{"name": "g", "label": "g", "displayOrder": "first"}'),
    ("fields-malformed", b'{"fields": [{"name": 1}], "records": [{"id": []}]}'),
    ("fault-types", b'{"p_429": "often", "hubspot_daily_limit": "x", "seed": -1}'),
    ("form-garbage", b"grant_type=%ff%fe&client_id=\xff"),
]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    state = Path(tmp_path_factory.mktemp("fuzz")) / "crm.sqlite"
    with run_sandbox(state_path=state, hubspot_max_per_window=1_000_000, body_read_timeout=0.3) as handle:
        yield handle


@pytest.fixture
def salesforce_token(sandbox: SandboxHandle) -> str:
    config = sandbox.app.config
    form = {
        "grant_type": "client_credentials",
        "client_id": config.salesforce_client_id,
        "client_secret": config.salesforce_client_secret,
    }
    # A new token per case: the fuzz also calls /_admin/salesforce/expire-tokens.
    url = f"{sandbox.salesforce_login_url}/services/oauth2/token"
    return requests.post(url, data=form, timeout=10).json()["access_token"]


def open_job(sandbox: SandboxHandle, token: str) -> str:
    body = {"object": "Lead", "operation": "update", "contentType": "CSV"}
    url = f"{sandbox.salesforce_login_url}/services/data/v62.0/jobs/ingest"
    return requests.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10).json()["id"]


def routes(sandbox: SandboxHandle, job_id: str = "x") -> list[tuple[str, str]]:
    """(method, concrete path) of every route the sandbox serves, admin API included."""
    app = sandbox.app
    params = {**PARAMS, "job": job_id, "org": sandbox.org_id, "user": app.config.salesforce_user_id}
    found = []
    for method, regex, _ in [*app.router.patterns(), *app.admin.router.patterns()]:
        path = regex.removeprefix("^").removesuffix("/?$")
        path = re.sub(r"\(\?P<(\w+)>\[\^/\]\+\)", lambda m: params[m.group(1)], path)
        found.append((method, path.replace("\\", "")))
    return found


def assert_shape(path: str, response: requests.Response | tuple[int, Any]) -> None:
    if isinstance(response, requests.Response):
        assert response.status_code < 500, (path, response.status_code, response.text)
        if response.status_code < 400:
            return
        response = (response.status_code, response.json())
    status, body = response
    assert status < 500, (path, status, body)
    if status < 400:
        return
    api = api_of(path)
    if api == "hubspot":
        assert body["status"] == "error" and isinstance(body["message"], str), body
        assert "category" in body or body.get("errorType") == "RATE_LIMIT", body
    elif api == "salesforce":
        assert isinstance(body, list) and body, body
        assert all(isinstance(e["message"], str) and isinstance(e["errorCode"], str) for e in body), body
    elif api == "oauth":
        assert isinstance(body["error"], str) and isinstance(body["error_description"], str), body
    else:
        assert isinstance(body["message"], str), body


@pytest.mark.parametrize(("case", "body"), BODIES, ids=[c for c, _ in BODIES])
def test_malformed_bodies_on_every_route(sandbox: SandboxHandle, salesforce_token: str, case: str, body: bytes) -> None:
    for method, path in routes(sandbox, open_job(sandbox, salesforce_token)):
        api = api_of(path)
        token = salesforce_token if api == "salesforce" else TOKEN
        content_type = "application/x-www-form-urlencoded" if api == "oauth" else "application/json"
        if path.endswith("/batches"):
            content_type = "text/csv"
        for url in {f"{sandbox.url}{path}", f"{sandbox.salesforce_login_url}{path}" if api != "hubspot" else ""} - {""}:
            if "/_admin" in url and "/my/" in url:
                continue
            headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
            response = requests.request(method, url, data=body, headers=headers, timeout=10)
            assert_shape(path, response)
    # The sandbox is still healthy, and no malformed request changed its settings.
    assert requests.get(f"{sandbox.url}/_admin/stats", timeout=10).status_code == 200
    assert sandbox.app.config.faults.p_429 == 0 and sandbox.app.config.hubspot_daily_limit is None


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/crm/v3/nope"),
        ("DELETE", "/crm/v3/objects/contacts/batch/upsert"),
        ("GET", "/account-info/v3/nope"),
        ("GET", "/services/data/v62.0/nope"),
        ("GET", "/services/oauth2/token"),
        ("POST", "/id/x/y"),
        ("GET", "/_admin/nope"),
        ("DELETE", "/_admin/stats"),
        ("GET", "/"),
        ("GET", "/favicon.ico"),
        ("GET", "/my/someone-else/services/data/v62.0/sobjects/Lead/describe"),
        ("GET", "/my/leadscore-sandbox/crm/v3/properties/contacts"),
        ("GET", "/my/leadscore-sandboxes/services/oauth2/token"),
        ("OPTIONS", "/services/data/v62.0/jobs/ingest"),
    ],
)
def test_unknown_routes_answer_in_the_shape_of_their_api(sandbox: SandboxHandle, method: str, path: str) -> None:
    response = requests.request(method, f"{sandbox.url}{path}", timeout=10)
    assert response.status_code in {404, 405}
    assert_shape(path, response)


# --- transport: what requests will not send --------------------------------------------------------------------
def raw_request(sandbox: SandboxHandle, head: str, body: bytes = b"") -> tuple[int, Any]:
    """Send bytes as they are; read the answer until the server closes or sends Content-Length bytes."""
    import json

    port = int(sandbox.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        header, _, rest = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", header).group(1))  # type: ignore[union-attr]
        while len(rest) < length:
            rest += sock.recv(65536)
    return int(header.split()[1]), json.loads(rest[:length])


UPSERT = "/crm/v3/objects/contacts/batch/read"


@pytest.mark.parametrize(
    ("path", "length"),
    [
        (UPSERT, "abc"),
        (UPSERT, "-1"),
        (UPSERT, "1.5"),
        ("/services/data/v62.0/jobs/ingest", "x"),
        ("/_admin/faults", "-5"),
        ("/services/oauth2/token", "1e3"),
        ("/my/leadscore-sandbox/services/oauth2/token", "x"),
        ("/my/leadscore-sandbox/services/data/v62.0/composite/sobjects", "-2"),
        (UPSERT, "99999999999999"),
    ],
)
def test_bad_content_length_is_4xx_in_shape(sandbox: SandboxHandle, path: str, length: str) -> None:
    head = f"POST {path} HTTP/1.1\nHost: x\nAuthorization: Bearer {TOKEN}\nContent-Length: {length}\n"
    status, body = raw_request(sandbox, head, b"{}")
    assert status in {400, 413}
    assert_shape(path, (status, body))


def test_a_body_shorter_than_its_content_length_times_out_as_400(sandbox: SandboxHandle) -> None:
    head = f"POST {UPSERT} HTTP/1.1\nHost: x\nAuthorization: Bearer {TOKEN}\nContent-Length: 100\n"
    status, body = raw_request(sandbox, head, b'{"inputs": ')
    assert status == 400 and "shorter" in body["message"]


def chunked(*parts: bytes) -> bytes:
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts) + b"0\r\n\r\n"


def test_chunked_bodies_are_decoded(sandbox: SandboxHandle) -> None:
    head = f"POST {UPSERT} HTTP/1.1\nHost: x\nAuthorization: Bearer {TOKEN}\nTransfer-Encoding: chunked\n"
    status, body = raw_request(sandbox, head, chunked(b'{"inputs": [{"id"', b': "12345"}]}'))
    assert status == 207 and body["errors"][0]["context"]["ids"] == ["12345"]  # parsed: a not-found answer
    generator = iter([b'{"inputs": [{"id": ', b'"777"}]}'])  # requests sends a generator chunked
    response = requests.post(
        f"{sandbox.url}{UPSERT}", data=generator, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert response.status_code == 207 and response.json()["errors"][0]["context"]["ids"] == ["777"]


@pytest.mark.parametrize(
    ("encoding", "body"),
    [("chunked", b"zz\r\n{}\r\n0\r\n\r\n"), ("chunked", b"10\r\n{}\r\n0\r\n\r\n"), ("gzip", b"{}")],
)
def test_broken_transfer_encodings_are_400(sandbox: SandboxHandle, encoding: str, body: bytes) -> None:
    for path in (UPSERT, "/services/data/v62.0/composite/sobjects", "/services/oauth2/token", "/_admin/faults"):
        head = f"POST {path} HTTP/1.1\nHost: x\nAuthorization: Bearer {TOKEN}\nTransfer-Encoding: {encoding}\n"
        status, answer = raw_request(sandbox, head, body)
        assert status == 400
        assert_shape(path, (status, answer))


@pytest.mark.parametrize("operation", ["update", "upsert"])
def test_malformed_csv_fails_the_job_or_its_rows_never_the_server(
    sandbox: SandboxHandle, salesforce_token: str, operation: str
) -> None:
    headers = {"Authorization": f"Bearer {salesforce_token}"}
    data = f"{sandbox.salesforce_login_url}/services/data/v62.0/jobs/ingest"
    extra_cases = [b'Id\n"unterminated\n', b"Id,Id\n1,2\n", b"Id\x00\n1\n", b"Email,LastName\nx,y,z\n"]
    for _, body in [*BODIES, *[("csv", b) for b in extra_cases]]:
        job = {"object": "Lead", "operation": operation, "externalIdFieldName": "Email"}
        job_id = requests.post(data, json=job, headers=headers, timeout=10).json()["id"]
        upload = requests.put(
            f"{data}/{job_id}/batches", data=body, headers={**headers, "Content-Type": "text/csv"}, timeout=10
        )
        assert upload.status_code in {201, 400}, upload.text
        closed = requests.patch(f"{data}/{job_id}", json={"state": "UploadComplete"}, headers=headers, timeout=10)
        assert closed.status_code in {200, 400}
        for _ in range(2_000):  # until the queued job has run
            info = requests.get(f"{data}/{job_id}", headers=headers, timeout=10)
            if info.status_code != 200 or info.json()["state"] not in {"UploadComplete", "InProgress"}:
                break
            time.sleep(0.005)
        assert info.status_code == 200 and info.json()["state"] in {"Open", "JobComplete", "Failed"}
        for kind in ("successfulResults", "failedResults", "unprocessedrecords"):
            assert requests.get(f"{data}/{job_id}/{kind}", headers=headers, timeout=10).status_code < 500
