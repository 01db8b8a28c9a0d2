"""The sync engine end to end against the sandbox: diff, clears, dry runs, rejects, history, crashes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import requests

from activation.destination import OutgoingRecord, RecordResult
from activation.errors import ConfigurationError
from activation.mapping import ObjectMapping, SyncMapping
from activation.sync import SyncOptions, run_sync, sync_object


def test_hubspot_sync_matches_the_warehouse_and_resends_nothing(
    sandbox, hubspot_client, warehouse, leads_table, mapping, expected, crm_hubspot, matches
) -> None:
    leads_table(warehouse, 250)
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    first = sync_object(warehouse, client, leads)
    assert (first.status, first.sent, first.created, first.failed) == ("complete", 250, 250, 0)
    assert sandbox.admin.stats()["by_route"]["hubspot.batch.upsert"] == 3  # ceil(250 / 100)
    matches["hubspot"](crm_hubspot(sandbox, "contacts", "leadscore_lead_id"), expected(warehouse, client, leads))
    second = sync_object(warehouse, client, leads)
    assert (second.sent, second.unchanged, second.api_calls) == (0, 250, 0)


def test_only_changed_records_are_sent(
    sandbox, hubspot_client, warehouse, leads_table, mapping, expected, crm_hubspot, matches
) -> None:
    leads_table(warehouse, 120)
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    sync_object(warehouse, client, leads)
    warehouse.execute("UPDATE lead_scores SET score = score + 1 WHERE lead_id IN ('L-0000003', 'L-0000077')")
    report = sync_object(warehouse, client, leads)
    assert (report.to_update, report.sent, report.updated, report.created, report.unchanged) == (2, 2, 2, 0, 118)
    matches["hubspot"](crm_hubspot(sandbox, "contacts", "leadscore_lead_id"), expected(warehouse, client, leads))


def test_only_the_latest_as_of_is_synced_and_backfills_change_nothing(
    sandbox, hubspot_client, warehouse, leads_table, mapping, crm_hubspot
) -> None:
    leads_table(warehouse, 10, as_of="2026-11-02")
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    sync_object(warehouse, client, leads)
    before = crm_hubspot(sandbox, "contacts", "leadscore_lead_id")
    leads_table(warehouse, 10, as_of="2026-10-01", score_shift=50.0, replace=False)  # a backfilled old partition
    report = sync_object(warehouse, client, leads)
    assert report.sent == 0
    assert crm_hubspot(sandbox, "contacts", "leadscore_lead_id") == before


def test_leads_leaving_the_desired_set_are_cleared_and_can_return(
    sandbox, hubspot_client, warehouse, leads_table, mapping, crm_hubspot
) -> None:
    leads_table(warehouse, 5)
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    sync_object(warehouse, client, leads)
    warehouse.execute("DELETE FROM lead_scores WHERE lead_id = 'L-0000002'")  # consent withdrawn
    report = sync_object(warehouse, client, leads)
    assert (report.to_clear, report.cleared, report.sent) == (1, 1, 1)
    crm = crm_hubspot(sandbox, "contacts", "leadscore_lead_id")
    assert crm["L-0000002"] == {"leadscore_lead_id": "L-0000002"}  # every score field emptied, record kept
    assert "leadscore_score" in crm["L-0000001"]
    assert sync_object(warehouse, client, leads).sent == 0  # a cleared record is not cleared again
    leads_table(warehouse, 5)
    back = sync_object(warehouse, client, leads)
    assert (back.to_update, back.sent) == (1, 1)
    assert "leadscore_score" in crm_hubspot(sandbox, "contacts", "leadscore_lead_id")["L-0000002"]


def test_an_empty_relation_does_not_wipe_the_crm(sandbox, hubspot_client, warehouse, leads_table, mapping) -> None:
    leads_table(warehouse, 5)
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    sync_object(warehouse, client, leads)
    warehouse.execute("DELETE FROM lead_scores")
    with pytest.raises(ConfigurationError, match="refusing"):
        sync_object(warehouse, client, leads)
    assert sync_object(warehouse, client, leads, options=SyncOptions(allow_clear_all=True)).cleared == 5


def test_dry_run_sends_nothing_and_reports_samples(sandbox, hubspot_client, warehouse, leads_table, mapping) -> None:
    leads_table(warehouse, 30)
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    report = sync_object(warehouse, client, leads, dry_run=True, options=SyncOptions(sample_size=2))
    assert sandbox.admin.stats()["requests"] == 0
    assert (report.dry_run, report.to_create, report.sent, report.api_calls) == (True, 30, 0, 0)
    assert [s["key"] for s in report.samples] == ["L-0000000", "L-0000001"]
    payload = report.samples[0]["payload"]
    assert "leadscore_tier" in payload and "leadscore_model_version" not in payload  # a promotion resends nothing
    assert warehouse.execute("SELECT count(*) FROM activation.sync_state").fetchone()[0] == 0
    assert sync_object(warehouse, client, leads).created == 30  # the dry run did not mark anything synced


def test_run_history_is_recorded(sandbox, hubspot_client, warehouse, leads_table, mapping) -> None:
    leads_table(warehouse, 150)
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    sync_object(warehouse, client, leads, dry_run=True)
    sync_object(warehouse, client, leads)
    rows = warehouse.execute(
        "SELECT destination, object, dry_run, status, sent, created, updated, unchanged, failed, api_calls, duration_s "
        "FROM activation.sync_runs ORDER BY started_at"
    ).fetchall()
    assert [r[:9] for r in rows] == [
        ("hubspot", "contacts", True, "complete", 0, 0, 0, 0, 0),
        ("hubspot", "contacts", False, "complete", 150, 150, 0, 0, 0),
    ]
    assert rows[1][9] >= 2 and rows[1][10] >= 0  # two batches plus the property setup


def test_rejects_are_recorded_then_retried_next_run(
    sandbox, hubspot_client, warehouse, leads_table, mapping, crm_hubspot
) -> None:
    leads_table(warehouse, 20)
    sandbox.admin.set_faults(reject_keys=["L-0000004", "L-0000011"])
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    report = sync_object(warehouse, client, leads)
    assert (report.status, report.failed, report.created) == ("partial", 2, 18)
    rejects = warehouse.execute(
        "SELECT record_key, error_code, reason, attempts FROM activation.rejects ORDER BY 1"
    ).fetchall()
    assert [(r[0], r[1], r[3]) for r in rejects] == [
        ("L-0000004", "VALIDATION_ERROR", 1),
        ("L-0000011", "VALIDATION_ERROR", 1),
    ]
    assert "Injected record failure" in rejects[0][2]
    assert "L-0000004" not in crm_hubspot(sandbox, "contacts", "leadscore_lead_id")
    again = sync_object(warehouse, client, leads)
    assert (again.sent, again.failed) == (2, 2)
    assert warehouse.execute("SELECT max(attempts) FROM activation.rejects").fetchone()[0] == 2
    sandbox.admin.set_faults(reject_keys=[])
    final = sync_object(warehouse, client, leads)
    assert (final.sent, final.created, final.failed) == (2, 2, 0)
    assert warehouse.execute("SELECT count(*) FROM activation.rejects").fetchone()[0] == 0


def test_a_conflicting_record_is_isolated_by_splitting(
    sandbox, hubspot_client, warehouse, leads_table, mapping, crm_hubspot
) -> None:
    leads_table(warehouse, 100)
    sandbox.admin.set_faults(conflict_keys=["L-0000042"])
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    report = sync_object(warehouse, client, leads)
    assert (report.created, report.failed) == (99, 1)
    reject = warehouse.execute("SELECT record_key, error_code FROM activation.rejects").fetchall()
    assert reject == [("L-0000042", "CONFLICT")]
    assert len(crm_hubspot(sandbox, "contacts", "leadscore_lead_id")) == 99
    # 1 + 2 * ceil(log2(100)) requests at most to isolate one record in a batch of 100
    assert sandbox.admin.stats()["by_route"]["hubspot.batch.upsert"] <= 1 + 2 * 7


def test_companies_sync_with_integers_decimals_and_nulls(
    sandbox, hubspot_client, warehouse, accounts_table, mapping, expected, crm_hubspot, matches
) -> None:
    accounts_table(warehouse, 40)
    client, accounts = hubspot_client(sandbox), mapping.object("accounts")
    assert sync_object(warehouse, client, accounts).created == 40
    crm = crm_hubspot(sandbox, "companies", "leadscore_account_id")
    matches["hubspot"](crm, expected(warehouse, client, accounts))
    assert crm["A-00003"]["leadscore_seats"] == "3" and crm["A-00003"]["leadscore_mrr"] == "37.5"
    assert "leadscore_open_pipeline_amount" not in crm["A-00003"]  # NULL: property left empty


def test_salesforce_collections_and_bulk_paths_agree(
    sandbox, salesforce_client, warehouse, leads_table, mapping, expected, crm_salesforce, matches
) -> None:
    leads = mapping.object("leads")
    leads_table(warehouse, 450)
    collections = salesforce_client(sandbox, bulk_threshold=10_000)
    report = sync_object(warehouse, collections, leads)
    assert (report.created, report.failed) == (450, 0)
    assert sandbox.admin.stats()["by_route"]["salesforce.collections.upsert"] == 3  # ceil(450 / 200)
    leads_table(warehouse, 600, score_shift=1.0)  # 450 updates + 150 creates, through Bulk API 2.0
    bulk = salesforce_client(sandbox, bulk_threshold=100)
    report = sync_object(warehouse, bulk, leads)
    assert (report.created, report.updated, report.failed) == (150, 450, 0)
    assert sandbox.admin.stats()["by_route"]["salesforce.bulk.create"] == 1
    matches["salesforce"](crm_salesforce(sandbox, "Lead", "Leadscore_Lead_Id__c"), expected(warehouse, bulk, leads))
    warehouse.execute("DELETE FROM lead_scores WHERE lead_id < 'L-0000200'")
    report = sync_object(warehouse, bulk, leads)  # 200 clears through Bulk: '#N/A' empties the fields
    assert report.cleared == 200
    crm = crm_salesforce(sandbox, "Lead", "Leadscore_Lead_Id__c")
    assert set(crm["L-0000000"]) == {"Id", "Leadscore_Lead_Id__c"}


def test_run_sync_covers_every_object_of_a_destination(sandbox, warehouse, leads_table, accounts_table) -> None:
    leads_table(warehouse, 12)
    accounts_table(warehouse, 7)
    reports = run_sync(warehouse, "hubspot", env=sandbox.env())
    assert [(r.object, r.created) for r in reports] == [("contacts", 12), ("companies", 7)]
    dry = run_sync(warehouse, "salesforce", env=sandbox.env(), dry_run=True, objects=["accounts"])
    assert [(r.object, r.to_create, r.sent) for r in dry] == [("Account", 7, 0)]


def test_warehouse_problems_are_clear_configuration_errors(
    sandbox, hubspot_client, warehouse, leads_table, mapping
) -> None:
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    with pytest.raises(ConfigurationError, match="does not exist"):
        sync_object(warehouse, client, leads)
    leads_table(warehouse, 3)
    warehouse.execute("ALTER TABLE lead_scores DROP COLUMN tier")
    with pytest.raises(ConfigurationError, match=r"lacks column\(s\) \['tier'\]"):
        sync_object(warehouse, client, leads)
    leads_table(warehouse, 3)
    leads_table(warehouse, 1, replace=False)
    with pytest.raises(ConfigurationError, match="duplicate lead_id"):
        sync_object(warehouse, client, leads)
    failed = warehouse.execute("SELECT status FROM activation.sync_runs WHERE status = 'failed'").fetchall()
    assert len(failed) >= 2


class CrashAfter:
    """Wraps a destination and dies (like a killed process) when asked for batch number ``after + 1``."""

    def __init__(self, inner: Any, after: int) -> None:
        self.inner, self.after, self.sent, self.dead = inner, after, 0, False
        self.name, self.batch_size, self.bulk_threshold, self.stats = inner.name, inner.batch_size, None, inner.stats

    def prepare(self, obj: ObjectMapping) -> None:
        self.inner.prepare(obj)

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
    sandbox, hubspot_client, warehouse, leads_table, mapping, expected, crm_hubspot, matches
) -> None:
    leads_table(warehouse, 500)
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    with pytest.raises(SystemExit):
        sync_object(warehouse, CrashAfter(client, after=2), leads, options=SyncOptions(workers=1))
    confirmed = warehouse.execute("SELECT count(*) FROM activation.sync_state").fetchone()[0]
    assert confirmed == 200  # the two answered batches; the third was written but never confirmed
    assert len(crm_hubspot(sandbox, "contacts", "leadscore_lead_id")) == 300
    report = sync_object(warehouse, client, leads)
    assert (report.sent, report.created, report.updated) == (300, 200, 100)
    matches["hubspot"](crm_hubspot(sandbox, "contacts", "leadscore_lead_id"), expected(warehouse, client, leads))
    assert warehouse.execute("SELECT status FROM activation.sync_runs ORDER BY started_at").fetchall() == [
        ("failed",),
        ("complete",),
    ]


def test_the_shipped_mapping_targets_both_destinations(mapping: SyncMapping) -> None:
    assert [o.name for o in mapping.for_destination("hubspot")] == ["leads", "accounts"]
    assert [o.name for o in mapping.for_destination("salesforce")] == ["leads", "accounts"]


def test_hubspot_contacts_can_be_matched_by_email(sandbox, hubspot_client, warehouse, crm_hubspot) -> None:
    """The documented alternative: upsert by the built-in unique ``email`` instead of leadscore's own id."""
    from activation.mapping import parse_mapping

    mapping = parse_mapping(
        {
            "version": 1,
            "objects": {
                "leads": {
                    "relation": "lead_emails",
                    "key_column": "email",
                    "destinations": {"hubspot": {"object": "contacts", "id_property": "email"}},
                    "fields": [{"column": "score", "type": "number", "hubspot": "leadscore_score"}],
                }
            },
        }
    )
    warehouse.execute("CREATE TABLE lead_emails AS SELECT 'ada@example.com' AS email, 91.0 AS score")
    existing = {"inputs": [{"idProperty": "email", "id": "ada@example.com", "properties": {"firstname": "Ada"}}]}
    requests.post(
        f"{sandbox.url}/crm/v3/objects/contacts/batch/upsert",
        json=existing,
        headers={"Authorization": "Bearer pat-sandbox-0000-leadscore"},
        timeout=10,
    )
    report = sync_object(warehouse, hubspot_client(sandbox), mapping.object("leads"))
    assert (report.created, report.updated) == (0, 1)  # the existing contact, not a duplicate
    assert crm_hubspot(sandbox, "contacts", "email")["ada@example.com"] == {
        "email": "ada@example.com",
        "firstname": "Ada",
        "leadscore_score": "91",
    }


