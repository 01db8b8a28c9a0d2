"""The model's view of ``main.lead_features``: one declared spec, and the conversions every model shares.

The spec is the single place that says which columns are features, whether they describe *who* the
lead is (``fit``: firmographics, title, source) or *what the lead and its account do*
(``engagement``: web, email, events, product usage, account state), and which rep-facing *factor*
each belongs to (features explaining the same thing are summed into one reason). It mirrors
``dbt/models/marts/lead_features.yml``; ids, ``as_of``, the label and ``has_marketing_consent`` are
deliberately not features (consent decides who is scored, not how likely they are to buy).

Categoricals become pandas ``category`` columns with a category list fixed at training time and saved
with the model, so a value unseen in training becomes missing instead of silently shifting codes.
LightGBM gets a float32 matrix of category codes (NaN = missing): that is what keeps scoring fast and
independent of pandas' string dtypes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

Group = Literal["fit", "engagement", "lifecycle"]


@dataclass(frozen=True)
class Feature:
    name: str
    group: Group
    categorical: bool
    factor: str  # the reason this feature contributes to (see ml/reasons.py)


def _cat(name: str, group: Group, factor: str) -> Feature:
    return Feature(name, group, True, factor)


def _num(name: str, group: Group, factor: str) -> Feature:
    return Feature(name, group, False, factor)


FEATURES: tuple[Feature, ...] = (
    # fit: who the lead is
    _cat("industry", "fit", "company"),
    _cat("employee_band", "fit", "company"),
    _cat("country", "fit", "country"),
    _cat("revenue_band", "fit", "company"),
    _num("company_age_years", "fit", "company"),
    _cat("seniority", "fit", "persona"),
    _cat("department", "fit", "persona"),
    _cat("lead_source", "fit", "channel"),
    _cat("utm_campaign", "fit", "channel"),
    # lifecycle: neither profile nor behaviour; used by the main model only
    _num("lead_age_days", "lifecycle", "lead_age"),
    # engagement: what the lead did (recency-decayed and windowed)
    _num("page_views_decayed", "engagement", "web"),
    _num("pricing_views_decayed", "engagement", "pricing"),
    _num("case_study_views_decayed", "engagement", "case_studies"),
    _num("docs_views_decayed", "engagement", "web"),
    _num("blog_views_decayed", "engagement", "web"),
    _num("demo_requests_decayed", "engagement", "demo"),
    _num("email_opens_decayed", "engagement", "email"),
    _num("email_clicks_decayed", "engagement", "email"),
    _num("webinars_decayed", "engagement", "webinars"),
    _num("page_views_7d", "engagement", "web"),
    _num("page_views_30d", "engagement", "web"),
    _num("page_views_90d", "engagement", "web"),
    _num("pricing_views_7d", "engagement", "pricing"),
    _num("pricing_views_30d", "engagement", "pricing"),
    _num("demo_requests_90d", "engagement", "demo"),
    _num("webinars_90d", "engagement", "webinars"),
    _num("email_sends_30d", "engagement", "email"),
    _num("email_opens_30d", "engagement", "email"),
    _num("email_clicks_30d", "engagement", "email"),
    _num("touches_7d", "engagement", "recency"),
    _num("touches_prev_21d", "engagement", "recency"),
    _num("engagement_velocity", "engagement", "recency"),
    _num("days_since_last_touch", "engagement", "recency"),
    # engagement: the account, as of the same day
    _cat("account_customer_status", "engagement", "account_status"),
    _cat("account_plan", "engagement", "account_status"),
    _num("account_arr", "engagement", "account_status"),
    _num("account_users_total", "engagement", "product"),
    _num("account_users_new_30d", "engagement", "product"),
    _num("account_workspaces_created", "engagement", "product"),
    _num("account_workspaces_created_30d", "engagement", "product"),
    _num("account_active_users_7d", "engagement", "product"),
    _num("account_active_users_30d", "engagement", "product"),
    _num("account_product_events_30d", "engagement", "product"),
    _num("account_marketing_touches_30d", "engagement", "account_buzz"),
)

ID_COLUMNS = ("lead_id", "account_id", "as_of")
LABEL = "converted_90d"
CONSENT = "has_marketing_consent"
NOT_FEATURES = (*ID_COLUMNS, LABEL, CONSENT)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
CATEGORICAL: tuple[str, ...] = tuple(f.name for f in FEATURES if f.categorical)
NUMERIC: tuple[str, ...] = tuple(f.name for f in FEATURES if not f.categorical)
BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}

# Which features each model sees. The main model sees everything; the two axes one side each.
MODEL_FEATURES: dict[str, tuple[str, ...]] = {
    "main": FEATURE_NAMES,
    "fit": tuple(f.name for f in FEATURES if f.group == "fit"),
    "engagement": tuple(f.name for f in FEATURES if f.group == "engagement"),
}

Categories = dict[str, list[str]]


def learn_categories(frame: pd.DataFrame, min_count: int = 1) -> Categories:
    """The fixed, sorted category list of every categorical feature (values seen ``min_count`` times)."""
    categories: Categories = {}
    for name in CATEGORICAL:
        counts = frame[name].dropna().astype(str).value_counts()
        categories[name] = sorted(counts[counts >= min_count].index.tolist())
    return categories


def as_strings(column: pd.Series) -> pd.Series:
    """The column as pandas' ``str`` dtype (missing stays missing). Strings arrive as pandas 3 ``str``
    (from DuckDB), ``object`` or ``category`` depending on the caller; this is the one form the model
    code reads, and for a ``str`` column it costs nothing."""
    return column if isinstance(column.dtype, pd.StringDtype) else column.astype("str")


def category_codes(column: pd.Series, categories: list[str]) -> np.ndarray:
    """float32 position of each value in ``categories``; NaN when missing or not in the list, so a value
    unseen in training reads as missing instead of shifting codes. Arrow's ``index_in`` does the lookup:
    pandas' own paths go through Python objects and cost ten times more (0.8 s vs 0.1 s for the ten
    categoricals of 740k leads)."""
    values = pa.array(as_strings(column), type=pa.large_string())
    codes = pc.index_in(values, value_set=pa.array(categories, type=pa.large_string()))
    return codes.to_numpy(zero_copy_only=False).astype(np.float32)


def to_matrix(frame: pd.DataFrame, categories: Categories, columns: tuple[str, ...] = FEATURE_NAMES) -> np.ndarray:
    """A float32 matrix for LightGBM: numerics as they are, categoricals as their codes (NaN when missing)."""
    matrix = np.empty((len(frame), len(columns)), dtype=np.float32)
    for j, name in enumerate(columns):
        column = frame[name]
        if name in categories:
            matrix[:, j] = category_codes(column, categories[name])
        else:
            matrix[:, j] = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float32, na_value=np.nan)
    return matrix


def column_positions(columns: tuple[str, ...], within: tuple[str, ...] = FEATURE_NAMES) -> np.ndarray:
    """Indices of ``columns`` in ``within``: an axis model's matrix is a column slice of the main one."""
    index = {name: j for j, name in enumerate(within)}
    return np.array([index[name] for name in columns], dtype=np.intp)


