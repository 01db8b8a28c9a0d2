"""The destination-agnostic sync engine.

One run of one mapping object against one CRM instance:

1. ask the destination which instance it is (HubSpot portal id, Salesforce org id): state belongs to one;
2. read the desired rows from the warehouse (latest ``as_of`` only when the mapping says so), joined with
   the CRM record ids of the object's ``identity`` relation, and find each row's CRM record (its address);
   a row without any way to find its record is *unmatched* (counted, never sent, never cleared);
3. encode each row for the destination and diff payload + address against what this instance last
   *confirmed* (``activation.sync_state``) — unchanged records cost nothing;
4. check the CRM's schema (create HubSpot properties / verify Salesforce fields) and reject locally what
   the CRM's property definitions already refuse;
5. send the changes in batches of the API's maximum from a small thread pool; the client's rate limiter
   keeps the pool under the limit, a batch refused as a whole for one record (409, or HubSpot's 400 for one
   bad value) is split in halves until that record stands alone, a spent daily allocation stops the run
   cleanly and leaves the rest for the next run;
6. mark a record synced only when the destination confirmed it; rejects (``not_found`` among them: update
   mode never creates) go to ``activation.rejects`` and are sent again next run, because they are still not
   in the confirmed state.

A dry run does 1–3 and reports, sending nothing (its only request is the read-only identity call of 1).

Create mode (a task per alert) makes each key one new record, exactly once: a key this CRM instance
confirmed is never sent again; every create is written ahead to ``activation.create_attempts`` before it
leaves and settled once its outcome is known; creates are never resent blindly (a timeout, a dropped
connection or a 5xx raise :class:`OutcomeUnknown` instead of a retry), and a key whose earlier attempt has no
recorded outcome — a lost answer, a killed run — is looked up in the CRM by the field carrying the key before
it may be created. A disabled mapping object is skipped and reported as ``disabled``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from activation.destination import (
    BY_EMAIL,
    BY_ID,
    NO_CRM_RECORD,
    NOT_FOUND,
    OUTCOME_UNKNOWN,
    Address,
    Destination,
    OutgoingRecord,
    RecordResult,
    missing_required,
    resolve_address,
)
from activation.diff import (
    CLEAR,
    CLEARING,
    ERASE,
    NEW,
    UPDATE,
    Desired,
    Plan,
    make_batches,
    plan_changes,
    plan_creates,
    samples,
    shared_addresses,
    split_batch,
)
from activation.encoding import EncodingError
from activation.errors import (
    BatchConflict,
    BatchInvalid,
    ConfigurationError,
    DailyLimitReached,
    OutcomeUnknown,
    RequestFailed,
)
from activation.mapping import CREATE, DestinationTarget, ObjectMapping, SyncMapping, load_mapping
from activation.redact import get_logger, redact
from activation.rows import iter_dicts
from activation.state import (
    StateScope,
    StateWriter,
    confirmed_state,
    create_attempts,
    ensure_tables,
    forget_resolved_rejects,
    now,
    record_attempts,
    record_run,
    settle_attempts,
)

log = get_logger(__name__)


@dataclass(frozen=True)
class SyncOptions:
    workers: int = 4  # concurrent requests; the rate limiter, not the pool, sets the pace
    flush_every: int = 1_000  # confirmed records buffered before writing them to the warehouse
    sample_size: int = 3  # sample payloads per action in reports
    # Clearing most of what the CRM holds usually means an upstream failure (an empty export, a broken
    # model), not "empty every score": such a run stops and asks (force proceeds). The same can hold for
    # changes (an export that zeroes every LTV); lead scores change wholesale when a model is promoted, so
    # that guard is off unless a share is set.
    force: bool = False
    max_clear_fraction: float = 0.5  # of the records currently holding leadscore's values
    max_change_fraction: float | None = None
    mass_change_floor: int = 10  # fewer records than this never count as mass
    # Create mode: sending rounds per run. After a round with unanswered creates, they are looked up and the
    # ones the CRM does not hold are sent again; what is still unanswered after the last round is looked up
    # by the next run.
    create_rounds: int = 3


@dataclass
class SyncReport:
    run_id: str
    destination: str
    instance: str
    mapping_object: str
    crm_object: str  # e.g. contacts, or Contact|Lead when people route to two objects
    relation: str
    mode: str
    dry_run: bool
    status: str = "complete"  # complete | partial (some rejects) | daily_limit | failed | disabled
    desired: int = 0
    unmatched: int = 0  # rows with no CRM record id (nor e-mail, where allowed): never sent
    to_send_new: int = 0  # never confirmed by this CRM instance
    to_update: int = 0
    to_clear: int = 0
    unchanged: int = 0
    sent: int = 0
    created: int = 0  # upsert and create mode only: update mode never creates
    updated: int = 0
    cleared: int = 0
    failed: int = 0
    not_found: int = 0  # of failed: the record does not exist in the CRM
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


def _quoted(relation: str) -> str:
    return ".".join(_quote(part) for part in relation.split("."))


def _columns(conn: duckdb.DuckDBPyConnection, relation: str, role: str, obj: ObjectMapping) -> list[str]:
    try:
        probe = conn.execute(f"SELECT * FROM {_quoted(relation)} LIMIT 0")
        columns = [d[0] for d in probe.description]
        probe.fetchall()  # DuckDB wants every result consumed before the next statement
    except duckdb.CatalogException as exc:
        raise ConfigurationError(f"{role} {relation!r} of mapping object {obj.name!r} does not exist") from exc
    return columns


def _require(available: Sequence[str], needed: Sequence[str], role: str, name: str, obj: ObjectMapping) -> None:
    missing = [c for c in needed if c not in available]
    if missing:
        raise ConfigurationError(
            f"{role} {name!r} lacks column(s) {missing} named in the mapping object {obj.name!r}; it has {available}"
        )


def read_desired(
    conn: duckdb.DuckDBPyConnection,
    obj: ObjectMapping,
    identity_columns: Sequence[str] = (),
    batch_rows: int = 20_000,
) -> Iterator[dict[str, Any]]:
    """The rows to sync: the key, the mapped columns and the CRM identity columns (from the ``identity``
    relation when the mapping names one), only the latest ``latest_by`` when set, one row per key.

    Rows are yielded ``batch_rows`` at a time from one query, never held as a list: a first sync of 1.5M
    leads would hold 1.5M dicts beside their encoded payloads. Nothing else may run on ``conn`` until the
    rows are consumed (it would end the query). Duplicate keys are refused by a query first, before any
    row is read."""
    relation = _quoted(obj.relation)
    available = _columns(conn, obj.relation, "relation", obj)
    needed = [obj.key_column, *(f.column for f in obj.fields)] + ([obj.latest_by] if obj.latest_by else [])
    _require(available, needed, "relation", obj.relation, obj)
    key = _quote(obj.key_column)
    selected = [f"r.{_quote(c)}" for c in [obj.key_column, *(f.column for f in obj.fields)]]
    source = f"{relation} AS r"
    if identity_columns and obj.identity:
        columns = _columns(conn, obj.identity, "identity relation", obj)
        _require(columns, [obj.key_column, *identity_columns], "identity relation", obj.identity, obj)
        source += f" LEFT JOIN {_quoted(obj.identity)} AS i ON i.{key} = r.{key}"
        selected += [f"i.{_quote(c)}" for c in identity_columns]
    elif identity_columns:
        _require(available, identity_columns, "relation", obj.relation, obj)
        selected += [f"r.{_quote(c)}" for c in identity_columns]
    sql = f"SELECT {', '.join(selected)} FROM {source} WHERE r.{key} IS NOT NULL"
    if obj.latest_by:
        latest = _quote(obj.latest_by)
        sql += f" AND r.{latest} = (SELECT max({latest}) FROM {relation})"
    duplicates = conn.execute(
        f"SELECT count(*) OVER (), CAST({key} AS VARCHAR) AS k FROM ({sql}) GROUP BY {key} HAVING count(*) > 1 "
        "ORDER BY k LIMIT 5"
    ).fetchall()
    if duplicates:
        where = f"relation {obj.relation!r}" + (f" joined with {obj.identity!r}" if obj.identity else "")
        raise ConfigurationError(
            f"{where} has {duplicates[0][0]} duplicate {obj.key_column} value(s) in the rows to "
            f"sync, e.g. {[k for _, k in duplicates]}; each record must appear once"
        )
    names = [obj.key_column, *(f.column for f in obj.fields), *identity_columns]
    yield from iter_dicts(conn.execute(sql), names, batch_rows)


@dataclass
class Planned:
    """A plan, plus what it leaves out: rows without a CRM address and rows rejected before sending."""

    plan: Plan
    desired: int
    unmatched: int
    invalid: list[tuple[OutgoingRecord, RecordResult]]
    active: int  # records this CRM instance holds leadscore's values on (confirmed and not cleared)
    owners: dict[str, str]  # CRM record id -> the desired key that writes onto it (by id, or found before)
    # Create mode: keys whose earlier create has no recorded outcome (-> when it was sent), and keys with such a
    # row that this instance confirmed meanwhile (the row is stale).
    uncertain: dict[str, Any] = field(default_factory=dict)
    stale_attempts: tuple[str, ...] = ()


def build_plan(
    conn: duckdb.DuckDBPyConnection,
    destination: Destination,
    obj: ObjectMapping,
    target: DestinationTarget,
    scope: StateScope,
) -> Planned:
    """Find each row's CRM record, encode it, and diff against what this CRM instance confirmed.

    A row whose values do not fit their mapped types, or whose CRM record another row also claims, is
    rejected on its own (neither sent nor cleared) instead of failing the run.
    """
    desired: dict[str, Desired] = {}
    invalid: list[tuple[OutgoingRecord, RecordResult]] = []
    unmatched: set[str] = set()
    creating = target.mode == CREATE
    read = 0
    for row in read_desired(conn, obj, target.identity_columns):
        read += 1
        key = str(row[obj.key_column])
        address = resolve_address(target, key, row)
        if address is None and creating:
            # A new record needs one to hang on: the row is kept as a reject and tried again next run.
            reason = f"no {target.attach.object if target.attach else ''} record to attach it to in the export"
            invalid.append((OutgoingRecord(key, {}, "", NEW, None), RecordResult.failed(key, NO_CRM_RECORD, reason)))
            continue
        if address is None:
            unmatched.add(key)
            continue
        lacking = missing_required(target, row)
        if lacking is not None:
            invalid.append((OutgoingRecord(key, {}, "", NEW, address), RecordResult.failed(key, *lacking)))
            continue
        try:
            desired[key] = Desired(destination.encode(obj, row), address)
        except EncodingError as exc:
            record = OutgoingRecord(key, {}, "", UPDATE, address)
            invalid.append((record, RecordResult.failed(key, "ENCODING_ERROR", str(exc))))
    # Many tasks may hang on one contact; two rows writing onto one record is an export error.
    for key, others in sorted(({} if creating else shared_addresses(desired)).items()):
        wanted = desired.pop(key)
        reason = f"{wanted.address.token()} is also the CRM record of {', '.join(others[:3])}; fix the export"
        invalid.append((OutgoingRecord(key, wanted.payload, "", NEW, wanted.address),
                        RecordResult.failed(key, "duplicate_target", reason)))  # fmt: skip
    confirmed = confirmed_state(conn, scope)
    if creating:
        plan = plan_creates(desired, confirmed)
        attempts = create_attempts(conn, scope)
        uncertain = {k: sent for k, sent in attempts.items() if k not in confirmed}
        stale = tuple(sorted(k for k in attempts if k in confirmed))
        return Planned(plan, read, len(unmatched), invalid, 0, {}, uncertain, stale)
    plan = plan_changes(
        desired,
        confirmed,
        destination.empty_payload(obj),
        clear_missing=obj.clear_when_missing,
        keep=unmatched | {record.key for record, _ in invalid},
    )
    active = sum(1 for state in confirmed.values() if not state.cleared)
    # Which row writes onto each CRM record: what was confirmed, overridden by the ids the export names now.
    owners = {
        state.address.value: key
        for key, state in confirmed.items()
        if key in desired and state.address and state.address.match == BY_ID
    }
    owners |= {d.address.value: k for k, d in desired.items() if d.address.match == BY_ID}
    return Planned(plan, read, len(unmatched), invalid, active, owners)


# --- sending --------------------------------------------------------------------------------------------
@dataclass
class BatchOutcome:
    results: list[tuple[OutgoingRecord, RecordResult]] = field(default_factory=list)
    deferred: list[OutgoingRecord] = field(default_factory=list)
    stopped: str | None = None  # why sending stopped (daily limit)


def send_with_split(destination: Destination, obj: ObjectMapping, batch: list[OutgoingRecord]) -> BatchOutcome:
    """Send one batch; when the CRM refuses it as a whole because of one record (409 conflict, HubSpot's 400
    for one invalid value), send the halves, until that record stands alone and becomes the only reject."""
    outcome = BatchOutcome()
    pending = [batch]
    while pending:
        current = pending.pop(0)
        try:
            results = destination.send_batch(obj, current)
        except OutcomeUnknown as exc:
            # Sent, unanswered: the records may exist now. Never split or resend here (that could create twice).
            outcome.results.extend((r, RecordResult.failed(r.key, OUTCOME_UNKNOWN, str(exc))) for r in current)
            continue
        except (BatchConflict, BatchInvalid) as exc:
            if len(current) == 1:
                code = exc.code if isinstance(exc, BatchInvalid) else "CONFLICT"
                outcome.results.append((current[0], RecordResult.failed(current[0].key, code, str(exc))))
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


# Answers to a clear that mean there is nothing left to clear.
MOOT_CLEAR_CODES = {NOT_FOUND, "CANNOT_UPDATE_CONVERTED_LEAD"}


# Create mode: answers that leave open whether the record was created.
UNKNOWN_CODES = {OUTCOME_UNKNOWN, "UNCONFIRMED"}


class _Run:
    """Mutable bookkeeping of one run, folded into a SyncReport at the end."""

    def __init__(
        self, report: SyncReport, writer: StateWriter, options: SyncOptions, *, divert_unknown: bool = False
    ) -> None:
        self.report, self.writer, self.options = report, writer, options
        # Create mode: unanswered creates are held back here (to be looked up), not recorded as rejects yet.
        self.divert_unknown = divert_unknown
        self.unknown: list[OutgoingRecord] = []

    def absorb(self, outcome: BatchOutcome, *, sent: bool = True) -> None:
        """Count and record results; ``sent=False`` for rejects decided before anything reached the CRM."""
        report = self.report
        for record, result in outcome.results:
            if self.divert_unknown and not result.ok and result.error_code in UNKNOWN_CODES:
                report.sent += sent
                self.unknown.append(record)
                continue
            report.sent += sent
            if record.action in CLEARING and result.error_code in MOOT_CLEAR_CODES:
                # The record is gone from the CRM, or can no longer be written (a converted Lead): there is
                # nothing left to clear, and nothing to retry.
                log.info("%s %s: %s can no longer be written (%s); nothing to clear", report.destination,
                         report.crm_object, record.key, result.error_code)  # fmt: skip
                result = RecordResult(record.key, True)
            self.writer.add(record, result)
            if not result.ok:
                report.failed += 1
                report.not_found += result.not_found
                log.warning("%s %s rejected %s: %s", report.destination, report.crm_object, record.key, result.message)
            elif record.action in CLEARING:
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


def _batch_group(record: OutgoingRecord) -> tuple[str, str]:
    """Records that may share a request: one CRM object, one way of finding records."""
    assert record.address is not None
    return record.address.object, record.address.match


def _send_batches(destination: Destination, obj: ObjectMapping, changes: Sequence[OutgoingRecord], run: _Run) -> None:
    batches = make_batches(changes, destination.batch_size, _batch_group)
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
        try:
            for future in concurrent.futures.as_completed(futures):
                if future.cancelled():
                    run.absorb(BatchOutcome(deferred=futures[future]))
                    continue
                try:
                    outcome = future.result()
                except BaseException as exc:  # configuration/auth errors, crashes: stop sending, keep the rest
                    fatal = fatal or exc
                    outcome = BatchOutcome(deferred=futures[future])
                run.absorb(outcome)
                if stop.is_set():
                    for pending in futures:
                        pending.cancel()  # queued batches never start; running ones finish and are recorded
        except BaseException:  # interrupted here (Ctrl-C, the orchestrator's termination): send nothing more
            stop.set()
            for pending in futures:
                pending.cancel()
            raise
        if fatal is not None:
            raise fatal


def _refuse_mass_change(planned: Planned, report: SyncReport, options: SyncOptions, obj: ObjectMapping) -> None:
    """Stop before clearing (or, when configured, changing) most of what the CRM holds: that is usually an
    upstream failure. Clears of erased people are deliberate and never count."""
    if options.force:
        return
    clears = planned.plan.count(CLEAR)
    changes = planned.plan.count(UPDATE)
    active, floor = planned.active, options.mass_change_floor
    problem = None
    if clears and report.desired == 0:
        problem = f"{obj.relation!r} has no rows to sync, which would clear leadscore's fields on {clears} records"
    elif clears >= floor and clears > options.max_clear_fraction * active:
        problem = f"{obj.relation!r} lost {clears} of the {active} synced records: their fields would be cleared"
    elif changes >= floor and changes > (options.max_change_fraction or float("inf")) * active:
        problem = f"{changes} of the {active} synced records of {obj.relation!r} would change"
    if problem:
        raise ConfigurationError(
            f"{problem} in {report.destination}; refusing (likely an upstream failure: an empty or partial "
            "export, a failed model). Check the warehouse, then sync with --force (SyncOptions(force=True), "
            "the crm resource's force setting) to proceed."
        )


def sync_object(
    conn: duckdb.DuckDBPyConnection,
    destination: Destination,
    obj: ObjectMapping,
    *,
    dry_run: bool = False,
    options: SyncOptions | None = None,
) -> SyncReport:
    """Sync one mapping object to one CRM instance; returns (and records in ``activation.sync_runs``) a report."""
    options = options or SyncOptions()
    target = obj.target(destination.name)
    if target is None:
        raise ConfigurationError(f"mapping object {obj.name!r} has no {destination.name} destination")
    started_at, started = now(), time.monotonic()
    ensure_tables(conn)
    report = SyncReport(
        run_id=uuid.uuid4().hex,
        destination=destination.name,
        instance="",
        mapping_object=obj.name,
        crm_object=target.object,
        relation=obj.relation,
        mode=target.mode,
        dry_run=dry_run,
    )
    if not obj.enabled:
        report.status, report.message = "disabled", "enabled: false in the mapping; nothing was read or sent"
        log.info("%s %s: mapping object %r is disabled; skipped", destination.name, target.object, obj.name)
        return report
    stats_before = destination.stats.snapshot()
    writer: StateWriter | None = None
    try:
        try:
            report.instance = destination.identify()
        except DailyLimitReached as exc:  # spent before we even know which CRM it is: nothing can be planned
            report.status, report.message = "daily_limit", str(exc)
            log.warning("%s: %s — nothing synced; the next run starts over", destination.name, exc)
            return report
        scope = StateScope(destination.name, report.instance, obj.name)
        writer = StateWriter(conn, scope, report.run_id)
        planned = build_plan(conn, destination, obj, target, scope)
        plan = planned.plan
        report.desired, report.unmatched, report.failed = planned.desired, planned.unmatched, len(planned.invalid)
        report.to_send_new, report.to_update = plan.count(NEW), plan.count(UPDATE)
        report.to_clear = plan.count(CLEAR) + plan.count(ERASE)
        report.unchanged = plan.unchanged
        if planned.unmatched:
            log.info("%s %s: %d rows have no CRM record id%s; they are not sent", destination.name, target.object,
                     planned.unmatched, " nor e-mail" if target.match_email else "")  # fmt: skip
        _refuse_mass_change(planned, report, options, obj)
        if dry_run:
            report.samples = samples(plan.changes, options.sample_size)
        else:
            writer.forget(plan.forget)
            settle_attempts(conn, scope, planned.stale_attempts)
            pending = [c.key for c in plan.changes] + [record.key for record, _ in planned.invalid]
            forget_resolved_rejects(conn, scope, pending)
            for record, result in planned.invalid:
                log.warning("%s %s rejected %s: %s", destination.name, target.object, record.key, result.message)
                writer.add(record, result)
            if plan.changes and target.mode == CREATE:
                _send_creates(conn, destination, obj, planned, report, writer, options)
            elif plan.changes:
                _send(destination, obj, planned, report, writer, options)
        if report.status == "complete" and report.failed:
            report.status = "partial"
    except BaseException as exc:
        report.status, report.message = "failed", redact(str(exc))
        raise
    finally:
        if writer is not None:
            writer.flush()
        _finish(conn, destination, report, stats_before, started, started_at)
    return report


def _send(
    destination: Destination,
    obj: ObjectMapping,
    planned: Planned,
    report: SyncReport,
    writer: StateWriter,
    options: SyncOptions,
) -> None:
    run = _Run(report, writer, options)
    changes = list(planned.plan.changes)
    try:
        destination.prepare(obj)
        changes = _find_by_email(destination, obj, changes, planned.owners, run)
    except DailyLimitReached as exc:
        run.absorb(BatchOutcome(deferred=changes, stopped=str(exc)))
        return
    sendable = _passing_checks(destination, obj, changes, run)
    threshold = destination.bulk_threshold
    if threshold is not None and len(sendable) > threshold:
        log.info("%s %s: %d changes > %d, using the bulk API", destination.name, report.crm_object, len(sendable),
                 threshold)  # fmt: skip
        _send_bulk(destination, obj, sendable, run)
    elif sendable:
        _send_batches(destination, obj, sendable, run)


def _passing_checks(
    destination: Destination, obj: ObjectMapping, changes: Sequence[OutgoingRecord], run: _Run
) -> list[OutgoingRecord]:
    """The changes the CRM's known rules accept; the others are recorded as rejects without being sent."""
    sendable: list[OutgoingRecord] = []
    for change in changes:
        reject = destination.check(obj, change)
        if reject is None:
            sendable.append(change)
        else:
            run.absorb(BatchOutcome(results=[(change, reject)]), sent=False)
    return sendable


