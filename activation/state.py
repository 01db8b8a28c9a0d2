"""Sync state in the warehouse (schema ``activation``): what each CRM instance confirmed, current rejects,
and run history. Written only from the engine's main thread — a DuckDB connection is not for sharing.

Every row belongs to one CRM *instance* (a HubSpot portal id, a Salesforce org id), not just to "HubSpot":
a sync pointed at another portal or org finds no state there and sends everything, instead of trusting
what a different CRM (say, the local sandbox) confirmed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd

from activation.destination import BY_ID, BY_KEY, Address, OutgoingRecord, RecordResult
from activation.diff import CLEARING, ERASE, Confirmed

log = logging.getLogger(__name__)

SCHEMA = "activation"
STATE_VERSION = 2  # 1: state per destination/CRM object, before CRM instances and update mode

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.sync_state (
    destination VARCHAR NOT NULL,
    instance VARCHAR NOT NULL,
    object VARCHAR NOT NULL,
    record_key VARCHAR NOT NULL,
    payload_hash VARCHAR NOT NULL,
    cleared BOOLEAN NOT NULL,
    crm_object VARCHAR NOT NULL,
    crm_id VARCHAR,
    confirmed_at TIMESTAMP NOT NULL,
    run_id VARCHAR NOT NULL,
    erased BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (destination, instance, object, record_key)
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.rejects (
    destination VARCHAR NOT NULL,
    instance VARCHAR NOT NULL,
    object VARCHAR NOT NULL,
    record_key VARCHAR NOT NULL,
    action VARCHAR NOT NULL,
    crm_object VARCHAR,
    error_code VARCHAR,
    reason VARCHAR,
    payload VARCHAR,
    attempts INTEGER NOT NULL,
    first_failed_at TIMESTAMP NOT NULL,
    last_failed_at TIMESTAMP NOT NULL,
    run_id VARCHAR NOT NULL,
    PRIMARY KEY (destination, instance, object, record_key)
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.sync_runs (
    run_id VARCHAR PRIMARY KEY,
    destination VARCHAR NOT NULL,
    instance VARCHAR,
    object VARCHAR NOT NULL,
    crm_object VARCHAR NOT NULL,
    relation VARCHAR NOT NULL,
    mode VARCHAR NOT NULL,
    dry_run BOOLEAN NOT NULL,
    status VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    duration_s DOUBLE NOT NULL,
    desired BIGINT, unmatched BIGINT, to_send_new BIGINT, to_update BIGINT, to_clear BIGINT, unchanged BIGINT,
    sent BIGINT, created BIGINT, updated BIGINT, cleared BIGINT, failed BIGINT, not_found BIGINT,
    deferred BIGINT, api_calls BIGINT, rate_limited BIGINT, retries BIGINT,
    message VARCHAR
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.state_version (version INTEGER NOT NULL);
"""
# Create mode's write-ahead log: a row is written *before* a create is sent and deleted once its outcome is
# known (confirmed, refused, or never sent). A row that outlives its run — a lost answer, a killed process —
# means "this record may exist": the next run looks it up in the CRM before creating it. (Added after
# STATE_VERSION 2 without changing it: the table is created wherever it is missing.)
ATTEMPTS_DDL = f"""
CREATE TABLE IF NOT EXISTS {SCHEMA}.create_attempts (
    destination VARCHAR NOT NULL,
    instance VARCHAR NOT NULL,
    object VARCHAR NOT NULL,
    record_key VARCHAR NOT NULL,
    sent_at TIMESTAMP NOT NULL,
    run_id VARCHAR NOT NULL,
    PRIMARY KEY (destination, instance, object, record_key)
);
"""