def categorical_indices(columns: tuple[str, ...]) -> list[int]:
    return [j for j, name in enumerate(columns) if BY_NAME[name].categorical]


# Left out of the signature: recency-decayed counts move every day for anyone active in 90 days and
# restate the windowed counts that are in it; velocity is a ratio of two counts that are in it.
RECENCY_EDGES = np.array([7.0, 30.0, 90.0])  # days since the last touch: < 7, 7-29, 30-89, 90+
SIGNATURE_SKIPS = frozenset(n for n in FEATURE_NAMES if n.endswith("_decayed")) | {"engagement_velocity"}


def coarse_signature(frame: pd.DataFrame) -> dict[str, np.ndarray | pd.Series]:
    """The features as a rep would notice them: categoricals as they are, counts in octave buckets
    (0, 1-2, 3-6, 7-14, ...: the floor of log2(1 + n)), lead age in 30-day steps, days since the last
    touch in the 7/30/90-day windows, decayed duplicates of counts left out. Used to decide whose
    reasons must be recomputed: exact values drift every day (decay, age), while the reasons a rep
    reads only change when a bucket does."""
    out: dict[str, np.ndarray | pd.Series] = {}
    for name in FEATURE_NAMES:
        if name in SIGNATURE_SKIPS:
            continue
        column = frame[name]
        if BY_NAME[name].categorical:
            out[name] = as_strings(column).fillna("")  # "" and missing: the same to a rep
            continue
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        if name == "lead_age_days":
            buckets = np.floor_divide(values, 30)
        elif name == "days_since_last_touch":
            # It grows every day for every quiet lead; a rep reads it in the windows the other
            # features use ("1-4 weeks ago"), and octaves would flip it for 7% of leads a night.
            buckets = np.where(np.isnan(values), np.nan, np.searchsorted(RECENCY_EDGES, values, side="right"))
        else:
            buckets = np.floor(np.log2(1 + np.clip(values, 0, None)))
        out[name] = np.where(np.isnan(buckets), -1, buckets).astype(np.int64)
    return out


_HASH_MULTIPLIER = np.uint64(0x100000001B3)  # the 64-bit FNV prime
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_NIBBLE_SHIFTS = np.arange(60, -1, -4, dtype=np.uint64)


def hex64(values: np.ndarray) -> np.ndarray:
    """``f"{v:016x}"`` for every uint64, vectorised (a Python loop costs 0.35 s per 740k leads)."""
    nibbles = (values.astype(np.uint64)[:, None] >> _NIBBLE_SHIFTS) & np.uint64(15)
    return _HEX_DIGITS[nibbles.astype(np.intp)].view("S16").ravel().astype(str)


def feature_hash(frame: pd.DataFrame, salt: str = "") -> pd.Series:
    """A 16-hex-digit hash per row of the coarse feature signature (plus ``salt``, e.g. the model
    version, so a new model recomputes every lead's reasons)."""
    hashed = np.zeros(len(frame), dtype=np.uint64)
    for column in coarse_signature(frame).values():
        if isinstance(column, pd.Series):
            column_hash = pd.util.hash_pandas_object(column, index=False).to_numpy(dtype=np.uint64)
        else:
            column_hash = pd.util.hash_array(column)
        hashed = hashed * _HASH_MULTIPLIER + column_hash  # order-sensitive mix, wrapping mod 2**64
    if salt:
        salt_value = pd.util.hash_pandas_object(pd.Series([salt]), index=False).to_numpy(dtype=np.uint64)[0]
        hashed = hashed ^ salt_value
    return pd.Series(hex64(hashed), index=frame.index, dtype=object)
