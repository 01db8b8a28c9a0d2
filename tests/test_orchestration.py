"""The Dagster asset graph: definitions, pure helpers, and real runs on tiny warehouses in temp dirs."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from dagster import AssetKey, BackfillPolicy, DagsterInstance, DefaultScheduleStatus

from dagster_project.assets_activation import targets_latest_day
from dagster_project.definitions import build_definitions, defs
from dagster_project.partitions import (
    MIN_TRAINING_SNAPSHOTS,
    dbt_build_args,
    latest_partition_at,
    needs_training_history,
    training_history_vars,
)
from dagster_project.project import manifest_is_stale
from dagster_project.resources import SourcesResource, sources_from_env
from dagster_project.schedules import parse_time_of_day
from dagster_project.translator import dbt_asset_key, dbt_group
from ml.sources.schema import RAW_TABLES
from ml.warehouse import build_days_args, history_vars
from tests.conftest import REPO, TINY_END_DATE, query

HISTORY_KEYS = [AssetKey("account_metrics_daily"), AssetKey("lead_features"), AssetKey("lead_labels")]
DAGSTER_MATERIALIZE = [
    str(Path(sys.executable).parent / "dagster"),
    "asset",
    "materialize",
    "-m",
    "dagster_project.definitions",
]


# --- definitions --------------------------------------------------------------------------------
def test_definitions_snapshot():
    graph = defs.resolve_asset_graph()
    groups: dict[str, set[str]] = {}
    for key in graph.get_all_asset_keys():
        groups.setdefault(graph.get(key).group_name, set()).add(key.to_user_string())
    assert groups["sources"] == {f"raw/{t.name}" for t in RAW_TABLES}
    assert groups["marts"] == {
        "account_metrics",
        "account_metrics_daily",
        "lead_features",
        "lead_labels",
        "lead_crm_ids",
        "account_crm_ids",
        "crm_users",
    }
    assert {"stg_contacts", "stg_marketing_events", "quarantine"} <= groups["staging"]
    assert {"int_leads", "int_lead_daily_activity", "int_data_window"} <= groups["intermediate"]
    assert groups["ml"] == {"lead_scoring_model", "lead_scores"}
    assert groups["activation"] == {"hubspot_sync", "salesforce_sync"}
    assert groups["workflow"] == {
        "lead_alerts",
        "lead_routing",
        "alert_tasks",
        "hubspot_tasks",
        "salesforce_tasks",
        "morning_digest",
    }
    assert set(groups) == {"sources", "staging", "intermediate", "marts", "ml", "activation", "workflow"}

    partitioned = {k for k in graph.get_all_asset_keys() if graph.get(k).partitions_def is not None}
    assert partitioned == {*HISTORY_KEYS, AssetKey("lead_scores")}
    for key in partitioned:
        assert graph.get(key).backfill_policy == BackfillPolicy.single_run()
    assert len(graph.asset_check_keys) > 50, "dbt tests surface as asset checks"

    # every asset that writes the warehouse shares the one pool (the model only reads it)
    pools = {a.op.name: a.op.pool for a in defs.assets}
    assert pools == {
        "raw_sources": "warehouse",
        "dbt_warehouse": "warehouse",
        "dbt_daily_history": "warehouse",
        "lead_scores": "warehouse",
        "lead_scoring_model": None,
        "hubspot_sync": "warehouse",
        "salesforce_sync": "warehouse",
        "dbt_workflow": "warehouse",
        "lead_routing": "warehouse",
        "alert_tasks": "warehouse",
        "hubspot_tasks": "warehouse",
        "salesforce_tasks": "warehouse",
        "morning_digest": "warehouse",
    }

    assert defs.resolve_job_def("nightly") is not None
    schedule = defs.resolve_schedule_def("nightly_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == DefaultScheduleStatus.RUNNING


# --- pure helpers -------------------------------------------------------------------------------
def test_history_vars_cover_exactly_the_window():
    assert history_vars(dt.date(2026, 6, 1), dt.date(2026, 6, 8)) == {
        "min_date": "2026-06-01",
        "max_date": "2026-06-07",
        "snapshot_every_days": 1,
    }
    with pytest.raises(ValueError):
        history_vars(dt.date(2026, 6, 1), dt.date(2026, 6, 1))
    assert training_history_vars(dt.date(2026, 6, 7)) == {"max_date": "2026-06-07", "snapshot_every_days": 7}
    assert training_history_vars(dt.date(2026, 6, 7), dt.date(2026, 6, 7)) == training_history_vars(dt.date(2026, 6, 7))
    ranged = training_history_vars(dt.date(2026, 6, 7), dt.date(2026, 6, 1))
    assert ranged["daily_from"] == "2026-06-01", "a backfill range on a new warehouse builds each of its days"
    # Outside Dagster (the benches), one day is the same window, of the per-day models only.
    args = build_days_args(dt.date(2026, 6, 7), dt.date(2026, 6, 7))
    assert args[:4] == ["build", "--select", "account_metrics_daily", "lead_features"]
    assert json.loads(args[args.index("--vars") + 1]) == history_vars(dt.date(2026, 6, 7), dt.date(2026, 6, 8))


def test_dbt_build_args():
    assert dbt_build_args() == ["build"]
    assert dbt_build_args({"b": 1, "a": "x"}, full_refresh=True) == [
        "build",
        "--vars",
        '{"a": "x", "b": 1}',
        "--full-refresh",
    ]


def test_only_runs_that_reach_the_latest_day_sync():
    latest = "2026-06-29"
    assert targets_latest_day({}, latest), "an unpartitioned or nightly run"
    assert targets_latest_day({"dagster/partition": latest}, latest)
    assert not targets_latest_day({"dagster/partition": "2026-06-01"}, latest)
    assert not targets_latest_day({"dagster/asset_partition_range_end": "2026-06-07"}, latest)
    assert targets_latest_day({"dagster/asset_partition_range_end": latest}, latest)


def test_the_latest_day_is_taken_when_the_run_was_launched():
    """A nightly launched for yesterday at 23:50 and still running at 00:10 is the latest run: it syncs. A run
    launched after midnight for the same day is a backfill."""
    before_midnight = dt.datetime(2026, 12, 2, 23, 50, tzinfo=dt.UTC)
    assert latest_partition_at(before_midnight) == "2026-12-01"
    assert latest_partition_at(before_midnight + dt.timedelta(minutes=20)) == "2026-12-02"
    assert targets_latest_day({"dagster/partition": "2026-12-01"}, latest_partition_at(before_midnight))
    assert latest_partition_at(dt.datetime(2020, 1, 1, tzinfo=dt.UTC)) is None, "before the first partition"


def test_training_history_rule():
    assert needs_training_history(0) and needs_training_history(7)
    assert not needs_training_history(8)


def test_parse_time_of_day():
    assert parse_time_of_day("02:00") == (2, 0)
    assert parse_time_of_day(" 23:59") == (23, 59)
    for bad in ("2", "24:00", "12:60", "noon"):
        with pytest.raises(ValueError):
            parse_time_of_day(bad)


def test_sources_from_env():
    assert sources_from_env({}).kind == "synthetic"
    files = sources_from_env({"LEADSCORE_SOURCE": "files", "LEADSCORE_SOURCE_DIR": "/exports"})
    assert (files.kind, files.files_dir) == ("files", "/exports")
    assert sources_from_env({"LEADSCORE_SYNTHETIC_SCALE": "tiny"}).synthetic_scale == 300
    with pytest.raises(ValueError, match="LEADSCORE_SOURCE_DIR"):
        sources_from_env({"LEADSCORE_SOURCE": "files"})
    with pytest.raises(ValueError, match="synthetic"):
        sources_from_env({"LEADSCORE_SOURCE": "s3"})
    # The volume guards of the landing step (the asset passes them on: tests/test_landing.py).
    default = sources_from_env({})
    assert (default.allow_shrink, default.max_shrink) == ([], 0.5)
    guarded = sources_from_env({"LEADSCORE_ALLOW_SHRINK": "payments, Invoices", "LEADSCORE_MAX_SHRINK": "0.8"})
    assert (guarded.allow_shrink, guarded.max_shrink) == (["payments", "invoices"], 0.8)
    assert sources_from_env({"LEADSCORE_ALLOW_SHRINK": "all"}).allow_shrink == ["all"]
    with pytest.raises(ValueError, match="LEADSCORE_ALLOW_SHRINK"):
        sources_from_env({"LEADSCORE_ALLOW_SHRINK": "payment"})
    for bad in ("50%", "1.5"):
        with pytest.raises(ValueError, match="LEADSCORE_MAX_SHRINK"):
            sources_from_env({"LEADSCORE_MAX_SHRINK": bad})


def test_translator_keys_and_groups():
    assert dbt_asset_key({"resource_type": "source", "source_name": "raw", "name": "contacts"}) == AssetKey(
        ["raw", "contacts"]
    )
    model = {"resource_type": "model", "name": "stg_contacts", "fqn": ["leadscore", "staging", "stg_contacts"]}
    assert dbt_asset_key(model) == AssetKey("stg_contacts") and dbt_group(model) == "staging"
    assert dbt_group({"resource_type": "model", "fqn": ["leadscore", "quarantine", "quarantine"]}) == "staging"


def test_manifest_staleness(tmp_path):
    project = tmp_path / "p"
    (project / "models").mkdir(parents=True)
    model = project / "models/a.sql"
    model.write_text("select 1")
    manifest = project / "target/manifest.json"
    assert manifest_is_stale(manifest, project)
    manifest.parent.mkdir()
    manifest.write_text("{}")
    os.utime(model, (1, 1))
    assert not manifest_is_stale(manifest, project)
    model.write_text("select 2")  # an analyst edits a model
    assert manifest_is_stale(manifest, project)


# --- real runs ----------------------------------------------------------------------------------
def make_instance(home: Path) -> DagsterInstance:
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster_project/dagster.yaml", home / "dagster.yaml")
    return DagsterInstance.from_config(str(home))


def tiny_definitions():
    return build_definitions(SourcesResource(synthetic_scale=300, synthetic_end_date=TINY_END_DATE.isoformat()))


@pytest.fixture
def use_warehouse(monkeypatch, tmp_path, nightly_warehouse):
    """A private copy of the nightly warehouse, named by LEADSCORE_WAREHOUSE as in production."""
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(nightly_warehouse[0], warehouse)
    monkeypatch.setenv("LEADSCORE_WAREHOUSE", str(warehouse))
    return warehouse


def as_of_days(warehouse: Path) -> list[str]:
    return [str(d) for (d,) in query(warehouse, "SELECT DISTINCT as_of FROM lead_features ORDER BY 1")]


@pytest.fixture(scope="module")
def nightly_warehouse(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny warehouse after one nightly run for 2026-06-29, whose training history (a new warehouse) is
    built in chunks of at most 30,000 rows, as a bench-scale one is within DuckDB's memory limit."""
    root = tmp_path_factory.mktemp("nightly")
    warehouse = root / "warehouse.duckdb"
    with pytest.MonkeyPatch.context() as env, make_instance(root / "dagster_home") as instance:
        env.setenv("LEADSCORE_WAREHOUSE", str(warehouse))
        env.setenv("LEADSCORE_HISTORY_CHUNK_ROWS", "30000")
        result = (
            tiny_definitions()
            .resolve_job_def("nightly")
            .execute_in_process(instance=instance, partition_key="2026-06-29")
        )
        assert result.success
        logs = [entry.user_message or "" for entry in instance.all_logs(result.run_id)]
        chunked = [re.search(r"in (\d+) chunks of as-of days", message) for message in logs]
        assert any(m and int(m[1]) >= 2 for m in chunked), "the training history was built in chunks"
        materialized = {e.asset_key for e in result.get_asset_materialization_events()}
        assert set(HISTORY_KEYS) <= materialized and AssetKey(["raw", "contacts"]) in materialized
        lead_features = [e for e in result.get_asset_materialization_events() if e.asset_key == HISTORY_KEYS[1]]
        metadata = lead_features[0].materialization.metadata
        assert metadata["rows_in_partition_window"].value > 0 and metadata["dagster/row_count"].value > 0
    return warehouse, root / "dagster_home"


