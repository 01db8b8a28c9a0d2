"""The model's view of ``main.lead_features``: the features the dbt YAML declares, and the conversions
every model shares.

Analysts own the features. A column of ``lead_features`` is a feature when its entry in
``dbt/models/marts/lead_features.yml`` declares one under ``config.meta.feature``::

    - name: pricing_views_7d
      description: "Engagement - pricing page views, last 7 days (...)"
      config:
        meta:
          feature:
            group: engagement     # fit | engagement | lifecycle (which axis model sees it)
            kind: numeric         # numeric | categorical
            reason: pricing       # the rep-facing reason it is summed into (default: the column)
            phrase: "{value} pricing-page visits in the last 7 days"  # optional
            reuse: octave         # optional: when a stored reason may be reused (see below)

``ml/`` reads that declaration from dbt's manifest (what the nightly's dbt run parsed) or from the
YAML file itself; nothing in Python lists features. A :class:`FeatureSet` travels with the trained
model (``bundle.json``), so a saved model knows the columns, kinds and categories it expects and
scoring can say which are missing or retyped instead of failing on a ``KeyError``.

``group`` decides which axis model sees a feature (``fit``: who the lead is; ``engagement``: what the
lead and its account do; ``lifecycle``: neither, main model only). ``reason`` groups features that
say the same thing to a rep into one reason (ml/reasons.py). Ids, ``as_of``, the label and
``has_marketing_consent`` can never be features (consent decides who is scored, not how likely they
are to buy).

Categoricals become float32 codes in a category list fixed at training time and saved with the model,
so a value unseen in training becomes missing instead of silently shifting codes. LightGBM gets a
float32 matrix of codes and numerics (NaN = missing): that keeps scoring fast and independent of
pandas' string dtypes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml

Group = Literal["fit", "engagement", "lifecycle"]
Kind = Literal["numeric", "categorical"]
# When a lead's stored reasons may be reused instead of recomputed (ml/scoring.py): while the feature's
# value stays in the same bucket. octave: counts in 0, 1-2, 3-6, 7-14, ...; month: 30-day steps;
# recency_window: < 7, 7-29, 30-89, 90+ days; exact: any change; ignore: never (the feature restates
# others, e.g. a decayed count or a ratio of two counts). Categoricals always compare exactly.
Reuse = Literal["octave", "month", "recency_window", "exact", "ignore"]

ID_COLUMNS = ("lead_id", "account_id", "as_of")
LABEL = "converted_90d"
CONSENT = "has_marketing_consent"
NOT_FEATURES = frozenset((*ID_COLUMNS, LABEL, CONSENT, "built_by_invocation"))
MODEL = "lead_features"  # the dbt model whose columns are the features
DECLARATION_META_KEY = "feature"
MODELS = ("main", "fit", "engagement")  # the main model sees every feature; each axis model one group


class FeatureDeclarationError(ValueError):
    """The dbt YAML declares a feature ml/ cannot use (unknown group or kind, a reserved column, none)."""


class FeatureMismatchError(ValueError):
    """The rows given to a model lack columns it was trained on, or carry them in another type."""


@dataclass(frozen=True)
class Feature:
    name: str
    group: Group
    categorical: bool
    factor: str  # the reason this feature contributes to (see ml/reasons.py)
    description: str = ""
    phrase: str | None = None  # a template with {value}, for reasons without a built-in phrasing
    reuse: Reuse | None = None  # None: octave for numerics (see Reuse)

    @property
    def kind(self) -> Kind:
        return "categorical" if self.categorical else "numeric"


@dataclass(frozen=True)
class FeatureSet:
    """The declared features, in declaration order (the column order of every model matrix)."""

    features: tuple[Feature, ...]
    source: str = field(default="", compare=False)  # where the declaration came from, for messages

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @cached_property
    def categorical(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.categorical)

    @cached_property
    def numeric(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if not f.categorical)

    @cached_property
    def by_name(self) -> dict[str, Feature]:
        return {f.name: f for f in self.features}

    @cached_property
    def factors(self) -> tuple[str, ...]:
        """Reasons in order of first declaration."""
        return tuple(dict.fromkeys(f.factor for f in self.features))

    def columns(self, model: str = "main") -> tuple[str, ...]:
        """The columns one model reads: every feature for ``main``, one group for an axis model."""
        if model == "main":
            return self.names
        return tuple(f.name for f in self.features if f.group == model)

    def without(self, names: Iterable[str]) -> FeatureSet:
        """The same set less ``names`` (ablations, learning what a group is worth)."""
        drop = set(names)
        return FeatureSet(tuple(f for f in self.features if f.name not in drop), self.source)

    # -- identity and persistence -------------------------------------------------------------------
    def to_records(self) -> list[dict[str, Any]]:
        return [asdict(f) for f in self.features]

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]], source: str = "") -> FeatureSet:
        return cls(tuple(Feature(**dict(r)) for r in records), source)

    def digest(self) -> str:
        """A short hash of what a model sees (names, kinds, groups, order): the Optuna study key and the
        model's record of its inputs change with it. Descriptions and phrases do not enter it."""
        key = [(f.name, f.kind, f.group) for f in self.features]
        return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:12]

    # -- reading the warehouse --------------------------------------------------------------------
    def check_columns(self, column_types: Mapping[str, str], where: str = "main.lead_features") -> None:
        """Raise :class:`FeatureMismatchError` naming every feature ``column_types`` (name -> SQL or pandas
        type) lacks or holds in a type of the other kind (text for a numeric, a number for a categorical)."""
        missing = [n for n in self.names if n not in column_types]
        retyped = []
        for f in self.features:
            if f.name not in column_types:
                continue
            textual = _is_text_type(column_types[f.name])
            if f.categorical != textual and not _is_null_type(column_types[f.name]):
                retyped.append(f"{f.name} ({column_types[f.name]}; the model expects {f.kind})")
        if missing or retyped:
            parts = []
            if missing:
                parts.append(f"missing: {', '.join(missing)}")
            if retyped:
                parts.append(f"retyped: {', '.join(retyped)}")
            raise FeatureMismatchError(
                f"{where} does not have the columns the model was trained on ({'; '.join(parts)}). "
                "Rebuild the warehouse with the dbt project the model was trained with, or train a model on "
                "the features declared now."
            )