def _send_creates(
    conn: duckdb.DuckDBPyConnection,
    destination: Destination,
    obj: ObjectMapping,
    planned: Planned,
    report: SyncReport,
    writer: StateWriter,
    options: SyncOptions,
) -> None:
    """Create mode: every key becomes one CRM record, exactly once (see the module docstring).

    Keys with an unsettled earlier attempt are looked up first — before anything else may reject them, since
    their record may exist whatever the export says now. Each round writes its keys ahead, sends, records
    the answers, then settles the keys whose outcome is known; unanswered creates are looked up (after the
    CRM's lookup has caught up) and only the ones it does not hold are sent in the next round.
    """
    run = _Run(report, writer, options, divert_unknown=True)
    scope = writer.scope
    changes = list(planned.plan.changes)
    unsettled: set[str] = set()  # keys whose attempt row must stay: their record may exist
    try:
        destination.prepare(obj)
        earlier = [c for c in changes if c.key in planned.uncertain]
        if earlier:
            _wait_for_lookup(destination, max(planned.uncertain[c.key] for c in earlier))
            absent = _look_up(destination, obj, earlier, run, unsettled)
            changes = sorted([c for c in changes if c.key not in planned.uncertain] + absent, key=lambda c: c.key)
        changes = _find_by_email(destination, obj, changes, {}, run, claims=False)
    except DailyLimitReached as exc:
        unsettled |= {c.key for c in changes if c.key in planned.uncertain}
        run.absorb(BatchOutcome(deferred=changes, stopped=str(exc)))
        return
    sendable = _passing_checks(destination, obj, changes, run)
    touched = {c.key for c in planned.plan.changes}
    for round_number in range(1, max(1, options.create_rounds) + 1):
        if not sendable:
            break
        record_attempts(conn, scope, [c.key for c in sendable], report.run_id)
        _send_batches(destination, obj, sendable, run)  # a crash here leaves the attempts: next run looks up
        unanswered, run.unknown = run.unknown, []
        if not unanswered:
            break
        log.warning("%s %s: %d creates were sent without an answer; looking them up before any resend",
                    report.destination, report.crm_object, len(unanswered))  # fmt: skip
        if round_number == options.create_rounds:
            _unresolved(run, unanswered, unsettled, "still unanswered after the last round; the next run looks it up")
            break
        _wait_for_lookup(destination, now())
        sendable = _look_up(destination, obj, unanswered, run, unsettled)
    writer.flush()  # the outcomes are durable before their attempt rows go
    settle_attempts(conn, scope, sorted(touched - unsettled))