def weekly_grid(day: str) -> bool:
    """On the training history's grid: one snapshot a week (dbt/macros/as_of.sql)."""
    return (dt.date.fromisoformat(day) - dt.date(2000, 1, 3)).days % 7 == 0


def test_a_nightly_on_an_empty_warehouse_builds_the_weekly_history_and_its_day(nightly_warehouse):
    warehouse, _ = nightly_warehouse
    days = as_of_days(warehouse)
    assert days[-1] == "2026-06-29", "the partition's own day"
    assert len(days) >= MIN_TRAINING_SNAPSHOTS and all(weekly_grid(d) for d in days[:-1]), "weekly snapshots only"
    assert query(warehouse, "SELECT count(*) FROM account_metrics")[0][0] > 250


def test_a_seven_day_backfill_from_the_cli_writes_those_days_once(tmp_path, use_warehouse):
    warehouse = use_warehouse
    home = tmp_path / "dagster_home"
    make_instance(home).dispose()
    env = {**os.environ, "LEADSCORE_WAREHOUSE": str(warehouse), "DAGSTER_HOME": str(home)}
    command = [
        *DAGSTER_MATERIALIZE,
        "--select",
        "account_metrics_daily,lead_features",
        "--partition-range",
        "2026-06-01...2026-06-07",
    ]
    before = set(as_of_days(warehouse))
    for attempt in range(2):
        done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert '"min_date": "2026-06-01"' in done.stderr + done.stdout, "one run for the whole range"
        added = set(as_of_days(warehouse)) - before
        assert added == {f"2026-06-0{d}" for d in range(1, 8)} - before, f"attempt {attempt}: exactly those days"
        assert before <= set(as_of_days(warehouse)), "the history is kept"
        fingerprint = query(
            warehouse,
            "SELECT as_of, count(*), sum(hash(f)) FROM (SELECT * EXCLUDE (built_by_invocation) FROM lead_features) f "
            "GROUP BY 1 ORDER BY 1",
        )
        if attempt == 0:
            first = fingerprint
    assert fingerprint == first, "running the same backfill again changes nothing"


