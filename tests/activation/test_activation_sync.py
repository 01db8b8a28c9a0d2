"""The sync engine end to end against the sandbox: update of existing records, diff, clears, dry runs, rejects,
not-found records, CRM instances, history and crashes."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

import duckdb
import pytest
import requests

from activation.destination import OutgoingRecord, RecordResult
from activation.errors import ConfigurationError
from activation.mapping import ObjectMapping, SyncMapping, parse_mapping
from activation.salesforce_ids import make_salesforce_id
from activation.sandbox.config import DEFAULT_HUBSPOT_TOKEN
from activation.sync import SyncOptions, run_sync, sync_object
from tests.activation.conftest import FAST_HTTP, hubspot_contact_id, salesforce_contact_id, salesforce_lead_id


def counts(sandbox) -> dict[str, int]:
    """How many records the CRM holds per object: update mode must never change these."""
    return {
        "contacts": len(sandbox.admin.hubspot_objects("contacts")),
        "companies": len(sandbox.admin.hubspot_objects("companies")),
        **{sobject: len(sandbox.admin.salesforce_records(sobject)) for sobject in ("Lead", "Contact", "Account")},
    }


# --- update mode: onto the records that exist -------------------------------------------------------------
def test_hubspot_sync_updates_the_existing_contacts_and_resends_nothing(
    sandbox, hubspot_client, warehouse, leads_table, company, mapping, expected, crm_hubspot, matches
) -> None:
    leads_table(warehouse, 250)
    company(sandbox, leads=250)
    before = counts(sandbox)
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    first = sync_object(warehouse, client, leads)
    assert (first.status, first.sent, first.updated, first.created, first.failed) == ("complete", 250, 250, 0, 0)
    assert sandbox.admin.stats()["by_route"]["hubspot.batch.update"] == 3  # ceil(250 / 100)
    assert "hubspot.batch.upsert" not in sandbox.admin.stats()["by_route"]
    assert counts(sandbox) == before, "update mode never creates a record"
    crm = crm_hubspot(sandbox, "contacts")
    matches["hubspot"](crm, expected(warehouse, client, leads))
    assert crm[hubspot_contact_id(7)]["lastname"] == "L7", "fields leadscore does not map are left alone"
    second = sync_object(warehouse, client, leads)
    assert (second.sent, second.unchanged, second.api_calls) == (0, 250, 0)


def test_salesforce_people_go_to_their_contact_once_converted_else_to_their_lead(
    sandbox, salesforce_client, warehouse, leads_table, company, mapping, crm_salesforce
) -> None:
    leads_table(warehouse, 8)
    company(sandbox, leads=8)  # leads 0 and 4 were converted: their Lead is read-only, their Contact is live
    before = counts(sandbox)
    report = sync_object(warehouse, salesforce_client(sandbox), mapping.object("leads"))
    assert (report.crm_object, report.updated, report.created, report.failed) == ("Contact|Lead", 8, 0, 0)
    assert counts(sandbox) == before
    contacts, crm_leads = crm_salesforce(sandbox, "Contact"), crm_salesforce(sandbox, "Lead")
    assert {i for i in range(8) if "Leadscore_Score__c" in contacts.get(salesforce_contact_id(i) or "", {})} == {0, 4}
    assert {i for i in range(8) if "Leadscore_Score__c" in crm_leads[salesforce_lead_id(i)]} == {1, 2, 3, 5, 6, 7}
    assert crm_leads[salesforce_lead_id(3)]["LastName"] == "L3", "fields leadscore does not map are left alone"


def test_a_record_missing_from_the_crm_is_a_not_found_reject_until_it_exists(
    sandbox, hubspot_client, salesforce_client, warehouse, leads_table, company, mapping, crm_hubspot
) -> None:
    leads_table(warehouse, 6)
    company(sandbox, leads=4)  # leads 4 and 5 are in the export but not (yet) in the CRM
    before = counts(sandbox)
    leads = mapping.object("leads")
    for client in (hubspot_client(sandbox), salesforce_client(sandbox)):
        report = sync_object(warehouse, client, leads)
        assert (report.status, report.updated, report.failed, report.not_found, report.created) == (
            "partial", 4, 2, 2, 0,
        )  # fmt: skip
    assert counts(sandbox) == before, "nothing was created for the missing records"
    rejects = warehouse.execute(
        "SELECT destination, record_key, error_code FROM activation.rejects ORDER BY 1, 2"
    ).fetchall()
    assert rejects == [(d, f"L-000000{i}", "not_found") for d in ("hubspot", "salesforce") for i in (4, 5)]
    company(sandbox, leads=2, start=4)  # someone creates them in the CRM
    for client in (hubspot_client(sandbox), salesforce_client(sandbox)):
        again = sync_object(warehouse, client, leads)
        assert (again.sent, again.updated, again.failed) == (2, 2, 0)
    assert "leadscore_score" in crm_hubspot(sandbox, "contacts")[hubspot_contact_id(5)]
    assert warehouse.execute("SELECT count(*) FROM activation.rejects").fetchone()[0] == 0


def test_a_contact_without_its_id_in_the_export_is_found_by_email_never_created(
    sandbox, hubspot_client, warehouse, leads_table, company, mapping, crm_hubspot
) -> None:
    leads_table(warehouse, 4)
    company(sandbox, leads=3)
    warehouse.execute("UPDATE lead_crm_ids SET hubspot_contact_id = NULL WHERE lead_id IN ('L-0000001', 'L-0000003')")
    warehouse.execute("UPDATE lead_crm_ids SET email = upper(email) WHERE lead_id = 'L-0000001'")
    report = sync_object(warehouse, hubspot_client(sandbox), mapping.object("leads"))
    # L-1 is found by its address (in another casing); L-3 is in no CRM: not found, not created
    assert (report.updated, report.not_found, report.created) == (3, 1, 0)
    assert len(crm_hubspot(sandbox, "contacts")) == 3
    assert "leadscore_score" in crm_hubspot(sandbox, "contacts")[hubspot_contact_id(1)]
    crm_id = warehouse.execute("SELECT crm_id FROM activation.sync_state WHERE record_key = 'L-0000001'").fetchone()
    assert crm_id == (hubspot_contact_id(1),), "the id found by e-mail is what the state remembers"
    assert sandbox.admin.stats()["by_route"]["hubspot.batch.read"] == 1


def test_rows_without_any_crm_id_are_unmatched_neither_sent_nor_cleared(
    sandbox, hubspot_client, warehouse, leads_table, company, mapping
) -> None:
    leads_table(warehouse, 5)
    company(sandbox, leads=5)
    client, accounts = hubspot_client(sandbox), mapping.object("leads")
    sync_object(warehouse, client, accounts)
    warehouse.execute("UPDATE lead_crm_ids SET hubspot_contact_id = NULL, email = NULL WHERE lead_id = 'L-0000002'")
    warehouse.execute("UPDATE lead_scores SET score = score + 1")
    report = sync_object(warehouse, client, accounts)
    assert (report.unmatched, report.to_update, report.to_clear, report.failed) == (1, 4, 0, 0)


def test_two_rows_claiming_one_crm_record_are_both_rejected(
    sandbox, hubspot_client, warehouse, leads_table, company, mapping, crm_hubspot
) -> None:
    leads_table(warehouse, 4)
    company(sandbox, leads=4)
    warehouse.execute(
        f"UPDATE lead_crm_ids SET hubspot_contact_id = '{hubspot_contact_id(1)}' WHERE lead_id = 'L-0000002'"
    )
    report = sync_object(warehouse, hubspot_client(sandbox), mapping.object("leads"))
    assert (report.updated, report.failed) == (2, 2)
    rejects = warehouse.execute("SELECT record_key, error_code, reason FROM activation.rejects ORDER BY 1").fetchall()
    assert [r[:2] for r in rejects] == [("L-0000001", "duplicate_target"), ("L-0000002", "duplicate_target")]
    assert "L-0000002" in rejects[0][2]
    assert "leadscore_score" not in crm_hubspot(sandbox, "contacts")[hubspot_contact_id(1)]


def test_a_converted_lead_the_export_still_routes_to_its_lead_is_rejected_by_salesforce(
    sandbox, salesforce_client, warehouse, leads_table, company, mapping
) -> None:
    leads_table(warehouse, 2)
    company(sandbox, leads=2)
    warehouse.execute("UPDATE lead_crm_ids SET salesforce_contact_id = NULL")  # the export lags the conversion
    report = sync_object(warehouse, salesforce_client(sandbox), mapping.object("leads"))
    assert (report.updated, report.failed) == (1, 1)
    assert warehouse.execute("SELECT record_key, error_code FROM activation.rejects").fetchall() == [
        ("L-0000000", "CANNOT_UPDATE_CONVERTED_LEAD")
    ]


# --- the diff ------------------------------------------------------------------------------------------
def test_only_changed_records_are_sent(
    sandbox, hubspot_client, warehouse, leads_table, company, mapping, expected, crm_hubspot, matches
) -> None:
    leads_table(warehouse, 120)
    company(sandbox, leads=120)
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    sync_object(warehouse, client, leads)
    warehouse.execute("UPDATE lead_scores SET score = score + 1 WHERE lead_id IN ('L-0000003', 'L-0000077')")
    report = sync_object(warehouse, client, leads)
    assert (report.to_update, report.sent, report.updated, report.unchanged) == (2, 2, 2, 118)
    matches["hubspot"](crm_hubspot(sandbox, "contacts"), expected(warehouse, client, leads))


def test_a_person_who_moves_to_another_crm_record_is_sent_there(
    sandbox, salesforce_client, warehouse, leads_table, company, mapping, crm_salesforce
) -> None:
    leads_table(warehouse, 2)
    company(sandbox, leads=2)
    client, leads = salesforce_client(sandbox), mapping.object("leads")
    sync_object(warehouse, client, leads)
    fresh = make_salesforce_id("003", 99_999)  # lead 1 was converted since: it now lives on as a Contact
    sandbox.app.seed_salesforce("Contact", [{"Id": fresh, "LastName": "Moved"}])
    warehouse.execute(f"UPDATE lead_crm_ids SET salesforce_contact_id = '{fresh}' WHERE lead_id = 'L-0000001'")
    report = sync_object(warehouse, client, leads)
    assert (report.to_update, report.updated, report.unchanged) == (1, 1, 1)
    assert "Leadscore_Score__c" in crm_salesforce(sandbox, "Contact")[fresh]


def test_only_the_latest_as_of_is_synced_and_backfills_change_nothing(
    sandbox, hubspot_client, warehouse, leads_table, company, mapping, crm_hubspot
) -> None:
    leads_table(warehouse, 10, as_of="2026-11-02")
    company(sandbox, leads=10)
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    sync_object(warehouse, client, leads)
    before = crm_hubspot(sandbox, "contacts")
    leads_table(warehouse, 10, as_of="2026-10-01", score_shift=50.0, replace=False)  # a backfilled old partition
    assert sync_object(warehouse, client, leads).sent == 0
    assert crm_hubspot(sandbox, "contacts") == before


def test_leads_leaving_the_desired_set_are_cleared_and_can_return(
    sandbox, hubspot_client, warehouse, leads_table, company, mapping, crm_hubspot
) -> None:
    leads_table(warehouse, 5)
    company(sandbox, leads=5)
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    sync_object(warehouse, client, leads)
    warehouse.execute("DELETE FROM lead_scores WHERE lead_id = 'L-0000002'")  # consent withdrawn
    report = sync_object(warehouse, client, leads)
    assert (report.to_clear, report.cleared, report.sent) == (1, 1, 1)
    crm = crm_hubspot(sandbox, "contacts")
    assert crm[hubspot_contact_id(2)] == {"email": "lead2@example.com", "lastname": "L2"}  # emptied, record kept
    assert "leadscore_score" in crm[hubspot_contact_id(1)]
    assert sync_object(warehouse, client, leads).sent == 0  # a cleared record is not cleared again
    leads_table(warehouse, 5)
    back = sync_object(warehouse, client, leads)
    assert (back.to_update, back.sent) == (1, 1)
    assert "leadscore_score" in crm_hubspot(sandbox, "contacts")[hubspot_contact_id(2)]


def test_a_record_deleted_in_the_crm_is_not_cleared_again_and_again(
    sandbox, hubspot_client, warehouse, leads_table, company, mapping
) -> None:
    leads_table(warehouse, 3)
    company(sandbox, leads=3)
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    sync_object(warehouse, client, leads)
    sandbox.admin.delete_hubspot_object("contacts", hubspot_contact_id(1))
    warehouse.execute("DELETE FROM lead_scores WHERE lead_id = 'L-0000001'")
    report = sync_object(warehouse, client, leads)
    assert (report.to_clear, report.cleared, report.failed) == (1, 1, 0)  # gone: nothing left to clear
    assert sync_object(warehouse, client, leads).sent == 0


def test_an_empty_or_mostly_missing_relation_does_not_wipe_the_crm(
    sandbox, hubspot_client, warehouse, leads_table, company, mapping
) -> None:
    leads_table(warehouse, 30)
    company(sandbox, leads=30)
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    sync_object(warehouse, client, leads)
    warehouse.execute("DELETE FROM lead_scores WHERE lead_id >= 'L-0000010'")  # two thirds vanished
    with pytest.raises(ConfigurationError, match="lost 20 of the 30 synced records"):
        sync_object(warehouse, client, leads)
    warehouse.execute("DELETE FROM lead_scores")
    with pytest.raises(ConfigurationError, match="has no rows to sync"):
        sync_object(warehouse, client, leads)
    assert sync_object(warehouse, client, leads, options=SyncOptions(force=True)).cleared == 30


def test_dry_run_sends_nothing_and_reports_samples(
    sandbox, hubspot_client, warehouse, leads_table, company, mapping
) -> None:
    leads_table(warehouse, 30)
    company(sandbox, leads=30)
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    report = sync_object(warehouse, client, leads, dry_run=True, options=SyncOptions(sample_size=2))
    assert sandbox.admin.stats()["by_route"] == {"hubspot.account.details": 1}, "only the identity lookup"
    assert (report.dry_run, report.to_send_new, report.sent) == (True, 30, 0)
    assert [s["key"] for s in report.samples] == ["L-0000000", "L-0000001"]
    assert report.samples[0]["target"] == f"contacts:id:{hubspot_contact_id(0)}"
    payload = report.samples[0]["payload"]
    assert "leadscore_tier" in payload and "leadscore_model_version" not in payload  # a promotion resends nothing
    assert warehouse.execute("SELECT count(*) FROM activation.sync_state").fetchone()[0] == 0
    assert sync_object(warehouse, client, leads).updated == 30  # the dry run did not mark anything synced


def test_run_history_is_recorded(sandbox, hubspot_client, warehouse, leads_table, company, mapping) -> None:
    leads_table(warehouse, 150)
    company(sandbox, leads=150)
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    sync_object(warehouse, client, leads, dry_run=True)
    sync_object(warehouse, client, leads)
    rows = warehouse.execute(
        "SELECT destination, instance, object, crm_object, mode, dry_run, status, sent, updated, unchanged, failed, "
        "api_calls FROM activation.sync_runs ORDER BY started_at"
    ).fetchall()
    portal = str(sandbox.app.config.hubspot_portal_id)
    assert [r[:11] for r in rows] == [
        ("hubspot", portal, "leads", "contacts", "update", True, "complete", 0, 0, 0, 0),
        ("hubspot", portal, "leads", "contacts", "update", False, "complete", 150, 150, 0, 0),
    ]
    assert rows[1][11] >= 2  # two batches plus the property setup


# --- rejects --------------------------------------------------------------------------------------------
def test_rejects_are_recorded_then_retried_next_run(
    sandbox, hubspot_client, warehouse, leads_table, company, mapping, crm_hubspot
) -> None:
    leads_table(warehouse, 20)
    company(sandbox, leads=20)
    sandbox.admin.set_faults(reject_keys=[hubspot_contact_id(4), hubspot_contact_id(11)])
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    report = sync_object(warehouse, client, leads)
    assert (report.status, report.failed, report.updated) == ("partial", 2, 18)
    rejects = warehouse.execute(
        "SELECT record_key, crm_object, reason, attempts FROM activation.rejects ORDER BY 1"
    ).fetchall()
    assert [(r[0], r[1], r[3]) for r in rejects] == [("L-0000004", "contacts", 1), ("L-0000011", "contacts", 1)]
    assert "Injected record failure" in rejects[0][2]
    assert "leadscore_score" not in crm_hubspot(sandbox, "contacts")[hubspot_contact_id(4)]
    again = sync_object(warehouse, client, leads)
    assert (again.sent, again.failed) == (2, 2)
    assert warehouse.execute("SELECT max(attempts) FROM activation.rejects").fetchone()[0] == 2
    sandbox.admin.set_faults(reject_keys=[])
    final = sync_object(warehouse, client, leads)
    assert (final.sent, final.updated, final.failed) == (2, 2, 0)
    assert warehouse.execute("SELECT count(*) FROM activation.rejects").fetchone()[0] == 0


def test_one_invalid_value_is_isolated_and_the_other_99_land(
    sandbox, hubspot_client, warehouse, leads_table, company, crm_hubspot
) -> None:
    """Real HubSpot answers one invalid value with a 400 for the whole batch and writes none of it: the
    engine splits the batch until the bad record stands alone, so the good ones land this run."""
    mapping = parse_mapping(
        {
            "version": 1,
            "objects": {
                "leads": {
                    "relation": "lead_emails",
                    "key_column": "lead_id",
                    "identity": "lead_crm_ids",
                    "destinations": {"hubspot": {"object": "contacts", "record_id": "hubspot_contact_id"}},
                    "fields": [
                        {"column": "score", "type": "number", "hubspot": "leadscore_score"},
                        {"column": "work_email", "type": "string", "hubspot": "email"},
                    ],
                }
            },
        }
    )
    leads_table(warehouse, 100)
    company(sandbox, leads=100)
    warehouse.execute(
        "CREATE TABLE lead_emails AS SELECT lead_id, score, CASE WHEN lead_id = 'L-0000042' THEN 'not an address' "
        "ELSE 'new.' || lead_id || '@example.com' END AS work_email FROM lead_scores"
    )
    report = sync_object(warehouse, hubspot_client(sandbox), mapping.object("leads"))
    assert (report.updated, report.failed) == (99, 1)
    assert warehouse.execute("SELECT record_key, error_code FROM activation.rejects").fetchall() == [
        ("L-0000042", "INVALID_EMAIL")
    ]
    crm = crm_hubspot(sandbox, "contacts")
    assert sum("leadscore_score" in props for props in crm.values()) == 99
    assert crm[hubspot_contact_id(42)]["email"] == "lead42@example.com", "the refused record is untouched"
    # 1 + 2 * ceil(log2(100)) requests at most to isolate one record in a batch of 100
    assert sandbox.admin.stats()["by_route"]["hubspot.batch.update"] <= 1 + 2 * 7


def test_a_value_the_dropdown_lacks_is_rejected_before_sending(
    sandbox, hubspot_client, warehouse, leads_table, company, mapping, crm_hubspot
) -> None:
    leads_table(warehouse, 8)
    company(sandbox, leads=8)
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    options = [{"label": t, "value": t, "displayOrder": n} for n, t in enumerate(["B1", "B2", "B3"])]
    dropdown = {"name": "leadscore_tier", "label": "Tier", "type": "enumeration", "fieldType": "select",
                "groupName": "contactinformation", "options": options}  # fmt: skip
    created = requests.post(
        f"{sandbox.url}/crm/v3/properties/contacts",
        json=dropdown,
        headers={"Authorization": f"Bearer {DEFAULT_HUBSPOT_TOKEN}"},
        timeout=10,
    )
    assert created.status_code == 201  # an admin made the tier a dropdown first
    report = sync_object(warehouse, client, leads)
    assert (report.updated, report.failed) == (6, 2)  # tier B4 is not an option: leads 3 and 7
    rejects = warehouse.execute("SELECT record_key, error_code FROM activation.rejects ORDER BY 1").fetchall()
    assert rejects == [("L-0000003", "INVALID_OPTION"), ("L-0000007", "INVALID_OPTION")]
    assert sandbox.admin.stats()["by_route"]["hubspot.batch.update"] == 1, "the batch was not refused"


def test_a_reject_that_became_moot_is_forgotten(
    sandbox, hubspot_client, warehouse, leads_table, company, mapping
) -> None:
    leads_table(warehouse, 3)
    company(sandbox, leads=3)
    sandbox.admin.set_faults(reject_keys=[hubspot_contact_id(1)])
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    assert sync_object(warehouse, client, leads).failed == 1
    warehouse.execute("DELETE FROM lead_scores WHERE lead_id = 'L-0000001'")  # never synced, now gone
    report = sync_object(warehouse, client, leads)
    assert (report.sent, report.to_clear) == (0, 0)
    assert warehouse.execute("SELECT count(*) FROM activation.rejects").fetchone()[0] == 0


def test_a_value_that_does_not_fit_its_type_rejects_only_that_record(
    sandbox, hubspot_client, warehouse, accounts_table, company, mapping, crm_hubspot
) -> None:
    from tests.activation.conftest import hubspot_company_id

    accounts_table(warehouse, 4)
    company(sandbox, accounts=4)
    client, accounts = hubspot_client(sandbox), mapping.object("accounts")
    sync_object(warehouse, client, accounts)
    warehouse.execute("ALTER TABLE account_metrics ALTER seats TYPE DOUBLE")
    warehouse.execute("UPDATE account_metrics SET seats = 2.5, mrr = 1 WHERE account_id = 'A-00002'")
    warehouse.execute("UPDATE account_metrics SET mrr = 99 WHERE account_id = 'A-00003'")
    report = sync_object(warehouse, client, accounts)
    assert (report.status, report.failed, report.updated, report.to_clear) == ("partial", 1, 1, 0)
    reject = warehouse.execute("SELECT record_key, error_code, reason FROM activation.rejects").fetchall()
    assert reject == [("A-00002", "ENCODING_ERROR", "column seats (integer): 2.5 is not a whole number")]
    crm = crm_hubspot(sandbox, "companies")
    assert crm[hubspot_company_id(2)]["leadscore_seats"] == "2"  # untouched, and not cleared either
    assert crm[hubspot_company_id(3)]["leadscore_mrr"] == "99"


# --- CRM instances ---------------------------------------------------------------------------------------
def test_state_belongs_to_one_crm_instance_so_a_switch_sends_everything(
    start_sandbox, hubspot_client, salesforce_client, warehouse, leads_table, company, mapping
) -> None:
    """After a sandbox run, pointing at another portal/org (a real one, here a second sandbox with other ids)
    finds no state there and sends everything, instead of reporting 'unchanged'."""
    first = start_sandbox()
    other = start_sandbox(hubspot_portal_id=90_000_001, salesforce_org_id="00D5g000009ZZZZEA2")
    leads_table(warehouse, 30)
    leads = mapping.object("leads")
    for crm in (first, other):
        company(crm, leads=30)
    for make in (hubspot_client, salesforce_client):
        assert sync_object(warehouse, make(first), leads).updated == 30
        assert sync_object(warehouse, make(first), leads).sent == 0
        switched = sync_object(warehouse, make(other), leads)
        assert (switched.to_send_new, switched.updated, switched.unchanged) == (30, 30, 0)
        assert sync_object(warehouse, make(other), leads).sent == 0
        assert sync_object(warehouse, make(first), leads).sent == 0, "the first instance's state is intact"
    instances = warehouse.execute(
        "SELECT destination, count(DISTINCT instance) FROM activation.sync_state GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert instances == [("hubspot", 2), ("salesforce", 2)]


def test_an_empty_crm_instance_gets_everything_sent_and_nothing_created(
    start_sandbox, hubspot_client, salesforce_client, warehouse, leads_table, company, mapping
) -> None:
    seeded = start_sandbox()
    empty = start_sandbox(hubspot_portal_id=90_000_002, salesforce_org_id="00D5g000009YYYYEA2")
    leads_table(warehouse, 10)
    company(seeded, leads=10)
    leads = mapping.object("leads")
    for make in (hubspot_client, salesforce_client):
        sync_object(warehouse, make(seeded), leads)
        report = sync_object(warehouse, make(empty), leads)
        assert (report.sent, report.not_found, report.created) == (10, 10, 0)
    assert counts(empty) == {"contacts": 0, "companies": 0, "Lead": 0, "Contact": 0, "Account": 0}


# --- Salesforce paths -----------------------------------------------------------------------------------
def test_salesforce_collections_and_bulk_paths_agree(
    sandbox, salesforce_client, warehouse, leads_table, company, mapping, expected, crm_salesforce
) -> None:
    leads = mapping.object("leads")
    leads_table(warehouse, 450)
    company(sandbox, leads=600)
    before = counts(sandbox)
    collections = salesforce_client(sandbox, bulk_threshold=10_000)
    report = sync_object(warehouse, collections, leads)
    assert (report.updated, report.created, report.failed) == (450, 0, 0)
    # ceil(338 Leads / 200) + ceil(112 Contacts / 200): one object per request
    assert sandbox.admin.stats()["by_route"]["salesforce.collections.update"] == 3
    leads_table(warehouse, 600, score_shift=1.0)  # 600 changes through Bulk API 2.0 update jobs
    bulk = salesforce_client(sandbox, bulk_threshold=100)
    report = sync_object(warehouse, bulk, leads)
    assert (report.updated, report.created, report.failed) == (600, 0, 0)
    assert sandbox.admin.stats()["by_route"]["salesforce.bulk.create"] == 2  # one job per object
    assert counts(sandbox) == before
    wanted = expected(warehouse, bulk, leads)
    crm = {**crm_salesforce(sandbox, "Lead"), **crm_salesforce(sandbox, "Contact")}
    for record_id, payload in wanted.items():
        assert {k: crm[record_id].get(k) for k in payload} == payload
    warehouse.execute("DELETE FROM lead_scores WHERE lead_id < 'L-0000200'")
    report = sync_object(warehouse, bulk, leads)  # 200 clears through Bulk: '#N/A' empties the fields
    assert report.cleared == 200
    assert "Leadscore_Score__c" not in crm_salesforce(sandbox, "Lead")[salesforce_lead_id(1)]


def test_a_failed_bulk_job_still_confirms_what_it_wrote(
    sandbox, salesforce_client, warehouse, leads_table, company, mapping
) -> None:
    """A Bulk 2.0 job that ends Failed may have written part of its rows: those are confirmed, the rest wait."""
    leads = mapping.object("leads")
    leads_table(warehouse, 300)
    company(sandbox, leads=300)
    # Only the 225 unconverted leads, so that they all go to Lead in one job.
    warehouse.execute("DELETE FROM lead_scores WHERE lead_id IN (SELECT lead_id FROM lead_crm_ids "
                      "WHERE salesforce_contact_id IS NOT NULL)")  # fmt: skip
    sandbox.admin.set_faults(bulk_fail_after=120)
    bulk = salesforce_client(sandbox, bulk_threshold=10)
    report = sync_object(warehouse, bulk, leads)
    assert (report.updated, report.failed) == (120, 105)
    assert warehouse.execute("SELECT count(*) FROM activation.sync_state").fetchone()[0] == 120
    reasons = warehouse.execute("SELECT DISTINCT error_code, reason LIKE '%ended Failed%' FROM activation.rejects")
    assert reasons.fetchall() == [("UNPROCESSED", True)]
    sandbox.admin.set_faults(bulk_fail_after=None)
    assert sync_object(warehouse, bulk, leads).updated == 105


def test_a_bulk_job_closed_too_slowly_for_the_client_is_still_confirmed(
    sandbox, salesforce_client, warehouse, leads_table, company, mapping
) -> None:
    """The close of a big job can outlast the client's timeout (a 100 MiB job took 44 s in the sandbox at 2x):
    the resent close is refused because the first one landed, and the job, read back, goes on to its results
    instead of every record counting as failed."""
    leads = mapping.object("leads")
    leads_table(warehouse, 300)
    company(sandbox, leads=300)
    sandbox.admin.set_faults(bulk_close_delay=0.6)
    bulk = salesforce_client(sandbox, bulk_threshold=10, http=dataclasses.replace(FAST_HTTP, timeout=0.3))
    report = sync_object(warehouse, bulk, leads)
    assert (report.updated, report.failed) == (300, 0)
    assert sandbox.admin.stats()["by_route"]["salesforce.bulk.create"] == 2, "no job was sent twice"


# --- upsert mode (explicit opt-in) ----------------------------------------------------------------------
UPSERT_MAPPING = {
    "version": 1,
    "objects": {
        "leads": {
            "relation": "lead_scores",
            "key_column": "lead_id",
            "destinations": {
                "hubspot": {"mode": "upsert", "object": "contacts", "id_property": "leadscore_lead_id"},
                "salesforce": {"mode": "upsert", "object": "Lead", "external_id_field": "Leadscore_Lead_Id__c"},
            },
            "fields": [
                {"column": "score", "type": "number", "hubspot": "leadscore_score", "salesforce": "Leadscore_Score__c"}
            ],
        }
    },
}


def test_upsert_mode_creates_what_is_missing_when_asked_to(
    sandbox, hubspot_client, salesforce_client, warehouse, leads_table, crm_salesforce
) -> None:
    leads_table(warehouse, 5)
    leads = parse_mapping(UPSERT_MAPPING).object("leads")
    report = sync_object(warehouse, hubspot_client(sandbox), leads)
    assert (report.mode, report.created) == ("upsert", 5)
    assert sync_object(warehouse, hubspot_client(sandbox), leads).sent == 0
    sandbox.admin.add_salesforce_fields(
        "Lead", [{"name": "Leadscore_Lead_Id__c", "type": "string", "externalId": True, "length": 80}]
    )
    # Salesforce insists on LastName and Company to create a Lead: a mapping that does not send them fails.
    report = sync_object(warehouse, salesforce_client(sandbox), leads)
    assert report.failed == 5
    codes = warehouse.execute("SELECT DISTINCT error_code FROM activation.rejects WHERE destination = 'salesforce'")
    assert codes.fetchall() == [("REQUIRED_FIELD_MISSING",)]
    # Mapping the required standard fields (by their API names) makes the creates work.
    document = copy.deepcopy(UPSERT_MAPPING)
    document["objects"]["leads"]["clear_when_missing"] = False
    document["objects"]["leads"]["fields"] += [  # whatever columns the warehouse has for them
        {"column": "tier", "type": "string", "salesforce": "LastName"},
        {"column": "model_version", "type": "string", "salesforce": "Company"},
    ]
    report = sync_object(warehouse, salesforce_client(sandbox), parse_mapping(document).object("leads"))
    assert (report.created, report.failed) == (5, 0)
    assert {r["Company"] for r in crm_salesforce(sandbox, "Lead").values()} == {"lead_scoring/3"}


# --- whole runs and failures ---------------------------------------------------------------------------
def test_run_sync_covers_every_object_of_a_destination(
    sandbox, warehouse, leads_table, accounts_table, company
) -> None:
    from activation.tasks import COLUMNS

    leads_table(warehouse, 12)
    accounts_table(warehouse, 7)
    company(sandbox, leads=12, accounts=7)
    warehouse.execute("CREATE SCHEMA activation")  # no alerts today: the tasks relation is empty
    empty = ", ".join(f"NULL::VARCHAR AS {c}" for c in COLUMNS)
    warehouse.execute(f"CREATE TABLE activation.alert_tasks AS SELECT {empty} WHERE false")
    reports = run_sync(warehouse, "hubspot", env=sandbox.env())
    assert [(r.crm_object, r.status, r.updated) for r in reports] == [
        ("contacts", "complete", 12), ("companies", "complete", 7), ("tasks", "complete", 0),
        ("contacts", "disabled", 0),
    ]  # fmt: skip
    dry = run_sync(warehouse, "salesforce", env=sandbox.env(), dry_run=True, objects=["accounts"])
    assert [(r.crm_object, r.to_send_new, r.sent) for r in dry] == [("Account", 7, 0)]
    with pytest.raises(ConfigurationError, match="settings"):
        run_sync(warehouse, "hubspot")


def test_warehouse_problems_are_clear_configuration_errors(
    sandbox, hubspot_client, warehouse, leads_table, mapping
) -> None:
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    with pytest.raises(ConfigurationError, match="relation 'lead_scores' of mapping object 'leads' does not exist"):
        sync_object(warehouse, client, leads)
    leads_table(warehouse, 3)
    warehouse.execute("DROP TABLE lead_crm_ids")
    with pytest.raises(ConfigurationError, match=r"identity relation .*lead_crm_ids.* does not exist"):
        sync_object(warehouse, client, leads)
    leads_table(warehouse, 3)
    warehouse.execute("ALTER TABLE lead_scores DROP COLUMN tier")
    with pytest.raises(ConfigurationError, match=r"lacks column\(s\) \['tier'\]"):
        sync_object(warehouse, client, leads)
    leads_table(warehouse, 3)
    warehouse.execute("INSERT INTO lead_crm_ids SELECT * FROM lead_crm_ids LIMIT 1")
    with pytest.raises(ConfigurationError, match="joined with 'lead_crm_ids' has 1 duplicate lead_id"):
        sync_object(warehouse, client, leads)
    failed = warehouse.execute("SELECT status FROM activation.sync_runs WHERE status = 'failed'").fetchall()
    assert len(failed) >= 3


class CrashAfter:
    """Wraps a destination and dies (like a killed process) when asked for batch number ``after + 1``."""

    def __init__(self, inner: Any, after: int) -> None:
        self.inner, self.after, self.sent, self.dead = inner, after, 0, False
        self.name, self.batch_size, self.bulk_threshold, self.stats = inner.name, inner.batch_size, None, inner.stats

    def identify(self) -> str:
        return self.inner.identify()

    def prepare(self, obj: ObjectMapping) -> None:
        self.inner.prepare(obj)

    def check(self, obj: ObjectMapping, record: OutgoingRecord) -> RecordResult | None:
        return self.inner.check(obj, record)

    def encode(self, obj: ObjectMapping, row: Any) -> dict[str, Any]:
        return self.inner.encode(obj, row)

    def empty_payload(self, obj: ObjectMapping) -> dict[str, Any]:
        return self.inner.empty_payload(obj)

    def send_batch(self, obj: ObjectMapping, records: Sequence[OutgoingRecord]) -> list[RecordResult]:
        if self.dead:
            raise SystemExit("already dead")
        if self.sent == self.after:
            # The batch reaches the CRM, but the process dies before hearing back.
            self.inner.send_batch(obj, records)
            self.dead = True
            raise SystemExit("killed")
        self.sent += 1
        return self.inner.send_batch(obj, records)


def test_a_crash_between_batches_converges_on_rerun(
    sandbox, hubspot_client, warehouse, leads_table, company, mapping, expected, crm_hubspot, matches
) -> None:
    leads_table(warehouse, 500)
    company(sandbox, leads=500)
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    with pytest.raises(SystemExit):
        sync_object(warehouse, CrashAfter(client, after=2), leads, options=SyncOptions(workers=1))
    confirmed = warehouse.execute("SELECT count(*) FROM activation.sync_state").fetchone()[0]
    assert confirmed == 200  # the two answered batches; the third was written but never confirmed
    report = sync_object(warehouse, client, leads)
    assert (report.sent, report.updated, report.created) == (300, 300, 0)
    matches["hubspot"](crm_hubspot(sandbox, "contacts"), expected(warehouse, client, leads))
    assert len(crm_hubspot(sandbox, "contacts")) == 500
    assert warehouse.execute("SELECT status FROM activation.sync_runs ORDER BY started_at").fetchall() == [
        ("failed",),
        ("complete",),
    ]


def test_the_shipped_mapping_targets_both_destinations(mapping: SyncMapping) -> None:
    assert [o.name for o in mapping.for_destination("hubspot")] == ["leads", "accounts", "tasks", "lead_owners"]
    assert [o.name for o in mapping.for_destination("salesforce")] == ["leads", "accounts", "tasks", "lead_owners"]
    # Records are only ever updated; the one thing created is a task per alert.
    assert {o.name: {t.mode for t in o.destinations.values()} for o in mapping.objects} == {
        "leads": {"update"}, "accounts": {"update"}, "tasks": {"create"}, "lead_owners": {"update"},
    }  # fmt: skip
    assert [o.name for o in mapping.objects if not o.enabled] == ["lead_owners"]


@pytest.mark.slow
def test_the_real_marts_sync_onto_the_synthetic_companys_crm(
    built_warehouse, sandbox, hubspot_client, salesforce_client, mapping
) -> None:
    """End to end with the dbt-built tiny warehouse (fixture from tests/conftest.py): real column types, the
    real identity marts, and a sandbox seeded as the copy of the synthetic company's CRM."""
    from activation.sandbox.seed import seed_from_warehouse

    with duckdb.connect(str(built_warehouse), read_only=True) as source:
        seed_from_warehouse(sandbox.app, source)
    conn = duckdb.connect()
    conn.execute(f"ATTACH '{built_warehouse}' AS built (READ_ONLY)")
    for table in ("account_metrics", "account_crm_ids"):
        conn.execute(f"CREATE TABLE {table} AS SELECT * FROM built.main.{table}")
    before = counts(sandbox)
    accounts = mapping.object("accounts")
    for client in (hubspot_client(sandbox), salesforce_client(sandbox)):
        report = sync_object(conn, client, accounts)
        assert report.status == "complete" and report.failed == 0 and report.created == 0
        assert report.updated == report.desired - report.unmatched > 0
        assert sync_object(conn, client, accounts).sent == 0
    assert counts(sandbox) == before


