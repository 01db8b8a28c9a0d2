"""CRM tasks for alerts, created exactly once: the words (pure), the relation (build_alert_tasks), create
mode end to end against both sandboxes over real HTTP — owners, re-runs, lost answers, killed runs, rejects,
dry runs — and the (disabled) owner write."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import duckdb
import pytest
import requests

from activation.destination import Address, OutgoingRecord, RecordResult, translate
from activation.diff import Confirmed, Desired, plan_creates
from activation.encoding import EncodingError
from activation.errors import OutcomeUnknown, RequestFailed
from activation.http import HttpSettings
from activation.mapping import MappingError, SyncMapping, parse_mapping
from activation.owners import build_owner_writes
from activation.salesforce_ids import make_salesforce_id
from activation.sandbox import SandboxHandle
from activation.state import StateWriter
from activation.sync import SyncOptions, run_sync, sync_object
from activation.tasks import build_alert_tasks, clip, due_moment, task_body, task_priority, task_subject, task_type
from tests.activation.conftest import (
    FAST_RETRY,
    hubspot_contact_id,
    hubspot_for,
    salesforce_contact_id,
    salesforce_for,
    salesforce_lead_id,
    seed_crm,
)

DAY = dt.date(2026, 11, 2)
ACTIVE_OWNER, ARCHIVED_OWNER = "7001", "7002"
ACTIVE_USER, INACTIVE_USER = make_salesforce_id("005", 9001), make_salesforce_id("005", 9002)
# U-1 is an active rep in both CRMs, U-2 left (archived / inactive), U-3 is in neither CRM.
CRM_USERS = [("U-1", ACTIVE_OWNER, ACTIVE_USER), ("U-2", ARCHIVED_OWNER, INACTIVE_USER), ("U-3", None, None)]


# --- the words (pure) --------------------------------------------------------------------------------------
def test_task_subjects_say_what_happened_and_what_to_do() -> None:
    assert task_subject("spike", 81.2, 23.4) == "Leadscore: score jumped 23 points to 81 - call today"
    assert task_subject("spike", 50, 1) == "Leadscore: score jumped 1 point to 50 - call today"
    assert task_subject("decline", 40, -20) == "Leadscore: score dropped 20 points to 40 - check in this week"
    assert task_subject("decline", 45, 0.0) == "Leadscore: hot lead gone quiet (score 45) - check in this week"
    assert "now yours - call today" in task_subject("unowned_hot", 90, None)
    assert task_subject("new_kind", None, None) == "Leadscore: new kind alert (score ?)"
    assert len(clip("x" * 300, 255)) == 255 and clip("x" * 300, 255).endswith("...")
    assert clip("short", 255) == "short"


def test_task_bodies_give_the_rule_and_the_three_strongest_reasons() -> None:
    body = task_body("Score rose 23 points in 7 days.", ["+ Viewed pricing 4x in 7 days", "Director", "+ c", "+ d"],
                     81.0, 58.0, "A1")  # fmt: skip
    assert body == (
        "Score rose 23 points in 7 days.\n\nTop reasons:\n+ Viewed pricing 4x in 7 days\n- Director\n+ c\n\n"
        "Score 81 (was 58), tier A1."
    )
    assert task_body(None, None, None, None, None) == "Leadscore raised an alert for this lead."
    assert task_body("Hot.", [], 90, None, None) == "Hot.\n\nScore 90."


def test_urgency_and_due_moment() -> None:
    assert [task_priority(k) for k in ("spike", "unowned_hot", "decline")] == ["high", "high", "normal"]
    assert [task_type(k) for k in ("spike", "unowned_hot", "decline")] == ["call", "call", "todo"]
    assert due_moment(DAY) == dt.datetime(2026, 11, 2, 9, 0)


def test_create_mode_plans_a_confirmed_key_never_again() -> None:
    def at(value: str) -> Address:
        return Address("tasks", "id", value)

    desired = {"a": Desired({"s": "1"}, at("1")), "b": Desired({"s": "changed"}, at("2")), "c": Desired({}, at("3"))}
    confirmed = {
        "b": Confirmed("old-hash", False, at("9")),  # its payload and contact changed since: still never resent
        "gone": Confirmed("x", False, at("8")),  # left the relation: not cleared
        "erased": Confirmed("x", False, at("7"), erased=True),
    }
    plan = plan_creates(desired, confirmed)
    assert [(c.key, c.action) for c in plan.changes] == [("a", "new"), ("c", "new")]
    assert (plan.unchanged, plan.forget) == (1, ("erased",))


def test_values_are_translated_per_destination() -> None:
    values = {"high": {"hubspot": "HIGH", "salesforce": "High"}}
    assert (translate(values, "high", "hubspot"), translate(values, "high", "salesforce")) == ("HIGH", "High")
    with pytest.raises(EncodingError, match="not one of the mapped values"):
        translate(values, "urgent", "hubspot")


def create_document(**changes: Any) -> dict[str, Any]:
    attach = {"object": "contacts", "record_id": "hubspot_contact_id", "association_type_id": 204}
    hubspot = {"mode": "create", "object": "tasks", "id_property": "leadscore_alert_id", "attach_to": attach}
    obj = {"relation": "alert_tasks", "key_column": "alert_id", "clear_when_missing": False,
           "destinations": {"hubspot": hubspot},
           "fields": [{"column": "subject", "type": "string", "hubspot": "hs_task_subject"}]}  # fmt: skip
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = obj
        for part in parents:
            node = node[part]
        if value is None:
            node.pop(last)
        else:
            node[last] = value
    return {"version": 1, "objects": {"tasks": obj}}


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"clear_when_missing": True}, "clear_when_missing: must be false with mode create"),
        ({"destinations.hubspot.id_property": None}, "id_property: required in mode create"),
        ({"destinations.hubspot.attach_to": None}, "attach_to: required in mode create"),
        ({"destinations.hubspot.attach_to.association_type_id": None}, "association_type_id: required"),
        ({"destinations.hubspot.required": {"owner": "owner_not_in_crm"}}, "'owner' is not a column mapped"),
        ({"destinations.hubspot.required": {"subject": "Bad Code"}}, "must map column names to reject codes"),
        ({"enabled": "no"}, "enabled: must be true or false"),
        ({"fields": [{"column": "subject", "type": "string", "hubspot": "x", "values": {"a": {"salesforce": "A"}}}]},
         "needs exactly the field's destinations"),
    ],
)  # fmt: skip
def test_create_mode_mapping_mistakes_are_named(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(MappingError, match=problem):
        parse_mapping(create_document(**changes))


def test_the_shipped_mapping_has_tasks_and_a_disabled_owner_write(mapping: SyncMapping) -> None:
    tasks, owners = mapping.object("tasks"), mapping.object("lead_owners")
    assert (tasks.relation, tasks.key_column, tasks.clear_when_missing, tasks.enabled) == (
        "activation.alert_tasks", "alert_id", False, True,
    )  # fmt: skip
    assert {t.mode for t in tasks.destinations.values()} == {"create"}
    assert tasks.target("salesforce").attach.field == "WhoId"
    assert tasks.target("hubspot").attach.association_type_id == 204
    assert owners.enabled is False and owners.clear_when_missing is False


# --- the relation -------------------------------------------------------------------------------------------
def write_world(
    conn: duckdb.DuckDBPyConnection,
    alerts: Sequence[tuple[int, str, str | None]],
    *,
    day: dt.date = DAY,
    no_consent: Sequence[int] = (),
    without_ids: Sequence[int] = (),
    email_only: Sequence[int] = (),
) -> int:
    """The inputs build_alert_tasks reads, for alerts ``(lead number, kind, effective owner)`` of ``day``,
    then the relation itself; returns how many tasks it holds. Leads carry the conftest company's CRM ids."""
    rows = [
        (f"al-{i}-{kind}-{day}", f"L-{i:07d}", "A-1", day, kind, 80.0 + i, 60.0, 20.0 + i, "A1",
         ["+ Viewed pricing 4x in 7 days", "+ Director title"], f"Score rose {20 + i} points.", owner)
        for i, kind, owner in alerts
    ]  # fmt: skip
    conn.execute("CREATE SCHEMA IF NOT EXISTS activation")
    conn.execute(
        "CREATE OR REPLACE TABLE main.lead_alerts (alert_id VARCHAR, lead_id VARCHAR, account_id VARCHAR, "
        "alert_date DATE, kind VARCHAR, score DOUBLE, previous_score DOUBLE, score_change DOUBLE, tier VARCHAR, "
        "reasons VARCHAR[], rule VARCHAR, owner_user_id VARCHAR)"
    )
    if rows:
        conn.executemany("INSERT INTO main.lead_alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("CREATE OR REPLACE TABLE activation.lead_owners (lead_id VARCHAR, owner_user_id VARCHAR, "
                 "owner_source VARCHAR)")  # fmt: skip
    owned = [(f"L-{i:07d}", owner, "crm") for i, _, owner in alerts]
    if owned:
        conn.executemany("INSERT INTO activation.lead_owners VALUES (?, ?, ?)", owned)
    conn.execute("CREATE OR REPLACE TABLE main.crm_users (user_id VARCHAR, hubspot_owner_id VARCHAR, "
                 "salesforce_user_id VARCHAR, is_active BOOLEAN)")  # fmt: skip
    conn.executemany("INSERT INTO main.crm_users VALUES (?, ?, ?, ?)", [(*u, u[0] != "U-2") for u in CRM_USERS])
    conn.execute(
        "CREATE OR REPLACE TABLE main.lead_crm_ids (lead_id VARCHAR, email VARCHAR, hubspot_contact_id VARCHAR, "
        "salesforce_lead_id VARCHAR, salesforce_contact_id VARCHAR, owner_user_id VARCHAR, account_id VARCHAR, "
        "has_marketing_consent BOOLEAN)"
    )
    ids = []
    for i in sorted({i for i, _, _ in alerts}):
        email = f"lead{i}@example.com" if i not in without_ids else None
        crm_ids = (None, None, None) if i in without_ids or i in email_only else (
            hubspot_contact_id(i), salesforce_lead_id(i), salesforce_contact_id(i))  # fmt: skip
        ids.append((f"L-{i:07d}", email, *crm_ids, None, "A-1", i not in no_consent))
    if ids:
        conn.executemany("INSERT INTO main.lead_crm_ids VALUES (?, ?, ?, ?, ?, ?, ?, ?)", ids)
    return build_alert_tasks(conn, day)


def test_build_alert_tasks_keeps_consented_owned_alerts_of_the_day(
    warehouse: duckdb.DuckDBPyConnection, caplog: pytest.LogCaptureFixture
) -> None:
    alerts = [(0, "spike", "U-1"), (1, "decline", "U-3"), (2, "unowned_hot", None), (3, "spike", "U-1")]
    assert write_world(warehouse, alerts, no_consent=[3]) == 2
    assert "1 alerts of 2026-11-02 have no owner" in caplog.text
    rows = warehouse.execute(
        "SELECT lead_id, owner_user_id, hubspot_owner_id, salesforce_user_id, priority, task_type, status, due_date, "
        "due_at, subject FROM activation.alert_tasks ORDER BY lead_id"
    ).fetchall()
    assert rows[0][:9] == ("L-0000000", "U-1", ACTIVE_OWNER, ACTIVE_USER, "high", "call", "not_started", DAY,
                           dt.datetime(2026, 11, 2, 9))  # fmt: skip
    assert rows[0][9] == "Leadscore: score jumped 20 points to 80 - call today"
    assert rows[1][:6] == ("L-0000001", "U-3", None, None, "normal", "todo"), "kept: the sync rejects it per CRM"
    # The latest scoring day by default; another day's alerts are not today's tasks.
    warehouse.execute("INSERT INTO main.lead_alerts SELECT * REPLACE (DATE '2026-11-03' AS alert_date, "
                      "alert_id || '-next' AS alert_id) FROM main.lead_alerts WHERE lead_id = 'L-0000000'")  # fmt: skip
    warehouse.execute("CREATE TABLE main.lead_scores AS SELECT DATE '2026-11-03' AS as_of")
    assert build_alert_tasks(warehouse) == 1
    assert build_alert_tasks(warehouse, "2026-11-02") == 2


def test_build_alert_tasks_names_a_missing_input(warehouse: duckdb.DuckDBPyConnection) -> None:
    write_world(warehouse, [(0, "spike", "U-1")])
    warehouse.execute("DROP TABLE activation.lead_owners")
    with pytest.raises(ValueError, match=r"activation.lead_owners does not exist"):
        build_alert_tasks(warehouse)


# --- end to end ----------------------------------------------------------------------------------------------
def seed_owners(sandbox: SandboxHandle) -> None:
    owners = [{"id": ACTIVE_OWNER, "email": "ada@example.com"},
              {"id": ARCHIVED_OWNER, "email": "gone@example.com", "archived": True}]  # fmt: skip
    sandbox.admin.seed_hubspot_owners(owners)
    sandbox.admin.seed_salesforce("User", [{"Id": ACTIVE_USER, "LastName": "Ada", "IsActive": True},
                                           {"Id": INACTIVE_USER, "LastName": "Gone", "IsActive": False}])  # fmt: skip


def client_for(sandbox: SandboxHandle, destination: str, **http: Any) -> Any:
    settings = HttpSettings(timeout=http.pop("timeout", 5.0), pool_size=4, retry=FAST_RETRY)
    if destination == "hubspot":
        return hubspot_for(sandbox, http=settings, search_settle_seconds=0)
    return salesforce_for(sandbox, http=settings)


def associated_contact(sandbox: SandboxHandle, task_id: str) -> str:
    headers = {"Authorization": f"Bearer {sandbox.env()['HUBSPOT_ACCESS_TOKEN']}"}
    url = f"{sandbox.url}/crm/v3/objects/tasks/{task_id}?associations=contacts"
    return requests.get(url, headers=headers, timeout=10).json()["associations"]["contacts"]["results"][0]["id"]


def crm_tasks(sandbox: SandboxHandle, destination: str) -> dict[str, dict[str, Any]]:
    """The CRM's tasks by alert id; fails when an alert has more than one."""
    if destination == "hubspot":
        tasks = [{"id": t["id"], **t["properties"]} for t in sandbox.admin.hubspot_objects("tasks")]
        key = "leadscore_alert_id"
    else:
        tasks, key = sandbox.admin.salesforce_records("Task"), "Leadscore_Alert_Id__c"
    twice = [k for k, n in Counter(t.get(key) for t in tasks).items() if n > 1]
    assert not twice, f"alerts with more than one task: {twice}"
    return {t[key]: t for t in tasks}


def rejects(conn: duckdb.DuckDBPyConnection) -> dict[str, str]:
    rows = conn.execute("SELECT record_key, error_code FROM activation.rejects WHERE object = 'tasks'").fetchall()
    return dict(rows)


ALERTS = [(i, "spike" if i % 3 else "decline", "U-1") for i in range(8)]


def test_hubspot_tasks_land_on_the_owner_and_the_contact_once(
    sandbox: SandboxHandle, warehouse: duckdb.DuckDBPyConnection, mapping: SyncMapping
) -> None:
    seed_crm(sandbox, leads=8)
    seed_owners(sandbox)
    write_world(warehouse, ALERTS)
    report = sync_object(warehouse, client_for(sandbox, "hubspot"), mapping.object("tasks"))
    assert (report.status, report.mode, report.created, report.failed, report.sent) == ("complete", "create", 8, 0, 8)
    assert sandbox.admin.stats()["by_route"]["hubspot.batch.create"] == 1
    tasks = crm_tasks(sandbox, "hubspot")
    spike, decline = tasks[f"al-1-spike-{DAY}"], tasks[f"al-0-decline-{DAY}"]
    assert (spike["hubspot_owner_id"], spike["hs_task_priority"], spike["hs_task_type"], spike["hs_task_status"]) == (
        ACTIVE_OWNER, "HIGH", "CALL", "NOT_STARTED",
    )  # fmt: skip
    assert (decline["hs_task_priority"], decline["hs_task_type"]) == ("MEDIUM", "TODO")
    assert spike["hs_timestamp"] == str(int(dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC).timestamp() * 1000))
    assert spike["hs_task_subject"] == "Leadscore: score jumped 21 points to 81 - call today"
    assert "Top reasons:\n+ Viewed pricing 4x in 7 days" in spike["hs_task_body"]
    assert associated_contact(sandbox, spike["id"]) == hubspot_contact_id(1)
    for client in (client_for(sandbox, "hubspot"), client_for(sandbox, "hubspot")):  # re-runs, new processes
        again = sync_object(warehouse, client, mapping.object("tasks"))
        assert (again.to_send_new, again.sent, again.created, again.unchanged) == (0, 0, 0, 8)
    assert len(crm_tasks(sandbox, "hubspot")) == 8


