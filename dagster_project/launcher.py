"""Submit a run to the instance's queue and follow it in the terminal: what ``make run`` does.

``make run`` does not execute the job itself. It hands the run to Dagster exactly as the schedule and a
UI backfill do — through the queued run coordinator, which starts one run at a time — so two launches at
once queue instead of colliding on the DuckDB file, and the run appears in the UI's timeline like any
other. Someone must dequeue it: the daemon of ``make dev`` when one is up for this ``$DAGSTER_HOME``,
otherwise a daemon this launcher starts for as long as runs are queued or in progress (and which dies
with it: the kernel sends it SIGTERM when the launcher goes).

What a person sees is one line per step with a counter and the elapsed time, what each step says it did,
the pool and queue waits, and warnings; everything else (dbt's lines, Optuna's trials) stays in the run's
log in the UI.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.utils import make_new_run_id

from dagster_project.recovery import IN_PROGRESS, linux_process_started_at, recover_dead_runs

REPO = Path(__file__).resolve().parents[1]
WORKSPACE = REPO / "workspace.yaml"
BIN = Path(sys.executable).parent
ENDED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
WAITING = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, *IN_PROGRESS]
FOLLOWED = {
    DagsterEventType.STEP_START,
    DagsterEventType.STEP_SUCCESS,
    DagsterEventType.STEP_FAILURE,
    DagsterEventType.ENGINE_EVENT,
    DagsterEventType.RUN_START,
    DagsterEventType.RUN_FAILURE,
}
POOL_BLOCKED = "Step blocked by limit for pool "
PR_SET_PDEATHSIG = 1
MAX_DAEMON_STARTS = 3
KEEP_ALIVE_EVERY_S = 5.0


# --- what the terminal shows (pure) -------------------------------------------------------------------
def clock(seconds: float) -> str:
    """Elapsed time as m:ss (h:mm:ss past an hour)."""
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@dataclass
class Progress:
    """Turns the run's events into the lines a person reads; knows the steps so it can count them."""

    steps: list[str]
    started: dict[str, float] = field(default_factory=dict)
    blocked: set[str] = field(default_factory=set)

    def counter(self, step: str) -> str:
        """[n/total]: n counts steps in the order they start (a step not started yet gets the next number)."""
        order = list(self.started)
        index = order.index(step) + 1 if step in order else len(order) + 1
        return f"[{index}/{max(len(self.steps), index)}] {step}"

    def on_event(self, kind: DagsterEventType, step: str | None, message: str, at: float) -> str | None:
        if kind == DagsterEventType.STEP_START and step:
            self.started.setdefault(step, at)
            return f"{self.counter(step)} ..."
        if kind == DagsterEventType.STEP_SUCCESS and step:
            return f"{self.counter(step)} done in {clock(at - self.started.get(step, at))}"
        if kind == DagsterEventType.STEP_FAILURE and step:
            return f"{self.counter(step)} FAILED: {message.splitlines()[0] if message else 'see the run log'}"
        if kind == DagsterEventType.ENGINE_EVENT and step and message.startswith(POOL_BLOCKED):
            if step in self.blocked:
                return None
            self.blocked.add(step)
            pool = message.removeprefix(POOL_BLOCKED)
            return f"{self.counter(step)} waits for pool '{pool}' (another run's step is writing the warehouse)"
        return None


# dagster-dbt's own INFO lines about how it invokes dbt: in the run's log, not in the terminal.
DBT_BOILERPLATE = ("A dbt subsetted execution", "Copying `", "Running dbt command", "Finished dbt command")


def worth_saying(message: str) -> bool:
    """An INFO line of the pipeline's own code (what it generated, built, trained, synced) is shown."""
    return bool(message) and not message.startswith(DBT_BOILERPLATE)


def launch_tags(partition: str, launched_by: str) -> dict[str, str]:
    return {"dagster/partition": partition, "leadscore/launched_by": launched_by}


