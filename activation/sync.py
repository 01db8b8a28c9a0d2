"""The destination-agnostic sync engine.

One run of one mapping object against one destination:

1. read the desired rows from the warehouse (latest ``as_of`` only when the mapping says so);
2. encode each row for the destination and diff the payload hashes against what the destination last
   *confirmed* (``activation.sync_state``) — unchanged records cost nothing;
3. check the CRM's schema (create HubSpot properties / verify Salesforce fields);
4. send the changes in batches of the API's maximum from a small thread pool; the client's rate limiter
   keeps the pool under the limit, 409s split a batch in halves, a spent daily allocation stops the run
   cleanly and leaves the rest for the next run;
5. mark a record synced only when the destination confirmed it; rejects go to ``activation.rejects`` and
   are sent again next run, because they are still not in the confirmed state.

A dry run does 1–2 and reports, sending nothing (not even schema checks).
"""

from __future__ import annotations

import concurrent.futures
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from activation.destination import Destination, OutgoingRecord, RecordResult
from activation.diff import CLEAR, CREATE, UPDATE, Plan, make_batches, plan_changes, samples, split_batch
from activation.encoding import EncodingError
from activation.errors import BatchConflict, ConfigurationError, DailyLimitReached, RequestFailed
from activation.mapping import ObjectMapping, SyncMapping, load_mapping
from activation.redact import get_logger
from activation.state import (
    StateWriter,
    confirmed_hashes,
    ensure_tables,
    forget_resolved_rejects,
    now,
    record_run,
)

log = get_logger(__name__)


@dataclass(frozen=True)
class SyncOptions:
    workers: int = 4  # concurrent requests; the rate limiter, not the pool, sets the pace
    flush_every: int = 1_000  # confirmed records buffered before writing them to the warehouse
    sample_size: int = 3  # sample payloads per action in reports
    # An empty desired set usually means an upstream failure, not "clear every score in the CRM".
    allow_clear_all: bool = False


@dataclass
class SyncReport:
    run_id: str
    destination: str
    object: str
    mapping_object: str
    relation: str
    dry_run: bool
    status: str = "complete"  # complete | partial (some rejects) | daily_limit | failed
    desired: int = 0
    to_create: int = 0
    to_update: int = 0
    to_clear: int = 0
    unchanged: int = 0
    sent: int = 0
    created: int = 0
    updated: int = 0
    cleared: int = 0
    failed: int = 0
    deferred: int = 0
    api_calls: int = 0
    rate_limited: int = 0
    retries: int = 0
    duration_s: float = 0.0
    message: str = ""
    samples: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- reading the warehouse ------------------------------------------------------------------------------
