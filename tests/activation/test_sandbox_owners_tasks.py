"""The sandbox's owners and tasks, over real HTTP: HubSpot owners and tasks (batch and single create, read,
search), Salesforce Users, Tasks and SOQL, owner checks on records, faults after commit, and seeding owners."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests

from activation.salesforce_ids import make_salesforce_id
from activation.sandbox import SandboxHandle
from activation.sandbox.config import ALL_HUBSPOT_SCOPES, DEFAULT_HUBSPOT_TOKEN
from activation.sandbox.hubspot_search import visible
from activation.sandbox.salesforce_query import parse_query
from activation.sandbox.seed import seed_from_warehouse

HEADERS = {"Authorization": f"Bearer {DEFAULT_HUBSPOT_TOKEN}"}
ACTIVE_OWNER, ARCHIVED_OWNER = "7001", "7002"
ACTIVE_USER, INACTIVE_USER = make_salesforce_id("005", 9001), make_salesforce_id("005", 9002)
LEAD, CONVERTED_LEAD = make_salesforce_id("00Q", 10), make_salesforce_id("00Q", 11)
CONTACT, ACCOUNT = make_salesforce_id("003", 11), make_salesforce_id("001", 1)


@pytest.fixture
def crm(sandbox: SandboxHandle) -> SandboxHandle:
    """Two owners (one archived), two Users (one inactive), a contact, a Lead, a converted Lead and its Contact."""
    admin = sandbox.admin
    admin.seed_hubspot_owners(
        [
            {"id": ACTIVE_OWNER, "email": "Ada@Example.com", "firstName": "Ada", "lastName": "L", "userId": "91"},
            {"id": ARCHIVED_OWNER, "email": "gone@example.com", "userId": "92", "archived": True},
        ]
    )
    admin.seed_hubspot("contacts", [{"id": "101", "properties": {"email": "p@example.com"}}])
    admin.seed_salesforce(
        "User",
        [{"Id": ACTIVE_USER, "LastName": "Rep", "IsActive": True}, {"Id": INACTIVE_USER, "LastName": "Gone",
                                                                     "IsActive": False}],
    )  # fmt: skip
    admin.seed_salesforce("Account", [{"Id": ACCOUNT, "Name": "Acme"}])
    admin.seed_salesforce("Contact", [{"Id": CONTACT, "LastName": "C"}])
    admin.seed_salesforce(
        "Lead",
        [{"Id": LEAD, "LastName": "L", "Company": "Acme"},
         {"Id": CONVERTED_LEAD, "LastName": "C", "Company": "Acme", "IsConverted": True,
          "ConvertedContactId": CONTACT}],
    )  # fmt: skip
    return sandbox


def hubspot(sandbox: SandboxHandle, method: str, path: str, body: Any = None, token: str = DEFAULT_HUBSPOT_TOKEN):
    headers = {"Authorization": f"Bearer {token}"}
    return requests.request(method, f"{sandbox.url}{path}", json=body, headers=headers, timeout=10)


def task_input(**properties: str) -> dict[str, Any]:
    values = {"hs_timestamp": "1793610000000", "hs_task_subject": "Call", "hubspot_owner_id": ACTIVE_OWNER,
              **properties}  # fmt: skip
    return {"properties": {k: v for k, v in values.items() if v is not None},
            "associations": [{"to": {"id": "101"}, "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                                               "associationTypeId": 204}]}]}  # fmt: skip


def tasks(sandbox: SandboxHandle) -> list[dict[str, Any]]:
    return sandbox.admin.hubspot_objects("tasks")


# --- HubSpot owners ------------------------------------------------------------------------------------------
def test_owners_list_pages_and_separates_archived_owners(crm: SandboxHandle) -> None:
    crm.admin.seed_hubspot_owners([{"id": str(7100 + i), "email": f"r{i}@example.com"} for i in range(3)])
    first = hubspot(crm, "GET", "/crm/v3/owners?limit=2").json()
    assert [o["id"] for o in first["results"]] == [ACTIVE_OWNER, "7100"]
    after = first["paging"]["next"]["after"]
    rest = hubspot(crm, "GET", f"/crm/v3/owners?limit=2&after={after}").json()
    assert [o["id"] for o in rest["results"]] == ["7101", "7102"] and "paging" not in rest
    archived = hubspot(crm, "GET", "/crm/v3/owners?archived=true").json()["results"]
    assert [(o["id"], o["archived"]) for o in archived] == [(ARCHIVED_OWNER, True)]
    ada = hubspot(crm, "GET", "/crm/v3/owners?email=ADA@example.com").json()["results"]
    assert [(o["id"], o["email"], o["userId"]) for o in ada] == [(ACTIVE_OWNER, "ada@example.com", 91)]


def test_owner_by_id_by_user_id_and_archived(crm: SandboxHandle) -> None:
    assert hubspot(crm, "GET", f"/crm/v3/owners/{ACTIVE_OWNER}").json()["firstName"] == "Ada"
    assert hubspot(crm, "GET", "/crm/v3/owners/91?idProperty=userId").json()["id"] == ACTIVE_OWNER
    assert hubspot(crm, "GET", f"/crm/v3/owners/{ARCHIVED_OWNER}").status_code == 404
    assert hubspot(crm, "GET", f"/crm/v3/owners/{ARCHIVED_OWNER}?archived=true").json()["archived"] is True
    assert hubspot(crm, "GET", "/crm/v3/owners/abc").status_code == 400
    assert hubspot(crm, "GET", "/crm/v3/owners?limit=501").status_code == 400


def test_owners_need_their_scope(start_sandbox: Callable[..., SandboxHandle]) -> None:
    scopes = tuple(s for s in ALL_HUBSPOT_SCOPES if s != "crm.objects.owners.read")
    sandbox = start_sandbox(hubspot_tokens={"pat-no-owners": scopes})
    response = hubspot(sandbox, "GET", "/crm/v3/owners", token="pat-no-owners")
    assert response.status_code == 403 and response.json()["category"] == "MISSING_SCOPES"


def test_a_record_owner_must_be_an_active_owner(crm: SandboxHandle) -> None:
    url = "/crm/v3/objects/contacts/batch/update"
    for owner in (ARCHIVED_OWNER, "7999", "not-a-number"):
        response = hubspot(crm, "POST", url, {"inputs": [{"id": "101", "properties": {"hubspot_owner_id": owner}}]})
        assert response.status_code == 400, owner
        assert response.json()["errors"][0]["code"] == "INVALID_OWNER_ID"
    assert "hubspot_owner_id" not in crm.admin.hubspot_objects("contacts")[0]["properties"], "nothing written"
    ok = hubspot(crm, "POST", url, {"inputs": [{"id": "101", "properties": {"hubspot_owner_id": ACTIVE_OWNER}}]})
    assert ok.status_code == 200
    crm.admin.archive_hubspot_owner(ACTIVE_OWNER)  # the rep leaves: records keep them as owner
    assert crm.admin.hubspot_objects("contacts")[0]["properties"]["hubspot_owner_id"] == ACTIVE_OWNER
    definition = hubspot(crm, "GET", "/crm/v3/properties/contacts/hubspot_owner_id").json()
    assert (definition["type"], definition["referencedObjectType"]) == ("enumeration", "OWNER")


# --- HubSpot tasks ------------------------------------------------------------------------------------------
def test_tasks_are_created_associated_and_read_back(crm: SandboxHandle) -> None:
    response = hubspot(crm, "POST", "/crm/v3/objects/tasks/batch/create",
                       {"inputs": [{**task_input(hs_task_priority="HIGH"), "objectWriteTraceId": "a1"}]})  # fmt: skip
    assert response.status_code == 200, response.text
    result = response.json()["results"][0]
    assert result["objectWriteTraceId"] == "a1"
    read = hubspot(
        crm, "GET", f"/crm/v3/objects/tasks/{result['id']}?properties=hs_task_priority&associations=contacts"
    )
    body = read.json()
    assert body["properties"]["hs_task_priority"] == "HIGH"
    assert body["associations"]["contacts"]["results"] == [{"id": "101", "type": "task_to_contact"}]
    single = hubspot(crm, "POST", "/crm/v3/objects/tasks", task_input(hs_task_subject="One"))
    assert single.status_code == 201 and single.json()["properties"]["hs_task_subject"] == "One"
    assert hubspot(crm, "GET", "/crm/v3/objects/tasks/999999").status_code == 404
    assert len(tasks(crm)) == 2


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"hs_timestamp": None}, "REQUIRED_FIELD"),
        ({"hubspot_owner_id": ARCHIVED_OWNER}, "INVALID_OWNER_ID"),
        ({"hubspot_owner_id": "7999"}, "INVALID_OWNER_ID"),
        ({"hs_task_status": "DONE"}, "INVALID_OPTION"),
        ({"hs_task_priority": "URGENT"}, "INVALID_OPTION"),
        ({"hs_task_type": "FAX"}, "INVALID_OPTION"),
        ({"hs_timestamp": "tomorrow"}, "INVALID_DATE"),
        ({"leadscore_nope": "x"}, "PROPERTY_DOESNT_EXIST"),
    ],
)
def test_hubspot_refuses_invalid_tasks_as_a_whole_batch(crm: SandboxHandle, change: dict[str, Any], code: str) -> None:
    inputs = [task_input(), task_input(**change)]
    response = hubspot(crm, "POST", "/crm/v3/objects/tasks/batch/create", {"inputs": inputs})
    assert response.status_code == 400 and response.json()["category"] == "VALIDATION_ERROR"
    assert code in {e["code"] for e in response.json()["errors"]}, response.text
    assert tasks(crm) == [], "one invalid task: nothing of the batch is written"


def test_a_task_must_hang_on_a_contact_that_exists(crm: SandboxHandle) -> None:
    bad = task_input()
    bad["associations"][0]["to"]["id"] = "999"
    response = hubspot(crm, "POST", "/crm/v3/objects/tasks/batch/create", {"inputs": [task_input(), bad]})
    assert response.status_code == 400 and response.json()["errors"][0]["code"] == "INVALID_ASSOCIATION"
    wrong_type = task_input()
    wrong_type["associations"][0]["types"][0]["associationTypeId"] = 1
    assert hubspot(crm, "POST", "/crm/v3/objects/tasks/batch/create", {"inputs": [wrong_type]}).status_code == 400
    assert tasks(crm) == []


def test_task_properties_and_search(crm: SandboxHandle) -> None:
    group = {"name": "leadscore", "label": "Leadscore"}
    assert hubspot(crm, "POST", "/crm/v3/properties/tasks/groups", group).status_code == 201
    definition = {"name": "leadscore_alert_id", "label": "Alert", "type": "string", "fieldType": "text",
                  "groupName": "leadscore"}  # fmt: skip
    assert hubspot(crm, "POST", "/crm/v3/properties/tasks", definition).status_code == 201
    inputs = [task_input(leadscore_alert_id=f"alert{i}") for i in range(5)] + [task_input(leadscore_alert_id="Mixed")]
    assert hubspot(crm, "POST", "/crm/v3/objects/tasks/batch/create", {"inputs": inputs}).status_code == 200
    query = {"filterGroups": [{"filters": [{"propertyName": "leadscore_alert_id", "operator": "IN",
                                            "values": ["alert1", "alert3", "alert9"]}]}],
             "properties": ["leadscore_alert_id"], "limit": 1}  # fmt: skip
    first = hubspot(crm, "POST", "/crm/v3/objects/tasks/search", query).json()
    assert first["total"] == 2 and first["results"][0]["properties"]["leadscore_alert_id"] == "alert1"
    second = hubspot(crm, "POST", "/crm/v3/objects/tasks/search", {**query, "after": first["paging"]["next"]["after"]})
    assert [r["properties"]["leadscore_alert_id"] for r in second.json()["results"]] == ["alert3"]
    equal = {
        "filterGroups": [{"filters": [{"propertyName": "leadscore_alert_id", "operator": "EQ", "value": "alert4"}]}]
    }
    assert hubspot(crm, "POST", "/crm/v3/objects/tasks/search", equal).json()["total"] == 1

    def found_by_in(*values: str) -> int:
        body = {"filterGroups": [{"filters": [{"propertyName": "leadscore_alert_id", "operator": "IN",
                                               "values": list(values)}]}]}  # fmt: skip
        return hubspot(crm, "POST", "/crm/v3/objects/tasks/search", body).json()["total"]

    # IN is case-sensitive on its input and matches the lower-cased stored value; EQ ignores case.
    time.sleep(1.0)  # four more searches: stay within the search API's 5 per second
    assert found_by_in("ALERT4") == 0 and found_by_in("Mixed") == 0 and found_by_in("mixed") == 1
    shouting = {
        "filterGroups": [{"filters": [{"propertyName": "leadscore_alert_id", "operator": "EQ", "value": "ALERT4"}]}]
    }
    assert hubspot(crm, "POST", "/crm/v3/objects/tasks/search", shouting).json()["total"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {"filterGroups": [{"filters": [{"propertyName": "leadscore_x", "operator": "EQ", "value": "1"}]}]},
        {"filterGroups": [{"filters": [{"propertyName": "hs_task_subject", "operator": "IN",
                                        "values": [str(i) for i in range(101)]}]}]},
        {"filterGroups": [{"filters": [{"propertyName": "hs_task_subject", "operator": "LIKE", "value": "a"}]}]},
        {"filterGroups": [{"filters": []}] * 6},
        {"limit": 201},
        {"after": 9_990, "limit": 20},
    ],
)  # fmt: skip
def test_search_refuses_what_hubspot_refuses(crm: SandboxHandle, body: dict[str, Any]) -> None:
    response = hubspot(crm, "POST", "/crm/v3/objects/tasks/search", body)
    assert response.status_code == 400 and response.json()["category"] == "VALIDATION_ERROR"


def test_search_trails_writes_and_has_its_own_rate_limit(start_sandbox: Callable[..., SandboxHandle]) -> None:
    sandbox = start_sandbox(hubspot_search_lag_seconds=3600, hubspot_search_per_second=2)
    sandbox.admin.seed_hubspot("contacts", [{"id": "101", "properties": {}}])
    sandbox.admin.seed_hubspot_owners([{"id": ACTIVE_OWNER}])
    created = hubspot(sandbox, "POST", "/crm/v3/objects/tasks", task_input()).json()
    assert hubspot(sandbox, "GET", f"/crm/v3/objects/tasks/{created['id']}").status_code == 200
    statuses = [hubspot(sandbox, "POST", "/crm/v3/objects/tasks/search", {}).status_code for _ in range(3)]
    assert statuses[:2] == [200, 200] and statuses[2] == 429  # more than 2 in the same second
    created_at = dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC)
    assert not visible(created_at.isoformat(), 5, now=created_at + dt.timedelta(seconds=4))
    assert visible(created_at.isoformat(), 5, now=created_at + dt.timedelta(seconds=5))


# --- Salesforce Users, Tasks, SOQL --------------------------------------------------------------------------
def salesforce(sandbox: SandboxHandle) -> tuple[str, dict[str, str]]:
    config = sandbox.app.config
    form = {"grant_type": "client_credentials", "client_id": config.salesforce_client_id,
            "client_secret": config.salesforce_client_secret}  # fmt: skip
    token = requests.post(f"{sandbox.salesforce_login_url}/services/oauth2/token", data=form, timeout=10).json()
    return f"{sandbox.salesforce_login_url}/services/data/v62.0", {"Authorization": f"Bearer {token['access_token']}"}


def soql(sandbox: SandboxHandle, query: str) -> requests.Response:
    base, headers = salesforce(sandbox)
    return requests.get(f"{base}/query", params={"q": query}, headers=headers, timeout=10)


def create(sandbox: SandboxHandle, *records: dict[str, Any]) -> list[dict[str, Any]]:
    base, headers = salesforce(sandbox)
    rows = [{"attributes": {"type": "Task"}, **r} for r in records]
    response = requests.post(f"{base}/composite/sobjects", json={"allOrNone": False, "records": rows},
                             headers=headers, timeout=10)  # fmt: skip
    assert response.status_code == 200, response.text
    return response.json()


def test_users_are_queried_and_described(crm: SandboxHandle) -> None:
    active = soql(crm, f"SELECT Id, IsActive FROM User WHERE IsActive = true AND Id IN ('{ACTIVE_USER[:15]}', "
                       f"'{INACTIVE_USER}')")  # fmt: skip
    assert active.status_code == 200
    assert [(r["Id"], r["IsActive"]) for r in active.json()["records"]] == [(ACTIVE_USER, True)]
    assert active.json()["records"][0]["attributes"]["type"] == "User"
    base, headers = salesforce(crm)
    fields = requests.get(f"{base}/sobjects/User/describe", headers=headers, timeout=10).json()["fields"]
    assert {"Id", "IsActive", "Email", "LastName"} <= {f["name"] for f in fields}
    owner = next(f for f in requests.get(f"{base}/sobjects/Lead/describe", headers=headers, timeout=10).json()["fields"]
                 if f["name"] == "OwnerId")  # fmt: skip
    assert (owner["type"], owner["referenceTo"], owner["updateable"]) == ("reference", ["User"], True)


def test_owner_id_must_name_an_active_user(crm: SandboxHandle) -> None:
    base, headers = salesforce(crm)
    records = [{"attributes": {"type": "Lead"}, "Id": LEAD, "OwnerId": owner}
               for owner in (INACTIVE_USER, make_salesforce_id("005", 9999), CONTACT, ACTIVE_USER)]  # fmt: skip
    results = []
    for record in records:  # one request each: the same Id twice in a request is a duplicate
        answer = requests.patch(f"{base}/composite/sobjects", json={"allOrNone": False, "records": [record]},
                                headers=headers, timeout=10).json()  # fmt: skip
        results.append(answer[0])
    codes = [r["errors"][0]["statusCode"] if not r["success"] else "ok" for r in results]
    assert codes == ["INACTIVE_OWNER_OR_USER", "INVALID_CROSS_REFERENCE_KEY", "FIELD_INTEGRITY_EXCEPTION", "ok"]
    assert results[0]["errors"][0]["fields"] == ["OwnerId"]
    lead = {r["Id"]: r for r in crm.admin.salesforce_records("Lead")}[LEAD]
    assert lead["OwnerId"] == ACTIVE_USER


def test_tasks_are_created_with_their_fields_and_checked_like_salesforce(crm: SandboxHandle) -> None:
    good = {"Subject": "Call", "WhoId": LEAD, "OwnerId": ACTIVE_USER, "ActivityDate": "2026-11-02",
            "Status": "Not Started", "Priority": "High", "Leadscore_Alert_Id__c": "a1"}  # fmt: skip
    results = create(
        crm,
        good,
        {**good, "WhoId": CONVERTED_LEAD},
        {**good, "WhoId": ACCOUNT},
        {**good, "WhoId": make_salesforce_id("00Q", 999)},
        {**good, "OwnerId": INACTIVE_USER},
        {**good, "Priority": "Urgent"},
        {**good, "Subject": "x" * 256},
        {**good, "WhoId": CONTACT, "Status": "Completed"},
    )
    codes = [r["errors"][0]["statusCode"] if not r["success"] else "ok" for r in results]
    assert codes == [
        "ok", "CANNOT_UPDATE_CONVERTED_LEAD", "FIELD_INTEGRITY_EXCEPTION", "INVALID_CROSS_REFERENCE_KEY",
        "INACTIVE_OWNER_OR_USER", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "STRING_TOO_LONG", "ok",
    ]  # fmt: skip
    assert results[0]["id"].startswith("00T") and "created" not in results[0]
    stored = {t["Id"]: t for t in crm.admin.salesforce_records("Task")}
    assert stored[results[0]["id"]]["WhoId"] == LEAD and stored[results[0]["id"]]["ActivityDate"] == "2026-11-02"
    defaulted = create(crm, {"Subject": "Defaults", "WhoId": LEAD})[0]
    task = {t["Id"]: t for t in crm.admin.salesforce_records("Task")}[defaulted["id"]]
    assert (task["Status"], task["Priority"], task["OwnerId"]) == (
        "Not Started", "Normal", crm.app.config.salesforce_user_id,
    )  # fmt: skip
    base, headers = salesforce(crm)
    wrong_date = {"records": [{"attributes": {"type": "Task"}, "ActivityDate": "02/11/2026"}]}
    malformed = requests.post(f"{base}/composite/sobjects", headers=headers, timeout=10, json=wrong_date)
    assert malformed.status_code == 400 and malformed.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    with_id = requests.post(f"{base}/composite/sobjects", headers=headers, timeout=10,
                            json={"records": [{"attributes": {"type": "Task"}, "Id": LEAD}]})  # fmt: skip
    assert with_id.status_code == 400


def test_tasks_are_found_by_their_alert_id_with_soql(start_sandbox: Callable[..., SandboxHandle]) -> None:
    sandbox = start_sandbox(salesforce_query_batch_size=2)
    sandbox.admin.seed_salesforce("Lead", [{"Id": LEAD, "LastName": "L", "Company": "Acme"}])
    create(sandbox, *({"Subject": f"T{i}", "WhoId": LEAD, "Leadscore_Alert_Id__c": f"a{i}"} for i in range(5)))
    response = soql(sandbox, "select id, leadscore_alert_id__c from task where Leadscore_Alert_Id__c "
                             "in ('a1', 'a2', 'A3', 'zz') order by Leadscore_Alert_Id__c desc")  # fmt: skip
    page = response.json()
    assert (page["totalSize"], page["done"], len(page["records"])) == (3, False, 2)
    assert [r["Leadscore_Alert_Id__c"] for r in page["records"]] == ["a3", "a2"]
    _, headers = salesforce(sandbox)
    more = requests.get(f"{sandbox.salesforce_login_url}{page['nextRecordsUrl']}", headers=headers, timeout=10)
    assert more.json()["done"] is True and [r["Leadscore_Alert_Id__c"] for r in more.json()["records"]] == ["a1"]
    assert requests.get(f"{sandbox.salesforce_login_url}{page['nextRecordsUrl']}", headers=headers,
                        timeout=10).status_code == 400  # a locator is read once  # fmt: skip
    not_in = soql(sandbox, "SELECT Id FROM Task WHERE Leadscore_Alert_Id__c NOT IN ('a0') AND Subject != 'T4'")
    assert not_in.json()["totalSize"] == 3


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("SELECT Id FROM Task WHERE Subject = 'a' OR Subject = 'b'", "MALFORMED_QUERY"),
        ("SELECT Owner.Name FROM Task", "MALFORMED_QUERY"),
        ("SELECT Id FROM Task WHERE Subject LIKE 'a%'", "MALFORMED_QUERY"),
        ("SELECT Id FROM Task WHERE Subject = unquoted", "MALFORMED_QUERY"),
        ("SELECT Nope__c FROM Task", "INVALID_FIELD"),
        ("SELECT Id FROM Nope", "INVALID_TYPE"),
        ("DELETE FROM Task", "MALFORMED_QUERY"),
    ],
)
def test_soql_outside_the_subset_is_a_clear_400(crm: SandboxHandle, query: str, code: str) -> None:
    response = soql(crm, query)
    assert response.status_code == 400 and response.json()[0]["errorCode"] == code, response.text


def test_the_soql_parser() -> None:
    query = parse_query("SELECT Id, Name FROM Task WHERE A = 'it\\'s' AND B IN (1, 2.5, true, null) AND "
                        "C != 2026-11-02 ORDER BY Name DESC LIMIT 5")  # fmt: skip
    assert (query.fields, query.sobject, query.order_by, query.descending, query.limit) == (
        ("Id", "Name"), "Task", "Name", True, 5,
    )  # fmt: skip
    assert [(c.field, c.operator, c.values) for c in query.conditions] == [
        ("A", "=", ("it's",)), ("B", "IN", (1, 2.5, True, None)), ("C", "!=", ("2026-11-02",)),
    ]  # fmt: skip


def test_the_key_field_is_described_only_when_deployed(start_sandbox: Callable[..., SandboxHandle]) -> None:
    for deployed in (True, False):
        sandbox = start_sandbox(salesforce_deploy_leadscore_fields=deployed)
        base, headers = salesforce(sandbox)
        fields = requests.get(f"{base}/sobjects/Task/describe", headers=headers, timeout=10).json()["fields"]
        names = {f["name"] for f in fields}
        assert ("Leadscore_Alert_Id__c" in names) is deployed
        assert {"Subject", "WhoId", "OwnerId", "ActivityDate", "Status", "Priority", "Description"} <= names
        status = next(f for f in fields if f["name"] == "Status")
        assert status["restrictedPicklist"] and "Not Started" in [v["value"] for v in status["picklistValues"]]


# --- faults after commit ------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["p_5xx_after_commit", "p_disconnect_after_commit"])
def test_a_write_can_commit_and_lose_its_answer(crm: SandboxHandle, fault: str) -> None:
    base, headers = salesforce(crm)  # the token endpoint is faulty too: get one first
    record = {"attributes": {"type": "Task"}, "Subject": "Lost", "WhoId": LEAD}
    crm.admin.set_faults(**{fault: 1.0})
    answers = []
    for send in (
        lambda: hubspot(crm, "POST", "/crm/v3/objects/tasks/batch/create", {"inputs": [task_input()]}),
        lambda: requests.post(f"{base}/composite/sobjects", json={"records": [record]}, headers=headers, timeout=10),
    ):
        try:
            answers.append(send().status_code)
        except requests.ConnectionError:
            answers.append("disconnected")
    crm.admin.set_faults(**{fault: 0.0})
    expected = "disconnected" if fault == "p_disconnect_after_commit" else {502, 503, 504}
    assert all(a == expected or (isinstance(expected, set) and a in expected) for a in answers), answers
    assert len(tasks(crm)) == 1, "the HubSpot task was written although its answer was lost"
    assert [t["Subject"] for t in crm.admin.salesforce_records("Task")] == ["Lost"]
    assert crm.admin.stats()["injected"][fault.removeprefix("p_")] == 2


# --- seeding owners ----------------------------------------------------------------------------------------
SYNTHETIC_WITH_OWNERS = f"""
CREATE SCHEMA synthetic_crm;
CREATE TABLE synthetic_crm.hubspot_owners AS SELECT * FROM (VALUES
    ('7001', 'ada@example.com', 'Ada', 'L', '91', false), ('7002', 'gone@example.com', 'Gone', 'G', '92', true))
    t(id, email, "firstName", "lastName", "userId", archived);