RUN_COLUMNS = (
    "run_id", "destination", "instance", "object", "crm_object", "relation", "mode", "dry_run", "status",
    "started_at", "finished_at", "duration_s", "desired", "unmatched", "to_send_new", "to_update", "to_clear",
    "unchanged", "sent", "created", "updated", "cleared", "failed", "not_found", "deferred", "api_calls",
    "rate_limited", "retries", "message",
)  # fmt: skip


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    """Create the tables; state of the first design (no CRM instance) is renamed ``*_v1`` and kept for
    reference: it described records leadscore had created by upsert, which update mode never touches."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    existing = {
        row[0]
        for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [SCHEMA]
        ).fetchall()
    }
    conn.execute(ATTEMPTS_DDL)
    if "state_version" in existing:
        return
    conn.execute("BEGIN TRANSACTION")  # all or nothing: a crash half-way must not mix the two layouts
    try:
        if "sync_state" in existing:
            for table in ("sync_state", "rejects", "sync_runs"):
                if table in existing:
                    conn.execute(f"DROP TABLE IF EXISTS {SCHEMA}.{table}_v1")
                    conn.execute(f"ALTER TABLE {SCHEMA}.{table} RENAME TO {table}_v1")
            log.warning("activation state of the previous design kept as activation.*_v1; every record is sent again")
        conn.execute(DDL)
        conn.execute(f"INSERT INTO {SCHEMA}.state_version VALUES ({STATE_VERSION})")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def confirmed_state(conn: duckdb.DuckDBPyConnection, scope: StateScope) -> dict[str, Confirmed]:
    """What this CRM instance confirmed for each record of a mapping object."""
    rows = conn.execute(
        f"SELECT record_key, payload_hash, cleared, crm_object, crm_id, erased FROM {SCHEMA}.sync_state "
        "WHERE destination = ? AND instance = ? AND object = ?",
        scope.params,
    ).fetchall()
    return {
        key: Confirmed(digest, cleared, _confirmed_address(key, crm_object, crm_id), erased)
        for key, digest, cleared, crm_object, crm_id, erased in rows
    }


def _confirmed_address(key: str, crm_object: str, crm_id: str | None) -> Address:
    """A confirmed record is addressed by the id the CRM returned; upsert records without one by their key."""
    return Address(crm_object, BY_ID, crm_id) if crm_id else Address(crm_object, BY_KEY, key)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class StateScope:
    """The rows one sync owns: one mapping object in one CRM instance of one destination."""

    destination: str
    instance: str
    object: str

    @property
    def params(self) -> list[str]:
        return [self.destination, self.instance, self.object]


@dataclass
class StateWriter:
    """Buffers confirmations and rejects and writes them in bulk: one statement per flush, not per row."""

    conn: duckdb.DuckDBPyConnection
    scope: StateScope
    run_id: str

    def __post_init__(self) -> None:
        self._confirmed: list[tuple[OutgoingRecord, RecordResult]] = []
        self._rejected: list[tuple[OutgoingRecord, RecordResult]] = []

    @property
    def pending(self) -> int:
        return len(self._confirmed) + len(self._rejected)

    def add(self, record: OutgoingRecord, result: RecordResult) -> None:
        (self._confirmed if result.ok else self._rejected).append((record, result))

    def forget(self, keys: Sequence[str]) -> None:
        """Delete the state of erased people whose CRM fields are cleared: nothing of them stays here."""
        frame = pd.DataFrame({"record_key": list(keys)}, dtype="object")
        if len(frame):
            where = "destination = ? AND instance = ? AND object = ?"
            for table in ("sync_state", "rejects"):
                sql = f"DELETE FROM {{table}} WHERE {where} AND record_key IN (SELECT record_key FROM {{frame}})"
                self._write(frame, table, sql, self.scope.params)

    def flush(self) -> None:
        stamp = now()
        scope = self.scope
        where = "destination = ? AND instance = ? AND object = ?"
        erased = [record.key for record, _ in self._confirmed if record.action == ERASE]
        self._confirmed = [(r, res) for r, res in self._confirmed if r.action != ERASE]
        self.forget(erased)
        if self._confirmed:
            frame = pd.DataFrame(
                {
                    "destination": scope.destination,
                    "instance": scope.instance,
                    "object": scope.object,
                    "record_key": [r.key for r, _ in self._confirmed],
                    "payload_hash": [r.payload_hash for r, _ in self._confirmed],
                    "cleared": [r.action in CLEARING for r, _ in self._confirmed],
                    "crm_object": [_crm_object(r) for r, _ in self._confirmed],
                    "crm_id": [_crm_id(r, res) for r, res in self._confirmed],
                    "confirmed_at": stamp,
                    "run_id": self.run_id,
                    "erased": False,
                },
                dtype="object",
            )
            self._write(frame, "sync_state", "INSERT OR REPLACE INTO {table} SELECT * FROM {frame}")
            self._write(
                frame[["record_key"]],
                "rejects",
                f"DELETE FROM {{table}} WHERE {where} AND record_key IN (SELECT record_key FROM {{frame}})",
                scope.params,
            )
            self._confirmed.clear()
        if self._rejected:
            frame = pd.DataFrame(
                {
                    "destination": scope.destination,
                    "instance": scope.instance,
                    "object": scope.object,
                    "record_key": [r.key for r, _ in self._rejected],
                    "action": [r.action for r, _ in self._rejected],
                    "crm_object": [r.address.object if r.address else None for r, _ in self._rejected],
                    "error_code": [res.error_code for _, res in self._rejected],
                    "reason": [res.message[:2000] for _, res in self._rejected],
                    "payload": [json.dumps(dict(r.payload), default=str) for r, _ in self._rejected],
                    "attempts": 1,
                    "first_failed_at": stamp,
                    "last_failed_at": stamp,
                    "run_id": self.run_id,
                },
                dtype="object",
            )
            # Keep the first failure time and count attempts across runs.
            self._write(
                frame,
                "rejects",
                "INSERT INTO {table} SELECT * FROM {frame} "
                "ON CONFLICT (destination, instance, object, record_key) DO UPDATE "
                "SET action = excluded.action, crm_object = excluded.crm_object, error_code = excluded.error_code, "
                "reason = excluded.reason, payload = excluded.payload, attempts = rejects.attempts + 1, "
                "last_failed_at = excluded.last_failed_at, run_id = excluded.run_id",
            )
            self._rejected.clear()

    def _write(self, frame: pd.DataFrame, table: str, sql: str, params: Sequence[Any] = ()) -> None:
        name = f"_activation_{table}_batch"
        self.conn.register(name, frame)
        try:
            self.conn.execute(sql.format(table=f"{SCHEMA}.{table}", frame=name), list(params))
        finally:
            self.conn.unregister(name)


def _crm_object(record: OutgoingRecord) -> str:
    return record.address.object if record.address else ""


def _crm_id(record: OutgoingRecord, result: RecordResult) -> str | None:
    """The record id the CRM confirmed, else the id the record was addressed by."""
    if result.crm_id:
        return result.crm_id
    return record.address.value if record.address and record.address.match == BY_ID else None


def forget_resolved_rejects(conn: duckdb.DuckDBPyConnection, scope: StateScope, pending_keys: Sequence[str]) -> None:
    """Drop rejects of records that no longer need sending (reverted, removed): they are moot, not open."""
    frame = pd.DataFrame({"record_key": list(pending_keys)}, dtype="object")
    conn.register("_activation_pending", frame)
    try:
        conn.execute(
            f"DELETE FROM {SCHEMA}.rejects WHERE destination = ? AND instance = ? AND object = ? "
            "AND record_key NOT IN (SELECT record_key FROM _activation_pending)",
            scope.params,
        )
    finally:
        conn.unregister("_activation_pending")


def create_attempts(conn: duckdb.DuckDBPyConnection, scope: StateScope) -> dict[str, dt.datetime]:
    """Keys whose create may have reached the CRM without leadscore recording the outcome, with when."""
    rows = conn.execute(
        f"SELECT record_key, sent_at FROM {SCHEMA}.create_attempts WHERE destination = ? AND instance = ? "
        "AND object = ?",
        scope.params,
    ).fetchall()
    return dict(rows)


def record_attempts(conn: duckdb.DuckDBPyConnection, scope: StateScope, keys: Sequence[str], run_id: str) -> None:
    """Write ahead, before sending: these creates are about to leave (committed when this returns)."""
    frame = pd.DataFrame({"record_key": list(keys)}, dtype="object")
    if not len(frame):
        return
    conn.register("_activation_attempts", frame)
    try:
        conn.execute(
            f"INSERT OR REPLACE INTO {SCHEMA}.create_attempts SELECT ?, ?, ?, record_key, ?, ? "
            "FROM _activation_attempts",
            [*scope.params, now(), run_id],
        )
    finally:
        conn.unregister("_activation_attempts")


def settle_attempts(conn: duckdb.DuckDBPyConnection, scope: StateScope, keys: Sequence[str]) -> None:
    """The outcome of these creates is recorded (confirmed, refused, or they were never sent)."""
    frame = pd.DataFrame({"record_key": list(keys)}, dtype="object")
    if not len(frame):
        return
    conn.register("_activation_settled", frame)
    try:
        conn.execute(
            f"DELETE FROM {SCHEMA}.create_attempts WHERE destination = ? AND instance = ? AND object = ? "
            "AND record_key IN (SELECT record_key FROM _activation_settled)",
            scope.params,
        )
    finally:
        conn.unregister("_activation_settled")


def record_run(conn: duckdb.DuckDBPyConnection, values: dict[str, Any]) -> None:
    placeholders = ", ".join("?" * len(RUN_COLUMNS))
    conn.execute(
        f"INSERT INTO {SCHEMA}.sync_runs ({', '.join(RUN_COLUMNS)}) VALUES ({placeholders})",
        [values.get(c) for c in RUN_COLUMNS],
    )