# --- the daemon that dequeues --------------------------------------------------------------------------
def daemon_pids(dagster_home: Path) -> list[int]:
    """Processes of ``dagster-daemon run`` serving this instance (``make dev`` runs one too)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            # `dagster-daemon run` (ours), or `python -m dagster._daemon run` (the one `dagster dev` starts)
            named = any(a.endswith(b"dagster-daemon") for a in argv[:2]) or b"dagster._daemon" in argv[:3]
            if not named or b"run" not in argv:
                continue
            environ = dict(e.split(b"=", 1) for e in (proc / "environ").read_bytes().split(b"\0") if b"=" in e)
        except OSError:
            continue
        home = environ.get(b"DAGSTER_HOME", b"").decode()
        if home and Path(home).expanduser().resolve() == dagster_home.expanduser().resolve():
            pids.append(int(proc.name))
    return pids


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Daemon:
    """A ``dagster-daemon`` this launcher started (or None when another one already serves the instance)."""

    def __init__(self, dagster_home: Path, environ: Mapping[str, str]):
        self.dagster_home = dagster_home
        self.environ = dict(environ)
        self.process: subprocess.Popen | None = None
        self.starts = 0
        # Not $DAGSTER_HOME/logs: the daemon removes that folder when it stops.
        self.log_path = dagster_home / "leadscore" / "daemon.log"

    def ensure(self) -> bool:
        """Start a daemon unless one serves this instance; True when this call started it.

        A daemon of ours that keeps dying (a broken instance or workspace) is not restarted forever: the third
        death stops the launcher with the end of the daemon's log."""
        if self.process and self.process.poll() is None:
            return False
        if self.process and self.starts >= MAX_DAEMON_STARTS:
            tail = " / ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-3:])
            raise RuntimeError(
                f"the Dagster daemon exited {self.starts} times (code {self.process.returncode}): {tail}"
            )
        lock_path = self.dagster_home / ".leadscore-daemon.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as lock:  # two launchers at once must not start two daemons
            fcntl.flock(lock, fcntl.LOCK_EX)
            if daemon_pids(self.dagster_home):
                return False
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "a") as log:
                self.process = subprocess.Popen(
                    [str(BIN / "dagster-daemon"), "run", "-w", str(WORKSPACE)],
                    cwd=REPO,
                    env=self.environ,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C in the terminal reaches the launcher, which cancels cleanly
                    preexec_fn=_die_with_parent,
                )
            self.starts += 1
            time.sleep(0.5)  # let it appear in /proc before the lock is released
        return True

    def stop(self) -> None:
        if not self.process or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)  # its code server and workers are in its group
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


# --- submitting and following --------------------------------------------------------------------------
LAUNCH_ATTEMPTS = 3


def submit(
    job: str, tags: Mapping[str, str], environ: Mapping[str, str], instance: DagsterInstance | None = None
) -> str:
    """Queue a run of ``job`` through the instance's run coordinator (the CLI the UI's launch uses).

    The CLI loads the code in a gRPC server that stops when it hears no heartbeat for 20 s; on a machine
    busy enough (seen under a load of 7 on 2 cores) it is gone before the run is queued. Such a failure is
    retried with the same run id, unless the instance already holds that run (it was queued after all)."""
    run_id = make_new_run_id()
    command = [
        str(BIN / "dagster"), "job", "launch", "-w", str(WORKSPACE), "-j", job,
        "--tags", json.dumps(dict(tags)), "--run-id", run_id,
    ]  # fmt: skip

    def launch_once() -> tuple[bool, str]:
        done = subprocess.run(command, cwd=REPO, env=dict(environ), capture_output=True, text=True, check=False)
        return done.returncode == 0, done.stderr or done.stdout

    def queued_anyway() -> bool:
        return instance is not None and instance.get_run_by_id(run_id) is not None

    launch_with_retries(launch_once, queued_anyway)
    return run_id


def launch_with_retries(
    launch_once: Callable[[], tuple[bool, str]],
    queued_anyway: Callable[[], bool],
    attempts: int = LAUNCH_ATTEMPTS,
    pause: Callable[[float], None] = time.sleep,
) -> None:
    """Try ``launch_once`` (success, output) until it succeeds, the run turns out queued after all, or a
    failure is not transient; waits 5 s, then 10 s, between tries. Raises with the failure's error lines."""
    for attempt in range(1, attempts + 1):
        succeeded, output = launch_once()
        if succeeded or queued_anyway():
            return
        if attempt == attempts or not transient_launch_error(output):
            raise RuntimeError(f"could not queue the run: {launch_error_summary(output)}")
        pause(5 * attempt)