def frame_column_types(frame: pd.DataFrame) -> dict[str, str]:
    """Each column of ``frame`` as ``text``, ``number`` or ``null`` (no value to judge by), for
    :meth:`FeatureSet.check_columns`. pandas dtypes alone mislead: DuckDB hands an all-null VARCHAR
    over as ``object`` and an all-null number as ``object`` or ``float64``, so an ``object`` column is
    judged by its first value."""
    out = {}
    for name in frame.columns:
        column = frame[name]
        kind = column.dtype.kind
        if isinstance(column.dtype, pd.StringDtype | pd.CategoricalDtype):
            out[name] = "text"
        elif kind in "iufb":
            out[name] = "number" if column.notna().any() else "null"
        elif kind in "mM":
            out[name] = "datetime"
        else:
            present = column.dropna()
            if present.empty:
                out[name] = "null"
            else:
                out[name] = "text" if isinstance(present.iloc[0], str) else "number"
    return out


def _is_text_type(type_name: str) -> bool:
    lowered = str(type_name).lower()
    return any(word in lowered for word in ("char", "string", "text", "str", "object", "category", "enum"))


def _is_null_type(type_name: str) -> bool:
    return str(type_name).lower() in ("null", '"null"')


# -- reading the declaration ----------------------------------------------------------------------
def from_columns(columns: Iterable[Mapping[str, Any]], source: str) -> FeatureSet:
    """The feature set from dbt column entries (``name``, ``description``, ``meta`` or ``config.meta``),
    in their order. Raises :class:`FeatureDeclarationError` with the column and ``source`` on a bad one."""
    features = []
    for column in columns:
        name = str(column["name"])
        meta = {**(column.get("meta") or {}), **((column.get("config") or {}).get("meta") or {})}
        declared = meta.get(DECLARATION_META_KEY)
        if declared is None:
            continue
        where = f"{source}: column {name}, meta.{DECLARATION_META_KEY}"
        if not isinstance(declared, Mapping):
            raise FeatureDeclarationError(f"{where} must be a mapping (group, kind, ...), not {declared!r}")
        if name in NOT_FEATURES:
            raise FeatureDeclarationError(f"{where}: {name} is an id, the label or the consent flag, never a feature")
        unknown = set(declared) - {"group", "kind", "reason", "phrase", "reuse"}
        if unknown:
            raise FeatureDeclarationError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        group, kind = declared.get("group"), declared.get("kind", "numeric")
        if group not in get_args(Group):
            raise FeatureDeclarationError(f"{where}: group must be one of {', '.join(get_args(Group))}, not {group!r}")
        if kind not in get_args(Kind):
            raise FeatureDeclarationError(f"{where}: kind must be one of {', '.join(get_args(Kind))}, not {kind!r}")
        reuse = declared.get("reuse")
        if reuse is not None and reuse not in get_args(Reuse):
            raise FeatureDeclarationError(f"{where}: reuse must be one of {', '.join(get_args(Reuse))}, not {reuse!r}")
        phrase = declared.get("phrase")
        if phrase is not None and "{value}" not in str(phrase):
            raise FeatureDeclarationError(
                f"{where}: phrase must contain {{value}}, e.g. '{{value}} visits', not {phrase!r}"
            )
        features.append(
            Feature(
                name=name,
                group=group,
                categorical=kind == "categorical",
                factor=str(declared.get("reason") or name),
                description=str(column.get("description") or "").strip(),
                phrase=str(phrase) if phrase is not None else None,
                reuse=reuse,
            )
        )
    if not features:
        raise FeatureDeclarationError(f"{source}: no column of {MODEL} declares meta.{DECLARATION_META_KEY}")
    return FeatureSet(tuple(features), source)


