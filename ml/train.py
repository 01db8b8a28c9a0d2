"""Tuning and training: Optuna (seeded TPE, pruning) over LightGBM, then calibration and the two axes.

* **Features.** What the model reads is the :class:`~ml.features.FeatureSet` the dbt YAML declares,
  passed in by the caller; the bundle keeps it.
* **Budget.** ``n_trials`` and ``timeout_s`` bound the search; whichever ends first stops it. The study
  lives in SQLite under ``study_dir`` and is named after everything that decides its scores: the data
  (windows, sizes), the feature set (names, kinds, groups) and every fixed training setting (serving
  budget, early stopping, seed, ...). An interrupted run resumes the same study (``load_if_exists``)
  and only runs the trials still owed; new data, a changed feature set or serving budget starts a
  fresh study instead of mixing scores of different problems.
* **Candidates.** The tuned LightGBM and a tuned logistic regression (ml/linear.py) are compared on the
  validation window by ROC AUC (ranking is what a score is for; both are calibrated afterwards by the
  same Platt step); the logistic regression replaces LightGBM only when it is better beyond noise
  (:func:`choose_main`). Both figures are kept for the report.
* **Pruning.** ``optuna-integration`` is not installed, so a small LightGBM callback reports the
  validation log loss to the trial every ``report_every`` rounds and raises ``optuna.TrialPruned``
  when the median pruner says the trial is worse than the median of earlier ones at that point.
* **Objective.** Validation binary log loss, the same quantity early stopping watches: a proper
  scoring rule, so it rewards ranking *and* honest probabilities.
* **Determinism.** Same data + seed ⇒ same model: ``deterministic=True``, fixed ``num_threads``,
  every LightGBM seed derived from ``seed``, seeded TPE. The final model is retrained from the best
  parameters and best iteration, so it does not depend on which process ran the best trial. Two
  things can still change the result and are logged: a timeout hit before ``n_trials`` (fewer trials),
  and a resumed study (TPE's random state restarts with the process).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd

from ml.bundle import DEFAULT_TIER_THRESHOLDS, ModelBundle, PlattCalibrator, percentile_reference
from ml.evaluate import bootstrap_auc_difference, roc_pr_auc
from ml.features import LABEL, Categories, FeatureSet, categorical_indices, learn_categories, to_matrix
from ml.linear import LinearModel, fit_tuned
from ml.split import Split

log = logging.getLogger(__name__)

# The nightly tuning budget: small enough for a nightly run on 2 cores. Deployments override it through
# the Dagster resource `training` (env LEADSCORE_OPTUNA_TRIALS / _TIMEOUT_S); the bench uses the same.
NIGHTLY_TRIALS, NIGHTLY_TIMEOUT_S = 12, 240.0


@dataclass(frozen=True)
class TrainConfig:
    n_trials: int = 30
    timeout_s: float = 600.0
    seed: int = 7
    num_threads: int = 2
    # The serving budget (measured by `make bench`, ml/README.md "Serving budget"). Plain scoring is
    # linear in trees (~11-15 ms per tree per 740k leads on 2 cores) and every lead goes through all
    # three models: at most 250 + 2 x 60 trees keeps it >= 100k leads/s. Reasons (pred_contrib,
    # TreeSHAP) cost trees x leaves x depth^2 per lead: depth 4 (<= 15 leaves) keeps a nightly run
    # with reasons well under 10x plain scoring, where 52-leaf depth-6 trees cost 30x. The
    # learning-rate floor in `suggest` keeps the round cap from binding; the axes only rank leads,
    # where 60 rounds at `axis_learning_rate` lose nothing a percentile can show. On the default data
    # and a bench sample these limits gave the best validation log loss of the variants tried.
    max_rounds: int = 250
    axis_max_rounds: int = 60
    max_depth: int = 4
    axis_learning_rate: float = 0.1
    early_stopping_rounds: int = 50
    report_every: int = 10
    study_dir: Path = Path("data") / "optuna"
    study_name: str | None = None  # default: derived from the data (see module docstring)
    min_category_count: int = 1
    tier_thresholds: tuple[float, float, float] = DEFAULT_TIER_THRESHOLDS
    logistic_c: float = 1.0  # L2 strength of a logistic regression fitted without tuning (fit_logistic)
    candidates: tuple[str, ...] = ("lightgbm", "logistic_regression")
    # Diagnostics logged with every run (ml/diagnostics.py): test AUC at these shares of the training
    # accounts, and the AUC lost when each reason / group of features is left out.
    learning_curve: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
    ablation: bool = True

    def as_params(self) -> dict[str, object]:
        return {f"train.{k}": (str(v) if isinstance(v, Path | tuple) else v) for k, v in asdict(self).items()}

    def study_settings(self) -> dict[str, object]:
        """The settings that change what a trial scores (everything but the budget, where the study is
        kept, and what happens after tuning)."""
        after_tuning = {"n_trials", "timeout_s", "study_dir", "study_name", "tier_thresholds", "candidates"}
        after_tuning |= {"learning_curve", "ablation", "logistic_c"}
        return {k: v for k, v in asdict(self).items() if k not in after_tuning}


@dataclass
class TuningResult:
    best_params: dict[str, object]
    best_iteration: int
    best_value: float
    n_trials: int
    n_complete: int
    n_pruned: int
    study_name: str
    storage: str
    seconds: float
    trials_this_run: int = 0


@dataclass
class TrainedModel:
    bundle: ModelBundle
    tuning: TuningResult
    seconds: float
    importance: dict[str, float] = field(default_factory=dict)  # mean |contribution| per feature (main model)
    # Validation ROC AUC / PR AUC of every candidate main model (the chosen one is bundle.main_kind).
    candidates: dict[str, dict[str, float]] = field(default_factory=dict)
    linear: LinearModel | None = None  # the logistic regression, kept as the baseline even when not chosen
    lightgbm: lgb.Booster | None = None  # the tuned main LightGBM, kept for the comparison even when not chosen


def base_params(config: TrainConfig) -> dict[str, object]:
    return {
        "objective": "binary",
        "metric": "binary_logloss",
        "verbosity": -1,
        "deterministic": True,
        "force_col_wise": True,
        "num_threads": config.num_threads,
        "seed": config.seed,
        "bagging_seed": config.seed,
        "feature_fraction_seed": config.seed,
        "data_random_seed": config.seed,
        "feature_pre_filter": False,  # min_data_in_leaf is tuned on one Dataset
        "max_depth": config.max_depth,
    }


def suggest(trial: optuna.Trial) -> dict[str, object]:
    """The search space: capacity, regularisation and sampling of a small-data boosted model. Depth is
    fixed by the serving budget (``TrainConfig.max_depth``); 15 leaves fill a depth-4 tree."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.04, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 7, 15),
        "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 20, 400, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "bagging_freq": 1,
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 10.0, log=True),
        "cat_smooth": trial.suggest_float("cat_smooth", 1.0, 50.0, log=True),
    }


