"""The nightly training run, end to end, as one function an orchestrator can call.

``TrainingData.read(con)`` reads what training needs through one read-only connection, which the
caller then closes: tuning takes minutes, and a DuckDB reader holds the file against every writer of
other runs for as long as it is open.

``train_and_register``: labelled rows → time/account split → minimum-data rule (skip, keep the
champion) → registry continuity (refuse a store that lost the champion) → one MLflow run spanning
Optuna + LightGBM and the logistic regression candidate → evaluation against baselines and both
ceilings (the clairvoyant oracle and the fair one) on the test window → learning curve and ablation
→ registered version (alias ``challenger``) → gate against the champion on the same window → alias
``champion`` moved or not. Returns a :class:`TrainingOutcome`; never raises for "not enough data".

The features are the ones the dbt YAML declares (:class:`ml.features.FeatureSet`, read by the caller
from the dbt manifest or the YAML); the run logs them (``features.json``) and the model keeps them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from ml import data as data_lib
from ml import diagnostics
from ml.bundle import ModelBundle
from ml.evaluate import (
    bootstrap_auc,
    conversion_by_tier,
    plot_all,
    probability_metrics,
    ranking_metrics,
    roc_pr_auc,
    rules_score,
)
from ml.features import LABEL, FeatureSet, to_matrix
from ml.registry import (
    CHAMPION,
    GateConfig,
    GateDecision,
    MlflowSettings,
    RegisteredVersion,
    check_registry_continuity,
    gate,
    load_alias,
    log_and_register,
    log_params,
    record_gate,
    registered_versions,
    training_run,
)
from ml.report import candidates_markdown
from ml.split import Split, SplitConfig, check_minimum_data, time_split
from ml.train import TrainConfig, TrainedModel, train_model

log = logging.getLogger(__name__)


def model_metrics(bundle: ModelBundle, test: pd.DataFrame, seed: int = 7, prefix: str = "") -> dict[str, float]:
    """The model's figures on ``test``: ranking, probability quality, bootstrap CI, conversion by tier."""
    y = test[LABEL].to_numpy(dtype=int)
    predicted = bundle.predict(test)
    p = predicted["score"].to_numpy() / 100.0
    metrics = {**ranking_metrics(y, p, prefix), **probability_metrics(y, p, prefix)}
    lo, hi = bootstrap_auc(y, p, test["account_id"].to_numpy(), seed=seed)
    metrics[f"{prefix}roc_auc_ci_low"], metrics[f"{prefix}roc_auc_ci_high"] = lo, hi
    metrics.update({f"{prefix}{k}": v for k, v in conversion_by_tier(y, predicted["tier"].to_numpy()).items()})
    for axis in ("fit_score", "engagement_score"):
        metrics.update(ranking_metrics(y, predicted[axis].to_numpy(), f"{prefix}{axis}_"))
    return metrics


@dataclass
class TrainingData:
    """What training reads from the warehouse: the declared features, the labelled rows, the synthetic
    oracle's truth (None on real data) and the model version the latest scores name (None before the
    first scoring).

    :func:`train_and_register` takes the labelled rows out (:meth:`take_labelled`) and keeps only their
    split: the frame is the largest object of a training run (~1.9 GB at 3.6M rows), and holding it
    beside its split for the whole run doubled the step's memory."""

    features: FeatureSet
    labelled: pd.DataFrame
    oracle_truth: pd.DataFrame | None = None
    scored_with: str | None = None

    def take_labelled(self) -> pd.DataFrame:
        """The labelled rows, handed over once: afterwards ``labelled`` is an empty frame with the same
        columns (a copy: a slice would be a view that keeps the whole frame's memory alive)."""
        labelled, self.labelled = self.labelled, self.labelled.iloc[:0].copy()
        return labelled

    @classmethod
    def read(
        cls, con: duckdb.DuckDBPyConnection, features: FeatureSet, split_config: SplitConfig | None = None
    ) -> TrainingData:
        """Everything at once through ``con`` (read-only is enough). Raises
        :class:`ml.features.FeatureMismatchError` when the table lacks a declared feature."""
        max_accounts = (split_config or SplitConfig()).max_accounts
        return cls(
            features,
            data_lib.load_labelled(con, features, max_accounts),
            data_lib.load_oracle_truth(con),
            data_lib.latest_scored_version(con),
        )


