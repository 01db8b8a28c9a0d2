"""The Markdown a person reads: the gate's comparison table, the score histogram, the tier grid."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.registry import GateConfig, gate
from ml.report import ScoreSummary, gate_markdown, histogram_markdown, score_histogram, tier_grid_markdown

CHAMPION = {"roc_auc": 0.80, "pr_auc": 0.20, "brier": 0.030, "ece": 0.010, "lift_top10": 3.1, "capture_top10": 0.31}


def test_gate_table_compares_both_models_and_states_the_decision():
    challenger = {**CHAMPION, "roc_auc": 0.79, "brier": 0.0305, "extra_metric": 1.0}
    decision = gate(challenger, CHAMPION, GateConfig())
    table = gate_markdown(decision, GateConfig(), "lead_scoring/5", "lead_scoring/3")
    lines = table.splitlines()
    assert lines[0].startswith("| metric | challenger `lead_scoring/5` | champion `lead_scoring/3` |")
    roc = next(line for line in lines if line.startswith("| ROC AUC"))
    assert "0.7900" in roc and "0.8000" in roc and "-0.0100" in roc and "❌ fail" in roc and "0.005" in roc
    brier = next(line for line in lines if line.startswith("| Brier"))
    assert "✅ pass" in brier and "lower is better" in brier
    assert "not gated" in next(line for line in lines if line.startswith("| calibration error"))
    assert "extra_metric" not in table
    assert "**Decision: kept the champion.**" in table and "ROC AUC 0.7900 < champion" in table


def test_gate_table_of_the_first_model():
    decision = gate(CHAMPION, None)
    table = gate_markdown(decision, GateConfig(), "lead_scoring/1")
    assert "champion `—`" in table and "no champion" in table
    assert "**Decision: promoted to champion.** no champion yet" in table


def test_score_histogram_has_ten_buckets_and_100_in_the_last():
    counts = score_histogram(np.array([0.0, 9.99, 10.0, 55.5, 99.9, 100.0, np.nan]))
    assert counts == [2, 1, 0, 0, 0, 1, 0, 0, 0, 2]
    assert score_histogram([]) == [0] * 10
    table = histogram_markdown(counts)
    assert "| 0–9 | 2 | 33.3% |" in table and "| 90–100 | 2 | 33.3% |" in table
    assert histogram_markdown([0] * 10).count("| 0 | 0.0% |") == 10  # no division by zero


def test_tier_grid_and_score_summary():
    scores = pd.DataFrame({"score": [5.0, 50.0, 95.0, None], "tier": ["A1", "A1", "D4", "B2"]})
    summary = ScoreSummary.of(scores)
    assert (summary.leads, summary.minimum, summary.mean, summary.maximum) == (4, 5.0, 50.0, 95.0)
    assert summary.histogram[0] == 1 and summary.histogram[9] == 1 and sum(summary.histogram) == 3
    assert summary.tiers == {"A1": 2, "B2": 1, "D4": 1}
    grid = tier_grid_markdown(summary.tiers)
    assert "| A | 2 | 0 | 0 | 0 | 2 |" in grid and "| D | 0 | 0 | 0 | 1 | 1 |" in grid
    empty = ScoreSummary.of(pd.DataFrame({"score": [], "tier": []}))
    assert empty.minimum is None and empty.histogram == [0] * 10


def test_the_candidates_table_shows_both_models_and_which_one_serves():
    from ml.report import candidates_markdown

    metrics = {
        "candidate_lightgbm_valid_roc_auc": 0.93,
        "candidate_lightgbm_test_roc_auc": 0.89,
        "candidate_lightgbm_test_pr_auc": 0.25,
        "candidate_logistic_regression_valid_roc_auc": 0.935,
        "candidate_logistic_regression_gain_ci_low": -0.004,
        "candidate_logistic_regression_gain_ci_high": 0.015,
        "baseline_logistic_roc_auc": 0.868,
        "baseline_logistic_pr_auc": 0.241,
    }
    table = candidates_markdown(metrics, "lightgbm")
    assert "| LightGBM (tuned) | 0.9300 | 0.8900 | 0.2500 | **main model** |" in table
    assert "| logistic regression (tuned) | 0.9350 | 0.8680 | 0.2410 | baseline |" in table
    assert "[-0.0040, +0.0150]" in table
