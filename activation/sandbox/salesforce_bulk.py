"""Bulk API 2.0 ingest: ``upsert`` by an external id or ``update`` by ``Id``, CSV in, three CSV results out.

Rows go through :class:`SalesforceRecords` like sObject Collections records, so per-record errors are the
same. Results are shuffled (Salesforce does not keep input order). With the ``bulk_fail_after`` fault a job
processes that many rows and then ends ``Failed``: the processed rows stay written and are reported, the
rest are in ``unprocessedrecords`` — a client must read all three before deciding what was confirmed.

Like Salesforce, closing a job (``UploadComplete``) only queues it: the close is answered at once and one
background worker processes queued jobs in order, in chunks of 10,000 rows, each chunk its own transaction
(Salesforce's internal batches). Between chunks the store is free, so polls and other requests are answered
while a 100 MiB job runs, and ``numberRecordsProcessed`` grows as it would in a real org. Progress and the
chunks' results are stored with the job, so a job queued or half-done when the sandbox stops is resumed
from its next chunk when the sandbox starts again on the same state file: a queued job is never lost.
"""

from __future__ import annotations

import csv
import logging
import math
import queue
import random
import sqlite3
import threading
import time
from typing import Any

from activation.csvtext import csv_text, read_csv_rows
from activation.salesforce_ids import make_salesforce_id, normalize_salesforce_id
from activation.sandbox.config import SandboxConfig
from activation.sandbox.salesforce_records import NUMERIC, RowResult, SalesforceRecords, now_sf, parse_temporal
from activation.sandbox.shapes import sf_errors
from activation.sandbox.store import Store
from activation.sandbox.web import Refusal, Request, Response, Router, csv_response, json_object, json_response

log = logging.getLogger(__name__)

MAX_JOB_BYTES = 150 * 1024 * 1024
CHUNK_ROWS = 10_000  # Salesforce splits a Bulk 2.0 job into internal batches of 10,000 records
BULK_NULL = "#N/A"
OPERATIONS = ("upsert", "update")
# Result kind -> (job column with the CSV header, or all of it for jobs of older sandboxes; chunk column).
RESULT_COLUMNS = {
    "successfulresults": ("successful_csv", "successful"),
    "failedresults": ("failed_csv", "failed"),
    "unprocessedrecords": ("unprocessed_csv", None),
}
PENDING = {"UploadComplete", "InProgress"}
RETRY_LOCKED_S = 1.0  # a job whose store was locked by another writer is tried again after this
FINISHED = {"JobComplete", "Failed", "Aborted"}


