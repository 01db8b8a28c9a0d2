"""Reading training rows: a large warehouse is sampled by whole accounts, stably."""

from __future__ import annotations

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
