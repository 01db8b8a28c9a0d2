"""The model's encoding of lead_features: category codes, the coarse signature behind reason reuse, hashes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.features import category_codes, feature_hash, hex64


def test_category_codes_are_the_same_for_every_string_dtype_and_unseen_values_are_missing():
    categories = ["de", "fr", "us"]
    values = ["us", None, "de", "xx", "fr"]
    expected = np.array([2, np.nan, 0, np.nan, 1], dtype=np.float32)
    for column in (
        pd.Series(values, dtype="str"),
        pd.Series(values, dtype=object),
        pd.Series(values, dtype="category"),
    ):
        np.testing.assert_array_equal(category_codes(column, categories), expected)


def test_hex64_matches_python_formatting():
    values = np.array([0, 1, 0xDEADBEEF, 2**63, 2**64 - 1], dtype=np.uint64)
    assert hex64(values).tolist() == [f"{int(v):016x}" for v in values]


def test_feature_hash_follows_the_buckets_a_rep_would_notice(split, features):
    rows = split.test.head(50).reset_index(drop=True)
    base = feature_hash(rows, features, "v1")
    # The same values in another string dtype hash the same: yesterday's hashes came from DuckDB too.
    as_object = rows.astype({name: object for name in rows.columns if isinstance(rows[name].dtype, pd.StringDtype)})
    assert (feature_hash(as_object, features, "v1") == base).all()

    def hash_with(**values) -> str:
        changed = rows.copy()
        for name, value in values.items():
            changed.loc[0, name] = value
        return feature_hash(changed, features, "v1").iloc[0]

    assert hash_with(pricing_views_7d=3.0) == hash_with(pricing_views_7d=6.0)  # same octave: 3-6
    assert hash_with(pricing_views_7d=6.0) != hash_with(pricing_views_7d=7.0)  # next octave
    assert hash_with(pricing_views_decayed=0.0) == hash_with(pricing_views_decayed=5.0)  # decay is not in it
    assert hash_with(country="DE") != hash_with(country="FR")
    # Days since the last touch grow every night; only the 7/30/90-day window a rep reads counts.
    assert hash_with(days_since_last_touch=8.0) == hash_with(days_since_last_touch=29.0)
    assert hash_with(days_since_last_touch=29.0) != hash_with(days_since_last_touch=30.0)
    assert (feature_hash(rows, features, "v2") != base).all()  # a new model version changes every hash
