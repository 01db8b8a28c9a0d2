"""The trained artefact: main model, the two axis models, calibration, category lists and tier grid.

Everything needed to turn ``lead_features`` rows into ``score``/``fit_score``/``engagement_score``/
``tier`` lives in one :class:`ModelBundle`, saved as plain files (LightGBM text models + one JSON),
which is what the MLflow pyfunc wraps. No pickles: a bundle stays readable across library versions.

* ``score`` = 100 × Platt-calibrated probability of converting within 90 days. Platt (a logistic fit
  on the model's log-odds) rather than isotonic: the calibration slice holds tens to a few hundred
  conversions, where isotonic regression overfits into steps (ties that destroy ranking); boosted
  trees' miscalibration is mostly a monotone squash that two parameters fix.
* ``fit_score`` / ``engagement_score`` = the percentile (0-100) of the axis model's output among the
  calibration slice's leads: "better fit than 80% of leads" is what a rep can act on, whereas a
  fit-only *probability* would be squeezed into a few points.
* ``tier`` = letter from fit, digit from engagement, with thresholds at the quartiles of those
  percentiles (A ≥ 75, B ≥ 50, C ≥ 25, else D; 1 ≥ 75, 2 ≥ 50, 3 ≥ 25, else 4): A1 is a great-fit lead
  that is active right now, D4 a poor fit that is silent; each letter holds about a quarter of leads.

The bundle is self-describing: it carries the :class:`~ml.features.FeatureSet` it was trained on
(names, kinds, groups, reasons) and the category lists, and checks the rows it is given against them
(:class:`~ml.features.FeatureMismatchError` naming missing or retyped columns). The main model is
LightGBM or, when it ranked the validation window better, the logistic regression of ml/linear.py;
the axis models are always LightGBM.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from ml.features import Categories, Feature, FeatureSet, column_positions, frame_column_types, to_matrix
from ml.linear import LinearModel

DEFAULT_TIER_THRESHOLDS = (75.0, 50.0, 25.0)
LETTERS = "ABCD"


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class PlattCalibrator:
    """p = sigmoid(a · margin + b), fitted by Newton's method on the calibration slice (deterministic)."""

    a: float = 1.0
    b: float = 0.0

    @classmethod
    def fit(cls, margin: np.ndarray, y: np.ndarray, l2: float = 1e-3, iterations: int = 50) -> PlattCalibrator:
        x = np.column_stack([margin, np.ones_like(margin)]).astype(np.float64)
        y = y.astype(np.float64)
        w = np.array([1.0, 0.0])
        for _ in range(iterations):
            p = sigmoid(x @ w)
            gradient = x.T @ (p - y) + l2 * w
            hessian = (x * (p * (1 - p))[:, None]).T @ x + l2 * np.eye(2)
            step = np.linalg.solve(hessian, gradient)
            w -= step
            if np.abs(step).max() < 1e-10:
                break
        return cls(float(w[0]), float(w[1]))

    def __call__(self, margin: np.ndarray) -> np.ndarray:
        return sigmoid(self.a * margin + self.b)


def percentile_reference(values: np.ndarray, points: int = 1001) -> list[float]:
    """``points`` evenly spaced quantiles of ``values``: the reference that turns a raw output into a
    percentile (a compact stand-in for the whole calibration slice)."""
    return np.quantile(values, np.linspace(0, 1, points)).tolist()


def to_percentile(values: np.ndarray, reference: list[float]) -> np.ndarray:
    """Mid-rank percentile (0-100) of each value in the reference: ties share the middle of their
    stretch, so a lump of identical outputs (an axis model has few distinct values) is not pushed to
    either end of the scale."""
    ref = np.asarray(reference)
    below = np.searchsorted(ref, values, side="left")
    at_or_below = np.searchsorted(ref, values, side="right")
    return 100.0 * (below + at_or_below) / (2.0 * len(ref))


def tiers(fit_score: np.ndarray, engagement_score: np.ndarray, thresholds=DEFAULT_TIER_THRESHOLDS) -> np.ndarray:
    """A1…D4: letter from ``fit_score``, digit from ``engagement_score``, same thresholds for both."""
    cuts = np.asarray(thresholds, dtype=float)  # descending
    letter = (fit_score[:, None] < cuts[None, :]).sum(axis=1)
    digit = (engagement_score[:, None] < cuts[None, :]).sum(axis=1)
    labels = np.array([f"{LETTERS[i]}{j + 1}" for i in range(4) for j in range(4)], dtype=object)
    return labels[letter * 4 + digit]


