"""Time-based, account-disjoint split of labelled ``lead_features`` rows, and the minimum-data rule.

Why this shape:

* **Time.** Sides are consecutive ``as_of`` windows, oldest first: ``train`` | embargo | ``valid``
  (early stopping, Optuna) | ``calib`` (probability calibration) | ``test`` (the most recent fully
  labelled window; gate and reported metrics). Never random across time. A training row's label looks
  90 days past its ``as_of``; the embargo (default: the label horizon) keeps every training label
  resolved before the first evaluated day, exactly as in production, where tonight's model is trained
  on labels that closed before today.
* **Accounts.** The same lead appears in many weekly snapshots, and leads of one account share its
  product usage and its buying decision; an account on two sides would let the model be graded on
  what it memorised. Accounts are therefore dealt to sides by a seeded hash of ``account_id`` (default
  65% train, 10% valid, 10% calib, 15% test); each side then keeps only its own time window. As a
  final guarantee, a side drops any row whose account already appears on an earlier side (the later
  side loses, never the training data of the earlier one). Because the hash is stable, yesterday's
  champion never trained on today's test accounts, which keeps the gate fair.
* **Minimum data.** Like Salesforce Einstein (1,000 leads, 120 conversions), training is skipped
  below ``min_leads`` distinct labelled leads or ``min_conversions`` distinct converted leads in the
  training side; the caller keeps the champion.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml.features import LABEL

SIDES = ("train", "valid", "calib", "test")


@dataclass(frozen=True)
class SplitConfig:
    test_days: int = 28
    calib_days: int = 28
    valid_days: int = 28
    embargo_days: int = 90  # between the last training as_of and the first validation as_of
    valid_fraction: float = 0.10
    calib_fraction: float = 0.10
    test_fraction: float = 0.15
    seed: int = 7
    min_leads: int = 1_000
    min_conversions: int = 120
    # Accounts whose history training reads; a larger warehouse is hash-sampled (ml.data.load_labelled).
    # 20,000 accounts of the bench data are ~3.6M labelled rows and ~4,000 training conversions.
    max_accounts: int | None = 20_000


@dataclass(frozen=True)
class Window:
    start: dt.date | None  # inclusive; None = from the beginning
    end: dt.date  # inclusive

    def mask(self, as_of: pd.Series) -> np.ndarray:
        days = as_of.dt.date if hasattr(as_of, "dt") else as_of
        lo = pd.Timestamp(self.start) if self.start else pd.Timestamp.min
        values = pd.to_datetime(days)
        return ((values >= lo) & (values <= pd.Timestamp(self.end))).to_numpy()


@dataclass
class Split:
    train: pd.DataFrame
    valid: pd.DataFrame
    calib: pd.DataFrame
    test: pd.DataFrame
    windows: dict[str, Window]
    dropped_overlap: dict[str, int] = field(default_factory=dict)  # rows dropped per side for account overlap

    def sides(self) -> dict[str, pd.DataFrame]:
        return {"train": self.train, "valid": self.valid, "calib": self.calib, "test": self.test}

    def summary(self) -> dict[str, object]:
        """Row, lead, account and conversion counts plus window bounds per side (for logs and metadata)."""
        out: dict[str, object] = {}
        for name, frame in self.sides().items():
            window = self.windows[name]
            out[f"{name}_rows"] = len(frame)
            out[f"{name}_leads"] = int(frame["lead_id"].nunique())
            out[f"{name}_accounts"] = int(frame["account_id"].nunique())
            out[f"{name}_positives"] = int(frame[LABEL].sum())
            out[f"{name}_start"] = str(window.start) if window.start else str(frame["as_of"].min().date())
            out[f"{name}_end"] = str(window.end)
        return out


def account_bucket(account_id: pd.Series, seed: int) -> np.ndarray:
    """A stable number in [0, 1) per account (blake2b of seed and id): same account, same bucket, always."""
    salt = str(seed).encode()[:16]
    codes, uniques = pd.factorize(account_id)
    per_account = np.asarray(
        [
            int.from_bytes(hashlib.blake2b(str(a).encode(), digest_size=8, salt=salt).digest(), "big") / 2**64
            for a in uniques
        ],
        dtype=np.float64,
    )
    return per_account[codes]


def windows_for(as_of_days: list[dt.date], config: SplitConfig) -> dict[str, Window]:
    """The four windows, anchored at the most recent labelled day."""
    last = max(as_of_days)
    test = Window(last - dt.timedelta(days=config.test_days - 1), last)
    calib_end = test.start - dt.timedelta(days=1)
    calib = Window(calib_end - dt.timedelta(days=config.calib_days - 1), calib_end)
    valid_end = calib.start - dt.timedelta(days=1)
    valid = Window(valid_end - dt.timedelta(days=config.valid_days - 1), valid_end)
    train = Window(None, valid.start - dt.timedelta(days=config.embargo_days + 1))
    return {"train": train, "valid": valid, "calib": calib, "test": test}


def time_split(labelled: pd.DataFrame, config: SplitConfig = SplitConfig()) -> Split:
    """Split rows that have a label (``converted_90d`` not null) into train/valid/calib/test.

    ``labelled`` is only read: each side is a copy of its own rows, and the whole frame is never copied
    (at 3.6M training rows it is ~1.9 GB), so a caller that lets go of it afterwards holds the rows once."""
    has_label = labelled[LABEL].notna().to_numpy()
    if not has_label.any():
        raise ValueError("no labelled rows: lead_features has no as_of whose 90 days have passed")
    as_of = pd.to_datetime(labelled["as_of"])
    windows = windows_for(sorted(set(as_of[has_label].dt.date)), config)

    bucket = account_bucket(labelled["account_id"], config.seed)
    edges = np.cumsum([0.0, config.valid_fraction, config.calib_fraction, config.test_fraction])
    pool = np.full(len(labelled), "train", dtype=object)
    for name, lo, hi in zip(("valid", "calib", "test"), edges[:-1], edges[1:], strict=True):
        pool[(bucket >= lo) & (bucket < hi)] = name

    sides: dict[str, pd.DataFrame] = {}
    dropped: dict[str, int] = {}
    seen: set[str] = set()
    for name in SIDES:
        rows = has_label & (pool == name) & windows[name].mask(as_of)
        frame = labelled[rows].assign(**{LABEL: lambda f: f[LABEL].astype("int64"), "as_of": as_of[rows].to_numpy()})
        overlap = frame["account_id"].isin(seen)
        dropped[name] = int(overlap.sum())
        frame = frame[~overlap].reset_index(drop=True)
        seen |= set(frame["account_id"].unique())
        sides[name] = frame
    return Split(**sides, windows=windows, dropped_overlap=dropped)


@dataclass(frozen=True)
class DataCheck:
    ok: bool
    leads: int
    conversions: int
    message: str


def check_minimum_data(train: pd.DataFrame, config: SplitConfig = SplitConfig()) -> DataCheck:
    """Enough history to learn from? Counts distinct leads and distinct converted leads (a lead sits in
    many weekly snapshots; counting rows would overstate the evidence)."""
    leads = int(train["lead_id"].nunique()) if len(train) else 0
    conversions = int(train.loc[train[LABEL] == 1, "lead_id"].nunique()) if len(train) else 0
    if leads < config.min_leads or conversions < config.min_conversions:
        return DataCheck(
            False,
            leads,
            conversions,
            f"skipped: the training window has {leads:,} labelled leads and {conversions:,} conversions; "
            f"at least {config.min_leads:,} leads and {config.min_conversions:,} conversions are needed "
            "(the champion stays in place)",
        )
    return DataCheck(True, leads, conversions, f"ok: {leads:,} labelled leads, {conversions:,} conversions")