@dataclass
class Evaluation:
    metrics: dict[str, float]
    plots: list[Path] = field(default_factory=list)
    curve: list[diagnostics.CurvePoint] = field(default_factory=list)
    ablation: list[diagnostics.AblationRow] = field(default_factory=list)


CEILINGS = ("oracle", "fair")  # the clairvoyant oracle, and the fair ceiling that cannot see the future


def evaluate(
    trained: TrainedModel,
    split: Split,
    oracle_truth: pd.DataFrame | None,
    plots_dir: Path | None,
    config: TrainConfig | None = None,
) -> Evaluation:
    """Model vs logistic regression vs points rules vs both ceilings (where known) on the test window,
    then the learning curve and the ablation (``config.learning_curve`` / ``config.ablation``)."""
    config = config or TrainConfig()
    bundle, test = trained.bundle, split.test
    y = test[LABEL].to_numpy(dtype=int)
    metrics = model_metrics(bundle, test, config.seed)
    metrics["main_model_is_lightgbm"] = float(bundle.linear is None)
    for name, figures in trained.candidates.items():
        metrics.update({f"candidate_{name}_{k}": v for k, v in figures.items()})
    curves = {"model": bundle.probability(test)}
    test_matrix = to_matrix(test, bundle.categories, bundle.features.names)
    if trained.lightgbm is not None and 0 < y.sum() < len(y):
        roc, pr = roc_pr_auc(y, trained.lightgbm.predict(test_matrix, raw_score=True))
        metrics |= {"candidate_lightgbm_test_roc_auc": roc, "candidate_lightgbm_test_pr_auc": pr}
    if trained.linear is not None:
        logistic = trained.linear.probability(test_matrix)
        metrics.update(ranking_metrics(y, logistic, "baseline_logistic_"))
        metrics.update(probability_metrics(y, logistic, "baseline_logistic_"))
        curves["logistic"] = logistic
    if set(RULE_INPUTS) <= set(test.columns):  # the rules read fixed columns an analyst may have removed
        curves["rules"] = rules_score(test)
        metrics.update(ranking_metrics(y, curves["rules"], "baseline_rules_"))
    for ceiling, probabilities in (
        ("oracle", data_lib.oracle_probabilities(test, oracle_truth)),
        ("fair", data_lib.fair_probabilities(test, oracle_truth)),
    ):
        if probabilities is None:
            continue
        metrics.update(ranking_metrics(y, probabilities, f"{ceiling}_"))
        metrics.update(probability_metrics(y, probabilities, f"{ceiling}_"))
        curves[ceiling] = probabilities
        if "roc_auc" in metrics and f"{ceiling}_roc_auc" in metrics:
            metrics[f"share_of_{ceiling}_roc_auc"] = metrics["roc_auc"] / metrics[f"{ceiling}_roc_auc"]
            metrics[f"share_of_{ceiling}_pr_auc"] = metrics["pr_auc"] / metrics[f"{ceiling}_pr_auc"]
    evaluation = Evaluation(metrics)
    if not 0 < y.sum() < len(y):
        return evaluation
    params = {k: v for k, v in bundle.params.items() if k != "num_boost_round"}
    rounds = int(bundle.params.get("num_boost_round", 1))
    started = time.perf_counter()
    if config.learning_curve:
        evaluation.curve = diagnostics.learning_curve(
            split, bundle.features, bundle.categories, params, rounds, config, trained.linear, trained.lightgbm
        )
        metrics.update(diagnostics.curve_metrics(evaluation.curve))
    if config.ablation:
        evaluation.ablation = diagnostics.ablation(
            split, bundle.features, bundle.categories, params, rounds, config.seed, full=trained.lightgbm
        )
    metrics["diagnostics_seconds"] = time.perf_counter() - started
    if plots_dir is not None:
        evaluation.plots = plot_all(y, curves, curves["model"], trained.importance, plots_dir)
        write_diagnostics(evaluation, trained, plots_dir)
    return evaluation


RULE_INPUTS = (
    "seniority",
    "employee_band",
    "demo_requests_90d",
    "pricing_views_30d",
    "page_views_30d",
    "email_clicks_30d",
    "webinars_90d",
    "account_customer_status",
    "days_since_last_touch",
)


