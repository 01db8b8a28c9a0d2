"""Model quality on the test window, the baselines it must beat, the oracle ceiling, and plots.

Every figure is computed on the same rows (the split's ``test`` side), so the model, the logistic
regression, the points-based rules and the synthetic generator's true probabilities are comparable.

* ROC AUC comes with a 95% bootstrap interval that resamples *accounts*, not rows: rows of one
  account (weekly snapshots of the same leads) are not independent, and a row bootstrap would
  understate the uncertainty.
* Expected calibration error uses 10 equal-count bins: probabilities of a ~3% base rate crowd into the
  lowest tenth of [0, 1], where equal-width bins would put almost everything in one bin.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

log = logging.getLogger(__name__)

TOP_FRACTIONS = (0.1, 0.2)
PRECISION_AT = (50, 100, 500)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    order = np.argsort(p, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, bins):
        if len(chunk):
            total += len(chunk) * abs(p[chunk].mean() - y[chunk].mean())
    return float(total / len(p))


def roc_pr_auc(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """(ROC AUC, PR AUC) of ``p`` against ``y``; NaN for both when ``y`` holds one class only (a window
    without conversions), where sklearn would raise."""
    if not 0 < y.sum() < len(y):
        return float("nan"), float("nan")
    return float(roc_auc_score(y, p)), float(average_precision_score(y, p))


def account_weights(groups: np.ndarray, n: int, seed: int) -> np.ndarray:
    """(rows × n) float32 multiplicities of ``n`` bootstrap resamples of whole groups (accounts): a row
    weighs as often as its account was drawn. Rows of one account are not independent (weekly snapshots of
    the same leads), so resampling rows would understate the uncertainty."""
    codes, uniques = pd.factorize(pd.Series(groups))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(uniques), size=(n, len(uniques)))
    counts = np.stack([np.bincount(d, minlength=len(uniques)) for d in draws], axis=1).astype(np.float32)
    return counts[codes]


def weighted_auc(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC under each column of ``weights`` (rows × resamples), ties counted half: the Mann-Whitney
    statistic with multiplicities, in one sort instead of one ``roc_auc_score`` per resample."""
    order = np.argsort(p, kind="stable")
    _, group = np.unique(p[order], return_inverse=True)
    w = weights[order]
    positive = y[order].astype(bool)
    pos_by_group = np.zeros((group.max() + 1, w.shape[1]))
    neg_by_group = np.zeros_like(pos_by_group)
    np.add.at(pos_by_group, group[positive], w[positive])
    np.add.at(neg_by_group, group[~positive], w[~positive])
    neg_below = np.cumsum(neg_by_group, axis=0) - neg_by_group
    pairs = pos_by_group.sum(axis=0) * neg_by_group.sum(axis=0)
    won = (pos_by_group * (neg_below + 0.5 * neg_by_group)).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, won / pairs, np.nan)


def bootstrap_auc(y: np.ndarray, p: np.ndarray, groups: np.ndarray, n: int = 200, seed: int = 7) -> tuple[float, float]:
    """95% interval of ROC AUC over ``n`` resamples of whole groups (accounts)."""
    if len(y) == 0:
        return float("nan"), float("nan")
    values = weighted_auc(y, p, account_weights(groups, n, seed))
    values = values[~np.isnan(values)]
    if not len(values):
        return float("nan"), float("nan")
    return float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))


def bootstrap_auc_difference(
    y: np.ndarray, p: np.ndarray, q: np.ndarray, groups: np.ndarray, n: int = 200, seed: int = 7
) -> tuple[float, float]:
    """95% interval of AUC(p) − AUC(q) on the same resamples of whole groups (a paired bootstrap: both
    models see the same leads in every resample, so the interval is that of the difference, not of two
    independent AUCs)."""
    weights = account_weights(groups, n, seed)
    difference = weighted_auc(y, p, weights) - weighted_auc(y, q, weights)
    difference = difference[~np.isnan(difference)]
    if not len(difference):
        return float("nan"), float("nan")
    return float(np.quantile(difference, 0.025)), float(np.quantile(difference, 0.975))


def ranking_metrics(y: np.ndarray, p: np.ndarray, prefix: str = "") -> dict[str, float]:
    """ROC AUC, PR AUC, lift and capture in the top 10%/20%, precision@K (threshold-free figures)."""
    out: dict[str, float] = {}
    if 0 < y.sum() < len(y):
        out[f"{prefix}roc_auc"] = float(roc_auc_score(y, p))
        out[f"{prefix}pr_auc"] = float(average_precision_score(y, p))
    order = np.argsort(-p, kind="stable")
    positives = max(1, int(y.sum()))
    base_rate = y.mean() if len(y) else 0.0
    for fraction in TOP_FRACTIONS:
        k = max(1, round(fraction * len(y)))
        captured = y[order[:k]].sum()
        pct = round(fraction * 100)
        out[f"{prefix}capture_top{pct}"] = float(captured / positives)
        out[f"{prefix}lift_top{pct}"] = float((captured / k) / base_rate) if base_rate else float("nan")
    for k in PRECISION_AT:
        if k <= len(y):
            out[f"{prefix}precision_at_{k}"] = float(y[order[:k]].mean())
    return out


