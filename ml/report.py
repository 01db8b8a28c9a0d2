"""What a person reads about a training run or a day of scores: small pure builders of Markdown tables.

The orchestrator shows them on materializations and checks (Dagster renders Markdown metadata); they
take figures already computed (:class:`ml.registry.GateDecision`, a frame of scores) and never touch
the warehouse or MLflow, so they are tested on plain values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.bundle import LETTERS
from ml.registry import GateConfig, GateDecision

# metric -> (label, higher is better)
COMPARED_METRICS: dict[str, tuple[str, bool]] = {
    "roc_auc": ("ROC AUC", True),
    "pr_auc": ("PR AUC", True),
    "brier": ("Brier score", False),
    "ece": ("calibration error (ECE)", False),
    "lift_top10": ("lift, top 10%", True),
    "capture_top10": ("conversions captured, top 10%", True),
}


def gate_tolerances(config: GateConfig) -> dict[str, float]:
    """How much worse than the champion each gated metric may be."""
    return {"roc_auc": config.roc_auc_tolerance, "pr_auc": config.pr_auc_tolerance, "brier": config.brier_tolerance}


def _figure(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def _gate_cell(metric: str, mine: float, theirs: float | None, tolerances: Mapping[str, float]) -> str:
    if metric not in tolerances:
        return "not gated"
    if theirs is None:
        return "no champion"
    tolerance = tolerances[metric]
    if COMPARED_METRICS[metric][1]:
        ok = mine >= theirs - tolerance
        rule = f"≥ champion − {tolerance:g}"
    else:
        ok = mine <= theirs + tolerance
        rule = f"≤ champion + {tolerance:g}"
    return f"{'✅ pass' if ok else '❌ fail'} ({rule})"


def gate_markdown(
    decision: GateDecision, config: GateConfig, challenger_label: str, champion_label: str | None = None
) -> str:
    """Challenger vs champion on the same test window: each compared metric for both, the difference,
    whether it is gated and within tolerance, then the decision and its reason."""
    champion = decision.champion
    champion_label = champion_label or ("—" if champion is None else "champion")
    tolerances = gate_tolerances(config)
    lines = [
        f"| metric | challenger `{challenger_label}` | champion `{champion_label}` | difference | gate |",
        "|---|---:|---:|---:|---|",
    ]
    for metric, (label, higher_is_better) in COMPARED_METRICS.items():
        if metric not in decision.challenger:
            continue
        mine = float(decision.challenger[metric])
        theirs = float(champion[metric]) if champion is not None and metric in champion else None
        difference = f"{mine - theirs:+.4f}" if theirs is not None else "—"
        better = "higher" if higher_is_better else "lower"
        lines.append(
            f"| {label} ({better} is better) | {_figure(mine)} | {_figure(theirs)} | {difference} | "
            f"{_gate_cell(metric, mine, theirs, tolerances)} |"
        )
    verdict = "promoted to champion" if decision.promote else "kept the champion"
    lines += ["", f"**Decision: {verdict}.** {decision.reason}"]
    return "\n".join(lines)


BUCKET_WIDTH = 10
BAR_WIDTH = 30


def score_histogram(scores: Iterable[float]) -> list[int]:
    """Leads per 10-point bucket of the 0-100 score: [0, 10), [10, 20), …, [90, 100] (100 counts in the
    last bucket; missing scores are left out)."""
    values = np.asarray(list(scores) if not isinstance(scores, np.ndarray | pd.Series) else scores, dtype=float)
    values = values[~np.isnan(values)]
    buckets = np.clip(np.floor(values / BUCKET_WIDTH), 0, 100 // BUCKET_WIDTH - 1).astype(int)
    return np.bincount(buckets, minlength=100 // BUCKET_WIDTH).tolist()


def histogram_markdown(counts: list[int]) -> str:
    """A Markdown table of bucket counts with their share and a bar, readable without a chart."""
    total = sum(counts) or 1
    most = max(counts) if counts and max(counts) else 1
    lines = ["| score | leads | share | |", "|---|---:|---:|---|"]
    for i, count in enumerate(counts):
        low, high = i * BUCKET_WIDTH, (i + 1) * BUCKET_WIDTH
        label = f"{low}–{high}" if high == 100 else f"{low}–{high - 1}"
        bar = "█" * round(BAR_WIDTH * count / most)
        lines.append(f"| {label} | {count:,} | {count / total:.1%} | {bar} |")
    return "\n".join(lines)


def tier_grid_markdown(counts: Mapping[str, int]) -> str:
    """Leads per tier as the priority grid: fit letter (rows A…D) by engagement digit (columns 1…4)."""
    digits = range(1, 5)
    lines = [
        "| fit \\ engagement | " + " | ".join(str(d) for d in digits) + " | total |",
        "|---|" + "---:|" * 5,
    ]
    for letter in LETTERS:
        row = [int(counts.get(f"{letter}{d}", 0)) for d in digits]
        lines.append(f"| {letter} | " + " | ".join(f"{n:,}" for n in row) + f" | {sum(row):,} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class ScoreSummary:
    """One day of scores in a few figures: count, min/mean/max, histogram, leads per tier."""

    leads: int
    minimum: float | None
    mean: float | None
    maximum: float | None
    histogram: list[int]
    tiers: dict[str, int]

    @classmethod
    def of(cls, scores: pd.DataFrame) -> ScoreSummary:
        values = pd.to_numeric(scores["score"], errors="coerce").dropna()
        tiers = scores["tier"].dropna().astype(str).value_counts().sort_index()
        present = len(values) > 0
        return cls(
            leads=len(scores),
            minimum=round(float(values.min()), 2) if present else None,
            mean=round(float(values.mean()), 2) if present else None,
            maximum=round(float(values.max()), 2) if present else None,
            histogram=score_histogram(values.to_numpy()),
            tiers={str(k): int(v) for k, v in tiers.items()},
        )


CANDIDATE_LABELS = {"lightgbm": "LightGBM (tuned)", "logistic_regression": "logistic regression (tuned)"}


def candidates_markdown(metrics: Mapping[str, float], chosen: str) -> str:
    """The candidate main models side by side: validation ROC AUC (what chose), test ROC AUC and PR AUC."""
    test = {
        "lightgbm": (metrics.get("candidate_lightgbm_test_roc_auc"), metrics.get("candidate_lightgbm_test_pr_auc")),
        "logistic_regression": (metrics.get("baseline_logistic_roc_auc"), metrics.get("baseline_logistic_pr_auc")),
    }
    lines = [
        "| candidate | validation ROC AUC | test ROC AUC | test PR AUC | role |",
        "|---|---:|---:|---:|---|",
    ]
    for name, label in CANDIDATE_LABELS.items():
        valid = metrics.get(f"candidate_{name}_valid_roc_auc")
        if valid is None:
            continue
        role = "**main model**" if name == chosen else "baseline"
        lines.append(f"| {label} | {_figure(valid)} | {_figure(test[name][0])} | {_figure(test[name][1])} | {role} |")
    low, high = (
        metrics.get("candidate_logistic_regression_gain_ci_low"),
        metrics.get("candidate_logistic_regression_gain_ci_high"),
    )
    if low is not None and high is not None:
        lines.append("")
        lines.append(
            f"Logistic regression's validation gain over LightGBM, 95% interval: [{low:+.4f}, {high:+.4f}] "
            "(it replaces LightGBM only when the whole interval is above 0)."
        )
    return "\n".join(lines)
