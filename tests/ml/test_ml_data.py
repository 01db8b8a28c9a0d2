"""Reading training rows: a large warehouse is sampled by whole accounts, stably."""

from __future__ import annotations

import duckdb
import pandas as pd

from ml import warehouse
from ml.data import HASH_BUCKETS, account_sample_buckets, load_labelled


def test_account_sample_buckets():
    assert account_sample_buckets(300, None) is None
    assert account_sample_buckets(300, 300) is None  # small enough: everything
    assert account_sample_buckets(120_000, 20_000) == round(HASH_BUCKETS / 6)
    assert account_sample_buckets(10**9, 1) == 1  # never an empty sample


def test_training_rows_are_a_stable_sample_of_whole_accounts(labelled, features, built_warehouse):
    with warehouse.connect(built_warehouse, read_only=True) as con:
        sampled = load_labelled(con, features, max_accounts=100)
        again = load_labelled(con, features, max_accounts=100)
    accounts, all_accounts = set(sampled["account_id"]), set(labelled["account_id"])
    assert accounts < all_accounts and 50 <= len(accounts) <= 150
    # Whole accounts: every labelled row of a sampled account is there, in the same fixed order.
    expected = labelled[labelled["account_id"].isin(accounts)].reset_index(drop=True)
    assert sampled[["lead_id", "as_of"]].equals(expected[["lead_id", "as_of"]])
    assert again["lead_id"].equals(sampled["lead_id"])


# Three chunks of one 2,048-row vector each; the integer and boolean columns have NULLs in one chunk
# only, so the chunks disagree on their types and the concatenation must settle them as ``.df()`` does.
MIXED_RESULT = """
    SELECT i AS lead_id,
           CASE WHEN i > 4500 THEN NULL ELSE i % 17 END AS days_since_last_touch,
           CASE WHEN i < 10 THEN NULL ELSE i % 2 = 0 END AS flag,
           i / 7.0 AS ratio,
           CASE WHEN i % 3 = 0 THEN NULL ELSE 'lead ' || i END AS label,
           DATE '2026-01-01' + (i % 30)::INTEGER AS as_of
    FROM range(5000) AS t(i) WHERE i >= ? ORDER BY i
"""


def test_frames_fetched_in_chunks_equal_one_fetch_with_the_same_types():
    con = duckdb.connect()
    whole = con.execute(MIXED_RESULT, [0]).df()
    chunked = warehouse.fetch_frame(con, MIXED_RESULT, [0], chunk_vectors=1)
    pd.testing.assert_frame_equal(chunked, whole, check_exact=True)
    assert str(chunked["days_since_last_touch"].dtype) == "Int64"


def test_an_empty_result_keeps_its_columns_and_types():
    con = duckdb.connect()
    empty = warehouse.fetch_frame(con, MIXED_RESULT, [10_000], chunk_vectors=1)
    pd.testing.assert_frame_equal(empty, con.execute(MIXED_RESULT, [10_000]).df())
    assert list(empty.columns) == ["lead_id", "days_since_last_touch", "flag", "ratio", "label", "as_of"]