# --- regressions found in review ------------------------------------------------------------------------
def set_salesforce_fields(sandbox, record_id: str, **fields: Any) -> None:
    """Change a record the way a person in Salesforce would (the API cannot convert a Lead)."""
    import json

    with sandbox.app.store.transaction() as conn:
        row = conn.execute("SELECT fields FROM sf_records WHERE id = ?", (record_id,)).fetchone()
        values = {**json.loads(row[0]), **fields}
        conn.execute("UPDATE sf_records SET fields = ? WHERE id = ?", (json.dumps(values, sort_keys=True), record_id))


def test_a_lead_converted_after_its_sync_is_not_cleared_forever(
    sandbox, salesforce_client, warehouse, leads_table, company, mapping
) -> None:
    """Converted people leave the scored population; their Lead is read-only by then: nothing to clear."""
    leads_table(warehouse, 3)
    company(sandbox, leads=3)
    client, leads = salesforce_client(sandbox), mapping.object("leads")
    sync_object(warehouse, client, leads)
    contact = make_salesforce_id("003", 77_777)
    sandbox.app.seed_salesforce("Contact", [{"Id": contact, "LastName": "L1"}])
    set_salesforce_fields(sandbox, salesforce_lead_id(1), IsConverted=True, ConvertedContactId=contact)
    warehouse.execute(f"UPDATE lead_crm_ids SET salesforce_contact_id = '{contact}' WHERE lead_id = 'L-0000001'")
    warehouse.execute("DELETE FROM lead_scores WHERE lead_id = 'L-0000001'")
    report = sync_object(warehouse, client, leads)
    assert (report.status, report.to_clear, report.cleared, report.failed) == ("complete", 1, 1, 0)
    assert sync_object(warehouse, client, leads).sent == 0
    assert warehouse.execute("SELECT count(*) FROM activation.rejects").fetchone()[0] == 0


