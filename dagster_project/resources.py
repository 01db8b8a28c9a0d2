"""Resources: the warehouse (one env var for dbt and Python) and where raw data comes from."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import duckdb
from dagster import ConfigurableResource

from ml import warehouse
from ml.sources.synthetic import SCALES

SOURCE_ENV = "LEADSCORE_SOURCE"  # synthetic (default) | files
SOURCE_DIR_ENV = "LEADSCORE_SOURCE_DIR"  # folder of exports, for files
SCALE_ENV = "LEADSCORE_SYNTHETIC_SCALE"  # accounts, or tiny/small/bench
SEED_ENV = "LEADSCORE_SYNTHETIC_SEED"
END_DATE_ENV = "LEADSCORE_SYNTHETIC_END_DATE"


class WarehouseResource(ConfigurableResource):
    """The DuckDB warehouse file. Readers open it read-only; writers belong to the warehouse pool."""

    path: str

    def connect(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        return warehouse.connect(read_only=read_only, path=Path(self.path))


class SourcesResource(ConfigurableResource):
    """``synthetic`` (the embedded default) or ``files`` (a folder of CSV/Parquet exports)."""

    kind: str = "synthetic"
    files_dir: str = ""
    synthetic_scale: int = SCALES["small"]
    synthetic_seed: int = 7
    synthetic_end_date: str = ""  # last day of history; empty: yesterday (UTC)


def sources_from_env(environ: Mapping[str, str]) -> SourcesResource:
    """The sources configuration from environment variables, refusing unknown or incomplete settings."""
    kind = environ.get(SOURCE_ENV, "synthetic").strip().lower() or "synthetic"
    if kind not in ("synthetic", "files"):
        raise ValueError(f"{SOURCE_ENV} must be 'synthetic' or 'files', not {kind!r}")
    files_dir = environ.get(SOURCE_DIR_ENV, "")
    if kind == "files" and not files_dir:
        raise ValueError(f"{SOURCE_ENV}=files needs {SOURCE_DIR_ENV}, the folder of exports")
    scale_text = environ.get(SCALE_ENV, "small")
    scale = SCALES[scale_text] if scale_text in SCALES else int(scale_text)
    return SourcesResource(
        kind=kind,
        files_dir=files_dir,
        synthetic_scale=scale,
        synthetic_seed=int(environ.get(SEED_ENV, "7")),
        synthetic_end_date=environ.get(END_DATE_ENV, ""),
    )
