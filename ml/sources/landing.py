"""One landing step for both loaders: replace schema ``raw`` in one transaction, behind volume guards.

:func:`land` records the row count of every raw table already in the warehouse, opens one
transaction, lets a loader create and fill the raw tables, removes erased people (the suppression list
of ``ml.sources.governance``, always), runs the ``before_commit`` hooks, and only then compares the
counts: a table that would become empty while it had rows, or shrink by more than ``max_shrink`` (a
share, default 0.5), refuses the whole load with a message naming the table and both counts, and
everything is rolled back, so the previous raw data stays in place. ``allow_shrink`` names the tables
(or ``all``) that may shrink or empty anyway. A first load (no previous table) is never refused for its
size.

The library never reads the environment: the CLI passes ``--allow-shrink``/``--max-shrink``, Dagster
passes ``LEADSCORE_ALLOW_SHRINK``/``LEADSCORE_MAX_SHRINK`` (``dagster_project/resources.py``).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Collection, Iterable, Sequence

import duckdb

from ml.sources.governance import apply_suppressions
from ml.sources.schema import RAW_TABLES

log = logging.getLogger(__name__)

ALL_TABLES = "all"
DEFAULT_MAX_SHRINK = 0.5
RAW_TABLE_NAMES: tuple[str, ...] = tuple(t.name for t in RAW_TABLES)

Hook = Callable[[duckdb.DuckDBPyConnection], object]  # what it returns is ignored


class SourceLoadError(ValueError):
    """A load of the raw tables was refused; nothing was replaced (the message says why)."""


class VolumeGuardError(SourceLoadError):
    """A raw table would have become empty or shrunk more than allowed; the load was rolled back."""

    def __init__(self, message: str, shrunk: dict[str, tuple[int, int]]):
        super().__init__(message)
        self.shrunk = shrunk  # table -> (rows before, rows the load would have left)


def allowed_to_shrink(names: Iterable[str]) -> frozenset[str]:
    """Validate ``allow_shrink`` names (raw tables, or ``all``), case-insensitively; ``all`` means every table."""
    wanted = {n.strip().lower() for n in names if n.strip()}
    unknown = sorted(wanted - {ALL_TABLES, *RAW_TABLE_NAMES})
    if unknown:
        tables = ", ".join(RAW_TABLE_NAMES)
        raise ValueError(f"allow-shrink names unknown raw tables {unknown}; use '{ALL_TABLES}' or some of {tables}")
    return frozenset(RAW_TABLE_NAMES) if ALL_TABLES in wanted else frozenset(wanted)


def check_max_shrink(value: float | str) -> float:
    """``max_shrink`` is the share of a table's rows a load may drop: 0 (none) to 1 (all but the last row).

    Accepts a number or its text (from the command line or the environment)."""
    try:
        share = float(value)
    except ValueError:
        share = math.nan
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"max-shrink must be a share between 0 and 1 (0.5 = 50%), not {value!r}")
    return share


def raw_row_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Row counts of the raw tables that exist (missing ones are left out)."""
    existing = {
        name
        for (name,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'raw' AND table_catalog = "
            "current_database()"
        ).fetchall()
    }
    return {
        name: con.execute(f"SELECT count(*) FROM raw.{name}").fetchall()[0][0]
        for name in RAW_TABLE_NAMES
        if name in existing
    }


def shrinkage(before: dict[str, int], after: dict[str, int], max_shrink: float) -> dict[str, str]:
    """Each table that would become empty or shrink by more than ``max_shrink``: table -> what would happen."""
    reasons = {}
    for name, old in before.items():
        new = after.get(name, 0)
        if old == 0 or new >= old:
            continue
        if new == 0:
            reasons[name] = f"raw.{name} would go from {old:,} rows to 0 (empty export?)"
        elif (old - new) / old > max_shrink:
            drop, limit = f"{(old - new) / old:.0%}", f"{max_shrink:.0%}"
            drop = f"{(old - new) / old:.1%}" if drop == limit else drop  # -50.2%, not -50%, against 50%
            reasons[name] = f"raw.{name} would go from {old:,} rows to {new:,} (-{drop}, more than the {limit} allowed)"
    return reasons


def refusal_message(reasons: dict[str, str]) -> str:
    names = list(reasons)
    flags = " ".join(f"--allow-shrink {n}" for n in names)
    anyway = "it" if len(names) == 1 else "them"
    return (
        "; ".join(reasons.values())
        + f"; nothing was replaced. Pass {flags} to load {anyway} anyway "
        + f"(LEADSCORE_ALLOW_SHRINK={','.join(names)} for the pipeline)"
    )


def land(
    con: duckdb.DuckDBPyConnection,
    write_tables: Hook,
    *,
    source: str,
    allow_shrink: Collection[str] = (),
    max_shrink: float = DEFAULT_MAX_SHRINK,
    before_commit: Sequence[Hook] = (),
) -> dict[str, int]:
    """Replace the raw tables with what ``write_tables`` writes, in one transaction, behind the volume guards.

    Inside one transaction: count the current raw tables, call ``write_tables(con)`` (it creates and fills
    them), call each ``before_commit`` hook with ``con`` in order, count again and compare. A refused load
    raises :class:`VolumeGuardError`; it, or any exception from the loader or a hook, rolls everything
    back. Returns the row count of every raw table after the load. ``source`` says where the data comes
    from (for the log).
    """
    allowed = allowed_to_shrink(allow_shrink)
    check_max_shrink(max_shrink)
    con.execute("BEGIN TRANSACTION")
    try:
        before = raw_row_counts(con)
        write_tables(con)
        # Erased people stay out of every load, whoever calls it (ml/sources/governance.py).
        suppressed = apply_suppressions(con)
        if suppressed:
            log.info("kept erased people out of the load: %s", suppressed)
        for hook in before_commit:
            hook(con)
        after = raw_row_counts(con)
        shrunk = shrinkage(before, after, max_shrink)
        refused = {n: reason for n, reason in shrunk.items() if n not in allowed}
        if refused:
            raise VolumeGuardError(refusal_message(refused), {n: (before[n], after.get(n, 0)) for n in refused})
        for reason in shrunk.values():
            log.warning("%s: allowed (allow-shrink)", reason)
        con.execute("COMMIT")
    except BaseException:
        # A failed statement may already have ended the transaction; the original error is what matters.
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    changed = {n: f"{before[n]:,} -> {after.get(n, 0):,}" for n in before if before[n] != after.get(n, 0)}
    log.info("raw tables replaced from %s: %s%s", source, after, f" (changed: {changed})" if changed else "")
    return after