def test_the_hubspot_lookup_finds_a_key_spelled_with_capitals(
    sandbox: SandboxHandle, warehouse: duckdb.DuckDBPyConnection, mapping: SyncMapping
) -> None:
    """HubSpot's search IN matches lower-case input only; a key with capitals must still be found after a lost
    answer, or its task would be created twice."""
    seed_crm(sandbox, leads=8)
    seed_owners(sandbox)
    write_world(warehouse, ALERTS)
    assert sync_object(warehouse, client_for(sandbox, "hubspot"), mapping.object("tasks")).created == 8
    shouted = f"AL-1-SPIKE-{DAY}"
    found = client_for(sandbox, "hubspot").find_created(mapping.object("tasks"), [shouted])
    assert found == {shouted: crm_tasks(sandbox, "hubspot")[f"al-1-spike-{DAY}"]["id"]}


def test_salesforce_tasks_go_to_the_contact_once_converted_else_the_lead(
    sandbox: SandboxHandle, warehouse: duckdb.DuckDBPyConnection, mapping: SyncMapping
) -> None:
    seed_crm(sandbox, leads=8)  # leads 0 and 4 were converted into Contacts
    seed_owners(sandbox)
    write_world(warehouse, ALERTS)
    report = sync_object(warehouse, client_for(sandbox, "salesforce"), mapping.object("tasks"))
    assert (report.status, report.crm_object, report.created, report.failed) == ("complete", "Task", 8, 0)
    tasks = crm_tasks(sandbox, "salesforce")
    assert {k: t["WhoId"] for k, t in tasks.items() if t["WhoId"].startswith("003")} == {
        f"al-0-decline-{DAY}": salesforce_contact_id(0), f"al-4-spike-{DAY}": salesforce_contact_id(4),
    }  # fmt: skip
    spike = tasks[f"al-1-spike-{DAY}"]
    assert (spike["WhoId"], spike["OwnerId"], spike["ActivityDate"], spike["Status"], spike["Priority"]) == (
        salesforce_lead_id(1), ACTIVE_USER, "2026-11-02", "Not Started", "High",
    )  # fmt: skip
    assert tasks[f"al-0-decline-{DAY}"]["Priority"] == "Normal"
    assert spike["Subject"].startswith("Leadscore: score jumped") and "Top reasons:" in spike["Description"]
    again = sync_object(warehouse, client_for(sandbox, "salesforce"), mapping.object("tasks"))
    assert (again.sent, again.created, again.unchanged) == (0, 0, 8)