def from_manifest(manifest: Mapping[str, Any], model: str = MODEL) -> FeatureSet:
    """The feature set of ``model`` in a dbt manifest (``target/manifest.json``, as parsed by dbt)."""
    for node in manifest["nodes"].values():
        if node.get("resource_type") == "model" and node.get("name") == model:
            return from_columns(node["columns"].values(), f"dbt manifest, model {model}")
    raise FeatureDeclarationError(f"the dbt manifest has no model {model}")


def from_manifest_file(path: Path, model: str = MODEL) -> FeatureSet:
    return from_manifest(json.loads(Path(path).read_text()), model)


def from_dbt_yaml(path: Path, model: str = MODEL) -> FeatureSet:
    """The feature set of ``model`` straight from its dbt YAML file (no dbt parse needed)."""
    document = yaml.safe_load(Path(path).read_text()) or {}
    for entry in document.get("models") or []:
        if entry.get("name") == model:
            return from_columns(entry.get("columns") or [], str(path))
    raise FeatureDeclarationError(f"{path} does not describe model {model}")


Categories = dict[str, list[str]]


def learn_categories(frame: pd.DataFrame, features: FeatureSet, min_count: int = 1) -> Categories:
    """The fixed, sorted category list of every categorical feature (values seen ``min_count`` times)."""
    categories: Categories = {}
    for name in features.categorical:
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


def to_matrix(frame: pd.DataFrame, categories: Categories, columns: tuple[str, ...]) -> np.ndarray:
    """A float32 matrix of ``columns``: numerics as they are, categoricals (the keys of ``categories``) as
    their codes (NaN when missing)."""
    matrix = np.empty((len(frame), len(columns)), dtype=np.float32)
    for j, name in enumerate(columns):
        column = frame[name]
        if name in categories:
            matrix[:, j] = category_codes(column, categories[name])
        else:
            matrix[:, j] = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float32, na_value=np.nan)
    return matrix


