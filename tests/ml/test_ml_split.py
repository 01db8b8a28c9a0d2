"""The split never leaks time or accounts; the minimum-data rule skips instead of failing."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from ml.pipeline import TrainingData, train_and_register
from ml.split import SplitConfig, check_minimum_data, time_split


def synthetic_rows(accounts: int = 60, weeks: int = 60, leads_per_account: int = 3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = dt.date(2025, 1, 6)
    rows = []
    for week in range(weeks):
        as_of = start + dt.timedelta(days=7 * week)
        for a in range(accounts):
            for lead in range(leads_per_account):
                rows.append((f"L-{a}-{lead}", f"A-{a:03d}", as_of, int(rng.random() < 0.05)))
    return pd.DataFrame(rows, columns=["lead_id", "account_id", "as_of", "converted_90d"]).astype(
        {"as_of": "datetime64[us]"}
    )


def assert_no_leak(split, config: SplitConfig) -> None:
    sides = split.sides()
    for name, frame in sides.items():
        assert len(frame), name
        window = split.windows[name]
        days = frame["as_of"].dt.date
        assert days.max() <= window.end and (window.start is None or days.min() >= window.start), name
    # Time: strictly ordered windows, and every training label (as_of + 90 days) resolved before validation.
    assert sides["train"]["as_of"].max() + pd.Timedelta(days=config.embargo_days) < sides["valid"]["as_of"].min()
    assert sides["valid"]["as_of"].max() < sides["calib"]["as_of"].min()
    assert sides["calib"]["as_of"].max() < sides["test"]["as_of"].min()
    # Accounts: never on two sides.
    names = list(sides)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not set(sides[a]["account_id"]) & set(sides[b]["account_id"]), (a, b)


def test_split_of_the_tiny_warehouse_has_no_time_or_account_leak(labelled, split, small_minimums):
    assert_no_leak(split, small_minimums)
    assert split.test["as_of"].max() == labelled["as_of"].max()  # the most recent fully labelled window
    assert split.test["converted_90d"].notna().all()


def test_split_is_stable_and_depends_only_on_accounts_and_dates():
    rows = synthetic_rows()
    before = rows.copy()
    config = SplitConfig(embargo_days=28, test_days=56, calib_days=56, valid_days=56)
    first, second = time_split(rows, config), time_split(rows.sample(frac=1, random_state=3), config)
    assert_no_leak(first, config)
    pd.testing.assert_frame_equal(rows, before)  # the input is only read (the caller may still need it)
    assert all(f["converted_90d"].dtype == "int64" and f["as_of"].dtype.kind == "M" for f in first.sides().values())
    for name in ("train", "valid", "calib", "test"):
        key = ["lead_id", "as_of"]
        a = first.sides()[name].sort_values(key)[key].reset_index(drop=True)
        b = second.sides()[name].sort_values(key)[key].reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b)
    # Unlabelled rows never enter any side.
    unlabelled = rows.assign(converted_90d=pd.array([pd.NA] * len(rows), dtype="Int32"))
    both = pd.concat([rows, unlabelled.assign(as_of=rows["as_of"] + pd.Timedelta(days=500))])
    assert sum(len(f) for f in time_split(both, config).sides().values()) == sum(len(f) for f in first.sides().values())


def test_minimum_data_rule(split, small_minimums):
    assert check_minimum_data(split.train, small_minimums).ok
    check = check_minimum_data(split.train, SplitConfig())  # Einstein's 1,000 leads / 120 conversions
    assert not check.ok
    assert check.message.startswith("skipped:") and "120 conversions" in check.message


def test_training_below_the_minimum_is_skipped_without_error(labelled, features, mlflow_settings, tmp_path):
    data = TrainingData(features, labelled)
    outcome = train_and_register(data, mlflow_settings, SplitConfig())
    assert outcome.skipped and outcome.message.startswith("skipped:")
    # Training took the rows over (it keeps their split only); the columns stay for whoever looks.
    assert data.labelled.empty and list(data.labelled.columns) == list(labelled.columns) and len(labelled)
    assert outcome.version is None and outcome.split["train_leads"] < 1_000
    assert not (tmp_path / "mlflow.db").exists()  # nothing registered, the champion is untouched