@pytest.mark.parametrize("destination", ["hubspot", "salesforce"])
def test_a_dry_run_sends_nothing(
    sandbox: SandboxHandle, warehouse: duckdb.DuckDBPyConnection, mapping: SyncMapping, destination: str
) -> None:
    seed_crm(sandbox, leads=8)
    seed_owners(sandbox)
    write_world(warehouse, ALERTS)
    report = sync_object(warehouse, client_for(sandbox, destination), mapping.object("tasks"), dry_run=True)
    assert (report.to_send_new, report.sent, report.created) == (8, 0, 0)
    assert report.samples and report.samples[0]["action"] == "new"
    assert crm_tasks(sandbox, destination) == {}
    assert not [r for r in sandbox.admin.stats()["by_route"] if "create" in r or "search" in r or "query" in r]


@pytest.mark.parametrize("destination", ["hubspot", "salesforce"])
def test_a_task_whose_owner_cannot_have_it_is_rejected_and_kept(
    sandbox: SandboxHandle, warehouse: duckdb.DuckDBPyConnection, mapping: SyncMapping, destination: str
) -> None:
    seed_crm(sandbox, leads=3)
    seed_owners(sandbox)
    write_world(warehouse, [(0, "spike", "U-1"), (1, "spike", "U-2"), (2, "spike", "U-3")])
    report = sync_object(warehouse, client_for(sandbox, destination), mapping.object("tasks"))
    assert (report.status, report.created, report.failed) == ("partial", 1, 2)
    inactive = "INVALID_OWNER_ID" if destination == "hubspot" else "INACTIVE_OWNER_OR_USER"
    assert rejects(warehouse) == {f"al-1-spike-{DAY}": inactive, f"al-2-spike-{DAY}": "owner_not_in_crm"}
    assert set(crm_tasks(sandbox, destination)) == {f"al-0-spike-{DAY}"}, "never sent to a wrong owner"
    again = sync_object(warehouse, client_for(sandbox, destination), mapping.object("tasks"))
    assert (again.to_send_new, again.failed, again.created) == (1, 2, 0)  # the ownerless one is not even planned
    attempts = warehouse.execute("SELECT max(attempts) FROM activation.rejects").fetchone()[0]
    assert attempts == 2, "kept, and tried again by every run"
    if destination == "hubspot":
        sandbox.admin.archive_hubspot_owner(ARCHIVED_OWNER, archived=False)  # the rep is back
        back = sync_object(warehouse, client_for(sandbox, destination), mapping.object("tasks"))
        assert (back.created, back.failed) == (1, 1)
        assert crm_tasks(sandbox, "hubspot")[f"al-1-spike-{DAY}"]["hubspot_owner_id"] == ARCHIVED_OWNER