def test_an_email_that_finds_a_record_another_row_writes_onto_is_a_duplicate(
    sandbox, hubspot_client, warehouse, leads_table, company, mapping, crm_hubspot
) -> None:
    leads_table(warehouse, 3)
    company(sandbox, leads=3)
    # L-2 has no id in the export, and an address (in another casing) that is L-1's contact's
    warehouse.execute(
        "UPDATE lead_crm_ids SET hubspot_contact_id = NULL, email = 'LEAD1@example.com' WHERE lead_id = 'L-0000002'"
    )
    report = sync_object(warehouse, hubspot_client(sandbox), mapping.object("leads"))
    assert (report.updated, report.failed) == (2, 1)
    assert warehouse.execute("SELECT record_key, error_code FROM activation.rejects").fetchall() == [
        ("L-0000002", "duplicate_target")
    ]
    expected_score = warehouse.execute("SELECT score FROM lead_scores WHERE lead_id = 'L-0000001'").fetchone()[0]
    assert crm_hubspot(sandbox, "contacts")[hubspot_contact_id(1)]["leadscore_score"] == f"{expected_score:g}"


def test_bulk_upsert_sends_clears_by_id_in_their_own_job(
    start_sandbox, salesforce_client, warehouse, leads_table, crm_salesforce
) -> None:
    sandbox = start_sandbox(salesforce_required_on_create=False)
    sandbox.admin.add_salesforce_fields(
        "Lead", [{"name": "Leadscore_Lead_Id__c", "type": "string", "externalId": True, "length": 80}]
    )
    leads_table(warehouse, 6)
    leads = parse_mapping(UPSERT_MAPPING).object("leads")
    bulk = salesforce_client(sandbox, bulk_threshold=2)
    assert sync_object(warehouse, bulk, leads).created == 6
    warehouse.execute("DELETE FROM lead_scores WHERE lead_id = 'L-0000005'")  # a clear, addressed by Id
    warehouse.execute("UPDATE lead_scores SET score = score + 1")  # five upserts, addressed by key
    report = sync_object(warehouse, bulk, leads)
    assert (report.cleared, report.updated, report.created, report.failed) == (1, 5, 0, 0)
    crm = {r["Leadscore_Lead_Id__c"]: r for r in crm_salesforce(sandbox, "Lead").values()}
    assert len(crm) == 6, "no record created for the clear"
    assert "Leadscore_Score__c" not in crm["L-0000005"] and "Leadscore_Score__c" in crm["L-0000004"]