def pruning_callback(trial: optuna.Trial, every: int):
    """Report validation log loss to ``trial`` every ``every`` rounds; stop a trial the pruner dislikes."""

    def callback(env: lgb.callback.CallbackEnv) -> None:
        if (env.iteration + 1) % every:
            return
        for _, metric, value, _ in env.evaluation_result_list:
            if metric == "binary_logloss":
                trial.report(float(value), step=env.iteration + 1)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at round {env.iteration + 1} (logloss {value:.5f})")
                return

    callback.order = 25  # after early stopping's bookkeeping
    return callback


def _datasets(
    split: Split, categories: Categories, features: FeatureSet, model: str
) -> tuple[lgb.Dataset, lgb.Dataset]:
    columns = features.columns(model)
    cats = categorical_indices(columns, features)
    train = lgb.Dataset(
        to_matrix(split.train, categories, columns),
        label=split.train[LABEL].to_numpy(dtype=float),
        feature_name=list(columns),
        categorical_feature=cats,
        free_raw_data=False,
    )
    valid = lgb.Dataset(
        to_matrix(split.valid, categories, columns),
        label=split.valid[LABEL].to_numpy(dtype=float),
        reference=train,
        categorical_feature=cats,
        free_raw_data=False,
    )
    return train, valid


def default_study_name(split: Split, config: TrainConfig, features: FeatureSet) -> str:
    """Names the study after what decides its scores (data, feature set, fixed training settings), so a
    resumed run continues it and anything new starts afresh."""
    summary = split.summary()
    data = "|".join(f"{k}={summary[k]}" for k in sorted(summary) if k.startswith(("train", "valid")))
    settings = "|".join(f"{k}={v}" for k, v in sorted(config.study_settings().items()))
    key = f"{data}|features={features.digest()}|{settings}"
    return f"lead_scoring-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def tune(split: Split, categories: Categories, features: FeatureSet, config: TrainConfig) -> TuningResult:
    """Run (or resume) the Optuna study on train/valid; return the best parameters and iteration."""
    started = time.perf_counter()
    train, valid = _datasets(split, categories, features, "main")
    params0 = base_params(config)
    config.study_dir.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{(config.study_dir / 'studies.db').resolve()}"
    name = config.study_name or default_study_name(split, config, features)
    sampler = optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=max(2, min(10, config.n_trials // 3)))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=50, interval_steps=config.report_every)
    study = optuna.create_study(
        storage=storage, study_name=name, direction="minimize", sampler=sampler, pruner=pruner, load_if_exists=True
    )
    done = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    owed = max(0, config.n_trials - len(done))
    if done:
        log.info("optuna: resuming study %s with %d finished trials, %d to go", name, len(done), owed)

    def objective(trial: optuna.Trial) -> float:
        params = {**params0, **suggest(trial)}
        booster = lgb.train(
            params,
            train,
            num_boost_round=config.max_rounds,
            valid_sets=[valid],
            valid_names=["valid"],
            callbacks=[
                lgb.early_stopping(config.early_stopping_rounds, verbose=False),
                pruning_callback(trial, config.report_every),
            ],
        )
        trial.set_user_attr("best_iteration", int(booster.best_iteration or booster.current_iteration()))
        return float(booster.best_score["valid"]["binary_logloss"])

    def progress(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        best = study.best_value if any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) else None
        log.info("optuna: trial %d %s value=%s best=%s", trial.number, trial.state.name, trial.value, best)

    if owed:
        remaining = max(1.0, config.timeout_s - (time.perf_counter() - started))
        study.optimize(objective, n_trials=owed, timeout=remaining, callbacks=[progress], gc_after_trial=False)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise RuntimeError(f"optuna study {name} has no completed trial (budget too small?)")
    best = study.best_trial
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    if len(complete) + pruned < config.n_trials:
        log.warning(
            "optuna: time budget ended the search after %d of %d trials", len(complete) + pruned, config.n_trials
        )
    return TuningResult(
        best_params={**best.params, "bagging_freq": 1},
        best_iteration=int(best.user_attrs["best_iteration"]),
        best_value=float(best.value),
        n_trials=len(study.trials),
        n_complete=len(complete),
        n_pruned=pruned,
        study_name=name,
        storage=storage,
        seconds=time.perf_counter() - started,
        trials_this_run=owed,
    )


def _fit_axis(
    split: Split,
    categories: Categories,
    features: FeatureSet,
    params: dict[str, object],
    model: str,
    config: TrainConfig,
) -> lgb.Booster:
    """An axis model with the main model's parameters (learning rate at least ``axis_learning_rate``),
    its own early stopping on the validation side, and at most ``axis_max_rounds`` trees."""
    train, valid = _datasets(split, categories, features, model)
    learning_rate = max(float(params["learning_rate"]), config.axis_learning_rate)
    return lgb.train(
        {**params, "learning_rate": learning_rate},
        train,
        num_boost_round=config.axis_max_rounds,
        valid_sets=[valid],
        valid_names=["valid"],
        callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)],
    )