def test_hubspot_rejects_an_owner_change_it_missed_and_keeps_the_batch(
    sandbox: SandboxHandle, warehouse: duckdb.DuckDBPyConnection, mapping: SyncMapping
) -> None:
    """An owner archived after the client listed them: HubSpot's 400 fails the batch; the split isolates it."""
    seed_crm(sandbox, leads=6)
    seed_owners(sandbox)
    write_world(warehouse, [(i, "spike", "U-1") for i in range(5)] + [(5, "spike", "U-2")])
    client = client_for(sandbox, "hubspot")
    client._owners = {ACTIVE_OWNER, ARCHIVED_OWNER}  # a stale list: U-2's owner was archived since
    obj = mapping.object("tasks")
    client.prepare(obj)
    report = sync_object(warehouse, client, obj)
    assert (report.created, report.failed) == (5, 1)
    assert rejects(warehouse) == {f"al-5-spike-{DAY}": "INVALID_OWNER_ID"}


def test_a_contact_known_only_by_email_is_found_first(
    sandbox: SandboxHandle, warehouse: duckdb.DuckDBPyConnection, mapping: SyncMapping
) -> None:
    seed_crm(sandbox, leads=2)
    seed_owners(sandbox)
    write_world(warehouse, [(0, "spike", "U-1"), (1, "spike", "U-1"), (5, "spike", "U-1"), (6, "spike", "U-1")],
                without_ids=[5], email_only=[1, 6])  # fmt: skip
    report = sync_object(warehouse, client_for(sandbox, "hubspot"), mapping.object("tasks"))
    assert (report.created, report.failed) == (2, 2)
    assert rejects(warehouse) == {f"al-5-spike-{DAY}": "no_crm_record", f"al-6-spike-{DAY}": "not_found"}
    assert sandbox.admin.stats()["by_route"]["hubspot.batch.read"] == 1
    task = crm_tasks(sandbox, "hubspot")[f"al-1-spike-{DAY}"]
    assert associated_contact(sandbox, task["id"]) == hubspot_contact_id(1)