@pytest.mark.parametrize(
    ("bulk_max_bytes", "jobs_before_spent"),
    [(100 * 1024 * 1024, 1), (400, 2)],
    ids=["one job per object", "several jobs per object"],
)
def test_bulk_jobs_keep_what_they_confirmed_when_the_allocation_runs_out(
    bulk_max_bytes, jobs_before_spent, sandbox, salesforce_client, warehouse, leads_table, company, mapping
) -> None:
    """Another integration spends the org's allocation while a job runs: what the jobs so far wrote is
    confirmed and recorded, the rest of their group and the other groups wait for the next run. Contacts
    (2) and Leads (6) go in separate jobs; with small jobs the 6 Leads take several, and the allocation
    runs out after the first of them."""
    leads_table(warehouse, 8)
    company(sandbox, leads=8)
    client = salesforce_client(sandbox, bulk_threshold=2, bulk_max_bytes=bulk_max_bytes)
    run_job = client._run_job
    job_sizes: list[int] = []

    def job_then_allocation_spent(job_spec: Any, records: Any, *args: Any) -> Any:
        results = run_job(job_spec, records, *args)
        job_sizes.append(len(records))
        if len(job_sizes) == jobs_before_spent:
            sandbox.admin.set_limits(salesforce_daily_limit=1)
        return results

    client._run_job = job_then_allocation_spent  # type: ignore[method-assign]
    report = sync_object(warehouse, client, mapping.object("leads"))
    confirmed = sum(job_sizes)
    assert len(job_sizes) == jobs_before_spent and job_sizes[0] == 2  # the Contacts' job first
    if jobs_before_spent == 2:
        assert 0 < job_sizes[1] < 6, "the Leads' group was split into several jobs"
    assert (report.status, report.updated, report.deferred, report.failed) == (
        "daily_limit",
        confirmed,
        8 - confirmed,
        0,
    )
    assert warehouse.execute("SELECT count(*) FROM activation.sync_state").fetchone()[0] == confirmed
    sandbox.admin.set_limits(salesforce_daily_limit=100_000)
    fresh = salesforce_client(sandbox, bulk_threshold=2, bulk_max_bytes=bulk_max_bytes)
    assert sync_object(warehouse, fresh, mapping.object("leads")).updated == 8 - confirmed


