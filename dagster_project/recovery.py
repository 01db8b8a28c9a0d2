"""Recovery of runs whose process died: mark them failed and give back their pool slots.

A run killed with ``kill -9`` (or lost with its machine) never reports its own end: it stays STARTED, and
the slot it claimed in pool ``warehouse`` stays claimed, so every later run waits for it forever. Dagster's
run monitoring cannot see this with the default run launcher (it has no worker health check), so leadscore
checks itself. Every run records the pid of the process executing it in an engine event ("Started process
for run (pid: N)", "Executing steps in process (pid: N)"); a run in progress whose process no longer exists
on this machine is dead. The launcher of ``make run`` checks before it submits, and the sensor
``recover_dead_runs`` checks every 30 s while the daemon (``make dev``) is up, so a scheduled run or a UI
backfill is never blocked either.

The decision is a pure function of (run, pid, process start time) facts, unit-tested without processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

IN_PROGRESS = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
# A worker reports its pid within seconds of starting, so a process at that pid that started this much later
# is another one that reused the number (pids wrap at kernel.pid_max, 32,768 on many machines, and threads
# use the same numbers). Generous on purpose: a process's start time is read as boot time + ticks since
# boot, and the boot time (/proc/stat btime) moves forward when a virtual machine is paused and its wall
# clock is corrected on resume. A 5 s slack once judged a live 2x nightly dead after a 33 s pause, and
# a run judged dead is marked failed and stopped.
PID_REUSE_SLACK_S = 600.0


@dataclass(frozen=True)
class RunProcess:
    """What is known of a run in progress: its worker's pid (None when it ran in-process elsewhere)."""

    run_id: str
    pid: int | None
    reported_at: float | None  # when the process reported its pid (epoch seconds): it was running by then


@dataclass(frozen=True)
class Recovered:
    run_id: str
    pid: int | None  # None: the run had ended already and only its slots were left behind
    freed_slots: int

    def describe(self) -> str:
        slots = f"{self.freed_slots} pool slot{'s' * (self.freed_slots != 1)}"
        if self.pid is None:
            return f"run {self.run_id[:8]} had ended but still held {slots}: freed"
        freed = f", freed {slots}" if self.freed_slots else ""
        return f"run {self.run_id[:8]} had died (process {self.pid} gone): marked failed{freed}"


def is_dead(run: RunProcess, process_started_at: Callable[[int], float | None], booted_at: float | None = None) -> bool:
    """A run is dead when its worker's pid is gone, or now belongs to another process: the machine booted
    after the worker reported that pid (``booted_at``, epoch seconds; no process survives a restart, and the
    first processes of the new boot take low pids again), or the process at the pid started more than
    ``PID_REUSE_SLACK_S`` after the report (the pid was reused).

    ``process_started_at(pid)`` is None for no such process. Runs without a recorded pid are never judged:
    nothing proves them dead (an in-process run of ``dagster asset materialize`` records none).
    """
    if run.pid is None:
        return False
    started = process_started_at(run.pid)
    if started is None:
        return True
    if run.reported_at is None:
        return False
    if booted_at is not None and booted_at > run.reported_at:
        return True
    return started > run.reported_at + PID_REUSE_SLACK_S


def linux_booted_at() -> float | None:
    """Epoch seconds at which this machine booted (/proc/stat btime); None where there is no /proc."""
    try:
        line = next(line for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime"))
    except (OSError, StopIteration):
        return None
    return float(line.split()[1])


def linux_process_started_at(pid: int) -> float | None:
    """Epoch seconds at which process ``pid`` started, from /proc; None when there is no such process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # it exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        stat = ""
    booted_at = linux_booted_at()
    if not stat or booted_at is None:
        return 0.0  # alive, start unknown (not Linux): never younger than the run
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return None  # a zombie has exited; only its parent has not collected it yet
    start_ticks = int(stat.rsplit(")", 1)[-1].split()[19])
    return booted_at + start_ticks / os.sysconf("SC_CLK_TCK")


def worker_pid(instance: DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The pid of the process executing the run, and when it said so: the latest engine event that names one
    (the run worker's "Started process for run", the executor's "Executing steps in process", also for
    in-process runs)."""
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ENGINE_EVENT, ascending=False).records
    for record in records:
        event = record.event_log_entry.dagster_event
        data = event.engine_event_data if event else None
        pid = data.metadata.get("pid") if data else None
        if pid is not None:
            return int(pid.value), record.event_log_entry.timestamp
    return None


def runs_in_progress(instance: DagsterInstance, run_id: str | None = None) -> list[RunProcess]:
    found = []
    for run in instance.get_runs(RunsFilter(statuses=IN_PROGRESS, run_ids=[run_id] if run_id else None)):
        worker = worker_pid(instance, run.run_id)
        found.append(
            RunProcess(run.run_id, pid=worker[0] if worker else None, reported_at=worker[1] if worker else None)
        )
    return found


def slots_held_by_ended_runs(instance: DagsterInstance) -> Iterable[str]:
    """Runs that ended (failed, canceled, succeeded) but still hold pool slots."""
    holders = instance.event_log_storage.get_concurrency_run_ids()
    if not holders:
        return []
    ended = instance.get_runs(RunsFilter(run_ids=list(holders), statuses=[
        DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]))  # fmt: skip
    return [run.run_id for run in ended]


def _claimed_slots(instance: DagsterInstance, run_id: str) -> int:
    storage = instance.event_log_storage
    return sum(
        1
        for key in storage.get_concurrency_keys()
        for slot in storage.get_concurrency_info(key).claimed_slots
        if slot.run_id == run_id
    )


def recover_dead_runs(
    instance: DagsterInstance,
    process_started_at: Callable[[int], float | None] = linux_process_started_at,
    only_run_id: str | None = None,
    booted_at: Callable[[], float | None] = linux_booted_at,
) -> list[Recovered]:
    """Mark every dead run in progress failed and free the pool slots of dead and ended runs."""
    recovered = []
    boot = booted_at()
    for run in runs_in_progress(instance, only_run_id):
        if not is_dead(run, process_started_at, boot):
            continue
        dagster_run = instance.get_run_by_id(run.run_id)
        if dagster_run is None or dagster_run.status not in IN_PROGRESS:
            continue  # it ended on its own meanwhile
        slots = _claimed_slots(instance, run.run_id)
        instance.report_run_failed(
            dagster_run,
            f"The run's process (pid {run.pid}) is gone: it was killed or its machine stopped. Marked failed "
            "by leadscore's recovery so that later runs are not blocked; re-run the partition to rebuild it.",
        )
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        recovered.append(Recovered(run.run_id, run.pid, slots))
    if only_run_id is None:
        for run_id in slots_held_by_ended_runs(instance):
            slots = _claimed_slots(instance, run_id)
            instance.event_log_storage.free_concurrency_slots_for_run(run_id)
            if slots:
                recovered.append(Recovered(run_id, None, slots))
    return recovered


@sensor(
    name="recover_dead_runs",
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Every 30 s while the daemon runs: a run whose process is gone (killed, machine stopped) is "
    "marked failed and its slots in pool 'warehouse' are freed, so the next run is never blocked by it.",
)
def recover_dead_runs_sensor(context: SensorEvaluationContext) -> SkipReason:
    recovered = recover_dead_runs(context.instance)
    for item in recovered:
        context.log.warning(item.describe())
    return SkipReason("; ".join(r.describe() for r in recovered) or "no dead runs")
