"""Operability: dead runs are recovered, launches queue, the history bootstraps itself, partitions tell the truth.

The pure rules are unit-tested; then one real scenario on a tiny warehouse drives ``make run``'s launcher
(``python -m dagster_project.nightly``) as a person would: a run killed with SIGKILL in the middle of dbt,
a new launch that recovers and builds the missing training history on its own, and two launches at once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    build_schedule_context,
    job,
    op,
)
from dagster._core.events import EngineEventData

from dagster_project.launcher import (
    Progress,
    clock,
    launch_error_summary,
    launch_with_retries,
    transient_launch_error,
    worth_saying,
)
from dagster_project.nightly import model_lines, sync_lines
from dagster_project.partition_truth import partition_changes
from dagster_project.partitions import MIN_TRAINING_SNAPSHOTS, daily_partitions, training_history_vars
from dagster_project.recovery import RunProcess, is_dead, recover_dead_runs, worker_pid
from dagster_project.schedules import nightly_schedule
from ml.warehouse import connect as duckdb_connect
from ml.warehouse import connect_waiting
from tests.conftest import REPO, TINY_END_DATE, query, run_dbt

# The module fixture `operated` runs three nightlies (one killed mid-dbt); under two xdist workers it has taken
# close to ten minutes, so its first test may take longer than the suite's default 600 s.
pytestmark = pytest.mark.timeout(1800)


# --- pure rules ---------------------------------------------------------------------------------------
def test_a_run_is_dead_only_when_its_process_is_provably_gone():
    run = RunProcess("r1", pid=42, reported_at=1000.0)
    assert is_dead(run, lambda pid: None), "no such process"
    assert is_dead(run, lambda pid: 2000.0), "the pid now belongs to a process started after it was reported"
    assert not is_dead(run, lambda pid: 990.0), "the worker started before it reported its pid: alive"
    assert not is_dead(RunProcess("r2", None, None), lambda pid: None), "no recorded pid: never judged"
    # A virtual machine paused for 33 s: the boot time read afterwards, and with it the worker's computed
    # start, moved 33 s later than the report. Still the worker.
    assert not is_dead(run, lambda pid: 1023.0, booted_at=33.0), "a paused machine's clock shift: alive"
    # The machine restarted after the report; a new process took the pid soon after the boot.
    assert is_dead(run, lambda pid: 1060.0, booted_at=1030.0), "no process survives a restart"


def test_partition_changes_make_records_equal_the_table():
    changes = partition_changes(
        in_table={"2026-01-05", "2026-01-12", "2024-12-30"},
        recorded={"2026-01-12", "2026-01-13"},
        valid={f"2026-01-{d:02d}" for d in range(1, 20)},
        this_run={"2026-01-19"},
    )
    assert changes.to_record == ["2026-01-05"]
    assert changes.to_wipe == ["2026-01-13"], "recorded but no longer in the table"
    assert changes.outside == 1, "a snapshot before the first partition is counted, not recorded"
    again = partition_changes({"2026-01-19"}, set(), {"2026-01-19"}, this_run={"2026-01-19"})
    assert again.to_record == [] and again.to_wipe == [], "the run's own partition is Dagster's to record"


def test_progress_lines_count_steps_and_say_when_a_step_waits_for_the_pool():
    progress = Progress(["raw_sources", "dbt_warehouse"])
    start, done, blocked = DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS, DagsterEventType.ENGINE_EVENT
    assert progress.on_event(start, "raw_sources", "", 10.0) == "[1/2] raw_sources ..."
    assert progress.on_event(done, "raw_sources", "", 75.0) == "[1/2] raw_sources done in 1:05"
    wait = progress.on_event(blocked, "dbt_warehouse", "Step blocked by limit for pool warehouse", 76.0)
    assert wait is not None and "[2/2] dbt_warehouse waits for pool 'warehouse'" in wait
    assert progress.on_event(blocked, "dbt_warehouse", "Step blocked by limit for pool warehouse", 80.0) is None
    failed = progress.on_event(DagsterEventType.STEP_FAILURE, "dbt_warehouse", "dbt failed\ntraceback", 90.0)
    assert failed == "[2/2] dbt_warehouse FAILED: dbt failed"
    assert clock(3725) == "1:02:05" and clock(59.9) == "0:59"
    assert worth_saying("building as-of days 2026-11-24 .. 2026-11-24")
    assert not worth_saying("Running dbt command: `dbt build --select fqn:*`") and not worth_saying("")


def test_a_refused_launch_says_why_not_where_the_traceback_ended():
    """`dagster job launch` fails with tracebacks around the error (here: dbt not on PATH); the launcher's
    message keeps the error, its cause and pydantic's reason, and drops File lines, code and log lines."""
    output = "\n".join([
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in <module>',
        "Error: Error loading location \"dagster_project.definitions:defs\": DagsterUserCodeLoadError",
        "",
        "Stack Trace:",
        '  File "/venv/pydantic/main.py", line 280, in __init__',
        "    validated_self = self.__pydantic_validator__.validate_python(data, self_instance=self)",
        "                     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
        "",
        "The above exception was caused by the following exception:",
        "pydantic_core._pydantic_core.ValidationError: 1 validation error for DbtCliResource",
        "dbt_executable",
        "  Value error, The dbt executable 'dbt' does not exist. [type=value_error]",
        "2026-12-02 12:53:42 +0000 - dagster.code_server - INFO - Stopping server",
    ])  # fmt: skip
    assert launch_error_summary(output) == (
        'Error: Error loading location "dagster_project.definitions:defs": DagsterUserCodeLoadError / '
        "pydantic_core._pydantic_core.ValidationError: 1 validation error for DbtCliResource / dbt_executable / "
        "Value error, The dbt executable 'dbt' does not exist. [type=value_error]"
    )
    assert launch_error_summary("no such job\nsomething else\nlast") == "no such job / something else / last"
    assert not transient_launch_error(output), "a configuration error fails again: it is not retried"