def _wait_for_lookup(destination: Destination, sent_at: Any) -> None:
    """Let the CRM's lookup catch up with a write sent at ``sent_at`` (HubSpot's search index trails)."""
    settle = getattr(destination, "lookup_settle_seconds", 0.0)
    waited = (now() - sent_at).total_seconds()
    if settle > waited:
        log.info("waiting %.1fs for %s's lookup to catch up with recent writes", settle - waited, destination.name)
        time.sleep(settle - waited)


def _look_up(
    destination: Destination, obj: ObjectMapping, records: list[OutgoingRecord], run: _Run, unsettled: set[str]
) -> list[OutgoingRecord]:
    """Confirm the records an earlier attempt created; return the ones the CRM does not hold (to create).
    When the lookup itself fails, nothing is created: the records stay unsettled for the next run."""
    try:
        found = destination.find_created(obj, [r.key for r in records])
    except (RequestFailed, DailyLimitReached) as exc:
        _unresolved(run, records, unsettled, f"could not look up whether an earlier attempt created it: {exc}")
        if isinstance(exc, DailyLimitReached):
            run.absorb(BatchOutcome(stopped=str(exc)))
        return []
    confirmed = [(r, RecordResult(r.key, True, created=True, crm_id=found[r.key])) for r in records if r.key in found]
    if confirmed:
        log.info("%s %s: %d records were created by an earlier, unanswered attempt; not created again",
                 run.report.destination, run.report.crm_object, len(confirmed))  # fmt: skip
    run.absorb(BatchOutcome(results=confirmed), sent=False)
    return [r for r in records if r.key not in found]


