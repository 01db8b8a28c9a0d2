"""The sandbox's state: one SQLite file a person can open (``sqlite3 data/crm_sandbox.sqlite``).

Records keep their fields as a JSON document (``json_extract(properties, '$.leadscore_score')``), with the
values of unique properties / external ids indexed in a side table. Every request runs in one transaction
under one lock: SQLite has one writer anyway, and it keeps each batch atomic.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS hs_property_groups (
    object_type TEXT NOT NULL, name TEXT NOT NULL, label TEXT NOT NULL, display_order INTEGER,
    PRIMARY KEY (object_type, name));
CREATE TABLE IF NOT EXISTS hs_properties (
    object_type TEXT NOT NULL, name TEXT NOT NULL, label TEXT, type TEXT NOT NULL, field_type TEXT NOT NULL,
    group_name TEXT, description TEXT, has_unique_value INTEGER NOT NULL DEFAULT 0, options TEXT,
    hubspot_defined INTEGER NOT NULL DEFAULT 0, read_only INTEGER NOT NULL DEFAULT 0, created_at TEXT,
    PRIMARY KEY (object_type, name));
CREATE TABLE IF NOT EXISTS hs_objects (
    id INTEGER PRIMARY KEY, object_type TEXT NOT NULL, properties TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hs_unique_values (
    object_type TEXT NOT NULL, property TEXT NOT NULL, value TEXT NOT NULL, object_id INTEGER NOT NULL,
    PRIMARY KEY (object_type, property, value));
CREATE INDEX IF NOT EXISTS hs_unique_values_by_object ON hs_unique_values (object_id);
CREATE TABLE IF NOT EXISTS sf_fields (
    sobject TEXT NOT NULL, name TEXT NOT NULL, label TEXT, type TEXT NOT NULL, length INTEGER,
    external_id INTEGER NOT NULL DEFAULT 0, id_lookup INTEGER NOT NULL DEFAULT 0,
    createable INTEGER NOT NULL DEFAULT 1, updateable INTEGER NOT NULL DEFAULT 1,
    nillable INTEGER NOT NULL DEFAULT 1, is_unique INTEGER NOT NULL DEFAULT 0, custom INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sobject, name));
CREATE TABLE IF NOT EXISTS sf_records (
    id TEXT PRIMARY KEY, sobject TEXT NOT NULL, fields TEXT NOT NULL, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sf_external_ids (
    sobject TEXT NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL, record_id TEXT NOT NULL,
    PRIMARY KEY (sobject, field, value));
CREATE INDEX IF NOT EXISTS sf_external_ids_by_record ON sf_external_ids (record_id);
CREATE TABLE IF NOT EXISTS sf_jobs (
    id TEXT PRIMARY KEY, object TEXT NOT NULL, operation TEXT NOT NULL, external_id_field TEXT,
    line_ending TEXT, state TEXT NOT NULL, csv TEXT, error_message TEXT, processed INTEGER DEFAULT 0,
    failed INTEGER DEFAULT 0, polls INTEGER DEFAULT 0, successful_csv TEXT, failed_csv TEXT,
    unprocessed_csv TEXT, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS request_log (
    id INTEGER PRIMARY KEY, at TEXT NOT NULL, api TEXT NOT NULL, route TEXT NOT NULL, method TEXT NOT NULL,
    path TEXT NOT NULL, status INTEGER NOT NULL, note TEXT);
"""


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection inside ``BEGIN IMMEDIATE ... COMMIT`` (rolled back on error), under the lock."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def close(self) -> None:
        with self.lock:
            self.conn.close()


def select_in(conn: sqlite3.Connection, sql: str, head: tuple[Any, ...], values: Iterable[Any]) -> list[sqlite3.Row]:
    """Run ``sql`` with its ``IN ({})`` expanded for ``values``, in chunks under SQLite's parameter limit."""
    values = list(values)
    rows: list[sqlite3.Row] = []
    for start in range(0, len(values), 500):
        chunk = values[start : start + 500]
        rows += conn.execute(sql.format(",".join("?" * len(chunk))), (*head, *chunk)).fetchall()
    return rows