def write_diagnostics(evaluation: Evaluation, trained: TrainedModel, out: Path) -> None:
    """The run's tables as files beside the plots (logged under ``evaluation/``): the feature list the
    model was trained on, the candidates, the learning curve and the ablation (CSV and Markdown)."""
    out.mkdir(parents=True, exist_ok=True)
    features = trained.bundle.features
    (out / "features.json").write_text(json.dumps(features.to_records(), indent=2))
    (out / "candidates.json").write_text(
        json.dumps({"chosen": trained.bundle.main_kind, "validation": trained.candidates}, indent=2)
    )
    (out / "candidates.md").write_text(candidates_markdown(evaluation.metrics, trained.bundle.main_kind) + "\n")
    if evaluation.curve:
        diagnostics.curve_frame(evaluation.curve).to_csv(out / "learning_curve.csv", index=False)
        (out / "learning_curve.md").write_text(diagnostics.curve_markdown(evaluation.curve) + "\n")
        diagnostics.plot_curve(evaluation.curve, out / "learning_curve.png")
    if evaluation.ablation:
        diagnostics.ablation_frame(evaluation.ablation).to_csv(out / "ablation.csv", index=False)
        (out / "ablation.md").write_text(diagnostics.ablation_markdown(evaluation.ablation) + "\n")


@dataclass
class TrainingOutcome:
    status: str  # "skipped", "promoted" or "kept_champion"
    message: str
    metrics: dict[str, float] = field(default_factory=dict)
    split: dict[str, object] = field(default_factory=dict)
    version: str | None = None
    run_id: str | None = None
    experiment_id: str | None = None
    champion_version: str | None = None  # the champion after this run
    decision: GateDecision | None = None
    seconds: float = 0.0
    main_model: str | None = None  # lightgbm or logistic_regression
    curve: list[diagnostics.CurvePoint] = field(default_factory=list)
    ablation: list[diagnostics.AblationRow] = field(default_factory=list)
    features: int = 0

    @property
    def skipped(self) -> bool:
        return self.status == "skipped"

    def metadata(self) -> dict[str, object]:
        """What a person wants to see on the materialization: outcome, version, headline figures."""
        keys = (
            "roc_auc",
            "roc_auc_ci_low",
            "roc_auc_ci_high",
            "pr_auc",
            "brier",
            "ece",
            "lift_top10",
            "capture_top10",
            "baseline_logistic_roc_auc",
            "baseline_logistic_pr_auc",
            "baseline_rules_roc_auc",
            "oracle_roc_auc",
            "fair_roc_auc",
            "share_of_fair_roc_auc",
        )
        out: dict[str, object] = {"status": self.status, "message": self.message}
        if self.version:
            out["model_version"] = f"lead_scoring/{self.version}"
        if self.champion_version:
            out["champion_version"] = f"lead_scoring/{self.champion_version}"
        if self.main_model:
            out["main_model"] = self.main_model
        if self.features:
            out["features"] = self.features
        out.update({k: round(self.metrics[k], 4) for k in keys if k in self.metrics})
        out.update(
            {
                k: self.split[k]
                for k in ("train_rows", "train_leads", "train_positives", "test_rows", "test_end")
                if k in self.split
            }
        )
        return out