def test_a_launch_whose_code_server_went_away_is_retried():
    """Seen on a machine under a load of 7: the CLI's code server stopped for want of heartbeats."""
    output = (
        "dagster._core.errors.DagsterUserCodeUnreachableError: Could not reach user code server.\n"
        "status = StatusCode.UNAVAILABLE\n"
        'details = "failed to connect to all addresses; last error: FAILED_PRECONDITION: unix:/tmp/tmp_3anv8ej: '
        'connect failed: addr: unix:/tmp/tmp_3anv8ej error: No such file or directory"'
    )
    assert transient_launch_error(output)
    assert transient_launch_error("status = StatusCode.DEADLINE_EXCEEDED")
    assert not transient_launch_error("Error: no job named 'nightyl'")


class ScriptedLaunches:
    """``dagster job launch`` as a script of outcomes, one per try; counts tries and the pauses between."""

    def __init__(self, *outcomes: tuple[bool, str]):
        self.outcomes = list(outcomes)
        self.tries = 0
        self.pauses: list[float] = []

    def launch_once(self) -> tuple[bool, str]:
        self.tries += 1
        return self.outcomes.pop(0)


UNREACHABLE = (False, "Could not reach user code server.\nstatus = StatusCode.UNAVAILABLE")


def test_a_launch_is_tried_again_until_its_code_server_answers():
    launches = ScriptedLaunches(UNREACHABLE, UNREACHABLE, (True, ""))
    launch_with_retries(launches.launch_once, lambda: False, pause=launches.pauses.append)
    assert launches.tries == 3
    assert launches.pauses == [5, 10]