def _quote(identifier: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", identifier):
        raise ConfigurationError(f"not a plain identifier: {identifier!r}")
    return f'"{identifier}"'


def read_desired(conn: duckdb.DuckDBPyConnection, obj: ObjectMapping) -> list[dict[str, Any]]:
    """The rows to sync: the mapped columns, only the latest ``latest_by`` when set, one row per key."""
    relation = ".".join(_quote(part) for part in obj.relation.split("."))
    try:
        probe = conn.execute(f"SELECT * FROM {relation} LIMIT 0")
        available = [d[0] for d in probe.description]
        probe.fetchall()  # DuckDB wants every result consumed before the next statement
    except duckdb.CatalogException as exc:
        raise ConfigurationError(f"relation {obj.relation!r} of mapping object {obj.name!r} does not exist") from exc
    needed = [obj.key_column, *(f.column for f in obj.fields)] + ([obj.latest_by] if obj.latest_by else [])
    missing = [c for c in needed if c not in available]
    if missing:
        raise ConfigurationError(
            f"relation {obj.relation!r} lacks column(s) {missing} named in the mapping object {obj.name!r}; "
            f"it has {available}"
        )
    columns = [obj.key_column, *(f.column for f in obj.fields)]
    sql = f"SELECT {', '.join(_quote(c) for c in columns)} FROM {relation} WHERE {_quote(obj.key_column)} IS NOT NULL"
    if obj.latest_by:
        latest = _quote(obj.latest_by)
        sql += f" AND {latest} = (SELECT max({latest}) FROM {relation})"
    rows = [dict(zip(columns, values, strict=True)) for values in conn.execute(sql).fetchall()]
    keys = Counter(str(row[obj.key_column]) for row in rows)
    duplicates = [key for key, count in keys.items() if count > 1]
    if duplicates:
        raise ConfigurationError(
            f"relation {obj.relation!r} has {len(duplicates)} duplicate {obj.key_column} value(s) in the rows to "
            f"sync, e.g. {sorted(duplicates)[:5]}; each record must appear once"
        )
    return rows


def build_plan(
    conn: duckdb.DuckDBPyConnection, destination: Destination, obj: ObjectMapping, crm_object: str
) -> tuple[Plan, int, list[tuple[OutgoingRecord, RecordResult]]]:
    """The plan, the number of desired rows, and rows whose values do not fit their mapped types.

    An unencodable row is rejected on its own (and neither sent nor cleared) instead of failing the run.
    """
    desired: dict[str, dict[str, Any]] = {}
    invalid: list[tuple[OutgoingRecord, RecordResult]] = []
    for row in read_desired(conn, obj):
        key = str(row[obj.key_column])
        try:
            desired[key] = destination.encode(obj, row)
        except EncodingError as exc:
            invalid.append((OutgoingRecord(key, {}, "", UPDATE), RecordResult.failed(key, "ENCODING_ERROR", str(exc))))
    confirmed = confirmed_hashes(conn, destination.name, crm_object)
    plan = plan_changes(desired, confirmed, destination.empty_payload(obj), clear_missing=obj.clear_when_missing)
    if invalid:
        skipped = {record.key for record, _ in invalid}
        plan = Plan(tuple(c for c in plan.changes if c.key not in skipped), plan.unchanged)
    return plan, len(desired) + len(invalid), invalid


# --- sending --------------------------------------------------------------------------------------------
@dataclass
class BatchOutcome:
    results: list[tuple[OutgoingRecord, RecordResult]] = field(default_factory=list)
    deferred: list[OutgoingRecord] = field(default_factory=list)
    stopped: str | None = None  # why sending stopped (daily limit)


def send_with_split(destination: Destination, obj: ObjectMapping, batch: list[OutgoingRecord]) -> BatchOutcome:
    """Send one batch; on 409 split it and send the halves, until a conflicting record stands alone."""
    outcome = BatchOutcome()
    pending = [batch]
    while pending:
        current = pending.pop(0)
        try:
            results = destination.send_batch(obj, current)
        except BatchConflict as exc:
            if len(current) == 1:
                outcome.results.append((current[0], RecordResult.failed(current[0].key, "CONFLICT", str(exc))))
            else:
                pending[:0] = list(split_batch(current))
            continue
        except RequestFailed as exc:
            code = "RETRIES_EXHAUSTED" if exc.retryable else "REQUEST_REJECTED"
            outcome.results.extend((r, RecordResult.failed(r.key, code, str(exc))) for r in current)
            continue
        except DailyLimitReached as exc:
            outcome.deferred.extend(current)
            for rest in pending:
                outcome.deferred.extend(rest)
            outcome.stopped = str(exc)
            return outcome
        outcome.results.extend(zip(current, results, strict=True))
    return outcome


class _Run:
    """Mutable bookkeeping of one run, folded into a SyncReport at the end."""

    def __init__(self, report: SyncReport, writer: StateWriter, options: SyncOptions) -> None:
        self.report, self.writer, self.options = report, writer, options

    def absorb(self, outcome: BatchOutcome) -> None:
        report = self.report
        for record, result in outcome.results:
            report.sent += 1
            self.writer.add(record, result)
            if not result.ok:
                report.failed += 1
                log.warning("%s %s rejected %s: %s", report.destination, report.object, record.key, result.message)
            elif record.action == CLEAR:
                report.cleared += 1
            elif result.created:
                report.created += 1
            else:
                report.updated += 1
        report.deferred += len(outcome.deferred)
        if outcome.stopped and report.status != "daily_limit":
            report.status, report.message = "daily_limit", outcome.stopped
            log.warning("%s: %s — the remaining records wait for the next run", report.destination, outcome.stopped)
        if self.writer.pending >= self.options.flush_every:
            self.writer.flush()


def _send_batches(destination: Destination, obj: ObjectMapping, changes: Sequence[OutgoingRecord], run: _Run) -> None:
    batches = make_batches(changes, destination.batch_size)
    # Set by the worker that meets a stop condition, so no other worker starts a batch after it — cancelling
    # queued futures from the main thread alone would race with workers picking up the next batch.
    stop = threading.Event()

    def work(batch: list[OutgoingRecord]) -> BatchOutcome:
        if stop.is_set():
            return BatchOutcome(deferred=batch)
        try:
            outcome = send_with_split(destination, obj, batch)
        except BaseException:
            stop.set()
            raise
        if outcome.stopped:
            stop.set()
        return outcome

    with concurrent.futures.ThreadPoolExecutor(max_workers=run.options.workers) as pool:
        futures = {pool.submit(work, batch): batch for batch in batches}
        fatal: BaseException | None = None
        for future in concurrent.futures.as_completed(futures):
            if future.cancelled():
                run.absorb(BatchOutcome(deferred=futures[future]))
                continue
            try:
                outcome = future.result()
            except BaseException as exc:  # configuration/auth errors, crashes: stop sending, keep what we have
                fatal = fatal or exc
                outcome = BatchOutcome(deferred=futures[future])
            run.absorb(outcome)
            if stop.is_set():
                for pending in futures:
                    pending.cancel()  # queued batches never start; running ones finish and are recorded
        if fatal is not None:
            raise fatal


def sync_object(
    conn: duckdb.DuckDBPyConnection,
    destination: Destination,
    obj: ObjectMapping,
    *,
    dry_run: bool = False,
    options: SyncOptions | None = None,
) -> SyncReport:
    """Sync one mapping object to one destination; returns (and records in ``activation.sync_runs``) a report."""
    options = options or SyncOptions()
    target = obj.target(destination.name)
    if target is None:
        raise ConfigurationError(f"mapping object {obj.name!r} has no {destination.name} destination")
    started_at, started = now(), time.monotonic()
    ensure_tables(conn)
    report = SyncReport(
        run_id=uuid.uuid4().hex,
        destination=destination.name,
        object=target.object,
        mapping_object=obj.name,
        relation=obj.relation,
        dry_run=dry_run,
    )
    stats_before = destination.stats.snapshot()
    writer = StateWriter(conn, destination.name, target.object, report.run_id)
    try:
        plan, report.desired, invalid = build_plan(conn, destination, obj, target.object)
        report.failed = len(invalid)
        report.to_create, report.to_update, report.to_clear = (plan.count(a) for a in (CREATE, UPDATE, CLEAR))
        report.unchanged = plan.unchanged
        if report.desired == 0 and report.to_clear and not options.allow_clear_all:
            raise ConfigurationError(
                f"{obj.relation!r} has no rows to sync, which would clear {report.to_clear} records in "
                f"{destination.name}; refusing (likely an upstream failure). Pass allow_clear_all to proceed."
            )
        if dry_run:
            report.samples = samples(plan.changes, options.sample_size)
        else:
            pending = [c.key for c in plan.changes] + [record.key for record, _ in invalid]
            forget_resolved_rejects(conn, destination.name, report.object, pending)
            for record, result in invalid:
                log.warning("%s %s rejected %s: %s", destination.name, report.object, record.key, result.message)
                writer.add(record, result)
            if plan.changes:
                _send(destination, obj, plan, report, writer, options)
        if report.status == "complete" and report.failed:
            report.status = "partial"
    except BaseException as exc:
        report.status, report.message = "failed", str(exc)
        raise
    finally:
        writer.flush()
        _finish(conn, destination, report, stats_before, started, started_at)
    return report


def _send(
    destination: Destination,
    obj: ObjectMapping,
    plan: Plan,
    report: SyncReport,
    writer: StateWriter,
    options: SyncOptions,
) -> None:
    run = _Run(report, writer, options)
    try:
        destination.prepare(obj)
    except DailyLimitReached as exc:
        run.absorb(BatchOutcome(deferred=list(plan.changes), stopped=str(exc)))
        return
    threshold = destination.bulk_threshold
    if threshold is not None and len(plan.changes) > threshold:
        log.info(
            "%s %s: %d changes > %d, using the bulk API", destination.name, report.object, len(plan.changes), threshold
        )
        try:
            results = destination.send_bulk(obj, plan.changes)
            run.absorb(BatchOutcome(results=list(zip(plan.changes, results, strict=True))))
        except DailyLimitReached as exc:
            run.absorb(BatchOutcome(deferred=list(plan.changes), stopped=str(exc)))
        except RequestFailed as exc:
            failed = [(r, RecordResult.failed(r.key, "BULK_FAILED", str(exc))) for r in plan.changes]
            run.absorb(BatchOutcome(results=failed))
    else:
        _send_batches(destination, obj, plan.changes, run)


def _finish(
    conn: duckdb.DuckDBPyConnection,
    destination: Destination,
    report: SyncReport,
    stats_before: Mapping[str, int],
    started: float,
    started_at: Any,
) -> None:
    stats = destination.stats.snapshot()
    report.api_calls = stats["api_calls"] - stats_before["api_calls"]
    report.rate_limited = stats["rate_limited"] - stats_before["rate_limited"]
    report.retries = stats["retries"] - stats_before["retries"]
    report.duration_s = round(time.monotonic() - started, 3)
    values = report.as_dict()
    values.update(started_at=started_at, finished_at=now())
    record_run(conn, values)
    log.info(
        "%s %s%s: %s — sent %d (created %d, updated %d, cleared %d, failed %d), unchanged %d, deferred %d, "
        "%d API calls in %.1fs",
        report.destination,
        report.object,
        " (dry run)" if report.dry_run else "",
        report.status,
        report.sent,
        report.created,
        report.updated,
        report.cleared,
        report.failed,
        report.unchanged,
        report.deferred,
        report.api_calls,
        report.duration_s,
    )


# --- public entry point -----------------------------------------------------------------------------------
def make_destination(name: str, env: Mapping[str, str] | None = None, **settings: Any) -> Destination:
    """A destination client configured from environment variables (see each client's ``from_env``)."""
    if name == "hubspot":
        from activation.hubspot import HubSpotDestination

        return HubSpotDestination.from_env(env, **settings)
    if name == "salesforce":
        from activation.salesforce import SalesforceDestination

        return SalesforceDestination.from_env(env, **settings)
    raise ConfigurationError(f"unknown destination {name!r}; use 'hubspot' or 'salesforce'")


def run_sync(
    conn: duckdb.DuckDBPyConnection,
    destination: str | Destination,
    *,
    mapping: SyncMapping | str | Path | None = None,
    objects: Sequence[str] | None = None,
    dry_run: bool = False,
    options: SyncOptions | None = None,
    env: Mapping[str, str] | None = None,
) -> list[SyncReport]:
    """Sync every mapping object that has this destination (or only ``objects``); one report each.

    ``destination`` is ``"hubspot"`` / ``"salesforce"`` (credentials from ``env``, default ``os.environ``)
    or a ready client. Configuration errors raise :class:`activation.errors.ConfigurationError` after the
    run is recorded; a spent daily allocation does not raise (``status == "daily_limit"``).
    """
    if not isinstance(mapping, SyncMapping):
        mapping = load_mapping(mapping)
    client = make_destination(destination, env) if isinstance(destination, str) else destination
    selected = [mapping.object(name) for name in objects] if objects else list(mapping.for_destination(client.name))
    return [sync_object(conn, client, obj, dry_run=dry_run, options=options) for obj in selected]
