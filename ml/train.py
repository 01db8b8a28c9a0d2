"""Tuning and training: Optuna (seeded TPE, pruning) over LightGBM, then calibration and the two axes.

* **Budget.** ``n_trials`` and ``timeout_s`` bound the search; whichever ends first stops it. The study
  lives in SQLite under ``study_dir`` and is named after the data it tunes on (windows, sizes, seed),
  so an interrupted run resumes the same study (``load_if_exists``) and only runs the trials still
  owed, while tomorrow's data starts a fresh study instead of mixing scores of different data.
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
from ml.features import LABEL, MODEL_FEATURES, categorical_indices, learn_categories, to_matrix
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

    def as_params(self) -> dict[str, object]:
        return {f"train.{k}": (str(v) if isinstance(v, Path | tuple) else v) for k, v in asdict(self).items()}


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
    importance: dict[str, float] = field(default_factory=dict)  # gain of the main model per feature


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


def _datasets(split: Split, categories, model: str) -> tuple[lgb.Dataset, lgb.Dataset]:
    columns = MODEL_FEATURES[model]
    cats = categorical_indices(columns)
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


def default_study_name(split: Split, config: TrainConfig) -> str:
    """Names the study after what it tunes on, so a resumed run continues it and new data starts afresh."""
    summary = split.summary()
    key = "|".join(f"{k}={summary[k]}" for k in sorted(summary) if k.startswith(("train", "valid")))
    digest = hashlib.sha256(f"{key}|seed={config.seed}".encode()).hexdigest()[:12]
    return f"lead_scoring-{digest}"


def tune(split: Split, categories, config: TrainConfig) -> TuningResult:
    """Run (or resume) the Optuna study on train/valid; return the best parameters and iteration."""
    started = time.perf_counter()
    train, valid = _datasets(split, categories, "main")
    params0 = base_params(config)
    config.study_dir.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{(config.study_dir / 'studies.db').resolve()}"
    name = config.study_name or default_study_name(split, config)
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


def _fit_axis(split: Split, categories, params: dict[str, object], model: str, config: TrainConfig) -> lgb.Booster:
    """An axis model with the main model's parameters (learning rate at least ``axis_learning_rate``),
    its own early stopping on the validation side, and at most ``axis_max_rounds`` trees."""
    train, valid = _datasets(split, categories, model)
    learning_rate = max(float(params["learning_rate"]), config.axis_learning_rate)
    return lgb.train(
        {**params, "learning_rate": learning_rate},
        train,
        num_boost_round=config.axis_max_rounds,
        valid_sets=[valid],
        valid_names=["valid"],
        callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)],
    )


def train_model(split: Split, config: TrainConfig = TrainConfig()) -> TrainedModel:
    """Tune, fit the main model and both axes on ``train``, calibrate on ``calib``; return the bundle."""
    started = time.perf_counter()
    categories = learn_categories(split.train, config.min_category_count)
    tuning = tune(split, categories, config)
    params = {**base_params(config), **tuning.best_params}
    log.info("training: best params %s, %d rounds", tuning.best_params, tuning.best_iteration)

    train, _ = _datasets(split, categories, "main")
    main = lgb.train(params, train, num_boost_round=max(1, tuning.best_iteration))
    boosters = {"main": main}
    for axis in ("fit", "engagement"):
        boosters[axis] = _fit_axis(split, categories, params, axis, config)
        log.info("training: %s axis model, %d rounds", axis, boosters[axis].current_iteration())
    calib_matrix = to_matrix(split.calib, categories)
    calibrator = PlattCalibrator.fit(
        main.predict(calib_matrix, raw_score=True), split.calib[LABEL].to_numpy(dtype=float)
    )
    bundle = ModelBundle(
        boosters=boosters,
        categories=categories,
        calibrator=calibrator,
        fit_reference=percentile_reference(
            boosters["fit"].predict(to_matrix(split.calib, categories, MODEL_FEATURES["fit"]), raw_score=True)
        ),
        engagement_reference=percentile_reference(
            boosters["engagement"].predict(
                to_matrix(split.calib, categories, MODEL_FEATURES["engagement"]), raw_score=True
            )
        ),
        tier_thresholds=config.tier_thresholds,
        params={**params, "num_boost_round": int(tuning.best_iteration)},
    )
    train_scores = 100.0 * bundle.probability(split.train)
    bundle.score_reference = percentile_reference(train_scores)
    gain = main.feature_importance(importance_type="gain")
    importance = dict(zip(main.feature_name(), (float(g) for g in gain), strict=True))
    return TrainedModel(bundle, tuning, time.perf_counter() - started, importance)


def shuffled_labels(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """A copy with the label permuted: a model trained on it knows nothing (used to test the gate)."""
    out = frame.copy()
    out[LABEL] = np.random.default_rng(seed).permutation(out[LABEL].to_numpy())
    return out