@dataclass
class ModelBundle:
    boosters: dict[str, lgb.Booster]  # "fit", "engagement", and "main" unless the main model is `linear`
    features: FeatureSet
    categories: Categories
    calibrator: PlattCalibrator
    fit_reference: list[float]
    engagement_reference: list[float]
    tier_thresholds: tuple[float, float, float] = DEFAULT_TIER_THRESHOLDS
    score_reference: list[float] = field(default_factory=list)  # quantiles of training scores, for PSI
    params: dict[str, object] = field(default_factory=dict)
    linear: LinearModel | None = None  # the main model when logistic regression won on validation

    @property
    def main_kind(self) -> str:
        return "logistic_regression" if self.linear is not None else "lightgbm"

    # -- prediction ------------------------------------------------------------------------------
    def check(self, frame: pd.DataFrame) -> None:
        """Raise :class:`~ml.features.FeatureMismatchError` unless ``frame`` has every feature column in a
        type of the right kind."""
        self.features.check_columns(frame_column_types(frame), "the rows to score")

    def matrix(self, frame: pd.DataFrame, model: str = "main") -> np.ndarray:
        return to_matrix(frame, self.categories, self.features.columns(model))

    def _main_margin(self, features: np.ndarray) -> np.ndarray:
        if self.linear is not None:
            return self.linear.margin(features)
        return self.boosters["main"].predict(features, raw_score=True)

    def margin(self, frame: pd.DataFrame, model: str = "main") -> np.ndarray:
        """Raw log-odds of one model."""
        self.check(frame)
        if model == "main":
            return self._main_margin(self.matrix(frame))
        return self.boosters[model].predict(self.matrix(frame, model), raw_score=True)

    def _margins(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """Raw log-odds of every model from one matrix of all features: the axis models read column
        slices of it, so the categoricals are encoded once per scoring, not once per model."""
        out = {"main": self._main_margin(features)}
        for axis in ("fit", "engagement"):
            view = features[:, column_positions(self.features.columns(axis), self.features.names)]
            out[axis] = self.boosters[axis].predict(view, raw_score=True)
        return out

    def probability(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of converting within 90 days."""
        return self.calibrator(self.margin(frame, "main"))

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``score``, ``fit_score``, ``engagement_score`` (0-100) and ``tier`` for each row."""
        self.check(frame)
        margins = self._margins(self.matrix(frame))
        score = 100.0 * self.calibrator(margins["main"])
        fit = to_percentile(margins["fit"], self.fit_reference)
        engagement = to_percentile(margins["engagement"], self.engagement_reference)
        return pd.DataFrame(
            {
                "score": score,
                "fit_score": fit,
                "engagement_score": engagement,
                "tier": pd.Series(tiers(fit, engagement, self.tier_thresholds), dtype=object),
            },
            index=frame.index,
        )

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        """Per-feature log-odds contributions of the main model (LightGBM ``pred_contrib``, or the exact
        terms of the linear model): one column per feature, the bias last."""
        self.check(frame)
        matrix = self.matrix(frame)
        if self.linear is not None:
            return self.linear.contributions(matrix)
        return self.boosters["main"].predict(matrix, pred_contrib=True)

    # -- persistence ---------------------------------------------------------------------------
    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        for name, booster in self.boosters.items():
            booster.save_model(str(directory / f"{name}.txt"))
        if self.linear is not None:
            (directory / "linear.json").write_text(json.dumps(self.linear.to_dict(), indent=2, sort_keys=True))
        meta = {
            "features": self.features.to_records(),
            "features_digest": self.features.digest(),
            "main_kind": self.main_kind,
            "categories": self.categories,
            "calibrator": {"a": self.calibrator.a, "b": self.calibrator.b},
            "fit_reference": self.fit_reference,
            "engagement_reference": self.engagement_reference,
            "tier_thresholds": list(self.tier_thresholds),
            "score_reference": self.score_reference,
            "params": self.params,
            "models": sorted(self.boosters),
        }
        (directory / "bundle.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        return directory

    @classmethod
    def load(cls, directory: Path) -> ModelBundle:
        directory = Path(directory)
        meta = json.loads((directory / "bundle.json").read_text())
        boosters = {name: lgb.Booster(model_file=str(directory / f"{name}.txt")) for name in meta["models"]}
        linear_file = directory / "linear.json"
        linear = LinearModel.from_dict(json.loads(linear_file.read_text())) if linear_file.exists() else None
        if "features" in meta:
            features = FeatureSet.from_records(meta["features"], f"model bundle {directory.name}")
        else:
            features = _features_of_legacy_bundle(boosters, meta["categories"])
        return cls(
            boosters=boosters,
            features=features,
            categories=meta["categories"],
            calibrator=PlattCalibrator(**meta["calibrator"]),
            fit_reference=meta["fit_reference"],
            engagement_reference=meta["engagement_reference"],
            tier_thresholds=tuple(meta["tier_thresholds"]),
            score_reference=meta["score_reference"],
            params=meta["params"],
            linear=linear,
        )


def _features_of_legacy_bundle(boosters: dict[str, lgb.Booster], categories: Categories) -> FeatureSet:
    """A bundle saved before models described their features: the boosters know their column names and
    the category lists which are categorical; the axis models tell the groups. Reasons are per column."""
    fit, engagement = set(boosters["fit"].feature_name()), set(boosters["engagement"].feature_name())
    features = []
    for name in boosters["main"].feature_name():
        group = "fit" if name in fit else "engagement" if name in engagement else "lifecycle"
        features.append(Feature(name, group, name in categories, name))
    return FeatureSet(tuple(features), "a bundle saved before feature declarations")