def test_a_bulk_job_the_org_does_not_finish_in_time_is_aborted_and_kept_for_the_next_run(
    start_sandbox, salesforce_client, warehouse, leads_table, company, mapping
) -> None:
    """The org's Bulk queue is slower than the client's poll timeout: the job is aborted (left running, it
    would write after its records were counted failed), later jobs are not sent, nothing is lost, and the
    next run sends everything."""
    sandbox = start_sandbox(faults={"bulk_queue_delay": 0.5})
    leads_table(warehouse, 8)
    company(sandbox, leads=8)
    client = salesforce_client(sandbox, bulk_threshold=2, bulk_max_bytes=400, bulk_poll_timeout=0.1)
    request = client.request
    job_ids: list[str] = []

    def noting_jobs(method: str, url: str, **kwargs: Any) -> requests.Response:
        response = request(method, url, **kwargs)
        if method == "POST" and url.endswith("/jobs/ingest"):
            job_ids.append(response.json()["id"])
        return response

    client.request = noting_jobs  # type: ignore[method-assign]
    report = sync_object(warehouse, client, mapping.object("leads"))
    assert (report.updated, report.failed) == (0, 8)
    assert len(job_ids) == 2, "one job per group was sent; the Leads' later jobs were not"
    kept = warehouse.execute(
        "SELECT count(*) FILTER (WHERE error_code = 'UNPROCESSED'), count(*) FILTER (WHERE error_code = 'BULK_FAILED')"
        " FROM activation.rejects"
    ).fetchone()
    assert kept[0] >= 2 and sum(kept) == 8, kept  # the aborted jobs' records, then the Leads never sent
    assert warehouse.execute("SELECT count(*) FROM activation.sync_state").fetchone()[0] == 0

    sandbox.admin.set_faults(bulk_queue_delay=0.0)
    fresh = salesforce_client(sandbox, bulk_threshold=2, bulk_max_bytes=400)
    assert sync_object(warehouse, fresh, mapping.object("leads")).updated == 8
    for job_id in job_ids:  # their turn in the queue came before the second run's jobs: they wrote nothing
        info = fresh.request("GET", fresh._data_url(f"jobs/ingest/{job_id}")).json()
        assert (info["state"], info["numberRecordsProcessed"]) == ("Aborted", 0)


