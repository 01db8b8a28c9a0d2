"""Where the warehouse lives and how Python opens it.

One environment variable, ``LEADSCORE_WAREHOUSE``, names the DuckDB file for dbt's profile and for
every Python reader and writer, so tests and backfills can point everything at another file at once.
Two more bound DuckDB's memory everywhere it runs (dbt's profile and every Python connection):
``LEADSCORE_DUCKDB_MEMORY_LIMIT`` and ``LEADSCORE_DUCKDB_SPILL_DIR``, where DuckDB writes what does not
fit instead of failing or driving the machine into swap (:class:`DuckDBSettings`).
Only entry points (CLIs, the Dagster definitions) read it, through :func:`warehouse_path` with the
environment they were given; library functions take a path or, better, an open connection.
DuckDB allows one writer per file: writers are serialised by the orchestrator; readers open the file
read-only so they never hold the write lock.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

WAREHOUSE_ENV = "LEADSCORE_WAREHOUSE"
DEFAULT_WAREHOUSE = Path("data") / "warehouse.duckdb"
MEMORY_LIMIT_ENV = "LEADSCORE_DUCKDB_MEMORY_LIMIT"
SPILL_DIR_ENV = "LEADSCORE_DUCKDB_SPILL_DIR"
# DuckDB's own default is 80% of the machine. 4 GB of buffers keeps a whole process (dbt's Python, or a
# reader's pandas frames on top) within the 8 GB the bench scale is held to, on any machine.
DEFAULT_MEMORY_LIMIT = "4GB"


def warehouse_path(environ: Mapping[str, str]) -> Path:
    """The warehouse file named by ``environ`` (an entry point's environment), absolute: dbt runs from
    its own folder, so relative paths would differ."""
    return Path(environ.get(WAREHOUSE_ENV) or DEFAULT_WAREHOUSE).expanduser().resolve()


def default_spill_dir(warehouse: Path) -> Path:
    """Where DuckDB spills by default: ``duckdb_spill/`` beside the warehouse file (same disk, and tests that
    isolate the warehouse isolate it too)."""
    return warehouse.parent / "duckdb_spill"


@dataclass(frozen=True)
class DuckDBSettings:
    """Memory bounds of a DuckDB process. ``memory_limit`` caps DuckDB's buffers (joins, aggregates and sorts
    past it spill to ``spill_dir``); it does not cover what Python holds, such as pandas frames."""

    memory_limit: str = DEFAULT_MEMORY_LIMIT
    spill_dir: Path | None = None  # None: default_spill_dir of the warehouse

    def config(self, warehouse: Path) -> dict[str, str]:
        spill = self.spill_dir or default_spill_dir(warehouse)
        spill.mkdir(parents=True, exist_ok=True)  # DuckDB creates the last level only, and only when it spills
        return {"memory_limit": self.memory_limit, "temp_directory": str(spill)}


def settings_from_env(environ: Mapping[str, str]) -> DuckDBSettings:
    """The settings an entry point's environment names (defaults for what it leaves unset)."""
    spill = environ.get(SPILL_DIR_ENV)
    return DuckDBSettings(
        memory_limit=environ.get(MEMORY_LIMIT_ENV) or DEFAULT_MEMORY_LIMIT,
        spill_dir=Path(spill).expanduser().resolve() if spill else None,
    )


def connect(path: Path, read_only: bool = False, settings: DuckDBSettings | None = None) -> duckdb.DuckDBPyConnection:
    """A connection to the warehouse at ``path``: read-only for readers (they never take the write lock),
    within ``settings``' memory bounds (the defaults when None)."""
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    config = (settings or DuckDBSettings()).config(path)
    return duckdb.connect(str(path), read_only=read_only, config=config)


def is_lock_conflict(error: BaseException) -> bool:
    """DuckDB's error when another process holds the file's write lock (it names that process)."""
    return isinstance(error, duckdb.IOException) and "lock" in str(error).lower()