def test_a_history_rebuild_that_died_part_way_is_finished_by_the_next_run(tmp_path, use_warehouse):
    warehouse = use_warehouse
    home = tmp_path / "dagster_home"
    make_instance(home).dispose()
    fingerprint_sql = (
        "SELECT as_of, count(*), sum(hash(f)) FROM (SELECT * EXCLUDE (built_by_invocation) FROM lead_features) f "
        "GROUP BY 1 ORDER BY 1"
    )
    complete = query(warehouse, fingerprint_sql)
    weekly = [d for d in as_of_days(warehouse) if weekly_grid(d) and d < "2026-06-29"]
    lost = weekly[-4:]  # the last chunks of a rebuild that was killed
    with duckdb.connect(str(warehouse)) as con:
        for table in ("lead_features", "account_metrics_daily"):
            con.execute(f"DELETE FROM {table} WHERE as_of >= ?::DATE AND as_of < DATE '2026-06-29'", [lost[0]])
    env = {**os.environ, "LEADSCORE_WAREHOUSE": str(warehouse), "DAGSTER_HOME": str(home)}
    command = [*DAGSTER_MATERIALIZE, "--select", "account_metrics_daily,lead_features", "--partition", "2026-06-29"]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"lacks as-of days between {lost[0]} and {lost[-1]}" in done.stdout + done.stderr
    assert query(warehouse, fingerprint_sql) == complete, "the same history as before, nothing twice"