def column_positions(columns: tuple[str, ...], within: tuple[str, ...]) -> np.ndarray:
    """Indices of ``columns`` in ``within``: an axis model's matrix is a column slice of the main one."""
    index = {name: j for j, name in enumerate(within)}
    return np.array([index[name] for name in columns], dtype=np.intp)


def categorical_indices(columns: tuple[str, ...], features: FeatureSet) -> list[int]:
    return [j for j, name in enumerate(columns) if features.by_name[name].categorical]


RECENCY_EDGES = np.array([7.0, 30.0, 90.0])  # days: < 7, 7-29, 30-89, 90+ (the windows the features use)


def coarse_signature(frame: pd.DataFrame, features: FeatureSet) -> dict[str, np.ndarray | pd.Series]:
    """The features as a rep would notice them, each in the buckets its ``reuse`` declares (octaves of
    counts by default: 0, 1-2, 3-6, 7-14, ... - the floor of log2(1 + n)); categoricals as they are.
    Used to decide whose reasons must be recomputed: exact values drift every day (decay, age), while
    the reasons a rep reads only change when a bucket does."""
    out: dict[str, np.ndarray | pd.Series] = {}
    for feature in features.features:
        reuse = feature.reuse or "octave"
        if reuse == "ignore":
            continue
        column = frame[feature.name]
        if feature.categorical:
            out[feature.name] = as_strings(column).fillna("")  # "" and missing: the same to a rep
            continue
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        if reuse == "month":
            buckets = np.floor_divide(values, 30)
        elif reuse == "recency_window":
            # Grows every day for every quiet lead; a rep reads it in the windows the other features use
            # ("1-4 weeks ago"), and octaves would flip it for 7% of leads a night.
            buckets = np.where(np.isnan(values), np.nan, np.searchsorted(RECENCY_EDGES, values, side="right"))
        elif reuse == "exact":
            buckets = values
        else:
            buckets = np.floor(np.log2(1 + np.clip(values, 0, None)))
        filled = np.where(np.isnan(buckets), -1, buckets)
        out[feature.name] = filled if reuse == "exact" else filled.astype(np.int64)
    return out


_HASH_MULTIPLIER = np.uint64(0x100000001B3)  # the 64-bit FNV prime
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_NIBBLE_SHIFTS = np.arange(60, -1, -4, dtype=np.uint64)


def hex64(values: np.ndarray) -> np.ndarray:
    """``f"{v:016x}"`` for every uint64, vectorised (a Python loop costs 0.35 s per 740k leads)."""
    nibbles = (values.astype(np.uint64)[:, None] >> _NIBBLE_SHIFTS) & np.uint64(15)
    return _HEX_DIGITS[nibbles.astype(np.intp)].view("S16").ravel().astype(str)


def feature_hash(frame: pd.DataFrame, features: FeatureSet, salt: str = "") -> pd.Series:
    """A 16-hex-digit hash per row of the coarse feature signature (plus ``salt``, e.g. the model
    version, so a new model recomputes every lead's reasons)."""
    hashed = np.zeros(len(frame), dtype=np.uint64)
    for column in coarse_signature(frame, features).values():
        if isinstance(column, pd.Series):
            column_hash = pd.util.hash_pandas_object(column, index=False).to_numpy(dtype=np.uint64)
        else:
            column_hash = pd.util.hash_array(column)
        hashed = hashed * _HASH_MULTIPLIER + column_hash  # order-sensitive mix, wrapping mod 2**64
    if salt:
        salt_value = pd.util.hash_pandas_object(pd.Series([salt]), index=False).to_numpy(dtype=np.uint64)[0]
        hashed = hashed ^ salt_value
    return pd.Series(hex64(hashed), index=frame.index, dtype=object)