# --- exactly once -------------------------------------------------------------------------------------------
FAULTS = {
    "5xx_after_commit": {"p_5xx_after_commit": 0.4},
    "disconnect_after_commit": {"p_disconnect_after_commit": 0.4},
    "timeout_after_commit": {"p_timeout": 0.3, "timeout_delay": 0.6},
    "5xx_before": {"p_5xx": 0.3, "p_record_error": 0.1},
}


@pytest.mark.parametrize("destination", ["hubspot", "salesforce"])
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_alert_gets_exactly_one_task_under_faults(
    start_sandbox: Callable[..., SandboxHandle],
    warehouse: duckdb.DuckDBPyConnection,
    mapping: SyncMapping,
    destination: str,
    fault: str,
) -> None:
    sandbox = start_sandbox()
    count = 450 if destination == "salesforce" else 250  # 3 batches either way
    seed_crm(sandbox, leads=count)
    seed_owners(sandbox)
    write_world(warehouse, [(i, "spike", "U-1") for i in range(count)])
    sandbox.admin.set_faults(seed=7, **FAULTS[fault])
    client = client_for(sandbox, destination, timeout=0.3)
    runs = []
    for _ in range(12):  # a scheduler running again after each (possibly failed) run
        try:
            report = sync_object(warehouse, client, mapping.object("tasks"), options=SyncOptions(workers=2))
        except RequestFailed as exc:
            assert exc.retryable
            continue
        runs.append(report)
        if report.to_send_new == 0:
            break
    assert runs and runs[-1].to_send_new == 0, [r.as_dict() for r in runs]
    sandbox.admin.set_faults(p_5xx_after_commit=0.0, p_disconnect_after_commit=0.0, p_timeout=0.0, p_5xx=0.0,
                             p_record_error=0.0)  # fmt: skip
    assert len(crm_tasks(sandbox, destination)) == count  # and none twice
    assert sum(r.created for r in runs) == count
    assert sum(sandbox.admin.stats()["injected"].values()) > 0
    leftovers = warehouse.execute("SELECT count(*) FROM activation.create_attempts").fetchone()[0]
    assert leftovers == 0, "every attempt settled"