def test_a_launch_that_keeps_failing_or_fails_for_good_raises_with_its_error():
    launches = ScriptedLaunches(UNREACHABLE, UNREACHABLE, UNREACHABLE, (True, ""))
    with pytest.raises(RuntimeError, match=r"could not queue the run: .*StatusCode\.UNAVAILABLE"):
        launch_with_retries(launches.launch_once, lambda: False, pause=launches.pauses.append)
    assert launches.tries == 3, "three tries at most"

    launches = ScriptedLaunches((False, "Error: no job named 'nightyl'"), (True, ""))
    with pytest.raises(RuntimeError, match="no job named 'nightyl'"):
        launch_with_retries(launches.launch_once, lambda: False, pause=launches.pauses.append)
    assert launches.tries == 1 and launches.pauses == [], "a configuration error is not tried again"


def test_a_launch_that_failed_but_queued_its_run_is_not_tried_again():
    """The CLI can fail after the instance stored the run: a second try would queue the night twice."""
    launches = ScriptedLaunches(UNREACHABLE, (True, ""))
    launch_with_retries(launches.launch_once, lambda: True, pause=launches.pauses.append)
    assert launches.tries == 1 and launches.pauses == []


def test_summary_lines_name_the_model_gate_and_each_sync():
    materialized = {
        "lead_scoring_model": {"model_version": "lead_scoring/3", "roc_auc": 0.8761, "status": "kept_champion",
                               "message": "kept_champion: ROC AUC 0.861 vs 0.874"},
        "hubspot_sync": {"leads_status": "complete", "leads_updated": 12, "leads_unchanged": 3, "leads_failed": 1},
        "salesforce_sync": {"skipped": "backfill of older partitions"},
    }  # fmt: skip
    promoted = {**materialized["lead_scoring_model"], "status": "promoted", "message": "promoted: better"}
    [model] = model_lines({"lead_scoring_model": promoted}, {"promotion_gate": {"passed": True}})
    assert "lead_scoring/3, test ROC AUC 0.876; promoted: better" in model
    kept = {**materialized["lead_scoring_model"], "champion_version": "lead_scoring/2"}
    [model] = model_lines({"lead_scoring_model": kept}, {"promotion_gate": {"passed": False}})
    assert "lead_scoring/2;" in model and "0.876" not in model, "the champion that scored, not the refused one"
    assert "champion kept" in model
    waiting = sync_lines({"hubspot_sync": {"waiting_for_tables": ["leads"], "accounts_status": "complete"}})
    assert waiting[0] == "  hubspot      not synced yet (their tables do not exist): leads"
    lines = sync_lines(materialized)
    assert "hubspot      leads: complete: created 0, updated 12, cleared 0, unchanged 3" in lines[0]
    assert lines[0].endswith("failed 1") and lines[1] == "  salesforce   skipped: backfill of older partitions"


# --- recovery on a real instance ----------------------------------------------------------------------
@op
def noop() -> None:
    pass


@job
def tiny_job():
    noop()


def finished_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_recovery_fails_a_dead_run_and_frees_its_pool_slot(tmp_path):
    with DagsterInstance.from_config(str(make_home(tmp_path / "home"))) as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots("warehouse", 1)
        dead = instance.create_run_for_job(tiny_job, status=DagsterRunStatus.STARTED)
        alive = instance.create_run_for_job(tiny_job, status=DagsterRunStatus.STARTED)
        gone = finished_pid()
        instance.report_engine_event(f"Started process for run (pid: {gone}).", dead, EngineEventData.in_process(gone))
        instance.report_engine_event("Started process", alive, EngineEventData.in_process(os.getpid()))
        storage.claim_concurrency_slot("warehouse", dead.run_id, "dbt_warehouse")
        assert worker_pid(instance, dead.run_id) is not None
        recovered = recover_dead_runs(instance)
        assert [r.run_id for r in recovered] == [dead.run_id]
        assert "marked failed, freed 1 pool slot" in recovered[0].describe()
        assert instance.get_run_by_id(dead.run_id).status == DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(alive.run_id).status == DagsterRunStatus.STARTED, "this process is alive"
        assert storage.get_concurrency_info("warehouse").claimed_slots == []
        assert recover_dead_runs(instance) == [], "nothing left to do"


