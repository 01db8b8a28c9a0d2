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


def prepare(frame: pd.DataFrame, categories: Categories, columns: tuple[str, ...] = FEATURE_NAMES) -> pd.DataFrame:
    """Feature columns only: categoricals as ``category`` with the fixed lists, numerics as float64.

    Strings arrive as pandas 3 ``str``, ``object`` or ``category`` depending on the caller; all become
    the same category dtype, and a value outside the list becomes missing (NaN).
    """
    out = {}
    for name in columns:
        column = frame[name]
        if name in categories:
            values = column.astype(object)
            values = values.where(values.isin(categories[name]), None)
            out[name] = pd.Categorical(values, categories=categories[name])
        else:
            out[name] = pd.to_numeric(column, errors="coerce").astype("float64")
    return pd.DataFrame(out, index=frame.index)


def to_matrix(frame: pd.DataFrame, categories: Categories, columns: tuple[str, ...] = FEATURE_NAMES) -> np.ndarray:
    """A float32 matrix for LightGBM: numerics as they are, categoricals as their codes (NaN when missing)."""
    prepared = prepare(frame, categories, columns)
    matrix = np.empty((len(prepared), len(columns)), dtype=np.float32)
    for j, name in enumerate(columns):
        column = prepared[name]
        if name in categories:
            codes = column.cat.codes.to_numpy().astype(np.float32)
            codes[codes < 0] = np.nan
            matrix[:, j] = codes
        else:
            matrix[:, j] = column.to_numpy(dtype=np.float32, na_value=np.nan)
    return matrix


def categorical_indices(columns: tuple[str, ...]) -> list[int]:
    return [j for j, name in enumerate(columns) if BY_NAME[name].categorical]


# Left out of the signature: recency-decayed counts move every day for anyone active in 90 days and
# restate the windowed counts that are in it; velocity is a ratio of two counts that are in it.
SIGNATURE_SKIPS = frozenset(n for n in FEATURE_NAMES if n.endswith("_decayed")) | {"engagement_velocity"}


def coarse_signature(frame: pd.DataFrame) -> pd.DataFrame:
    """The features as a rep would notice them: categoricals as they are, counts in octave buckets
    (0, 1, 2-3, 4-7, ...), lead age in 30-day steps, decayed duplicates of counts left out. Used to
    decide whose reasons must be recomputed: exact values drift every day (decay, age), while the
    reasons a rep reads only change when a bucket does."""
    out = {}
    for name in FEATURE_NAMES:
        if name in SIGNATURE_SKIPS:
            continue
        column = frame[name]
        if BY_NAME[name].categorical:
            out[name] = column.astype(object).where(column.notna(), None).astype(str)
        elif name == "lead_age_days":
            out[name] = (pd.to_numeric(column, errors="coerce") // 30).fillna(-1).astype("int64")
        else:
            values = pd.to_numeric(column, errors="coerce").astype("float64")
            out[name] = np.floor(np.log2(1 + values.clip(lower=0))).fillna(-1).astype("int64")
    return pd.DataFrame(out, index=frame.index)


def feature_hash(frame: pd.DataFrame, salt: str = "") -> pd.Series:
    """A 16-hex-digit hash per row of the coarse feature signature (plus ``salt``, e.g. the model
    version, so a new model recomputes every lead's reasons)."""
    hashed = pd.util.hash_pandas_object(coarse_signature(frame), index=False).to_numpy(dtype=np.uint64)
    if salt:
        salt_value = pd.util.hash_pandas_object(pd.Series([salt]), index=False).to_numpy(dtype=np.uint64)[0]
        hashed = hashed ^ salt_value
    return pd.Series([f"{h:016x}" for h in hashed], index=frame.index, dtype=object)