def test_an_interrupt_stops_the_worker_pool(
    sandbox, hubspot_client, warehouse, leads_table, company, mapping, monkeypatch
) -> None:
    """Ctrl-C or the orchestrator's termination while batches are queued: nothing more is sent."""
    from activation import state

    leads_table(warehouse, 2000)
    company(sandbox, leads=2000)
    flush = state.StateWriter.flush
    calls = []

    def interrupted_flush(self) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt("terminated")
        flush(self)

    monkeypatch.setattr(state.StateWriter, "flush", interrupted_flush)
    with pytest.raises(KeyboardInterrupt):
        sync_object(
            warehouse, hubspot_client(sandbox), mapping.object("leads"), options=SyncOptions(flush_every=100, workers=2)
        )
    assert sandbox.admin.stats()["by_route"]["hubspot.batch.update"] <= 4, "queued batches were not started"


@pytest.mark.parametrize("bulk_threshold", [10_000, 2], ids=["collections", "bulk"])
def test_an_emptied_text_is_emptied_on_both_salesforce_paths(
    bulk_threshold, sandbox, salesforce_client, warehouse, leads_table, company, mapping, crm_salesforce
) -> None:
    """An empty Bulk CSV cell means 'leave unchanged': an empty text must travel as null (#N/A)."""
    leads_table(warehouse, 4)
    company(sandbox, leads=4)
    client, leads = salesforce_client(sandbox, bulk_threshold=bulk_threshold), mapping.object("leads")
    sync_object(warehouse, client, leads)
    warehouse.execute("UPDATE lead_scores SET reasons = []::VARCHAR[], tier = '' WHERE lead_id <> 'L-0000000'")
    assert sync_object(warehouse, client, leads).updated == 3
    record = crm_salesforce(sandbox, "Lead")[salesforce_lead_id(1)]
    assert "Leadscore_Tier__c" not in record and "Leadscore_Reasons__c" not in record