def _unresolved(run: _Run, records: list[OutgoingRecord], unsettled: set[str], reason: str) -> None:
    """Records whose creation is in doubt: kept as OUTCOME_UNKNOWN rejects, their attempt rows kept."""
    unsettled |= {r.key for r in records}
    results = [(r, RecordResult.failed(r.key, OUTCOME_UNKNOWN, reason)) for r in records]
    divert, run.divert_unknown = run.divert_unknown, False
    try:
        run.absorb(BatchOutcome(results=results), sent=False)
    finally:
        run.divert_unknown = divert


def _find_by_email(
    destination: Destination,
    obj: ObjectMapping,
    changes: list[OutgoingRecord],
    owners: Mapping[str, str],
    run: _Run,
    *,
    claims: bool = True,
) -> list[OutgoingRecord]:
    """Records addressed by e-mail (no id in the export) are looked up first, then sent by the id found.

    Looking up before sending lets the engine see what batches cannot: an address that finds a record
    another row already writes onto (by its id) would have two rows overwrite each other, so it is rejected
    as a ``duplicate_target``; an address that finds nothing is ``not_found`` — never created.
    """
    wanted = [c for c in changes if c.address and c.address.match == BY_EMAIL]
    if not wanted:
        return changes
    found = destination.resolve(obj, wanted)
    claimed = dict(owners)
    kept, rejects = [], []
    for change in changes:
        address = change.address
        if address is None or address.match != BY_EMAIL:
            kept.append(change)
            continue
        record_id = found.get(change.key)
        if record_id is None:
            reason = f"no {address.object} record has this row's e-mail address"
            rejects.append((change, RecordResult.failed(change.key, NOT_FOUND, reason)))
        elif claims and claimed.setdefault(record_id, change.key) != change.key:
            reason = f"its e-mail address finds {address.object} {record_id}, which {claimed[record_id]} writes onto"
            rejects.append((change, RecordResult.failed(change.key, "duplicate_target", reason)))
        else:
            kept.append(dataclasses.replace(change, address=Address(address.object, BY_ID, record_id)))
    run.absorb(BatchOutcome(results=rejects))
    return kept


