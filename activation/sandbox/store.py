"""The sandbox's state: one SQLite file a person can open (``sqlite3 data/crm_sandbox.sqlite``).

Records keep their fields as a JSON document (``json_extract(properties, '$.leadscore_score')``), with the
values of unique properties / external ids indexed in a side table. Every request runs in one transaction
under one lock: SQLite has one writer anyway, and it keeps each batch atomic.

The file carries a schema version in ``meta``. A file of another version (version 1 had no ``meta``) is
moved aside, not migrated: version 1 held records leadscore had *created* under the old upsert design,
while a version-2 store starts as a copy of the company's CRM.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hs_property_groups (
    object_type TEXT NOT NULL, name TEXT NOT NULL, label TEXT NOT NULL, display_order INTEGER,
    PRIMARY KEY (object_type, name));
CREATE TABLE IF NOT EXISTS hs_properties (
    object_type TEXT NOT NULL, name TEXT NOT NULL, label TEXT, type TEXT NOT NULL, field_type TEXT NOT NULL,
    group_name TEXT, description TEXT, has_unique_value INTEGER NOT NULL DEFAULT 0, options TEXT,
    hubspot_defined INTEGER NOT NULL DEFAULT 0, read_only INTEGER NOT NULL DEFAULT 0, created_at TEXT,
    PRIMARY KEY (object_type, name));
CREATE TABLE IF NOT EXISTS hs_objects (
    id INTEGER NOT NULL, object_type TEXT NOT NULL, properties TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, archived INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (object_type, id));
CREATE TABLE IF NOT EXISTS hs_owners (
    id INTEGER PRIMARY KEY, email TEXT, first_name TEXT, last_name TEXT, user_id INTEGER,
    archived INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hs_associations (
    from_type TEXT NOT NULL, from_id INTEGER NOT NULL, to_type TEXT NOT NULL, to_id INTEGER NOT NULL,
    type_id INTEGER NOT NULL, PRIMARY KEY (from_type, from_id, to_type, to_id, type_id));
CREATE TABLE IF NOT EXISTS hs_unique_values (
    object_type TEXT NOT NULL, property TEXT NOT NULL, value TEXT NOT NULL, object_id INTEGER NOT NULL,
    PRIMARY KEY (object_type, property, value));
CREATE INDEX IF NOT EXISTS hs_unique_values_by_object ON hs_unique_values (object_type, object_id);
CREATE TABLE IF NOT EXISTS sf_fields (
    sobject TEXT NOT NULL, name TEXT NOT NULL, label TEXT, type TEXT NOT NULL, length INTEGER,
    external_id INTEGER NOT NULL DEFAULT 0, id_lookup INTEGER NOT NULL DEFAULT 0,
    createable INTEGER NOT NULL DEFAULT 1, updateable INTEGER NOT NULL DEFAULT 1,
    nillable INTEGER NOT NULL DEFAULT 1, defaulted_on_create INTEGER NOT NULL DEFAULT 0,
    is_unique INTEGER NOT NULL DEFAULT 0, custom INTEGER NOT NULL DEFAULT 0, reference_to TEXT,
    PRIMARY KEY (sobject, name));
CREATE TABLE IF NOT EXISTS sf_records (
    id TEXT PRIMARY KEY, sobject TEXT NOT NULL, fields TEXT NOT NULL, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS sf_records_by_sobject ON sf_records (sobject, deleted);
CREATE TABLE IF NOT EXISTS sf_external_ids (
    sobject TEXT NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL, record_id TEXT NOT NULL,
    PRIMARY KEY (sobject, field, value));
CREATE INDEX IF NOT EXISTS sf_external_ids_by_record ON sf_external_ids (record_id);
CREATE TABLE IF NOT EXISTS sf_jobs (
    id TEXT PRIMARY KEY, object TEXT NOT NULL, operation TEXT NOT NULL, external_id_field TEXT,
    line_ending TEXT, state TEXT NOT NULL, final_state TEXT, csv TEXT, error_message TEXT,
    processed INTEGER DEFAULT 0, failed INTEGER DEFAULT 0, polls INTEGER DEFAULT 0, successful_csv TEXT,
    failed_csv TEXT, unprocessed_csv TEXT, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sf_job_chunks (
    job_id TEXT NOT NULL, first_row INTEGER NOT NULL, successful TEXT NOT NULL, failed TEXT NOT NULL,
    PRIMARY KEY (job_id, first_row));
CREATE TABLE IF NOT EXISTS request_log (
    id INTEGER PRIMARY KEY, at TEXT NOT NULL, api TEXT NOT NULL, route TEXT NOT NULL, method TEXT NOT NULL,
    path TEXT NOT NULL, status INTEGER NOT NULL, note TEXT);
"""


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        in_memory = str(path) == ":memory:"
        if not in_memory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            set_aside_other_versions(self.path)
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)
        self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

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

    def identity(self, key: str, make: Callable[[], str], wanted: str | None = None) -> str:
        """A value this state file keeps for good (its portal id, its org id): ``wanted`` when given, else
        the one drawn by ``make`` when the file was created. A new state file is a new CRM instance."""
        with self.transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            value = wanted or (row[0] if row else make())
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
        return value

    def close(self) -> None:
        with self.lock:
            self.conn.close()


def stored_version(path: Path) -> int | None:
    """The schema version of the state file at ``path``: None when there is none yet (or it is empty),
    1 for a store without ``meta`` (the first design), 0 for a file SQLite cannot read."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    try:
        conn = sqlite3.connect(str(path))
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:
                return None
            if "meta" not in tables:
                return 1
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            return int(row[0]) if row and str(row[0]).isdigit() else 0
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return 0


def set_aside_other_versions(path: Path) -> Path | None:
    """Move a state file of another schema version to ``<name>.v<N>-<UTC timestamp>.bak`` (with its WAL
    files), so the sandbox starts fresh without destroying what a person may still want to look at."""
    version = stored_version(path)
    if version is None or version == SCHEMA_VERSION:
        return None
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    label = f"v{version}" if version else "unreadable"
    target = path.with_name(f"{path.name}.{label}-{stamp}.bak")
    path.rename(target)
    for suffix in ("-wal", "-shm"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.rename(target.with_name(target.name + suffix))
    log.warning(
        "CRM sandbox state %s was written by schema version %s (this sandbox writes version %s): moved it to %s"
        " and starting a fresh store",
        path,
        label,
        SCHEMA_VERSION,
        target,
    )
    return target


def select_in(conn: sqlite3.Connection, sql: str, head: tuple[Any, ...], values: Iterable[Any]) -> list[sqlite3.Row]:
    """Run ``sql`` with its ``IN ({})`` expanded for ``values``, in chunks under SQLite's parameter limit."""
    values = list(values)
    rows: list[sqlite3.Row] = []
    for start in range(0, len(values), 500):
        chunk = values[start : start + 500]
        rows += conn.execute(sql.format(",".join("?" * len(chunk))), (*head, *chunk)).fetchall()
    return rows