def test_a_reject_that_became_moot_is_forgotten(sandbox, hubspot_client, warehouse, leads_table, mapping) -> None:
    leads_table(warehouse, 3)
    sandbox.admin.set_faults(reject_keys=["L-0000001"])
    client, leads = hubspot_client(sandbox), mapping.object("leads")
    assert sync_object(warehouse, client, leads).failed == 1
    warehouse.execute("DELETE FROM lead_scores WHERE lead_id = 'L-0000001'")  # never synced, now gone
    report = sync_object(warehouse, client, leads)
    assert (report.sent, report.to_clear) == (0, 0)
    assert warehouse.execute("SELECT count(*) FROM activation.rejects").fetchone()[0] == 0


@pytest.mark.slow
def test_the_real_account_metrics_mart_syncs_to_both_crms(
    built_warehouse, sandbox, hubspot_client, salesforce_client, mapping
) -> None:
    """End to end with the dbt-built tiny warehouse (fixture from tests/conftest.py): real column types."""
    import duckdb

    with duckdb.connect(str(built_warehouse), read_only=True) as source:
        frame = source.execute("SELECT * FROM account_metrics").df()
    conn = duckdb.connect()
    conn.register("frame", frame)
    conn.execute("CREATE TABLE account_metrics AS SELECT * FROM frame")
    accounts = mapping.object("accounts")
    for client in (hubspot_client(sandbox), salesforce_client(sandbox)):
        report = sync_object(conn, client, accounts)
        assert report.status == "complete" and report.failed == 0
        assert report.created == len(frame) > 0
        assert sync_object(conn, client, accounts).sent == 0