def _send_bulk(destination: Destination, obj: ObjectMapping, changes: list[OutgoingRecord], run: _Run) -> None:
    """One bulk job (or a few, by size) per CRM object and way of matching; what a job confirmed is recorded
    before the next one starts, so a later failure or a spent allocation loses nothing already written."""
    groups = make_batches(changes, len(changes), _batch_group)
    for index, group in enumerate(groups):
        done = 0  # records of this group whose job has answered (jobs take the group in order)
        try:
            for job_records, results in destination.send_bulk(obj, group):
                run.absorb(BatchOutcome(results=list(zip(job_records, results, strict=True))))
                run.writer.flush()  # recorded before the next job starts, whatever its size
                done += len(job_records)
        except DailyLimitReached as exc:
            rest = [*group[done:], *(r for g in groups[index + 1 :] for r in g)]
            run.absorb(BatchOutcome(deferred=rest, stopped=str(exc)))
            return
        except RequestFailed as exc:
            failed = [(r, RecordResult.failed(r.key, "BULK_FAILED", str(exc))) for r in group[done:]]
            run.absorb(BatchOutcome(results=failed))


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
    values.update(object=report.mapping_object, started_at=started_at, finished_at=now())
    record_run(conn, values)
    log.info(
        "%s %s %s%s: %s — sent %d (updated %d, created %d, cleared %d, failed %d of which not found %d), "
        "unchanged %d, unmatched %d, deferred %d, %d API calls in %.1fs",
        report.destination,
        report.instance or "?",
        report.crm_object,
        " (dry run)" if report.dry_run else "",
        report.status,
        report.sent,
        report.updated,
        report.created,
        report.cleared,
        report.failed,
        report.not_found,
        report.unchanged,
        report.unmatched,
        report.deferred,
        report.api_calls,
        report.duration_s,
    )


# --- public entry point -----------------------------------------------------------------------------------
def make_destination(name: str, env: Mapping[str, str], **settings: Any) -> Destination:
    """A destination client configured from a mapping of the documented variable names (see each client's
    ``from_env``); the caller decides where those values come from (a Dagster resource, the CLI's shell)."""
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

    ``destination`` is a ready client, or ``"hubspot"`` / ``"salesforce"`` with its settings in ``env``.
    Configuration errors raise :class:`activation.errors.ConfigurationError` after the run is recorded; a spent
    daily allocation does not raise (``status == "daily_limit"``).
    """
    if not isinstance(mapping, SyncMapping):
        mapping = load_mapping(mapping)
    if isinstance(destination, str):
        if env is None:
            raise ConfigurationError(f"pass the {destination} settings (env) or a ready client")
        client = make_destination(destination, env)
    else:
        client = destination
    selected = [mapping.object(name) for name in objects] if objects else list(mapping.for_destination(client.name))
    return [sync_object(conn, client, obj, dry_run=dry_run, options=options) for obj in selected]