class LosesAnswers:
    """A destination whose create batches number ``lose`` (1 = the first) reach the CRM, but whose answers never
    come back: an OutcomeUnknown, or (``die``) the process is killed right there."""

    def __init__(self, inner: Any, lose: set[int], *, die: bool = False) -> None:
        self.inner, self.lose, self.die, self.sent = inner, lose, die, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def send_batch(self, obj: Any, records: Sequence[OutgoingRecord]) -> list[RecordResult]:
        self.sent += 1
        results = self.inner.send_batch(obj, records)
        if self.sent in self.lose:
            if self.die:
                raise SystemExit("killed after sending, before the answer was recorded")
            raise OutcomeUnknown("answer lost (test)")
        return results


@pytest.mark.parametrize("destination", ["hubspot", "salesforce"])
def test_a_run_killed_between_send_and_state_write_creates_nothing_twice(
    sandbox: SandboxHandle,
    warehouse: duckdb.DuckDBPyConnection,
    mapping: SyncMapping,
    destination: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    count = 250 if destination == "hubspot" else 450
    seed_crm(sandbox, leads=count)
    seed_owners(sandbox)
    write_world(warehouse, [(i, "spike", "U-1") for i in range(count)])
    obj = mapping.object("tasks")
    with monkeypatch.context() as patch:
        patch.setattr(StateWriter, "flush", lambda self: None)  # the state write never happens
        # The first batch is answered (its state write is lost), the second kills the run, the third never goes.
        killed = LosesAnswers(client_for(sandbox, destination), lose={2}, die=True)
        with pytest.raises(SystemExit):
            sync_object(warehouse, killed, obj, options=SyncOptions(workers=1))
    assert len(crm_tasks(sandbox, destination)) == (400 if destination == "salesforce" else 200)
    assert warehouse.execute("SELECT count(*) FROM activation.sync_state").fetchone()[0] == 0
    report = sync_object(warehouse, client_for(sandbox, destination), obj)
    assert (report.status, report.created, report.failed) == ("complete", count, 0)
    assert len(crm_tasks(sandbox, destination)) == count
    lookups = sandbox.admin.stats()["by_route"].get(
        "hubspot.search" if destination == "hubspot" else "salesforce.query"
    )
    assert lookups and lookups >= 1
    assert sync_object(warehouse, client_for(sandbox, destination), obj).sent == 0


@pytest.mark.parametrize("destination", ["hubspot", "salesforce"])
def test_an_unanswered_create_is_looked_up_in_the_same_run(
    sandbox: SandboxHandle, warehouse: duckdb.DuckDBPyConnection, mapping: SyncMapping, destination: str
) -> None:
    seed_crm(sandbox, leads=8)
    seed_owners(sandbox)
    write_world(warehouse, ALERTS)
    report = sync_object(warehouse, LosesAnswers(client_for(sandbox, destination), lose={1}), mapping.object("tasks"))
    assert (report.status, report.created, report.failed) == ("complete", 8, 0)
    assert len(crm_tasks(sandbox, destination)) == 8
    create_route = "hubspot.batch.create" if destination == "hubspot" else "salesforce.collections.create"
    assert sandbox.admin.stats()["by_route"][create_route] == 1, "found, so not created again"


def test_when_the_lookup_fails_nothing_is_created_until_it_works(
    sandbox: SandboxHandle, warehouse: duckdb.DuckDBPyConnection, mapping: SyncMapping
) -> None:
    seed_crm(sandbox, leads=8)
    seed_owners(sandbox)
    write_world(warehouse, ALERTS)
    client = LosesAnswers(client_for(sandbox, "hubspot"), lose={1})

    def broken(obj: Any, keys: Sequence[str]) -> dict[str, str]:
        raise RequestFailed("search unavailable", retryable=True)

    client.find_created = broken  # type: ignore[method-assign]
    report = sync_object(warehouse, client, mapping.object("tasks"))
    assert (report.status, report.created, report.failed) == ("partial", 0, 8)
    assert set(rejects(warehouse).values()) == {"OUTCOME_UNKNOWN"}
    assert warehouse.execute("SELECT count(*) FROM activation.create_attempts").fetchone()[0] == 8
    again = sync_object(warehouse, client_for(sandbox, "hubspot"), mapping.object("tasks"))
    assert (again.created, again.failed, again.sent) == (8, 0, 0), "all found: none created twice"
    assert rejects(warehouse) == {} and len(crm_tasks(sandbox, "hubspot")) == 8


# --- the owner write (disabled by default) -----------------------------------------------------------------
def routed_world(conn: duckdb.DuckDBPyConnection) -> None:
    """Leads 0-3 routed to U-1, U-1, U-2, U-3; lead 4's owner came from the CRM (never written)."""
    write_world(conn, [(0, "unowned_hot", "U-1"), (1, "unowned_hot", "U-1"), (2, "unowned_hot", "U-2"),
                       (3, "unowned_hot", "U-3"), (4, "spike", "U-1")])  # fmt: skip
    conn.execute("UPDATE activation.lead_owners SET owner_source = 'routed' WHERE lead_id < 'L-0000004'")
    assert build_owner_writes(conn) == 4


def test_the_owner_write_is_disabled_by_default(
    sandbox: SandboxHandle, warehouse: duckdb.DuckDBPyConnection, mapping: SyncMapping
) -> None:
    seed_crm(sandbox, leads=5)
    seed_owners(sandbox)
    routed_world(warehouse)
    report = sync_object(warehouse, client_for(sandbox, "hubspot"), mapping.object("lead_owners"))
    assert (report.status, report.sent, report.api_calls) == ("disabled", 0, 0)
    assert not any("hubspot_owner_id" in c["properties"] for c in sandbox.admin.hubspot_objects("contacts"))


@pytest.mark.parametrize("destination", ["hubspot", "salesforce"])
def test_the_owner_write_when_enabled(
    sandbox: SandboxHandle, warehouse: duckdb.DuckDBPyConnection, mapping: SyncMapping, destination: str
) -> None:
    seed_crm(sandbox, leads=5)
    seed_owners(sandbox)
    routed_world(warehouse)
    obj = dataclasses.replace(mapping.object("lead_owners"), enabled=True)
    report = sync_object(warehouse, client_for(sandbox, destination), obj)
    assert (report.status, report.updated, report.failed) == ("partial", 2, 2)
    failed = dict(warehouse.execute("SELECT record_key, error_code FROM activation.rejects "
                                    "WHERE object = 'lead_owners'").fetchall())  # fmt: skip
    inactive = "INVALID_OWNER_ID" if destination == "hubspot" else "INACTIVE_OWNER_OR_USER"
    assert failed == {"L-0000002": inactive, "L-0000003": "owner_not_in_crm"}
    if destination == "hubspot":
        owners = {c["id"]: c["properties"].get("hubspot_owner_id") for c in sandbox.admin.hubspot_objects("contacts")}
        assert (owners[hubspot_contact_id(0)], owners[hubspot_contact_id(1)], owners[hubspot_contact_id(4)]) == (
            ACTIVE_OWNER, ACTIVE_OWNER, None,
        )  # fmt: skip
    else:
        contacts = {r["Id"]: r for r in sandbox.admin.salesforce_records("Contact")}
        leads = {r["Id"]: r for r in sandbox.admin.salesforce_records("Lead")}
        assert contacts[salesforce_contact_id(0)]["OwnerId"] == ACTIVE_USER  # lead 0 was converted
        assert leads[salesforce_lead_id(1)]["OwnerId"] == ACTIVE_USER
        assert "OwnerId" not in leads[salesforce_lead_id(4)]


def test_run_sync_reports_every_object_of_the_shipped_mapping(
    sandbox: SandboxHandle, warehouse: duckdb.DuckDBPyConnection, mapping: SyncMapping
) -> None:
    seed_crm(sandbox, leads=3)
    seed_owners(sandbox)
    write_world(warehouse, [(0, "spike", "U-1")])
    reports = run_sync(warehouse, "hubspot", env=sandbox.env(), objects=["tasks", "lead_owners"],
                       options=SyncOptions(workers=1))  # fmt: skip
    assert [(r.mapping_object, r.status, r.created) for r in reports] == [("tasks", "complete", 1),
                                                                          ("lead_owners", "disabled", 0)]  # fmt: skip