def test_a_value_that_does_not_fit_its_type_rejects_only_that_record(
    sandbox, hubspot_client, warehouse, accounts_table, mapping, crm_hubspot
) -> None:
    accounts_table(warehouse, 4)
    client, accounts = hubspot_client(sandbox), mapping.object("accounts")
    sync_object(warehouse, client, accounts)
    warehouse.execute("ALTER TABLE account_metrics ALTER seats TYPE DOUBLE")
    warehouse.execute("UPDATE account_metrics SET seats = 2.5, mrr = 1 WHERE account_id = 'A-00002'")
    warehouse.execute("UPDATE account_metrics SET mrr = 99 WHERE account_id = 'A-00003'")
    report = sync_object(warehouse, client, accounts)
    assert (report.status, report.failed, report.updated, report.to_clear) == ("partial", 1, 1, 0)
    reject = warehouse.execute("SELECT record_key, error_code, reason FROM activation.rejects").fetchall()
    assert reject == [("A-00002", "ENCODING_ERROR", "column seats (integer): 2.5 is not a whole number")]
    crm = crm_hubspot(sandbox, "companies", "leadscore_account_id")
    assert crm["A-00002"]["leadscore_seats"] == "2"  # untouched, and not cleared either
    assert crm["A-00003"]["leadscore_mrr"] == "99"