class BulkIngest:
    def __init__(self, store: Store, records: SalesforceRecords, config: SandboxConfig) -> None:
        self.store = store
        self.records = records
        self.config = config
        self._shuffle = random.Random(config.faults.seed)
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stopping = threading.Event()
        with store.lock:
            self._next_job = store.conn.execute("SELECT count(*) FROM sf_jobs").fetchone()[0] + 1
            # Jobs closed but not finished when the sandbox last stopped: Salesforce never drops a queued job.
            pending = store.conn.execute(
                "SELECT id FROM sf_jobs WHERE state IN ('UploadComplete', 'InProgress') AND final_state IS NULL"
                " ORDER BY created_at, id"
            ).fetchall()
        for row in pending:
            self._queue.put(row["id"])
        self._worker = threading.Thread(target=self._work, name="sandbox-bulk-worker", daemon=True)
        self._worker.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the worker after its current chunk; an unfinished job resumes at the next start."""
        self._stopping.set()
        self._queue.put(None)
        self._worker.join(timeout)

    def register(self, router: Router, data: str) -> None:
        router.add("POST", f"{data}/jobs/ingest", "salesforce.bulk.create", self.create)
        router.add("PUT", f"{data}/jobs/ingest/{{job}}/batches", "salesforce.bulk.upload", self.upload)
        router.add("PATCH", f"{data}/jobs/ingest/{{job}}", "salesforce.bulk.state", self.set_state)
        router.add("GET", f"{data}/jobs/ingest/{{job}}", "salesforce.bulk.info", self.info)
        # Any casing of the last segment: Salesforce documents unprocessedrecords, SDKs send unprocessedRecords.
        router.add("GET", f"{data}/jobs/ingest/{{job}}/{{kind}}", "salesforce.bulk.results", self.results)

    # --- handlers ------------------------------------------------------------------------------------
    def create(self, request: Request) -> Response:
        body = sf_json_object(request)
        sobject, operation, ext_field = (body.get(k) for k in ("object", "operation", "externalIdFieldName"))
        if not isinstance(sobject, str) or not isinstance(operation, str):
            return sf_errors(400, "InvalidJob : object and operation are required strings", "INVALIDJOB")
        if operation not in OPERATIONS:
            message = f"InvalidJob : the sandbox supports operations {', '.join(OPERATIONS)} (never insert)"
            return sf_errors(400, message, "INVALIDJOB")
        if body.get("contentType", "CSV") != "CSV" or body.get("columnDelimiter", "COMMA") != "COMMA":
            return sf_errors(400, "InvalidJob : contentType must be CSV with columnDelimiter COMMA", "INVALIDJOB")
        line_ending = body.get("lineEnding", "LF")
        if line_ending not in {"LF", "CRLF"}:
            return sf_errors(400, "InvalidJob : lineEnding must be LF or CRLF", "INVALIDJOB")
        with self.store.transaction() as conn:
            fields = self.records.fields(conn, sobject)
            if not fields:
                return sf_errors(400, f"InvalidJob : Unable to find object: {sobject}", "INVALIDJOB")
            if operation == "upsert":
                problem = check_external_id(fields, sobject, ext_field)
                if problem:
                    return problem
            else:
                ext_field = None
            job_id = make_salesforce_id("750", self._next_job, self.config.salesforce_pod)
            self._next_job += 1
            conn.execute(
                "INSERT INTO sf_jobs (id, object, operation, external_id_field, line_ending, state, created_at)"
                " VALUES (?, ?, ?, ?, ?, 'Open', ?)",
                (job_id, sobject, operation, ext_field, line_ending, now_sf()),
            )
            job = self._job(conn, job_id)
        return json_response(200, self._job_json(job))

    def upload(self, request: Request) -> Response:
        if "text/csv" not in request.headers.get("Content-Type", ""):
            return sf_errors(400, "Content-Type must be text/csv", "INVALIDCONTENTTYPE")
        if len(request.body) > MAX_JOB_BYTES:
            return sf_errors(400, "The upload exceeds 150 MB; split it into several jobs", "INVALIDBATCH")
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError:
            return sf_errors(400, "InvalidBatch : the CSV is not valid UTF-8", "INVALIDBATCH")
        with self.store.transaction() as conn:
            job = self._job(conn, request.params["job"])
            if job["state"] != "Open" or job["csv"] is not None:
                return sf_errors(400, "Job is not open for data upload (one upload per job)", "INVALIDJOBSTATE")
            conn.execute("UPDATE sf_jobs SET csv = ? WHERE id = ?", (text, job["id"]))
        return Response(201)

    def set_state(self, request: Request) -> Response:
        """Close an open job (``UploadComplete``: queued, answered at once) or abort one not finished yet.

        An abort stops a job at any point before its outcome: open, queued or half-processed. Chunks already
        processed stay written and reported, the rows after them are ``unprocessedrecords``."""
        state = sf_json_object(request).get("state")
        with self.store.transaction() as conn:
            job = self._job(conn, request.params["job"])
            if state == "Aborted" and job["state"] in {"Open", *PENDING} and job["final_state"] is None:
                self._abort(conn, job)
            elif state == "UploadComplete" and job["state"] == "Open":
                conn.execute("UPDATE sf_jobs SET state = 'UploadComplete' WHERE id = ?", (job["id"],))
            else:
                return sf_errors(400, f"Cannot change state from {job['state']} to {state}", "INVALIDJOBSTATE")
            job = self._job(conn, job["id"])
        if state == "UploadComplete":
            self._ensure_worker()
            self._queue.put(job["id"])  # after the commit: the worker must see the closed job
            if self.config.faults.bulk_close_delay:
                time.sleep(self.config.faults.bulk_close_delay)  # the close landed; its answer comes late
        return json_response(200, self._job_json(job))

    def _abort(self, conn: sqlite3.Connection, job: sqlite3.Row) -> None:
        """Mark the job aborted where it stands. The worker checks the job in the same transaction as each
        chunk, so ``processed`` here is exact: nothing after it is written."""
        try:
            header, data = job_rows(job)
        except csv.Error:  # a CSV the job could not have processed: hand it back as it came
            header, data = [], []
        unprocessed = to_csv(header, data[job["processed"] or 0 :]) if header else (job["csv"] or "")
        conn.execute(
            "UPDATE sf_jobs SET state = 'Aborted', final_state = 'Aborted', unprocessed_csv = ?,"
            " successful_csv = coalesce(successful_csv, ?), failed_csv = coalesce(failed_csv, ?) WHERE id = ?",
            (unprocessed, *_result_headers(header), job["id"]),
        )

    def info(self, request: Request) -> Response:
        """The job as it is; once processed, ``InProgress`` for a configurable number of polls more, then its
        final state (so every client meets ``InProgress`` however fast the job ran)."""
        with self.store.transaction() as conn:
            job = self._job(conn, request.params["job"])
            if job["state"] in PENDING and job["final_state"] is not None:
                polls = job["polls"] + 1
                done = polls > self.config.salesforce_bulk_polls_before_complete
                state = job["final_state"] if done else "InProgress"
                conn.execute("UPDATE sf_jobs SET polls = ?, state = ? WHERE id = ?", (polls, state, job["id"]))
                job = self._job(conn, job["id"])
        return json_response(200, self._job_json(job))

    def results(self, request: Request) -> Response:
        columns = RESULT_COLUMNS.get(request.params["kind"].lower())
        if columns is None:
            return sf_errors(404, f"The requested resource does not exist: {request.params['kind']}", "NOT_FOUND")
        job_column, chunk_column = columns
        with self.store.lock:
            job = self._job(self.store.conn, request.params["job"])
            if job["state"] not in FINISHED:
                return sf_errors(400, "Job results are available once the job has completed", "INVALIDJOBSTATE")
            chunks = (
                self.store.conn.execute(
                    f"SELECT {chunk_column} FROM sf_job_chunks WHERE job_id = ? ORDER BY first_row", (job["id"],)
                ).fetchall()
                if chunk_column
                else []
            )
        return csv_response(200, (job[job_column] or "") + "".join(row[0] for row in chunks))

    # --- processing ----------------------------------------------------------------------------------
    def _job(self, conn: sqlite3.Connection, raw_id: str) -> sqlite3.Row:
        job_id = normalize_salesforce_id(raw_id)
        job = conn.execute("SELECT * FROM sf_jobs WHERE id = ?", (job_id,)).fetchone() if job_id else None
        if job is None:
            raise Refusal(sf_errors(404, "Job not found", "NOT_FOUND"))
        return job

    def _work(self) -> None:
        """The queue's one worker: jobs run in the order they were closed, like one org's Bulk queue. It
        outlives any one job's trouble: a store held by another writer (someone at the ``sqlite3`` prompt)
        puts the job back in the queue, a sandbox bug fails that job alone."""
        while not self._stopping.is_set():
            job_id = self._queue.get()
            if job_id is None:
                return
            delay = self.config.faults.bulk_queue_delay
            if delay and self._stopping.wait(delay):
                return
            try:
                self._process(job_id)
            except sqlite3.OperationalError as exc:
                if self._stopping.is_set():
                    return
                if "locked" not in str(exc) and "busy" not in str(exc):
                    self._fail_whole(job_id, exc)
                    continue
                log.warning("sandbox Bulk job %s waits: %s", job_id, exc)
                if self._stopping.wait(RETRY_LOCKED_S):
                    return
                self._queue.put(job_id)  # resumes from its last committed chunk
            except Exception as exc:
                if self._stopping.is_set():
                    return
                self._fail_whole(job_id, exc)

    def _fail_whole(self, job_id: str, exc: Exception) -> None:
        """A job the worker cannot run ends ``Failed`` (never ``InProgress`` for ever); rows it wrote stay."""
        log.error("sandbox Bulk job %s failed: %s", job_id, exc, exc_info=exc)
        try:
            with self.store.transaction() as conn:
                conn.execute(
                    "UPDATE sf_jobs SET final_state = 'Failed', error_message = ?,"
                    " state = CASE WHEN state = 'UploadComplete' THEN 'InProgress' ELSE state END"
                    " WHERE id = ? AND final_state IS NULL",
                    (f"InternalServerError : {exc}", job_id),
                )
        except Exception:  # the store itself is failing: the job is re-queued at the next start
            log.exception("could not record the failure of sandbox Bulk job %s", job_id)

    def _ensure_worker(self) -> None:
        """A worker that died of something unforeseen is replaced when the next job is closed."""
        if not self._worker.is_alive() and not self._stopping.is_set():
            log.error("the sandbox Bulk worker had stopped; starting a new one")
            self._worker = threading.Thread(target=self._work, name="sandbox-bulk-worker", daemon=True)
            self._worker.start()

    def _process(self, job_id: str) -> None:
        """Run a closed job chunk by chunk from where it stands. Whole-job problems fail it before any row.
        Every step re-reads the job in its own transaction: a job aborted meanwhile is left as the abort
        left it."""
        with self.store.lock:
            job = self._job(self.store.conn, job_id)
        if job["final_state"] is not None:
            return None  # aborted while it waited in the queue
        try:
            header, data = job_rows(job)  # outside the lock: 100 MiB takes seconds to parse
        except csv.Error as exc:
            with self.store.transaction() as conn:
                return self._fail(conn, job, f"InvalidBatch : {exc}", [], [])
        with self.store.transaction() as conn:
            job = self._job(conn, job_id)
            if job["final_state"] is not None:
                return None
            fields = self.records.fields(conn, job["object"])
            key = "Id" if job["operation"] == "update" else job["external_id_field"]
            problem = _header_problem(header, fields, key, job["operation"])
            if problem:
                return self._fail(conn, job, problem, header, data)
            successful, failed = _result_headers(header)
            conn.execute(
                "UPDATE sf_jobs SET state = 'InProgress', successful_csv = ?, failed_csv = ? WHERE id = ?",
                (successful, failed, job_id),
            )
        limit = self.config.faults.bulk_fail_after
        processed, rest = (data, []) if limit is None or limit >= len(data) else (data[:limit], data[limit:])
        while True:
            if self._stopping.is_set():
                return None  # resumed from its next chunk when the sandbox starts again
            with self.store.transaction() as conn:
                # The stored progress, not a local counter, says which chunk is next: another sandbox on the
                # same state file that resumed the same job can never make a chunk run twice.
                current = self._job(conn, job_id)
                if current["final_state"] is not None:
                    return None  # aborted: the abort reported the rows from here on as unprocessed
                first = current["processed"] or 0
                if first >= len(processed):
                    break
                self._process_chunk(conn, job, fields, header, first, processed[first : first + CHUNK_ROWS])
        message = (
            f"InternalServerError : the job stopped after {len(processed)} of {len(data)} records "
            "(sandbox fault bulk_fail_after)"
            if rest
            else None
        )
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE sf_jobs SET final_state = ?, error_message = ?, unprocessed_csv = ?"
                " WHERE id = ? AND final_state IS NULL",
                ("Failed" if rest else "JobComplete", message, to_csv(header, rest), job_id),
            )
        return None

    def _process_chunk(
        self,
        conn: sqlite3.Connection,
        job: sqlite3.Row,
        fields: dict[str, sqlite3.Row],
        header: list[str],
        first: int,
        rows: list[list[str]],
    ) -> None:
        """Write one chunk and store its results and the job's progress in the same transaction."""
        outcomes = self._write_rows(conn, job, fields, header, rows)
        pairs = list(zip(rows, outcomes, strict=True))
        ok_rows = [[o.record_id, str(o.created).lower(), *row] for row, o in pairs if o.ok]
        failed_rows = [["", f"{o.code}:{o.message}", *row] for row, o in pairs if not o.ok]
        # Result order is not guaranteed by Salesforce: shuffle so clients must join on the key column.
        self._shuffle.shuffle(ok_rows)
        self._shuffle.shuffle(failed_rows)
        conn.execute(
            "INSERT OR REPLACE INTO sf_job_chunks (job_id, first_row, successful, failed) VALUES (?, ?, ?, ?)",
            (job["id"], first, csv_text(ok_rows), csv_text(failed_rows)),
        )
        conn.execute(
            "UPDATE sf_jobs SET processed = ?, failed = coalesce(failed, 0) + ? WHERE id = ?",
            (first + len(rows), len(failed_rows), job["id"]),
        )

    def _write_rows(
        self,
        conn: sqlite3.Connection,
        job: sqlite3.Row,
        fields: dict[str, sqlite3.Row],
        header: list[str],
        rows: list[list[str]],
    ) -> list[RowResult]:
        """Parse and write rows; a row that does not parse fails alone, in place."""
        parsed = [parse_csv_row(fields, header, row) for row in rows]
        valid = [values for values, error in parsed if error is None]
        if job["operation"] == "update":
            written = self.records.update(conn, job["object"], fields, [(str(v.pop("Id", "") or ""), v) for v in valid])
        else:
            written = self.records.upsert(conn, job["object"], job["external_id_field"], fields, valid)
        results = iter(written)
        return [RowResult(None, False, *error) if error else next(results) for _, error in parsed]

    def _fail(self, conn: sqlite3.Connection, job: sqlite3.Row, message: str, header: list[str], data: list) -> None:
        conn.execute(
            "UPDATE sf_jobs SET state = 'Failed', final_state = 'Failed', error_message = ?, unprocessed_csv = ?"
            " WHERE id = ? AND final_state IS NULL",
            (message, to_csv(header, data) if header else "", job["id"]),
        )

    def _job_json(self, job: sqlite3.Row) -> dict[str, Any]:
        return {
            "id": job["id"],
            "operation": job["operation"],
            "object": job["object"],
            "createdById": self.config.salesforce_user_id,
            "createdDate": job["created_at"],
            "systemModstamp": now_sf(),
            "state": job["state"],
            "externalIdFieldName": job["external_id_field"],
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.config.salesforce_api_version),
            "lineEnding": job["line_ending"],
            "columnDelimiter": "COMMA",
            "numberRecordsProcessed": job["processed"] or 0,
            "numberRecordsFailed": job["failed"] or 0,
            "errorMessage": job["error_message"],
        }