CREATE TABLE synthetic_crm.salesforce_users AS SELECT * FROM (VALUES
    ('{ACTIVE_USER}', 'Ada', 'L', 'ada@example.com', true), ('{INACTIVE_USER.lower()}', 'Gone', 'G', 'g@x.io', false))
    t("Id", "FirstName", "LastName", "Email", "IsActive");
CREATE TABLE synthetic_crm.hubspot_contacts AS SELECT * FROM (VALUES
    ('101', 'a@example.com', 'A', 'A', '7002'), ('102', 'b@example.com', 'B', 'B', NULL))
    t(id, email, firstname, lastname, hubspot_owner_id);
CREATE TABLE synthetic_crm.hubspot_companies AS SELECT * FROM (VALUES ('201', 'Acme', 'acme.io', '7001'))
    t(id, name, domain, hubspot_owner_id);
CREATE TABLE synthetic_crm.salesforce_accounts AS SELECT * FROM (VALUES
    ('{ACCOUNT}', 'Acme', 'acme.io', '{ACTIVE_USER}')) t("Id", "Name", "Website", "OwnerId");
CREATE TABLE synthetic_crm.salesforce_leads AS SELECT * FROM (VALUES
    ('{LEAD}', 'A', 'A', 'Acme', 'a@example.com', 'Open - Not Contacted', false, NULL, NULL, '{INACTIVE_USER}'))
    t("Id", "FirstName", "LastName", "Company", "Email", "Status", "IsConverted", "ConvertedContactId",
      "ConvertedAccountId", "OwnerId");
