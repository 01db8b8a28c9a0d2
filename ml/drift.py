"""Score drift: the population stability index (PSI) of today's scores against the training scores.

PSI = Σ (actual% − expected%) · ln(actual% / expected%) over bins cut at the expected distribution's
deciles. Rule of thumb used here: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 a shift worth a
warning (the population or the pipeline changed; retrain or investigate before trusting the ranking).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WARN_ABOVE = 0.25


@dataclass(frozen=True)
class Drift:
    psi: float
    warn: bool

    @property
    def message(self) -> str:
        verdict = "shift: investigate before trusting the scores" if self.warn else "stable"
        return f"score PSI {self.psi:.3f} vs training ({verdict}; warn above {WARN_ABOVE})"


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """PSI of ``actual`` against ``expected`` (raw values), bins at the deciles of ``expected``."""
    expected = np.asarray(expected, dtype=float)
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        return 0.0
    inner = edges[1:-1]
    e = np.bincount(np.searchsorted(inner, expected, side="right"), minlength=len(inner) + 1) / len(expected)
    a = np.bincount(np.searchsorted(inner, actual, side="right"), minlength=len(inner) + 1) / max(1, len(actual))
    e, a = np.maximum(e, 1e-4), np.maximum(a, 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


def score_drift(reference: list[float], scores: np.ndarray) -> Drift:
    """Drift of ``scores`` against the model's training scores (``ModelBundle.score_reference``: evenly
    spaced quantiles, a faithful stand-in for the full sample). Duplicate decile edges merge bins."""
    value = psi(np.asarray(reference, dtype=float), np.asarray(scores, dtype=float))
    return Drift(value, value > WARN_ABOVE)