def fit_logistic(
    frame: pd.DataFrame,
    categories: Categories,
    features: FeatureSet,
    config: TrainConfig,
    like: LinearModel | None = None,
) -> LinearModel:
    """The logistic regression on ``frame`` with the settings of ``like`` (the tuned one) or the config's C."""
    sizes = {name: len(categories[name]) for name in features.categorical}
    matrix = to_matrix(frame, categories, features.names)
    c, squash = (like.C, like.squash) if like is not None else (config.logistic_c, False)
    return LinearModel.fit(matrix, frame[LABEL].to_numpy(dtype=int), features.names, sizes, c, config.seed, squash)


def tune_logistic(
    split: Split, categories: Categories, features: FeatureSet, config: TrainConfig
) -> tuple[LinearModel, dict[str, float]]:
    """The logistic regression with the best validation ROC AUC over the grid of ml/linear.py."""
    sizes = {name: len(categories[name]) for name in features.categorical}
    return fit_tuned(
        to_matrix(split.train, categories, features.names),
        split.train[LABEL].to_numpy(dtype=int),
        to_matrix(split.valid, categories, features.names),
        split.valid[LABEL].to_numpy(dtype=int),
        features.names,
        sizes,
        config.seed,
    )


def fit_main_lightgbm(
    frame: pd.DataFrame, categories: Categories, features: FeatureSet, params: dict[str, object], rounds: int
) -> lgb.Booster:
    """The main LightGBM model on ``frame`` with fixed parameters and rounds (no tuning, no early stopping):
    the final model, and the refits of the learning curve and the ablations."""
    columns = features.columns("main")
    dataset = lgb.Dataset(
        to_matrix(frame, categories, columns),
        label=frame[LABEL].to_numpy(dtype=float),
        feature_name=list(columns),
        categorical_feature=categorical_indices(columns, features),
        free_raw_data=False,
    )
    return lgb.train(params, dataset, num_boost_round=max(1, rounds))