def probability_metrics(y: np.ndarray, p: np.ndarray, prefix: str = "") -> dict[str, float]:
    return {
        f"{prefix}brier": float(brier_score_loss(y, p)),
        f"{prefix}ece": expected_calibration_error(y, p),
        f"{prefix}mean_predicted": float(p.mean()),
        f"{prefix}base_rate": float(y.mean()),
    }


def conversion_by_tier(y: np.ndarray, tier: np.ndarray) -> dict[str, float]:
    frame = pd.DataFrame({"y": y, "tier": tier})
    grouped = frame.groupby("tier")["y"].agg(["mean", "size"])
    out = {}
    for name, row in grouped.iterrows():
        out[f"tier_{name}_conversion_rate"] = float(row["mean"])
        out[f"tier_{name}_rows"] = float(row["size"])
    return out


# -- baselines ------------------------------------------------------------------------------------
# The logistic regression baseline is ml/linear.py, fitted in training (it is also a candidate main model).
RULE_POINTS = {
    "seniority": {"c_level": 15, "vp": 15, "director": 10, "manager": 5},
    "employee_band": {"201-1000": 10, "1001-5000": 10, "5000+": 5, "51-200": 5},
}


def rules_score(frame: pd.DataFrame) -> np.ndarray:
    """The static points score this product replaces (what a marketing-ops team configures by hand):
    +15 C-level/VP, +10 director, +5 manager; +10 for 201-5000 employees, +5 for 51-200 or 5000+;
    +20 for a demo request in 90 days; +10 per pricing-page visit in 30 days (at most 30);
    +2 per page view in 30 days (at most 20); +5 per email click in 30 days (at most 15); +10 for a
    webinar in 90 days; +15 when the account is on a trial; -10 when inactive for 30+ days. 0-100."""
    points = np.zeros(len(frame))
    for column, table in RULE_POINTS.items():
        points += frame[column].astype(object).map(table).fillna(0).to_numpy(dtype=float)

    def num(name: str) -> np.ndarray:
        return pd.to_numeric(frame[name], errors="coerce").fillna(0).to_numpy(dtype=float)

    points += 20 * (num("demo_requests_90d") > 0)
    points += np.minimum(10 * num("pricing_views_30d"), 30)
    points += np.minimum(2 * num("page_views_30d"), 20)
    points += np.minimum(5 * num("email_clicks_30d"), 15)
    points += 10 * (num("webinars_90d") > 0)
    points += 15 * (frame["account_customer_status"].astype(object) == "trial").to_numpy(dtype=float)
    inactive = pd.to_numeric(frame["days_since_last_touch"], errors="coerce").fillna(999).to_numpy() >= 30
    points -= 10 * inactive
    return np.clip(points, 0, 100)


# -- plots ----------------------------------------------------------------------------------------
def plot_all(
    y: np.ndarray, curves: dict[str, np.ndarray], calibrated: np.ndarray, importance: dict[str, float], out: Path
) -> list[Path]:
    """ROC, PR, calibration, cumulative gains and feature importance PNGs in ``out`` (Agg: no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = []

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, p in curves.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{name} ({roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test window)")
    ax.legend(loc="lower right", fontsize=8)
    paths.append(_save(fig, out / "roc.png"))

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, p in curves.items():
        precision, recall, _ = precision_recall_curve(y, p)
        ax.plot(recall, precision, label=f"{name} ({average_precision_score(y, p):.3f})")
    ax.axhline(y.mean(), color="k", ls=":", lw=0.8)
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (test window)")
    ax.legend(loc="upper right", fontsize=8)
    paths.append(_save(fig, out / "pr.png"))

    fig, ax = plt.subplots(figsize=(5, 5))
    order = np.argsort(calibrated, kind="stable")
    chunks = [c for c in np.array_split(order, 10) if len(c)]
    ax.plot([calibrated[c].mean() for c in chunks], [y[c].mean() for c in chunks], "o-", label="model")
    top = max(calibrated.max(), y.mean()) * 1.05
    ax.plot([0, top], [0, top], "k:", lw=0.8)
    ax.set(xlabel="predicted probability", ylabel="observed conversion rate", title="Calibration (deciles)")
    paths.append(_save(fig, out / "calibration.png"))

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, p in curves.items():
        ranked = y[np.argsort(-p, kind="stable")]
        gains = np.concatenate([[0], np.cumsum(ranked) / max(1, ranked.sum())])
        ax.plot(np.linspace(0, 1, len(gains)), gains, label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="share of leads contacted (by score)", ylabel="share of conversions captured", title="Gains")
    ax.legend(loc="lower right", fontsize=8)
    paths.append(_save(fig, out / "gains.png"))

    fig, ax = plt.subplots(figsize=(6, 8))
    ranked_features = sorted(importance.items(), key=lambda kv: kv[1])[-25:]
    ax.barh([k for k, _ in ranked_features], [v for _, v in ranked_features])
    ax.set(xlabel="total gain", title="Feature importance (main model)")
    ax.tick_params(axis="y", labelsize=7)
    paths.append(_save(fig, out / "feature_importance.png"))
    return paths


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