CREATE TABLE synthetic_crm.salesforce_contacts AS SELECT * FROM (VALUES
    ('{CONTACT}', 'B', 'B', 'b@example.com', '{ACCOUNT}', NULL))
    t("Id", "FirstName", "LastName", "Email", "AccountId", "OwnerId");
"""

RAW_WITH_OWNERS = f"""
CREATE SCHEMA raw;
CREATE TABLE raw.crm_users AS SELECT * FROM (VALUES
    ('R-1', '7001', '{ACTIVE_USER[:15]}', 'Ada Lovelace', 'ada@example.com', NULL),
    ('R-2', '7002', NULL, 'Gone Person', 'gone@example.com', false))
    t(user_id, hubspot_owner_id, salesforce_user_id, full_name, email, is_active);
CREATE TABLE raw.accounts AS SELECT * FROM (VALUES ('A-1', '201', '{ACCOUNT}', 'Acme', 'acme.io', 'R-1'))
    t(account_id, hubspot_company_id, salesforce_account_id, account_name, domain, owner_user_id);
CREATE TABLE raw.contacts AS SELECT * FROM (VALUES
    ('C-1', '101', '{LEAD}', NULL, 'a@example.com', 'A', 'A', 'A-1', 'R-2'),
    ('C-2', '102', NULL, '{CONTACT}', 'b@example.com', 'B', 'B', 'A-1', 'R-1'))
    t(contact_id, hubspot_contact_id, salesforce_lead_id, salesforce_contact_id, email, first_name, last_name,
      account_id, owner_user_id);
