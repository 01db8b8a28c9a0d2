"""Group ``sources``: the raw tables, landed by the synthetic generator or the files loader."""

import datetime as dt
from collections.abc import Mapping

import duckdb
from dagster import AssetExecutionContext, AssetSpec, Failure, MaterializeResult, MetadataValue, multi_asset

from dagster_project.resources import SourcesResource, WarehouseResource
from ml.engines import publish_raw_tables
from ml.sources.files import load_files
from ml.sources.landing import SourceLoadError
from ml.sources.schema import RAW_TABLES
from ml.sources.synthetic import SyntheticConfig, load_synthetic

WAREHOUSE_POOL = "warehouse"  # every asset that writes the DuckDB file: one writer at a time
LOADED_AT = "_loaded_at"  # every raw table has it: when the ELT tool extracted the row (naive UTC)
LAST_UPDATED_KEY = "dagster/last_updated_timestamp"

RAW_SPECS = [
    AssetSpec(["raw", t.name], group_name="sources", description=t.description, kinds={"duckdb"}) for t in RAW_TABLES
]


@multi_asset(specs=RAW_SPECS, pool=WAREHOUSE_POOL, name="raw_sources")
def raw_sources(context: AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource):
    """Replace schema ``raw`` (and, for synthetic data, ``oracle``) in one transaction, behind the volume guards.

    A refused load (a problem in the exports, or a table that would empty or shrink more than allowed) fails
    the step with the loader's message and leaves the previous raw data in place.
    """
    try:
        counts, origin = _load(context, warehouse, sources)
    except SourceLoadError as exc:
        raise Failure(description=str(exc)) from None  # the message says it all: no traceback
    layout = warehouse.spark_layout()
    with warehouse.connect(read_only=True, log=context.log) as con:
        loaded_at = newest_loaded_at(con)
        if layout is not None:  # dbt runs on Spark: it reads the raw tables as Parquet
            publish_raw_tables(con, layout.raw_dir, [t.name for t in RAW_TABLES])
            context.log.info(f"published the raw tables as Parquet under {layout.raw_dir} for Spark")
    for table in RAW_TABLES:
        yield MaterializeResult(
            asset_key=["raw", table.name],
            metadata={"dagster/row_count": counts[table.name], **origin, **loaded_at_metadata(loaded_at[table.name])},
        )


def newest_loaded_at(con: duckdb.DuckDBPyConnection) -> dict[str, dt.datetime | None]:
    """The newest ``_loaded_at`` (naive UTC) of every raw table; None for an empty table."""
    return {t.name: con.execute(f'SELECT max("{LOADED_AT}") FROM raw."{t.name}"').fetchall()[0][0] for t in RAW_TABLES}


def loaded_at_metadata(newest: dt.datetime | None) -> Mapping[str, object]:
    """When the data itself was last extracted (``_loaded_at``), for the UI: a table landed last night from an
    export taken a week ago shows its real age next to the time it was landed."""
    if newest is None:
        return {"newest_loaded_at": "none (empty table)"}
    stamp = newest.replace(tzinfo=dt.UTC) if newest.tzinfo is None else newest
    return {
        LAST_UPDATED_KEY: MetadataValue.timestamp(stamp),
        "newest_loaded_at": stamp.strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


def _load(
    context: AssetExecutionContext, warehouse: WarehouseResource, sources: SourcesResource
) -> tuple[dict[str, int], dict[str, object]]:
    guards = {"allow_shrink": sources.allow_shrink, "max_shrink": sources.max_shrink}  # the volume guards
    with warehouse.connect(log=context.log) as con:
        if sources.kind == "files":
            context.log.info(f"loading raw exports from {sources.files_dir}")
            counts = load_files(con, sources.files_dir, **guards)
            origin: dict[str, object] = {"source": "files", "folder": sources.files_dir}
        else:
            end = {"end_date": dt.date.fromisoformat(sources.synthetic_end_date)} if sources.synthetic_end_date else {}
            config = SyntheticConfig(n_accounts=sources.synthetic_scale, seed=sources.synthetic_seed, **end)
            context.log.info(
                f"generating the synthetic company: {config.n_accounts:,} accounts, seed {config.seed}, "
                f"history {config.start_date} .. {config.end_date}"
            )
            counts = load_synthetic(con, config, **guards)
            origin = {
                "source": "synthetic",
                "seed": config.seed,
                "accounts": config.n_accounts,
                "end_date": str(config.end_date),
            }
    return counts, origin
