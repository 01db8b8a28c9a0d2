"""What a data scientist asks of a trained model beyond its score: would more history help (learning
curve), and what is each reason or group of features worth (ablation)?

Both refit the main LightGBM with the tuned parameters and number of rounds (no re-tuning: a curve of
differently tuned models would mix two effects) and grade on the test window, as the model itself is.

* **Learning curve.** Test ROC AUC and PR AUC of LightGBM and of the logistic regression trained on
  10/25/50/100% of the training *accounts* (nested hash samples: each share contains the smaller). A
  curve still rising at 100% says more history would help; a flat one says the features are the limit.
* **Ablation.** For each feature group (fit, engagement, lifecycle) and each reason (the ``reason`` the
  dbt YAML declares), the model refitted without those features; the ROC AUC it loses on the test window
  with a 95% paired account-bootstrap interval. An interval above zero: the features carry signal the
  others do not.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from ml.evaluate import bootstrap_auc_difference, roc_pr_auc
from ml.features import LABEL, Categories, FeatureSet, to_matrix
from ml.linear import LinearModel
from ml.split import Split
from ml.train import TrainConfig, fit_logistic, fit_main_lightgbm

log = logging.getLogger(__name__)


def account_share_mask(accounts: pd.Series, share: float, seed: int) -> np.ndarray:
    """Rows whose account falls in a stable hash sample of ``share`` of the accounts; nested across shares
    (the 10% sample is inside the 25% one), so the curve measures more data, not other data."""
    hashed = pd.util.hash_pandas_object(accounts.astype(str), index=False, hash_key=f"lc{seed:014d}")
    return (hashed.to_numpy(dtype=np.uint64) / np.float64(2**64)) < share


@dataclass(frozen=True)
class CurvePoint:
    share: float
    accounts: int
    rows: int
    positives: int
    lightgbm_roc_auc: float
    lightgbm_pr_auc: float
    logistic_roc_auc: float
    logistic_pr_auc: float


def learning_curve(
    split: Split,
    features: FeatureSet,
    categories: Categories,
    params: dict[str, object],
    rounds: int,
    config: TrainConfig,
    logistic: LinearModel | None = None,
    full: lgb.Booster | None = None,
) -> list[CurvePoint]:
    """Both models refitted on growing shares of the training accounts: LightGBM with the tuned parameters
    and rounds, the logistic regression with the tuned C and transform of ``logistic``."""
    y_test = split.test[LABEL].to_numpy(dtype=int)
    test_matrix = to_matrix(split.test, categories, features.names)
    points = []
    for share in config.learning_curve:
        whole = share >= 1.0
        # All of it is the training side itself: not a second copy of the largest frame of the run.
        train = split.train
        subset = train if whole else train[account_share_mask(train["account_id"], share, config.seed)]
        positives = int(subset[LABEL].sum())
        if positives < 5 or positives == len(subset):
            log.info("learning curve: %.0f%% of the accounts hold %d conversions: skipped", 100 * share, positives)
            continue
        # At 100% the refits would be the trained models themselves (same data, parameters and seed).
        booster = (
            full if whole and full is not None else fit_main_lightgbm(subset, categories, features, params, rounds)
        )
        linear = (
            logistic if whole and logistic is not None else fit_logistic(subset, categories, features, config, logistic)
        )
        lgbm = roc_pr_auc(y_test, booster.predict(test_matrix, raw_score=True))
        lr = roc_pr_auc(y_test, linear.margin(test_matrix))
        points.append(CurvePoint(share, int(subset["account_id"].nunique()), len(subset), positives, *lgbm, *lr))
        log.info("learning curve: %.0f%% of accounts: test ROC AUC %.4f (logistic %.4f)", 100 * share, lgbm[0], lr[0])
    return points


ABLATION_MAX_ROWS = 250_000  # ~22 refits of at most this many rows: ~3 minutes on 2 cores


@dataclass(frozen=True)
class AblationRow:
    kind: str  # "group" or "reason"
    name: str
    features: int
    roc_auc_without: float
    roc_auc_loss: float  # full model minus the model without these features
    ci_low: float
    ci_high: float
    pr_auc_loss: float


def ablation_units(features: FeatureSet) -> list[tuple[str, str, tuple[str, ...]]]:
    """(kind, name, columns) of every group and every reason that leaves at least one feature behind."""
    units = []
    for group in ("fit", "engagement", "lifecycle"):
        units.append(("group", group, tuple(f.name for f in features.features if f.group == group)))
    for factor in features.factors:
        units.append(("reason", factor, tuple(f.name for f in features.features if f.factor == factor)))
    return [u for u in units if 0 < len(u[2]) < len(features.names)]


def ablation(
    split: Split,
    features: FeatureSet,
    categories: Categories,
    params: dict[str, object],
    rounds: int,
    seed: int,
    resamples: int = 200,
    full: lgb.Booster | None = None,
    max_rows: int = ABLATION_MAX_ROWS,
) -> list[AblationRow]:
    """One refit per group and reason. Above ``max_rows`` training rows, every refit (the full model's
    too) uses the same hash sample of whole accounts with about that many rows: the comparison stays
    like for like, and a large warehouse's nightly does not spend a quarter of an hour on it."""
    test = split.test
    y = test[LABEL].to_numpy(dtype=int)
    if not 0 < y.sum() < len(y):
        return []
    accounts = test["account_id"].to_numpy()
    train = split.train
    if len(train) > max_rows:
        train = train[account_share_mask(train["account_id"], max_rows / len(train), seed)]
        full = None
        log.info(
            "ablation: refits on %d of %d training rows (a sample of whole accounts)", len(train), len(split.train)
        )
    full = full or fit_main_lightgbm(train, categories, features, params, rounds)
    full_margin = full.predict(to_matrix(test, categories, features.names), raw_score=True)
    full_roc, full_pr = roc_pr_auc(y, full_margin)
    rows = []
    for kind, name, columns in ablation_units(features):
        reduced = features.without(columns)
        booster = fit_main_lightgbm(train, categories, reduced, params, rounds)
        margin = booster.predict(to_matrix(test, categories, reduced.names), raw_score=True)
        roc, pr = roc_pr_auc(y, margin)
        low, high = bootstrap_auc_difference(y, full_margin, margin, accounts, resamples, seed)
        rows.append(AblationRow(kind, name, len(columns), roc, full_roc - roc, low, high, full_pr - pr))
    return rows


