"""What the Dagster UI shows is true and complete: owners, descriptions, freshness, checks (issue 11)."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pytest
from dagster import AssetCheckSeverity, AssetKey, DagsterEventType, FreshnessPolicy

from activation.state import ensure_tables
from dagster_project.assets_activation import Reject, open_rejects, rejects_check, rejects_check_name, rejects_table
from dagster_project.assets_sources import loaded_at_metadata
from dagster_project.definitions import defs
from dagster_project.policies import OWNERS_BY_GROUP, apply_policies, domain_for, owner_for
from dagster_project.project import dbt_project
from dagster_project.translator import dbt_test_description
from ml.sources.schema import RAW_TABLES
from tests.test_orchestration import make_instance, tiny_definitions

FRESH_BY_06 = [AssetKey("lead_scores"), AssetKey("hubspot_sync"), AssetKey("salesforce_sync")]
RAW_KEYS = [AssetKey(["raw", t.name]) for t in RAW_TABLES]


def graph():
    return defs.resolve_asset_graph()


# --- the real definitions -------------------------------------------------------------------------
def test_every_asset_has_a_description_owners_and_tags():
    g = graph()
    for key in g.get_all_asset_keys():
        node = g.get(key)
        assert (node.description or "").strip(), f"{key.to_user_string()} has no description"
        assert node.owners, f"{key.to_user_string()} has no owners (is apply_policies wired into definitions.py?)"
        assert all(o.startswith("team:") for o in node.owners), node.owners
        assert {"layer", "domain"} <= set(node.tags), f"{key.to_user_string()}: {node.tags}"


def test_every_asset_check_has_a_description():
    missing = [
        f"{spec.asset_key.to_user_string()}:{spec.name}"
        for assets_def in defs.assets
        for spec in assets_def.check_specs
        if not (spec.description or "").strip()
    ]
    assert not missing, f"asset checks without a description: {missing}"


def test_morning_assets_and_raw_tables_must_be_fresh_by_six_utc():
    # built after midnight UTC (yesterday is then the latest complete day) and by 06:00 UTC
    expected = FreshnessPolicy.cron(deadline_cron="0 6 * * *", lower_bound_delta=dt.timedelta(hours=6), timezone="UTC")
    g = graph()
    for key in [*FRESH_BY_06, *RAW_KEYS]:
        assert g.get(key).freshness_policy == expected, f"{key.to_user_string()}: {g.get(key).freshness_policy!r}"
    assert g.get(AssetKey("stg_contacts")).freshness_policy is None, "only what a person relies on at 06:00"


def test_source_tests_are_checks_on_the_raw_assets():
    """dbt tests on ``source('raw', ...)`` are asset checks of ``raw/<table>``, not anonymous observations."""
    manifest = json.loads(dbt_project().manifest_path.read_text())
    source_tests = [
        node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "test"
        and [d for d in node["depends_on"]["nodes"] if d.startswith("source.")] == node["depends_on"]["nodes"]
    ]
    assert len(source_tests) >= 20
    check_keys = graph().asset_check_keys
    for test in source_tests:
        table = test["depends_on"]["nodes"][0].split(".")[-1]
        assert any(k.asset_key == AssetKey(["raw", table]) and k.name == test["name"] for k in check_keys), test["name"]


def test_sync_assets_carry_the_rejects_check():
    keys = graph().asset_check_keys
    for destination in ("hubspot", "salesforce"):
        assert any(k.asset_key == AssetKey(f"{destination}_sync") and k.name == f"{destination}_rejects" for k in keys)


# --- the policies, on any assets ------------------------------------------------------------------
def test_apply_policies_keeps_keys_ops_checks_and_pools():
    before, after = defs.assets, apply_policies(defs.assets)
    assert [a.keys for a in after] == [a.keys for a in before]
    assert [a.check_keys for a in after] == [a.check_keys for a in before]
    assert [(a.op.name, a.op.pool) for a in after] == [(a.op.name, a.op.pool) for a in before]
    owners = {key: spec.owners for a in after for key, spec in a.specs_by_key.items()}
    assert owners[AssetKey(["raw", "contacts"])] == ["team:data-engineering"]
    assert owners[AssetKey("lead_features")] == ["team:analytics"]
    assert owners[AssetKey("lead_scores")] == ["team:ml"]
    assert owners[AssetKey("hubspot_sync")] == ["team:revops"]
    assert owners[AssetKey("morning_digest")] == ["team:revops"]


def test_owner_and_domain_rules():
    assert set(OWNERS_BY_GROUP) == {"sources", "staging", "intermediate", "marts", "ml", "activation", "workflow"}
    with pytest.raises(ValueError, match="OWNERS_BY_GROUP"):
        owner_for("somewhere_new")
    assert domain_for(AssetKey("lead_crm_ids")) == "crm"
    assert domain_for(AssetKey("lead_scoring_model")) == "lead_scoring"
    assert domain_for(AssetKey(["raw", "payments"])) == "billing"
    assert domain_for(AssetKey("int_account_daily_marketing")) == "marketing"
    assert domain_for(AssetKey("lead_alerts")) == "workflow"
    assert domain_for(AssetKey("hubspot_tasks")) == "crm"


def test_dbt_test_descriptions():
    def generic(name, **kwargs):
        return {"name": f"{name}_x", "test_metadata": {"name": name, "kwargs": kwargs}, "column_name": "lead_id"}

    assert dbt_test_description(generic("not_null"), "lead_features") == "`lead_id` of `lead_features` is never null."
    assert dbt_test_description(generic("unique"), "lead_features") == "`lead_id` of `lead_features` is unique."
    rel = dbt_test_description(generic("relationships", to="ref('int_leads')", field="lead_id"), "lead_features")
    assert rel == "Every `lead_id` of `lead_features` exists as `lead_id` in `int_leads`."
    values = dbt_test_description(generic("accepted_values", values=["a", "b"]), "t")
    assert values.endswith("only takes the values `a`, `b`.")
    assert "listed by `var('x')`" in dbt_test_description(generic("accepted_values", values="{{ var('x') }}"), "t")
    assert dbt_test_description({**generic("not_null"), "description": "Own words."}, "t") == "Own words."
    singular = {
        "name": "assert_x",
        "original_file_path": "tests/assert_x.sql",
        "raw_code": "{{ config(meta={}) }}\n-- Every row is\n-- accounted for.\nselect 1\n-- not this",
    }
    assert dbt_test_description(singular, "quarantine") == (
        "Every row is accounted for. (singular dbt test dbt/tests/assert_x.sql)"
    )


# --- the rejects check ----------------------------------------------------------------------------
def reject(i: int, **overrides) -> Reject:
    values = {
        "object": "lead_scores",
        "crm_object": "contacts",
        "record_key": f"L-{i}",
        "crm_id": f"{1000 + i}",
        "error_code": "INVALID_OPTION",
        "reason": "bad value",
        "attempts": 1,
    }
    return Reject(**{**values, **overrides})


def test_rejects_table():
    assert rejects_table([], 0).startswith("No open rejects")
    table = rejects_table([reject(1), reject(2, crm_id=None, reason="a | b\nc" + "x" * 300)], 2)
    lines = table.splitlines()
    assert lines[0] == "| object | CRM object | record | CRM id | error | reason | attempts |"
    assert lines[2] == "| lead_scores | contacts | L-1 | 1001 | INVALID_OPTION | bad value | 1 |"
    assert "| L-2 | — |" in lines[3] and "a \\| b c" in lines[3] and lines[3].count("\n") == 0
    assert "…" in lines[3], "long reasons are shortened"
    assert len(lines) == 4, "no 'more' line when all are shown"
    assert rejects_table([reject(i) for i in range(10)], 37).endswith(
        "10 of 37 open rejects shown; all are in `activation.rejects`."
    )


def test_rejects_check_reads_activation_rejects():
    con = duckdb.connect()
    assert open_rejects(con, "hubspot") == (0, {}, [])  # no activation schema yet
    ensure_tables(con)
    assert rejects_check(con, "hubspot").passed
    stamp = dt.datetime(2026, 6, 30, 2, 30)
    other = ("salesforce", "org-1", "leads", "L-1", "update", "Lead", "X", "no", None, 1, stamp, stamp, "run")
    rows = [
        ("hubspot", "portal-1", "leads", f"L-{i}", "update", "contacts", code, "refused", None, 2, stamp,
         stamp + dt.timedelta(minutes=i), "run")
        for i, code in enumerate(["INVALID_OPTION"] * 12 + ["not_found"] * 3)
    ] + [other]  # fmt: skip
    con.executemany(f"INSERT INTO activation.rejects VALUES ({', '.join('?' * 13)})", rows)
    con.execute(
        "INSERT INTO activation.sync_state VALUES ('hubspot', 'portal-1', 'leads', 'L-14', 'h', false, "
        "'contacts', '9001', ?, 'run', false)",
        [stamp],
    )
    total, by_code, shown = open_rejects(con, "hubspot", "portal-1")
    assert (total, by_code) == (15, {"INVALID_OPTION": 12, "not_found": 3})
    assert len(shown) == 10 and shown[0].record_key == "L-14" and shown[0].crm_id == "9001", "newest first"
    assert open_rejects(con, "hubspot", "another-portal")[0] == 0
    check = rejects_check(con, "hubspot", "portal-1")
    assert not check.passed and check.severity == AssetCheckSeverity.WARN
    assert check.check_name == rejects_check_name("hubspot") == "hubspot_rejects"
    assert check.metadata["open_rejects"].value == 15
    assert "10 of 15 open rejects shown" in check.metadata["first_rejects"].value
    assert rejects_check(con, "salesforce").metadata["open_rejects"].value == 1
    # a refused task is the workflow's reject: its own check counts it, the scores' check does not
    task = ("hubspot", "portal-1", "tasks", "alert-1", "create", "tasks", "owner_not_in_crm", "no owner", None, 1,
            stamp, stamp, "run")  # fmt: skip
    con.execute(f"INSERT INTO activation.rejects VALUES ({', '.join('?' * 13)})", task)
    assert rejects_check(con, "hubspot", "portal-1").metadata["open_rejects"].value == 15
    tasks_check = rejects_check(con, "hubspot", objects=("tasks",), check_name="hubspot_task_rejects")
    assert tasks_check.check_name == "hubspot_task_rejects" and tasks_check.metadata["open_rejects"].value == 1


def test_raw_tables_report_their_newest_loaded_at():
    newest = dt.datetime(2026, 6, 30, 23, 59, 1)
    metadata = loaded_at_metadata(newest)
    assert metadata["dagster/last_updated_timestamp"].value == newest.replace(tzinfo=dt.UTC).timestamp()
    assert metadata["newest_loaded_at"] == "2026-06-30 23:59:01 UTC"
    assert "dagster/last_updated_timestamp" not in loaded_at_metadata(None)


# --- a real nightly run ---------------------------------------------------------------------------
def test_a_nightly_run_reports_checks_not_observations(tmp_path, monkeypatch, caplog):
    """Source tests are check results on raw/* (no observation, no warning), every raw table says how fresh
    its data is, and each sync reports its rejects check."""
    monkeypatch.setenv("LEADSCORE_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    with make_instance(tmp_path / "dagster_home") as instance:
        result = (
            tiny_definitions()
            .resolve_job_def("nightly")
            .execute_in_process(instance=instance, partition_key="2026-06-29")
        )
    assert result.success
    events = result.all_events
    observations = [e for e in events if e.event_type == DagsterEventType.ASSET_OBSERVATION]
    assert not observations, [e.message for e in observations][:3]
    assert "instead of an `AssetCheckResult`" not in caplog.text
    evaluations = [e.event_specific_data for e in events if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION]
    on_raw = [ev for ev in evaluations if ev.asset_key.path[0] == "raw"]
    assert len(on_raw) >= 20 and all(ev.passed for ev in on_raw)
    assert {ev.check_name for ev in evaluations} >= {"hubspot_rejects", "salesforce_rejects"}
    for mat in result.get_asset_materialization_events():
        if mat.asset_key.path[0] == "raw":
            assert "dagster/last_updated_timestamp" in mat.materialization.metadata, mat.asset_key