"""


def seeded(sandbox: SandboxHandle, tmp_path: Path, sql: str) -> dict[str, int]:
    path = tmp_path / "source.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute(sql)
    with duckdb.connect(str(path), read_only=True) as conn:
        return seed_from_warehouse(sandbox.app, conn)


def test_seed_owners_from_the_synthetic_crm(sandbox: SandboxHandle, tmp_path: Path) -> None:
    counts = seeded(sandbox, tmp_path, SYNTHETIC_WITH_OWNERS)
    assert (counts["hubspot.owners"], counts["salesforce.User"], counts["hubspot.contacts"]) == (2, 2, 2)
    owners = {o["id"]: o for o in sandbox.admin.hubspot_owners()}
    assert (owners["7001"]["archived"], owners["7002"]["archived"], owners["7001"]["userId"]) == (False, True, 91)
    contacts = {c["id"]: c["properties"] for c in sandbox.admin.hubspot_objects("contacts")}
    assert contacts["101"]["hubspot_owner_id"] == "7002", "an inactive rep stays the owner of their records"
    assert "hubspot_owner_id" not in contacts["102"]
    users = {u["Id"]: u for u in sandbox.admin.salesforce_records("User")}
    assert users[ACTIVE_USER]["IsActive"] is True and users[INACTIVE_USER]["IsActive"] is False
    assert {r["Id"]: r for r in sandbox.admin.salesforce_records("Lead")}[LEAD]["OwnerId"] == INACTIVE_USER
    assert "OwnerId" not in {r["Id"]: r for r in sandbox.admin.salesforce_records("Contact")}[CONTACT]


def test_seed_owners_from_the_raw_export(sandbox: SandboxHandle, tmp_path: Path) -> None:
    counts = seeded(sandbox, tmp_path, RAW_WITH_OWNERS)
    assert (counts["hubspot.owners"], counts["salesforce.User"]) == (2, 1)
    owners = {o["id"]: o for o in sandbox.admin.hubspot_owners()}
    assert (owners["7001"]["firstName"], owners["7001"]["lastName"], owners["7002"]["archived"]) == (
        "Ada", "Lovelace", True,
    )  # fmt: skip
    contacts = {c["id"]: c["properties"] for c in sandbox.admin.hubspot_objects("contacts")}
    assert (contacts["101"]["hubspot_owner_id"], contacts["102"]["hubspot_owner_id"]) == ("7002", "7001")
    companies = {c["id"]: c["properties"] for c in sandbox.admin.hubspot_objects("companies")}
    assert companies["201"]["hubspot_owner_id"] == "7001"
    assert {r["Id"]: r for r in sandbox.admin.salesforce_records("Contact")}[CONTACT]["OwnerId"] == ACTIVE_USER
    assert {r["Id"]: r for r in sandbox.admin.salesforce_records("Account")}[ACCOUNT]["OwnerId"] == ACTIVE_USER
    assert "OwnerId" not in {r["Id"]: r for r in sandbox.admin.salesforce_records("Lead")}[LEAD]  # R-2 has none


def test_seed_without_owner_tables_still_works(sandbox: SandboxHandle, tmp_path: Path) -> None:
    """An older warehouse: no owner tables, no owner columns."""
    older = SYNTHETIC_WITH_OWNERS + "".join(
        f"ALTER TABLE synthetic_crm.{table} DROP COLUMN {column};"
        for table, column in [("hubspot_contacts", "hubspot_owner_id"), ("hubspot_companies", "hubspot_owner_id"),
                              ("salesforce_accounts", '"OwnerId"'), ("salesforce_leads", '"OwnerId"'),
                              ("salesforce_contacts", '"OwnerId"')]
    ) + "DROP TABLE synthetic_crm.hubspot_owners; DROP TABLE synthetic_crm.salesforce_users;"  # fmt: skip
    counts = seeded(sandbox, tmp_path, older)
    assert "hubspot.owners" not in counts and "salesforce.User" not in counts
    assert (counts["hubspot.contacts"], counts["salesforce.Lead"]) == (2, 1)
    assert sandbox.admin.hubspot_owners() == []