def curve_frame(points: list[CurvePoint]) -> pd.DataFrame:
    return pd.DataFrame([asdict(p) for p in points])


def ablation_frame(rows: list[AblationRow]) -> pd.DataFrame:
    frame = pd.DataFrame([asdict(r) for r in rows])
    return frame.sort_values(["kind", "roc_auc_loss"], ascending=[True, False]) if len(frame) else frame


def curve_metrics(points: list[CurvePoint]) -> dict[str, float]:
    """MLflow metrics: ``learning_curve_<model>_roc_auc_<pct>`` per share."""
    out = {}
    for p in points:
        pct = round(100 * p.share)
        out[f"learning_curve_lightgbm_roc_auc_{pct}"] = p.lightgbm_roc_auc
        out[f"learning_curve_logistic_roc_auc_{pct}"] = p.logistic_roc_auc
    return out


def ablation_markdown(rows: list[AblationRow]) -> str:
    """The ablation table as Markdown, largest loss first within groups and reasons."""
    if not rows:
        return "_no ablation (the test window has no conversion)_"
    lines = [
        "| left out | features | ROC AUC without | ROC AUC lost | 95% interval | PR AUC lost |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for r in ablation_frame(rows).itertuples():
        lines.append(
            f"| {r.kind} `{r.name}` | {r.features} | {r.roc_auc_without:.4f} | {r.roc_auc_loss:+.4f} | "
            f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}] | {r.pr_auc_loss:+.4f} |"
        )
    return "\n".join(lines)


def curve_markdown(points: list[CurvePoint]) -> str:
    if not points:
        return "_no learning curve (too few conversions)_"
    lines = [
        "| training accounts | rows | conversions | LightGBM ROC AUC | logistic ROC AUC | LightGBM PR AUC "
        "| logistic PR AUC |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        lines.append(
            f"| {100 * p.share:.0f}% ({p.accounts:,}) | {p.rows:,} | {p.positives:,} | {p.lightgbm_roc_auc:.4f} | "
            f"{p.logistic_roc_auc:.4f} | {p.lightgbm_pr_auc:.4f} | {p.logistic_pr_auc:.4f} |"
        )
    return "\n".join(lines)


def plot_curve(points: list[CurvePoint], path) -> None:
    """learning_curve.png: test ROC AUC against the share of training accounts, both models."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    shares = [100 * p.share for p in points]
    ax.plot(shares, [p.lightgbm_roc_auc for p in points], "o-", label="LightGBM")
    ax.plot(shares, [p.logistic_roc_auc for p in points], "s--", label="logistic regression")
    ax.set(xlabel="share of training accounts (%)", ylabel="test ROC AUC", title="Learning curve")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
