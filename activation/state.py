"""Sync state in the warehouse (schema ``activation``): what each destination confirmed, current rejects,
and run history. Written only from the engine's main thread — a DuckDB connection is not for sharing."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd

from activation.destination import OutgoingRecord, RecordResult

SCHEMA = "activation"

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.sync_state (
    destination VARCHAR NOT NULL,
    object VARCHAR NOT NULL,
    record_key VARCHAR NOT NULL,
    payload_hash VARCHAR NOT NULL,
    cleared BOOLEAN NOT NULL,
    crm_id VARCHAR,
    confirmed_at TIMESTAMP NOT NULL,
    run_id VARCHAR NOT NULL,
    PRIMARY KEY (destination, object, record_key)
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.rejects (
    destination VARCHAR NOT NULL,
    object VARCHAR NOT NULL,
    record_key VARCHAR NOT NULL,
    action VARCHAR NOT NULL,
    error_code VARCHAR,
    reason VARCHAR,
    payload VARCHAR,
    attempts INTEGER NOT NULL,
    first_failed_at TIMESTAMP NOT NULL,
    last_failed_at TIMESTAMP NOT NULL,
    run_id VARCHAR NOT NULL,
    PRIMARY KEY (destination, object, record_key)
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.sync_runs (
    run_id VARCHAR PRIMARY KEY,
    destination VARCHAR NOT NULL,
    object VARCHAR NOT NULL,
    mapping_object VARCHAR NOT NULL,
    relation VARCHAR NOT NULL,
    dry_run BOOLEAN NOT NULL,
    status VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    duration_s DOUBLE NOT NULL,
    desired BIGINT, to_create BIGINT, to_update BIGINT, to_clear BIGINT, unchanged BIGINT,
    sent BIGINT, created BIGINT, updated BIGINT, cleared BIGINT, failed BIGINT, deferred BIGINT,
    api_calls BIGINT, rate_limited BIGINT, retries BIGINT,
    message VARCHAR
);
"""

RUN_COLUMNS = (
    "run_id", "destination", "object", "mapping_object", "relation", "dry_run", "status", "started_at",
    "finished_at", "duration_s", "desired", "to_create", "to_update", "to_clear", "unchanged", "sent", "created",
    "updated", "cleared", "failed", "deferred", "api_calls", "rate_limited", "retries", "message",
)  # fmt: skip


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(DDL)


def confirmed_hashes(conn: duckdb.DuckDBPyConnection, destination: str, crm_object: str) -> dict[str, str]:
    rows = conn.execute(
        f"SELECT record_key, payload_hash FROM {SCHEMA}.sync_state WHERE destination = ? AND object = ?",
        [destination, crm_object],
    ).fetchall()
    return dict(rows)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass
class StateWriter:
    """Buffers confirmations and rejects and writes them in bulk: one statement per flush, not per row."""

    conn: duckdb.DuckDBPyConnection
    destination: str
    crm_object: str
    run_id: str

    def __post_init__(self) -> None:
        self._confirmed: list[tuple[OutgoingRecord, RecordResult]] = []
        self._rejected: list[tuple[OutgoingRecord, RecordResult]] = []

    @property
    def pending(self) -> int:
        return len(self._confirmed) + len(self._rejected)

    def add(self, record: OutgoingRecord, result: RecordResult) -> None:
        (self._confirmed if result.ok else self._rejected).append((record, result))

    def flush(self) -> None:
        stamp = now()
        if self._confirmed:
            frame = pd.DataFrame(
                {
                    "destination": self.destination,
                    "object": self.crm_object,
                    "record_key": [r.key for r, _ in self._confirmed],
                    "payload_hash": [r.payload_hash for r, _ in self._confirmed],
                    "cleared": [r.action == "clear" for r, _ in self._confirmed],
                    "crm_id": [res.crm_id for _, res in self._confirmed],
                    "confirmed_at": stamp,
                    "run_id": self.run_id,
                }
            )
            self._write(frame, "sync_state", "INSERT OR REPLACE INTO {table} SELECT * FROM {frame}")
            self._write(
                frame[["record_key"]],
                "rejects",
                "DELETE FROM {table} WHERE destination = ? AND object = ? "
                "AND record_key IN (SELECT record_key FROM {frame})",
                [self.destination, self.crm_object],
            )
            self._confirmed.clear()
        if self._rejected:
            frame = pd.DataFrame(
                {
                    "destination": self.destination,
                    "object": self.crm_object,
                    "record_key": [r.key for r, _ in self._rejected],
                    "action": [r.action for r, _ in self._rejected],
                    "error_code": [res.error_code for _, res in self._rejected],
                    "reason": [res.message[:2000] for _, res in self._rejected],
                    "payload": [json.dumps(dict(r.payload), default=str) for r, _ in self._rejected],
                    "attempts": 1,
                    "first_failed_at": stamp,
                    "last_failed_at": stamp,
                    "run_id": self.run_id,
                }
            )
            # Keep the first failure time and count attempts across runs.
            self._write(
                frame,
                "rejects",
                "INSERT INTO {table} SELECT * FROM {frame} ON CONFLICT (destination, object, record_key) DO UPDATE "
                "SET action = excluded.action, error_code = excluded.error_code, reason = excluded.reason, "
                "payload = excluded.payload, attempts = rejects.attempts + 1, "
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


def forget_resolved_rejects(
    conn: duckdb.DuckDBPyConnection, destination: str, crm_object: str, pending_keys: Sequence[str]
) -> None:
    """Drop rejects of records that no longer need sending (reverted, removed): they are moot, not open."""
    frame = pd.DataFrame({"record_key": list(pending_keys)}, dtype="object")
    conn.register("_activation_pending", frame)
    try:
        conn.execute(
            f"DELETE FROM {SCHEMA}.rejects WHERE destination = ? AND object = ? "
            "AND record_key NOT IN (SELECT record_key FROM _activation_pending)",
            [destination, crm_object],
        )
    finally:
        conn.unregister("_activation_pending")


def record_run(conn: duckdb.DuckDBPyConnection, values: dict[str, Any]) -> None:
    placeholders = ", ".join("?" * len(RUN_COLUMNS))
    conn.execute(
        f"INSERT INTO {SCHEMA}.sync_runs ({', '.join(RUN_COLUMNS)}) VALUES ({placeholders})",
        [values.get(c) for c in RUN_COLUMNS],
    )