def choose_main(candidates: dict[str, dict[str, float]]) -> str:
    """LightGBM unless the logistic regression ranks the validation window better *beyond noise*: its ROC
    AUC is higher and the 95% paired account-bootstrap interval of the gain lies above zero. A 28-day
    validation window holds ~150 conversions on the default data, where AUC differences under ~0.02 are
    noise (the two windows disagreed on the order of the candidates in trials); and the logistic
    regression's own setting was picked on the same window, which flatters it. Only one candidate: it."""
    if "lightgbm" not in candidates:
        return next(iter(candidates))
    logistic = candidates.get("logistic_regression")
    if logistic and logistic["valid_roc_auc"] > candidates["lightgbm"]["valid_roc_auc"] and logistic["gain_ci_low"] > 0:
        return "logistic_regression"
    return "lightgbm"


def mean_abs_contribution(bundle: ModelBundle, frame: pd.DataFrame, rows: int = 20_000) -> dict[str, float]:
    """Mean |contribution| (log-odds) per feature of the main model over up to ``rows`` rows: one importance
    measure for LightGBM (TreeSHAP) and the linear model alike."""
    sample = frame.iloc[:: max(1, len(frame) // rows)] if len(frame) > rows else frame
    if sample.empty:
        return {name: 0.0 for name in bundle.features.names}
    contrib = np.abs(bundle.contributions(sample)[:, : len(bundle.features.names)]).mean(axis=0)
    return dict(zip(bundle.features.names, (float(v) for v in contrib), strict=True))


def train_model(split: Split, features: FeatureSet, config: TrainConfig = TrainConfig()) -> TrainedModel:
    """Tune LightGBM, fit the logistic regression, keep the better on validation as the main model, fit
    both axes on ``train``, calibrate on ``calib``; return the bundle."""
    started = time.perf_counter()
    categories = learn_categories(split.train, features, config.min_category_count)
    tuning = tune(split, categories, features, config)
    params = {**base_params(config), **tuning.best_params}
    log.info("training: best params %s, %d rounds", tuning.best_params, tuning.best_iteration)

    main = fit_main_lightgbm(split.train, categories, features, params, tuning.best_iteration)
    linear, grid = tune_logistic(split, categories, features, config)
    log.info(
        "training: logistic regression C=%g squash=%s (validation ROC AUC by setting: %s)",
        linear.C,
        linear.squash,
        grid,
    )
    y_valid = split.valid[LABEL].to_numpy(dtype=int)
    valid_matrix = to_matrix(split.valid, categories, features.names)
    valid_margin = {
        "lightgbm": main.predict(valid_matrix, raw_score=True),
        "logistic_regression": linear.margin(valid_matrix),
    }
    low, high = bootstrap_auc_difference(
        y_valid, valid_margin["logistic_regression"], valid_margin["lightgbm"], split.valid["account_id"].to_numpy()
    )
    candidates = {
        name: {"valid_roc_auc": roc_pr_auc(y_valid, margin)[0]}
        for name, margin in valid_margin.items()
        if name in config.candidates
    }
    if "logistic_regression" in candidates:
        candidates["logistic_regression"] |= {"gain_ci_low": low, "gain_ci_high": high}
    chosen = choose_main(candidates)
    log.info(
        "training: main model %s (validation ROC AUC %s)",
        chosen,
        ", ".join(f"{name} {figures['valid_roc_auc']:.4f}" for name, figures in candidates.items()),
    )
    boosters = {} if chosen == "logistic_regression" else {"main": main}
    for axis in ("fit", "engagement"):
        boosters[axis] = _fit_axis(split, categories, features, params, axis, config)
        log.info("training: %s axis model, %d rounds", axis, boosters[axis].current_iteration())
    bundle = ModelBundle(
        boosters=boosters,
        features=features,
        categories=categories,
        calibrator=PlattCalibrator(),
        fit_reference=[],
        engagement_reference=[],
        tier_thresholds=config.tier_thresholds,
        params={**params, "num_boost_round": int(tuning.best_iteration)},
        linear=linear if chosen == "logistic_regression" else None,
    )
    bundle.calibrator = PlattCalibrator.fit(bundle.margin(split.calib), split.calib[LABEL].to_numpy(dtype=float))
    bundle.fit_reference = percentile_reference(bundle.margin(split.calib, "fit"))
    bundle.engagement_reference = percentile_reference(bundle.margin(split.calib, "engagement"))
    bundle.score_reference = percentile_reference(100.0 * bundle.probability(split.train))
    importance = mean_abs_contribution(bundle, split.calib)
    return TrainedModel(bundle, tuning, time.perf_counter() - started, importance, candidates, linear, main)


def shuffled_labels(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """A copy with the label permuted: a model trained on it knows nothing (used to test the gate)."""
    out = frame.copy()
    out[LABEL] = np.random.default_rng(seed).permutation(out[LABEL].to_numpy())
    return out