def connect_waiting(
    path: Path,
    read_only: bool = False,
    timeout_s: float = 600.0,
    on_wait: Callable[[str], None] | None = None,
    poll_s: float = 2.0,
    settings: DuckDBSettings | None = None,
) -> duckdb.DuckDBPyConnection:
    """:func:`connect`, waiting up to ``timeout_s`` while another process holds the write lock.

    Within leadscore the pool makes writers take turns, but a process outside it can still hold the file: a
    dbt left running by a killed run, an analyst's SQL client. Waiting (and saying so once) turns that into
    a delay instead of a failed nightly; after the timeout DuckDB's own error, naming the process, is raised.
    """
    deadline = time.monotonic() + timeout_s
    told = False
    while True:
        try:
            return connect(path, read_only=read_only, settings=settings)
        except duckdb.IOException as exc:
            if not is_lock_conflict(exc) or time.monotonic() >= deadline:
                raise
            if on_wait and not told:
                on_wait(f"waiting up to {timeout_s:.0f} s for the warehouse lock: {str(exc).splitlines()[0]}")
                told = True
            time.sleep(poll_s)


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None):
    """The single value of a query. DuckDB 2 wants every result fully fetched before the next
    statement on a connection, so never leave a ``fetchone()`` half-read."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0][0] if rows else None


# 100 vectors of 2,048 rows: ~200k rows a chunk, a few tens of MB for the widest table.
FRAME_CHUNK_VECTORS = 100


def fetch_frame(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: list | None = None,
    chunk_vectors: int = FRAME_CHUNK_VECTORS,
) -> pd.DataFrame:
    """The whole result of a query as a DataFrame, fetched a chunk at a time.

    ``.df()`` converts a fully materialised result, so at its end the rows exist twice (DuckDB's copy and
    the frame), on top of what the query itself used: loading the training rows at 2x the bench scale
    (3.6M rows, a 1.9 GB frame) peaked at 7.8 GB that way, 4.8 GB in chunks. Each chunk is converted as
    ``.df()`` converts it; where chunks disagree on a column (an integer column with NULLs in one chunk
    only), ``pd.concat`` widens it to the nullable type ``.df()`` gives the whole result. An empty
    result keeps its columns and types."""
    con.execute(sql, params or [])
    chunks = [con.fetch_df_chunk(chunk_vectors)]
    while len(chunks[-1]):
        chunks.append(con.fetch_df_chunk(chunk_vectors))
    if len(chunks) > 1:
        chunks.pop()  # the empty chunk that ended the result
    return chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        scalar(
            con,
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        )
    )


DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt"
# Where the features are declared (ml/features.py): the YAML of the dbt model lead_features.
FEATURES_YAML = DBT_PROJECT_DIR / "models" / "marts" / "lead_features.yml"


def dbt_env(base_env: Mapping[str, str], warehouse: Path, work_dir: Path) -> dict[str, str]:
    """Environment for a dbt subprocess on ``warehouse``: ``base_env`` (the caller's environment, for PATH
    and the like) with the warehouse named, DuckDB's spill folder beside it unless ``base_env`` names
    one, and target/ and logs kept in ``work_dir``."""
    return {
        SPILL_DIR_ENV: str(default_spill_dir(warehouse)),
        **base_env,
        WAREHOUSE_ENV: str(warehouse),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_TARGET_PATH": str(work_dir / "target"),
        "DBT_LOG_PATH": str(work_dir / "logs"),
    }


def dbt_invocation(
    warehouse: Path,
    *args: str,
    base_env: Mapping[str, str],
    project_dir: Path = DBT_PROJECT_DIR,
    work_dir: Path | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of the dbt CLI of this environment against ``warehouse`` (outside
    Dagster: tests, bench), the environment built from ``base_env``."""
    work_dir = work_dir or warehouse.parent / f"dbt-{project_dir.name}"
    dbt = Path(sys.executable).parent / "dbt"
    argv = [str(dbt), *args, "--project-dir", str(project_dir), "--profiles-dir", str(project_dir)]
    return argv, dbt_env(base_env, warehouse, work_dir)


def run_dbt(
    warehouse: Path,
    *args: str,
    base_env: Mapping[str, str],
    project_dir: Path = DBT_PROJECT_DIR,
    work_dir: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run the dbt CLI against ``warehouse`` (:func:`dbt_invocation`) and capture its output."""
    argv, env = dbt_invocation(warehouse, *args, base_env=base_env, project_dir=project_dir, work_dir=work_dir)
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=False)


# The per-day models (dbt tag `daily_history`): what building "a day" means outside Dagster. The first two
# are incremental; lead_labels labels lead_features' rows (a view on DuckDB, a table on Spark).
DAILY_HISTORY_MODELS = ("account_metrics_daily", "lead_features", "lead_labels")


def history_vars(window_start: dt.date, window_end_exclusive: dt.date) -> dict[str, object]:
    """dbt vars that build every day of a window [start, end) - and nothing else."""
    if window_end_exclusive <= window_start:
        raise ValueError(f"empty partition window {window_start} .. {window_end_exclusive}")
    last_day = window_end_exclusive - dt.timedelta(days=1)
    return {"min_date": window_start.isoformat(), "max_date": last_day.isoformat(), "snapshot_every_days": 1}


def build_days_args(first_day: dt.date, last_day: dt.date) -> list[str]:
    """``dbt build`` arguments for the per-day models of ``first_day`` .. ``last_day`` (benches, tools)."""
    vars_ = history_vars(first_day, last_day + dt.timedelta(days=1))
    return ["build", "--select", *DAILY_HISTORY_MODELS, "--vars", json.dumps(vars_, sort_keys=True)]