# --- erasure --------------------------------------------------------------------------------------------
def test_an_erased_person_is_cleared_in_the_crm_then_forgotten(
    sandbox, hubspot_client, warehouse, leads_table, company, mapping, crm_hubspot
) -> None:
    """The warehouse erased two people (ml.sources.governance marks their state); one had already been
    cleared (consent withdrawn). The sync empties the other's fields, then no row of either is left."""
    leads_table(warehouse, 5)
    company(sandbox, leads=5)
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    sync_object(warehouse, client, leads)
    warehouse.execute("DELETE FROM lead_scores WHERE lead_id = 'L-0000003'")
    sync_object(warehouse, client, leads)  # L-3 withdrew consent: cleared, its state row kept
    erased = ("L-0000002", "L-0000003")
    for table in ("lead_scores", "lead_crm_ids"):
        warehouse.execute(f"DELETE FROM {table} WHERE lead_id IN {erased}")
    warehouse.execute(f"UPDATE activation.sync_state SET erased = true WHERE record_key IN {erased}")
    dry = sync_object(warehouse, client, leads, dry_run=True)
    assert [s["action"] for s in dry.samples] == ["erase"]
    report = sync_object(warehouse, client, leads)
    assert (report.to_clear, report.cleared, report.failed) == (1, 1, 0)
    assert not any(p.startswith("leadscore_") for p in crm_hubspot(sandbox, "contacts")[hubspot_contact_id(2)])
    keys = {k for (k,) in warehouse.execute("SELECT record_key FROM activation.sync_state").fetchall()}
    assert keys == {"L-0000000", "L-0000001", "L-0000004"}, "nothing of the erased people stays"
    assert sync_object(warehouse, client, leads).sent == 0