# --- the real thing -------------------------------------------------------------------------------------
def make_home(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster_project/dagster.yaml", home / "dagster.yaml")
    return home


def launcher_env(root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DAGSTER_HOME": str(root / "dagster_home"),
        "LEADSCORE_WAREHOUSE": str(root / "warehouse.duckdb"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "LEADSCORE_CRM_SANDBOX_STATE": str(root / "crm.sqlite"),
        "LEADSCORE_SYNTHETIC_SCALE": "300",
        "LEADSCORE_SYNTHETIC_END_DATE": TINY_END_DATE.isoformat(),
        "LEADSCORE_OPTUNA_TRIALS": "2",
    }


def launch(env: dict[str, str], partition: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dagster_project.nightly", "--partition", partition],
        cwd=REPO,
        env=env,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal gives each command
    )


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def wait_for_step(home: Path, step: str, timeout_s: float = 300) -> str:
    """The id of the run in which ``step`` has started (polling the instance like the UI does)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        with DagsterInstance.from_config(str(home)) as instance:
            for run in instance.get_runs():
                records = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.STEP_START).records
                if any(r.event_log_entry.step_key == step for r in records):
                    return run.run_id
        time.sleep(1)
    raise AssertionError(f"step {step} never started")


@pytest.fixture(scope="module")
def operated(tmp_path_factory):
    """Kill a run mid-dbt, recover with the next launch (which also bootstraps the history), then launch two
    runs at once. Yields what a test needs to look at."""
    root = tmp_path_factory.mktemp("operable")
    home = make_home(root / "dagster_home")
    env = launcher_env(root)
    # The nightly schedule's request is what make run launches: a partition and no run config.
    request = nightly_schedule.evaluate_tick(
        build_schedule_context(scheduled_execution_time=dt.datetime.combine(
            TINY_END_DATE + dt.timedelta(days=1), dt.time(2, 0), tzinfo=dt.UTC))
    ).run_requests[0]  # fmt: skip
    partition = request.partition_key
    killed_launcher = launch(env, partition, root / "killed.log")
    killed_run = wait_for_step(home, "dbt_warehouse")
    time.sleep(3)  # dbt is running
    with DagsterInstance.from_config(str(home)) as instance:
        reported = worker_pid(instance, killed_run)
    assert reported is not None
    worker = reported[0]
    os.killpg(killed_launcher.pid, signal.SIGKILL)
    # kill -9 of the run's process: no clean-up. The dbt it started lives on as an orphan holding the DuckDB
    # file until it finishes; the next run must wait for it rather than fail.
    orphans = descendants(worker)
    os.kill(worker, signal.SIGKILL)
    assert orphans, "dbt was running under the killed process"
    killed_launcher.wait()
    recovering = launch(env, partition, root / "recovering.log")
    assert recovering.wait(timeout=900) == 0, (root / "recovering.log").read_text()[-4000:]
    days = [(TINY_END_DATE - dt.timedelta(days=n)).isoformat() for n in (2, 1)]
    together = [launch(env, day, root / f"together-{day}.log") for day in days]
    codes = [p.wait(timeout=900) for p in together]
    assert codes == [0, 0], "\n".join((root / f"together-{d}.log").read_text()[-3000:] for d in days)
    return {"root": root, "home": home, "killed_run": killed_run, "request": request, "days": days}


@pytest.mark.slow
def test_a_killed_run_is_recovered_by_the_next_launch(operated):
    output = (operated["root"] / "recovering.log").read_text()
    # Either nobody noticed (the run is still STARTED) or the code server saw its worker die and failed the
    # run - but even then its slot in pool 'warehouse' stays claimed and would block every later run.
    said = re.search(
        rf"recovered: run {operated['killed_run'][:8]} had (died|ended but still held 1 pool slot)", output
    )
    assert said, output[:2000]
    assert "succeeded" in output and re.search(r"\[1/\d+\] raw_sources", output)
    with DagsterInstance.from_config(str(operated["home"])) as instance:
        assert instance.get_run_by_id(operated["killed_run"]).status == DagsterRunStatus.FAILURE
        assert instance.event_log_storage.get_concurrency_info("warehouse").claimed_slots == []


@pytest.mark.slow
def test_the_scheduled_request_on_an_empty_warehouse_builds_the_training_history(operated):
    assert not operated["request"].run_config, "the schedule passes no bootstrap config: the asset decides"
    warehouse = operated["root"] / "warehouse.duckdb"
    [(snapshots,)] = query(warehouse, "SELECT count(DISTINCT as_of) FROM lead_features")
    assert snapshots >= MIN_TRAINING_SNAPSHOTS


@pytest.mark.slow
def test_two_launches_at_once_queue_and_both_succeed_in_order(operated):
    with DagsterInstance.from_config(str(operated["home"])) as instance:
        records = [
            r for r in instance.get_run_records() if r.dagster_run.tags.get("dagster/partition") in operated["days"]
        ]
        assert len(records) == 2 and all(r.dagster_run.status == DagsterRunStatus.SUCCESS for r in records)
        first, second = sorted(records, key=lambda r: r.start_time)
        assert second.start_time >= first.end_time, "one run at a time: the second started after the first ended"
    outputs = [(operated["root"] / f"together-{d}.log").read_text() for d in operated["days"]]
    assert any("queued behind run" in o for o in outputs), "the waiting launch said what it waits for"


@pytest.mark.slow
def test_materialized_partitions_match_the_as_of_days_in_the_warehouse(operated):
    warehouse = operated["root"] / "warehouse.duckdb"
    valid = set(daily_partitions.get_partition_keys())
    with DagsterInstance.from_config(str(operated["home"])) as instance:
        for asset in ("lead_features", "account_metrics_daily"):
            days = {str(d) for (d,) in query(warehouse, f"SELECT DISTINCT as_of FROM {asset}")}
            assert instance.get_materialized_partitions(AssetKey(asset)) == days & valid, asset
            assert len(days & valid) >= MIN_TRAINING_SNAPSHOTS, f"{asset}: the weekly snapshots are partitions"
        # The tiny company is too small to train a model, so nothing is scored; a night without a champion
        # still materializes lead_scores (its syncs of account metrics go on), so it may record more.
        [(scored,)] = query(
            warehouse, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'lead_scores'"
        )
        if scored:
            days = {str(d) for (d,) in query(warehouse, "SELECT DISTINCT as_of FROM lead_scores")}
            assert days & valid <= instance.get_materialized_partitions(AssetKey("lead_scores"))


@pytest.mark.slow
def test_a_training_history_rebuild_for_a_range_builds_every_day_of_it(warehouse_copy):
    """A backfill of a week on a new warehouse: Dagster records all seven partitions, so all seven must exist."""
    first, last = TINY_END_DATE - dt.timedelta(days=6), TINY_END_DATE
    vars_ = json.dumps(training_history_vars(last, first))
    run_dbt(warehouse_copy, "build", "--select", "tag:daily_history", "--full-refresh", "--vars", vars_)
    days = {d for (d,) in query(warehouse_copy, "SELECT DISTINCT as_of FROM lead_features")}
    assert {first + dt.timedelta(days=n) for n in range(7)} <= days, "every day of the range"
    older = sorted(d for d in days if d < first)
    assert len(older) >= MIN_TRAINING_SNAPSHOTS and all((d - dt.date(2000, 1, 3)).days % 7 == 0 for d in older)


def test_a_writer_waits_for_a_lock_held_outside_the_pool_then_proceeds(tmp_path):
    """A dbt left running by a killed run still holds the DuckDB file: the next writer waits, then writes."""
    path = tmp_path / "w.duckdb"
    duckdb_connect(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep(4)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(duckdb.IOException, match=r"(?i)lock"):
        connect_waiting(path, timeout_s=0.5, poll_s=0.1)
    said: list[str] = []
    with connect_waiting(path, timeout_s=60, on_wait=said.append, poll_s=0.2) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
    holder.wait()
    assert len(said) == 1 and "waiting up to 60 s for the warehouse lock" in said[0]