def transient_launch_error(output: str) -> bool:
    """Whether a failed ``dagster job launch`` may work when tried again: its code server could not be
    reached or did not answer in time (not a configuration or code error, which would fail again)."""
    return any(status in output for status in ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED"))


def launch_error_summary(output: str, lines: int = 5) -> str:
    """The part of a failed ``dagster job launch`` a person needs: its error lines, not the end of a traceback.

    The CLI prints tracebacks, log lines and the error itself mixed. Kept: lines at the margin that name an
    error, and the lines right under a kept line that are not a traceback's ``File ...`` (pydantic puts the
    field and the reason there, e.g. ``dbt_executable`` / ``Value error, The dbt executable 'dbt' does not
    exist``)."""
    scaffolding = ("Traceback", "Stack Trace", "The above exception", "During handling", "Try '", "File ")
    kept: list[str] = []
    previous_kept = False
    for line in output.strip().splitlines():
        text = line.strip()
        if not text or text.startswith(scaffolding) or " - dagster" in line:
            previous_kept = False
            continue
        at_margin = not line[0].isspace()
        previous_kept = (at_margin and "rror" in text) or (previous_kept and not text.startswith("^"))
        if previous_kept:
            kept.append(text)
    return " / ".join(kept[-lines:]) if kept else " / ".join(output.strip().splitlines()[-3:])


def planned_steps(instance: DagsterInstance, run_id: str) -> list[str]:
    run = instance.get_run_by_id(run_id)
    snapshot = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id) if run else None
    if snapshot is None:
        return []
    order = [step.key for step in snapshot.steps]
    wanted = set(snapshot.step_keys_to_execute or order)
    return [key for key in order if key in wanted]


def queued_behind(instance: DagsterInstance, run_id: str) -> str:
    """Which run this one waits for, in words."""
    ahead = [r for r in instance.get_runs(RunsFilter(statuses=WAITING)) if r.run_id != run_id]
    if not ahead:
        return "waiting for the daemon to pick it up"
    first = ahead[-1]
    partition = first.tags.get("dagster/partition", "")
    return f"queued behind run {first.run_id[:8]} ({first.job_name} {partition}, {first.status.value.lower()})"


def follow(
    instance: DagsterInstance,
    run_id: str,
    say: Callable[[str], None],
    keep_alive: Callable[[], None],
    poll_s: float = 1.0,
) -> DagsterRunStatus:
    """Print the run's progress until it ends; returns its final status.

    ``keep_alive`` is called on every poll (it restarts the daemon if ours died and checks the worker).
    """
    start = time.time()
    progress, cursor, said_queued = Progress(planned_steps(instance, run_id)), None, False
    while True:
        keep_alive()
        run = instance.get_run_by_id(run_id)
        status = run.status if run else DagsterRunStatus.FAILURE
        if status == DagsterRunStatus.QUEUED and not said_queued and time.time() - start > 2:
            say(f"{clock(time.time() - start):>6}  {queued_behind(instance, run_id)}")
            said_queued = True
        connection = instance.get_records_for_run(run_id, cursor=cursor)
        cursor = connection.cursor
        for record in connection.records:
            entry = record.event_log_entry
            event = entry.dagster_event
            line = None
            if event is not None and event.event_type in FOLLOWED:
                line = progress.on_event(event.event_type, entry.step_key, entry.user_message or "", entry.timestamp)
            elif event is None and entry.level >= 30:  # a warning or error from the pipeline's own code
                level = "warning" if entry.level < 40 else "error"
                line = f"{level} in {entry.step_key or 'run'}: {entry.user_message}"
            elif event is None and entry.level >= 20 and worth_saying(entry.user_message or ""):
                line = f"      {entry.user_message}"  # what the step is doing, under its line
            if line:
                say(f"{clock(entry.timestamp - start):>6}  {line}")
        if status in ENDED and not connection.has_more:
            return status
        if not connection.has_more:
            time.sleep(poll_s)


@dataclass
class Launch:
    """One ``make run``: the outcome and how long it took."""

    run_id: str
    status: DagsterRunStatus
    seconds: float
    recovered: list[str]