def test_a_failing_dbt_test_blocks_everything_downstream(tmp_path, use_warehouse):
    warehouse = use_warehouse
    with duckdb.connect(str(warehouse)) as con:  # a subscription for an account that does not exist
        con.execute(
            "INSERT INTO raw.subscriptions SELECT 'S-ORPHAN', 'A-NOPE', NULL, 'starter', 1, 25.0, 'monthly', "
            "TIMESTAMP '2026-01-01', NULL, TIMESTAMP '2026-01-02'"
        )
    dbt_keys = [k for k in defs.resolve_asset_graph().get_all_asset_keys() if k.path[0] != "raw"]
    with make_instance(tmp_path / "home") as instance:
        result = (
            tiny_definitions()
            .resolve_job_def("nightly")
            .execute_in_process(
                instance=instance, partition_key="2026-06-30", asset_selection=dbt_keys, raise_on_error=False
            )
        )
        assert not result.success
        failed = {e.step_key for e in result.all_events if e.is_step_failure}
        assert failed == {"dbt_warehouse"}
        ran = {e.step_key for e in result.all_events if e.is_step_start}
        assert "dbt_daily_history" not in ran
        check = instance.get_latest_asset_check_evaluation_record(
            next(
                k
                for k in defs.resolve_asset_graph().asset_check_keys
                if k.name.startswith("relationships_stg_subscriptions_account_id")
            )
        )
        assert check is not None and check.event.asset_check_evaluation.passed is False
    assert "2026-06-30" not in as_of_days(warehouse)
