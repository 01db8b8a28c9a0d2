"""PSI: ~0 for the same distribution, above the warning line for a shifted one."""

from __future__ import annotations

import numpy as np

from ml.bundle import percentile_reference
from ml.drift import WARN_ABOVE, psi, score_drift


def test_psi_same_distribution_is_near_zero_and_shift_warns():
    rng = np.random.default_rng(0)
    train = rng.beta(1, 20, 50_000) * 100
    today_same = rng.beta(1, 20, 20_000) * 100
    today_shifted = rng.beta(2, 10, 20_000) * 100
    assert psi(train, today_same) < 0.01
    assert psi(train, today_shifted) > WARN_ABOVE
    # The bundle keeps quantiles of the training scores, not the scores: same verdicts.
    reference = percentile_reference(train)
    assert not score_drift(reference, today_same).warn
    drift = score_drift(reference, today_shifted)
    assert drift.warn and "investigate" in drift.message


def test_psi_handles_a_lumpy_reference():
    train = np.concatenate([np.zeros(900), np.linspace(1, 10, 100)])
    assert psi(train, train) == 0.0
    assert psi(train, np.full(100, 5.0)) > WARN_ABOVE