def launch_and_follow(
    instance: DagsterInstance,
    job: str,
    partition: str,
    environ: Mapping[str, str],
    say: Callable[[str], None] = print,
    launched_by: str = "make run",
) -> Launch:
    """Recover dead runs, queue one run, see it dequeued, follow it to its end; Ctrl-C cancels it."""
    start = time.time()
    recovered = [r.describe() for r in recover_dead_runs(instance)]
    for line in recovered:
        say(f"recovered: {line}")
    dagster_home = Path(instance.root_directory)
    daemon = Daemon(dagster_home, environ)
    if daemon.ensure():  # first: it loads the code location while the run is being queued
        say(f"started a Dagster daemon to take runs off the queue (log: {daemon.log_path})")
    try:
        existing = active_runs_for(instance, job, partition)
        if existing:  # e.g. the schedule's catch-up tick for the same day: follow it rather than run twice
            run_id = existing[0].run_id
            state, origin = existing[0].status.value.lower(), describe_origin(existing[0].tags)
            say(
                f"run {run_id[:8]} of job '{job}' for partition {partition} is already {state} ({origin}): following it"
            )
        else:
            run_id = submit(job, launch_tags(partition, launched_by), environ, instance)
            say(f"queued run {run_id[:8]} of job '{job}' for partition {partition}")
            for duplicate in scheduled_duplicates(instance, job, partition, run_id):
                instance.run_coordinator.cancel_run(duplicate.run_id)
                say(f"cancelled the schedule's queued run {duplicate.run_id[:8]} for the same day: this run does it")
    except BaseException:
        _stop_when_idle(instance, daemon, say)  # never kill runs another launcher follows on our daemon
        raise

    last_check = 0.0

    def keep_alive() -> None:
        # Every few seconds, not on every poll: both scan processes and read the run's events.
        nonlocal last_check
        if time.monotonic() - last_check < KEEP_ALIVE_EVERY_S:
            return
        last_check = time.monotonic()
        daemon.ensure()  # a daemon that went away (make dev stopped) is replaced
        for dead in recover_dead_runs(instance, linux_process_started_at, only_run_id=run_id):
            say(f"the run's process died: {dead.describe()}")

    try:
        status = follow(instance, run_id, say, keep_alive)
    except KeyboardInterrupt:
        say(f"interrupted: cancelling run {run_id[:8]} ...")
        status = cancel(instance, run_id)
        say(f"run {run_id[:8]} is {status.value.lower()}")
    finally:
        with contextlib.suppress(KeyboardInterrupt):
            _stop_when_idle(instance, daemon, say)
    return Launch(run_id, status, time.time() - start, recovered)


def active_runs_for(instance: DagsterInstance, job: str, partition: str) -> list:
    """Runs of ``job`` for ``partition`` that are queued or in progress (oldest first)."""
    runs = instance.get_runs(RunsFilter(job_name=job, statuses=WAITING, tags={"dagster/partition": partition}))
    return list(reversed(runs))


def scheduled_duplicates(instance: DagsterInstance, job: str, partition: str, ours: str) -> list:
    """Queued runs the schedule created for the same day as ours (its catch-up tick when the daemon started)."""
    return [
        run
        for run in active_runs_for(instance, job, partition)
        if run.run_id != ours and run.status == DagsterRunStatus.QUEUED and "dagster/schedule_name" in run.tags
    ]


def describe_origin(tags: Mapping[str, str]) -> str:
    if "dagster/schedule_name" in tags:
        return f"by schedule {tags['dagster/schedule_name']}"
    return f"by {tags.get('leadscore/launched_by', 'the UI or another launcher')}"


def cancel(instance: DagsterInstance, run_id: str, wait_s: float = 30.0) -> DagsterRunStatus:
    """Cancel a queued or running run; one whose process will not stop is marked failed by recovery."""
    instance.run_coordinator.cancel_run(run_id)
    deadline = time.time() + wait_s
    while time.time() < deadline:
        run = instance.get_run_by_id(run_id)
        if run is None or run.status in ENDED:
            break
        time.sleep(0.5)
    recover_dead_runs(instance, only_run_id=run_id)
    run = instance.get_run_by_id(run_id)
    return run.status if run else DagsterRunStatus.CANCELED


def _stop_when_idle(instance: DagsterInstance, daemon: Daemon, say: Callable[[str], None]) -> None:
    """Our daemon serves every queued run, so it stays until none is left (another launcher waits on it)."""
    if daemon.process is None:
        return
    told = False
    while instance.get_runs_count(RunsFilter(statuses=WAITING)) and daemon.process.poll() is None:
        if not told:
            say("other runs are queued: keeping the Dagster daemon up until they finish")
            told = True
        time.sleep(2)
    daemon.stop()