def check_external_id(fields: dict[str, sqlite3.Row], sobject: str, ext_field: Any) -> Response | None:
    field = fields.get(ext_field) if isinstance(ext_field, str) else None
    if field is None:
        return sf_errors(
            404, f"Provided external ID field does not exist or is not accessible: {ext_field}", "NOT_FOUND"
        )
    if not (field["external_id"] or field["id_lookup"]):
        return sf_errors(
            400,
            f"Field {ext_field} is not an external ID or indexed field for {sobject}",
            "INVALID_FIELD",
            [ext_field],
        )
    return None


def _header_problem(header: list[str], fields: dict[str, sqlite3.Row], key: str, operation: str) -> str | None:
    if not header:
        return "InvalidBatch : no data"
    unknown = [h for h in header if h not in fields]
    if unknown:
        return f"InvalidBatch : Field name not found : {unknown[0]}"
    if key not in header:
        return (
            "InvalidBatch : Id not specified in an update call"
            if operation == "update"
            else f"InvalidBatch : missing external id column {key}"
        )
    return None


def sf_json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object, or a whole-request ``JSON_PARSER_ERROR``."""
    return json_object(request, lambda reason: sf_errors(400, reason, "JSON_PARSER_ERROR"))


def parse_csv_row(
    fields: dict[str, sqlite3.Row], header: list[str], row: list[str]
) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """Bulk CSV cell -> value: empty leaves the field unchanged, ``#N/A`` sets it to null."""
    values: dict[str, Any] = {}
    if len(row) != len(header):
        return values, ("INVALID_FIELD", f"row has {len(row)} columns, header has {len(header)}")
    for name, cell in zip(header, row, strict=True):
        if cell == "":
            continue
        if cell == BULK_NULL:
            values[name] = None
            continue
        value = _cell_value(fields[name]["type"], cell)
        if value is None:
            return values, ("INVALID_FIELD", f"{name}: value not of required type: {cell}")
        values[name] = value
    return values, None


def _cell_value(typ: str, cell: str) -> Any:
    """The typed value of a non-empty cell, None when it does not parse."""
    if typ in NUMERIC:
        try:
            number = float(cell)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    if typ == "boolean":
        lowered = cell.lower()
        return lowered in {"true", "1"} if lowered in {"true", "false", "1", "0"} else None
    if typ in {"date", "datetime"}:
        return cell if parse_temporal(typ, cell) is not None else None
    return cell


def to_csv(header: list[str], rows: list[list[Any]]) -> str:
    return csv_text([header, *rows])


def job_rows(job: sqlite3.Row) -> tuple[list[str], list[list[str]]]:
    """The uploaded CSV as (header, non-empty data rows); raises ``csv.Error`` on a malformed file."""
    text = job["csv"] or ""
    if job["line_ending"] == "CRLF":
        text = text.replace("\r\n", "\n")
    rows = list(read_csv_rows(text))
    return (rows[0], [r for r in rows[1:] if r]) if rows else ([], [])


def _result_headers(header: list[str]) -> tuple[str, str]:
    """The header lines of the successful and failed results (each chunk adds its rows after them)."""
    return to_csv(["sf__Id", "sf__Created", *header], []), to_csv(["sf__Id", "sf__Error", *header], [])