def train_and_register(
    data: TrainingData,
    settings: MlflowSettings,
    split_config: SplitConfig | None = None,
    train_config: TrainConfig | None = None,
    gate_config: GateConfig | None = None,
    tags: dict[str, str] | None = None,
    allow_new_registry: bool = False,
) -> TrainingOutcome:
    """Train, evaluate, register a challenger and gate it, in one MLflow run tagged with ``tags`` (e.g.
    ``dagster_run_id``). Takes ``data``'s labelled rows (:meth:`TrainingData.take_labelled`). Raises
    :class:`ml.registry.RegistryMissingError` before training when the warehouse's scores name a version
    the store lacks, unless ``allow_new_registry``."""
    started = time.perf_counter()
    split_config, train_config = split_config or SplitConfig(), train_config or TrainConfig()
    gate_config = gate_config or GateConfig()
    labelled = data.take_labelled()
    if labelled[LABEL].notna().sum() == 0:
        return TrainingOutcome("skipped", "skipped: no labelled rows in lead_features yet (the champion stays)")
    split = time_split(labelled, split_config)
    del labelled  # from here on the rows live in the split only
    summary = split.summary()
    log.info("split: %s (rows dropped for account overlap: %s)", summary, split.dropped_overlap)
    check = check_minimum_data(split.train, split_config)
    if not check.ok:
        log.warning(check.message)
        return TrainingOutcome("skipped", check.message, split=summary)
    if split.valid[LABEL].sum() == 0 or split.calib[LABEL].sum() == 0 or split.test[LABEL].sum() == 0:
        message = "skipped: a validation, calibration or test window has no conversion (the champion stays)"
        return TrainingOutcome("skipped", message, split=summary)
    check_registry_continuity(
        data.scored_with, registered_versions(settings), settings.tracking_uri, allow_new_registry
    )

    run_tags = {**data_window_tags(summary), **(tags or {})}
    with training_run(settings, f"train through {summary['test_end']}", run_tags) as run:
        # What the run trains on, logged first: a run that fails in tuning still says what it was given.
        log_params(
            {
                **{f"split.{k}": v for k, v in dataclasses.asdict(split_config).items()},
                **train_config.as_params(),
                **{f"data.{k}": v for k, v in summary.items()},
                **{f"data.dropped_overlap_{k}": v for k, v in split.dropped_overlap.items()},
            }
        )
        log_params({"features.count": len(data.features.names), "features.digest": data.features.digest()})
        trained = train_model(split, data.features, train_config)
        with tempfile.TemporaryDirectory(prefix="leadscore-train-") as tmp:
            work = Path(tmp)
            evaluation = evaluate(trained, split, data.oracle_truth, work / "plots", train_config)
            metrics = {
                **evaluation.metrics,
                "train_seconds": trained.seconds,
                "tuning_seconds": trained.tuning.seconds,
                "optuna_trials": trained.tuning.n_trials,
                "optuna_pruned": trained.tuning.n_pruned,
                "optuna_best_valid_logloss": trained.tuning.best_value,
            }
            params = {
                **{f"lgbm.{k}": v for k, v in trained.bundle.params.items()},
                "optuna.study": trained.tuning.study_name,
                "main_model": trained.bundle.main_kind,
                "calibration": "platt",
                "tier_thresholds": list(trained.bundle.tier_thresholds),
            }
            registered = log_and_register(trained.bundle, split.test, params, metrics, work / "plots", settings, work)
        log.info("registered lead_scoring/%s (run %s)", registered.version, registered.run_id)
        decision = _gate_against_champion(trained.bundle, split, registered, gate_config, settings, train_config.seed)
        record_gate(decision, registered, settings)
    champion = registered.version if decision.promote else decision.champion_version
    status = "promoted" if decision.promote else "kept_champion"
    log.info("gate: %s", decision.reason)
    return TrainingOutcome(
        status,
        decision.reason,
        metrics,
        summary,
        registered.version,
        registered.run_id,
        run.experiment_id,
        champion,
        decision,
        time.perf_counter() - started,
        trained.bundle.main_kind,
        evaluation.curve,
        evaluation.ablation,
        len(data.features.names),
    )


def data_window_tags(summary: dict[str, object]) -> dict[str, str]:
    """The data window of a run as tags (searchable in the MLflow UI): first training day to last test day."""
    return {
        "data.window_start": str(summary.get("train_start", "")),
        "data.window_end": str(summary.get("test_end", "")),
    }


def _gate_against_champion(
    bundle: ModelBundle,
    split: Split,
    registered: RegisteredVersion,
    config: GateConfig,
    settings: MlflowSettings,
    seed: int,
) -> GateDecision:
    mine = model_metrics(bundle, split.test, seed)
    champion = load_alias(settings, CHAMPION)
    if champion is None or champion.version == registered.version:
        return gate(mine, None, config)
    try:
        theirs = model_metrics(champion.bundle, split.test, seed)
    except Exception as error:  # a champion that cannot score today's rows cannot defend its title
        log.exception("champion %s could not score the test window", champion.label)
        return GateDecision(
            True,
            f"promoted: champion {champion.label} failed on the test window ({error})",
            mine,
            None,
            champion.version,
        )
    return dataclasses.replace(gate(mine, theirs, config), champion_version=champion.version)