def test_erasures_are_cleared_even_where_departed_records_are_not(
    sandbox, hubspot_client, warehouse, leads_table, company, mapping
) -> None:
    """clear_when_missing: false keeps departed records' values, never an erased person's."""
    import dataclasses

    leads_table(warehouse, 3)
    company(sandbox, leads=3)
    client = hubspot_client(sandbox)
    leads = dataclasses.replace(mapping.object("leads"), clear_when_missing=False)
    sync_object(warehouse, client, leads)
    warehouse.execute("DELETE FROM lead_scores WHERE lead_id IN ('L-0000000', 'L-0000001')")
    warehouse.execute("UPDATE activation.sync_state SET erased = true WHERE record_key = 'L-0000001'")
    report = sync_object(warehouse, client, leads)
    assert (report.to_clear, report.cleared) == (1, 1)


def test_rows_to_sync_are_streamed_in_batches_and_equal_one_read(warehouse, leads_table, mapping) -> None:
    """read_desired yields rows batch by batch (never a list of every row); the batch size changes nothing.
    Duplicate keys are refused before the first row comes out."""
    from activation.sync import read_desired

    leads = mapping.object("leads")
    identity = leads.target("hubspot").identity_columns
    leads_table(warehouse, 7)
    streamed = read_desired(warehouse, leads, identity, batch_rows=3)
    assert not isinstance(streamed, list | tuple)
    rows = list(streamed)
    assert len(rows) == 7 and len({r["lead_id"] for r in rows}) == 7
    assert rows == list(read_desired(warehouse, leads, identity, batch_rows=1_000))
    assert set(rows[0]) == {leads.key_column, *(f.column for f in leads.fields), *identity}
    warehouse.execute("INSERT INTO lead_crm_ids SELECT * FROM lead_crm_ids WHERE lead_id IN "
                      "(SELECT lead_id FROM lead_crm_ids ORDER BY lead_id LIMIT 2)")  # fmt: skip
    with pytest.raises(ConfigurationError, match=r"has 2 duplicate lead_id value\(s\).*'L-0000"):
        next(read_desired(warehouse, leads, identity, batch_rows=3))
