"""Rows of a DuckDB query as dicts, a batch at a time: the sync and the sandbox seeding read millions of
rows, and a list of every row as a dict costs about 1 KB a row."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import duckdb


def iter_dicts(
    result: duckdb.DuckDBPyConnection, columns: Sequence[str], batch: int = 20_000
) -> Iterator[dict[str, Any]]:
    """The rows of an executed query (``conn.execute(...)``), named by ``columns``, fetched ``batch`` at a
    time. Nothing else may run on the connection until they are read to the end (it would end the query)."""
    while rows := result.fetchmany(batch):
        for row in rows:
            yield dict(zip(columns, row, strict=True))
