"""Reading what the models need from the warehouse, through a connection the caller opened.

Callers pass a read-only connection (``ml.warehouse.connect(path, read_only=True)``, or the Dagster
warehouse resource's): readers never hold DuckDB's write lock. Every result is fully fetched
(:func:`ml.warehouse.fetch_frame`, ``fetchall()``) as DuckDB 2 requires; frames come a chunk at a
time, so a big result is not held twice.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

from ml import warehouse
from ml.features import CONSENT, ID_COLUMNS, LABEL, NOT_FEATURES, FeatureSet
from ml.sources.synthetic import fair_probability, oracle_probability

FEATURES_TABLE = "main.lead_features"
LABELS_TABLE = "main.lead_labels"  # converted_90d of every lead_features row, by (lead_id, as_of)
SCORE_HISTORY_COLUMNS = ("lead_id", "as_of", "score", "feature_hash", "reasons", "model_version")


def column_types(con: duckdb.DuckDBPyConnection, table: str = FEATURES_TABLE) -> dict[str, str]:
    """Column name -> SQL type of ``table``, in table order."""
    return {row[0]: str(row[1]) for row in con.execute(f"DESCRIBE {table}").fetchall()}


def _select(columns) -> str:
    return ", ".join(f'"{c}"' for c in columns)


HASH_BUCKETS = 10_000


def account_sample_buckets(total_accounts: int, max_accounts: int | None) -> int | None:
    """How many of ``HASH_BUCKETS`` account-hash buckets to keep so that about ``max_accounts`` of
    ``total_accounts`` remain (None: keep everything)."""
    if max_accounts is None or total_accounts <= max_accounts:
        return None
    return max(1, round(HASH_BUCKETS * max_accounts / total_accounts))


def load_labelled(
    con: duckdb.DuckDBPyConnection, features: FeatureSet, max_accounts: int | None = None
) -> pd.DataFrame:
    """Every ``main.lead_features`` row whose label (``main.lead_labels``) is known, with every column of the
    table (the
    declared ``features``, checked to be there, and any others a champion trained on an earlier
    declaration may need to defend its title), in a fixed order: the table's physical
    order is not stable (parallel inserts), and LightGBM's seeded bagging depends on row order, so
    without it the same data and seed would not give the same model.

    Above ``max_accounts`` accounts, only a stable hash-sample of about that many accounts is read
    (whole accounts, so the split still keeps each account on one side): training time and memory
    stay bounded as the warehouse grows, while a few tens of thousands of accounts already hold
    thousands of conversions."""
    types = column_types(con)
    features.check_columns(types, f"{FEATURES_TABLE} (checked against the features {features.source} declares)")
    columns = [*ID_COLUMNS, *(c for c in types if c not in NOT_FEATURES), CONSENT]
    total = warehouse.scalar(con, f"SELECT count(DISTINCT account_id) FROM {FEATURES_TABLE}") or 0
    keep = account_sample_buckets(total, max_accounts)
    sample = f"AND hash(f.account_id) % {HASH_BUCKETS} < {keep}" if keep is not None else ""
    selected = ", ".join(f'f."{c}"' for c in columns)
    return warehouse.fetch_frame(
        con,
        f"SELECT {selected}, l.{LABEL} FROM {FEATURES_TABLE} AS f JOIN {LABELS_TABLE} AS l USING (lead_id, as_of) "
        f"WHERE l.{LABEL} IS NOT NULL {sample} ORDER BY f.as_of, f.lead_id",
    )


def latest_as_of(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    value = warehouse.scalar(con, "SELECT max(as_of) FROM main.lead_features")
    return pd.Timestamp(value).date() if value is not None else None


def load_scoring_rows(con: duckdb.DuckDBPyConnection, as_of: dt.date, features: FeatureSet) -> pd.DataFrame:
    """The rows to score for ``as_of``: open leads (every lead_features row is one) with marketing consent,
    with the columns of ``features`` (the model's). Raises :class:`ml.features.FeatureMismatchError`
    naming the model's columns the table lacks or holds in another type."""
    features.check_columns(column_types(con), FEATURES_TABLE)
    columns = [*ID_COLUMNS, *features.names, CONSENT]
    return warehouse.fetch_frame(
        con, f"SELECT {_select(columns)} FROM {FEATURES_TABLE} WHERE as_of = ? AND {CONSENT} ORDER BY lead_id", [as_of]
    )


def load_previous_scores(
    con: duckdb.DuckDBPyConnection, as_of: dt.date, lookback_days: int = 14
) -> pd.DataFrame | None:
    """``main.lead_scores`` rows of the ``lookback_days`` before ``as_of`` (None when the table does not
    exist yet): enough for ``score_change_7d`` and for reusing reasons of unchanged leads."""
    if not warehouse.table_exists(con, "main", "lead_scores"):
        return None
    available = {row[0] for row in con.execute("DESCRIBE main.lead_scores").fetchall()}
    columns = [c for c in SCORE_HISTORY_COLUMNS if c in available]
    return warehouse.fetch_frame(
        con,
        f"SELECT {', '.join(columns)} FROM main.lead_scores WHERE as_of < ? AND as_of >= ?",
        [as_of, as_of - dt.timedelta(days=lookback_days)],
    )


def latest_scored_version(con: duckdb.DuckDBPyConnection) -> str | None:
    """The model version (``lead_scoring/N``) of the most recently written ``main.lead_scores`` rows, or
    None when nothing has been scored yet: the warehouse's own record that a champion exists."""
    if not warehouse.table_exists(con, "main", "lead_scores"):
        return None
    return warehouse.scalar(
        con,
        "SELECT model_version FROM main.lead_scores WHERE model_version IS NOT NULL "
        "ORDER BY scored_at DESC NULLS LAST, as_of DESC LIMIT 1",
    )


def load_oracle_truth(con: duckdb.DuckDBPyConnection) -> pd.DataFrame | None:
    """The synthetic generator's per-lead truth (``oracle.lead_truth``), or None on real data."""
    if not warehouse.table_exists(con, "oracle", "lead_truth"):
        return None
    present = {row[0] for row in con.execute("DESCRIBE oracle.lead_truth").fetchall()}
    # Warehouses generated before the fair ceiling existed lack the evaluation delay.
    optional = ", evaluation_delay_mean_days" if "evaluation_delay_mean_days" in present else ""
    return warehouse.fetch_frame(
        con,
        "SELECT contact_id AS lead_id, p_convert, evaluation_start, conversion_delay_min_days, "
        f"conversion_delay_max_days{optional} FROM oracle.lead_truth",
    )


def _truth_by_row(rows: pd.DataFrame, truth: pd.DataFrame | None) -> pd.DataFrame | None:
    """``truth`` aligned to the (lead_id, as_of) rows, with ``as_of_day`` (the close of ``as_of``, i.e.
    ``as_of + 1 day``) and ``evaluation_start_day`` in days since the epoch; None when any row has no truth."""
    if truth is None:
        return None
    merged = rows[["lead_id", "as_of"]].merge(truth, on="lead_id", how="left")
    if merged["p_convert"].isna().any():
        return None
    day = pd.Timedelta(days=1)
    epoch = pd.Timestamp("1970-01-01")
    merged["as_of_day"] = (pd.to_datetime(merged["as_of"]) + day - epoch) / day
    merged["evaluation_start_day"] = (pd.to_datetime(merged["evaluation_start"]) - epoch) / day
    return merged


def _hidden_state(merged: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """The arguments both ceilings share: p_convert, evaluation start, the as-of close, the delay bounds."""
    return (
        merged["p_convert"].to_numpy(dtype=float),
        merged["evaluation_start_day"].to_numpy(dtype=float),
        merged["as_of_day"].to_numpy(dtype=float),
        float(merged["conversion_delay_min_days"].iloc[0]),
        float(merged["conversion_delay_max_days"].iloc[0]),
    )


def oracle_probabilities(
    rows: pd.DataFrame, truth: pd.DataFrame | None, horizon_days: float = 90.0
) -> np.ndarray | None:
    """The synthetic generator's true P(convert within 90 days) for each (lead_id, as_of) row, or None
    when there is no truth (real data, see :func:`load_oracle_truth`). A row describes the close of
    ``as_of``, so the oracle is asked at ``as_of + 1 day``; all times are converted to days since the epoch.
    It knows when a not-yet-begun evaluation will begin, so no model can reach it; see :func:`fair_probabilities`."""
    merged = _truth_by_row(rows, truth)
    if merged is None:
        return None
    return oracle_probability(*_hidden_state(merged), horizon_days)


def fair_probabilities(rows: pd.DataFrame, truth: pd.DataFrame | None, horizon_days: float = 90.0) -> np.ndarray | None:
    """Like :func:`oracle_probabilities` but averaging over when a not-yet-begun evaluation will begin
    (:func:`ml.sources.synthetic.fair_probability`): the ceiling a model could reach in principle. None
    when there is no truth or it predates the ``evaluation_delay_mean_days`` column."""
    if truth is None or "evaluation_delay_mean_days" not in truth.columns:
        return None
    merged = _truth_by_row(rows, truth)
    if merged is None:
        return None
    return fair_probability(
        *_hidden_state(merged), merged["evaluation_delay_mean_days"].to_numpy(dtype=float), horizon_days=horizon_days
    )
