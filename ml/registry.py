"""MLflow: the pyfunc that serves a :class:`ModelBundle`, the registered model, its aliases and the gate.

``mlflow.pyfunc.load_model("models:/lead_scoring@champion").predict(rows)`` returns ``score``,
``fit_score``, ``engagement_score`` and ``tier`` for raw ``lead_features`` rows straight from DuckDB.
The signature names every feature column; categoricals are ``string`` (MLflow has no category type:
the fixed category lists travel inside the bundle and are applied in ``predict``), numerics are
``Any``: DuckDB hands over ``int64``, nullable ``Int64`` or ``float64`` depending on the column and
on the day's nulls, and MLflow's enforcement refuses int64 → double ("not safe") and NA → long, so
declaring ``double`` would reject ordinary warehouse rows. The bundle coerces numerics to float itself.

Registry conventions (see ml/README.md): registered model ``lead_scoring``; every trained version gets
alias ``challenger``; ``champion`` moves only through :func:`record_gate` (or by hand, to roll back).
The tracking URI arrives as a value (:class:`MlflowSettings`; the entry points read
``MLFLOW_TRACKING_URI``); artifacts in ``mlartifacts/`` next to a SQLite tracking database. The
experiment is tagged as model development (``mlflow.experimentKind``) so MLflow 3's UI opens it on its
training runs, not on the GenAI traces view. Nothing here downloads: requirements are pinned from the
installed versions instead of being inferred.

A registry that lost its history is refused (:func:`check_registry_continuity`): when the warehouse's
scores name ``lead_scoring/N`` but the configured store has no version N, the store is missing or is
the wrong one, and training on would restart version numbers at 1 and crown a model without a gate.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types.schema import AnyType, ColSpec, Schema

from ml.bundle import ModelBundle
from ml.features import FeatureSet

MODEL_NAME = "lead_scoring"
CHAMPION = "champion"
CHALLENGER = "challenger"
EXPERIMENT = "lead_scoring"
TRACKING_ENV = "MLFLOW_TRACKING_URI"  # read by entry points only (the Dagster resource, CLIs)
# MLflow 3 opens an experiment on the view its kind names; without the tag the UI guesses, and an
# experiment of plain runs can open on the GenAI (traces) view. Values: see the MLflow UI's ExperimentKind.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
REQUIREMENTS = ("lightgbm", "numpy", "pandas", "pyarrow", "scikit-learn")


@dataclass(frozen=True)
class MlflowSettings:
    tracking_uri: str
    artifact_location: str | None = None  # for a new experiment; default: mlartifacts/ beside the SQLite file
    experiment: str = EXPERIMENT

    def artifact_root(self) -> str | None:
        if self.artifact_location:
            return self.artifact_location
        if self.tracking_uri.startswith("sqlite:///"):
            database = Path(self.tracking_uri.removeprefix("sqlite:///"))
            return (database.parent / "mlartifacts").resolve().as_uri()
        return None


@contextlib.contextmanager
def tracking(settings: MlflowSettings) -> Iterator[MlflowClient]:
    """Point MLflow's fluent API at ``settings`` for the duration of the block (then restore)."""
    previous_tracking, previous_registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    try:
        yield MlflowClient(settings.tracking_uri, registry_uri=settings.tracking_uri)
    finally:
        mlflow.set_tracking_uri(previous_tracking)
        mlflow.set_registry_uri(previous_registry)


def experiment_id(client: MlflowClient, settings: MlflowSettings) -> str:
    """The experiment's id, creating it (tagged as model development) when it does not exist yet; an
    older experiment without the kind tag gets it."""
    existing = client.get_experiment_by_name(settings.experiment)
    if existing is not None:
        if existing.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
            client.set_experiment_tag(existing.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return existing.experiment_id
    root = settings.artifact_root()
    location = f"{root.rstrip('/')}/{settings.experiment}" if root else None
    return client.create_experiment(
        settings.experiment, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
    )


@dataclass(frozen=True)
class TrainingRun:
    run_id: str
    experiment_id: str


@contextlib.contextmanager
def training_run(settings: MlflowSettings, run_name: str, tags: dict[str, str] | None = None) -> Iterator[TrainingRun]:
    """An MLflow run that spans the block: start it before tuning so the run's duration is the training's
    (a run opened only to log would last a second). An exception ends it as FAILED."""
    with tracking(settings) as client:
        experiment = experiment_id(client, settings)
        with mlflow.start_run(experiment_id=experiment, run_name=run_name, tags=tags or {}) as run:
            yield TrainingRun(run.info.run_id, experiment)


# -- the pyfunc -----------------------------------------------------------------------------------
class LeadScoringModel(mlflow.pyfunc.PythonModel):
    """Serves a saved :class:`ModelBundle` (artifact ``bundle``)."""

    def load_context(self, context) -> None:
        self.bundle = ModelBundle.load(Path(context.artifacts["bundle"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.bundle.predict(model_input)


def signature(features: FeatureSet) -> ModelSignature:
    """The model's inputs are the features it was trained on (the bundle also carries their kinds,
    groups and categories, and checks them on every call)."""
    inputs = Schema(
        [ColSpec("string" if f.categorical else AnyType(), f.name, required=True) for f in features.features]
    )
    outputs = Schema(
        [
            ColSpec("double", "score"),
            ColSpec("double", "fit_score"),
            ColSpec("double", "engagement_score"),
            ColSpec("string", "tier"),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def model_input(frame: pd.DataFrame, features: FeatureSet) -> pd.DataFrame:
    """Rows in the signature's types: categoricals as ``object`` strings (None when missing), numerics as
    float64. Use it for the input example and whenever calling the pyfunc from pandas 3 data."""
    out = {}
    for name in features.names:
        column = frame[name]
        if name in features.categorical:
            out[name] = column.astype(object).where(column.notna(), None)
        else:
            out[name] = pd.to_numeric(column, errors="coerce").astype("float64")
    return pd.DataFrame(out, index=frame.index).reset_index(drop=True)


def _requirements() -> list[str]:
    pins = [f"mlflow=={importlib.metadata.version('mlflow')}"]
    for package in REQUIREMENTS:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            pins.append(f"{package}=={importlib.metadata.version(package)}")
    return pins


@dataclass(frozen=True)
class RegisteredVersion:
    version: str
    run_id: str
    model_uri: str
    experiment_id: str = ""

    @property
    def label(self) -> str:
        return f"{MODEL_NAME}/{self.version}"


def log_and_register(
    bundle: ModelBundle,
    example_rows: pd.DataFrame,
    params: dict[str, object],
    metrics: dict[str, float],
    artifacts_dir: Path | None,
    settings: MlflowSettings,
    work_dir: Path,
    run_name: str = "nightly training",
    tags: dict[str, str] | None = None,
) -> RegisteredVersion:
    """Params, metrics, plots, the pyfunc (signature + input example) and a registered version of
    ``lead_scoring`` with alias ``challenger``, into the active run of :func:`training_run` when there
    is one (``run_name`` and ``tags`` then unused), else into a run of their own."""
    if mlflow.active_run() is None:
        with training_run(settings, run_name, tags):
            return log_and_register(bundle, example_rows, params, metrics, artifacts_dir, settings, work_dir)
    bundle_dir = bundle.save(work_dir / "bundle")
    run = mlflow.active_run()
    with tracking(settings) as client:
        log_params(params)
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v == v})  # NaN dropped
        if artifacts_dir is not None and artifacts_dir.exists():
            mlflow.log_artifacts(str(artifacts_dir), artifact_path="evaluation")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=LeadScoringModel(),
            artifacts={"bundle": str(bundle_dir)},
            signature=signature(bundle.features),
            input_example=model_input(example_rows.head(5), bundle.features),
            registered_model_name=MODEL_NAME,
            pip_requirements=_requirements(),
        )
        version = str(info.registered_model_version)
        client.set_registered_model_alias(MODEL_NAME, CHALLENGER, version)
        return RegisteredVersion(version, run.info.run_id, f"models:/{MODEL_NAME}/{version}", run.info.experiment_id)


def log_params(params: dict[str, object]) -> None:
    """Params into the active run, values cut to MLflow's limit."""
    mlflow.log_params({k: _param(v) for k, v in params.items()})


def _param(value: object) -> str:
    text = str(value)
    return text if len(text) <= 500 else text[:497] + "..."


@dataclass
class LoadedModel:
    bundle: ModelBundle
    version: str
    pyfunc: object

    @property
    def label(self) -> str:
        return f"{MODEL_NAME}/{self.version}"


def load_alias(settings: MlflowSettings, alias: str = CHAMPION) -> LoadedModel | None:
    """The version behind ``alias`` (None when the model or the alias does not exist yet)."""
    with tracking(settings) as client:
        try:
            version = client.get_model_version_by_alias(MODEL_NAME, alias).version
        except MlflowException:
            return None
        pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@{alias}")
    return LoadedModel(pyfunc.unwrap_python_model().bundle, str(version), pyfunc)


# -- continuity of the registry -------------------------------------------------------------------
class RegistryMissingError(RuntimeError):
    """The warehouse knows a model version the configured MLflow store does not have."""


def registered_versions(settings: MlflowSettings) -> set[str]:
    """Every version number of ``lead_scoring`` in the store (empty when the model does not exist)."""
    with tracking(settings) as client:
        return {str(v.version) for v in client.search_model_versions(f"name = '{MODEL_NAME}'")}


def check_registry_continuity(
    scored_with: str | None, versions: Collection[str], tracking_uri: str, allow_new_registry: bool = False
) -> None:
    """Refuse to train into a store that lost the champion the warehouse was scored with.

    ``scored_with`` is the model version the warehouse's latest scores name (``lead_scoring/N``, None
    when nothing was scored yet); ``versions`` the version numbers the store holds. A deleted or
    swapped store would otherwise restart numbering at 1 and crown the first new model without a gate.
    """
    prefix = f"{MODEL_NAME}/"
    if allow_new_registry or not scored_with or not scored_with.startswith(prefix):
        return
    version = scored_with.removeprefix(prefix)
    if version in set(versions):
        return
    held = f"it holds versions {', '.join(sorted(versions, key=_version_order))}" if versions else "it holds none"
    raise RegistryMissingError(
        f"main.lead_scores was scored with {scored_with}, but the MLflow registry at {tracking_uri} has no "
        f"version {version} of {MODEL_NAME} ({held}): the MLflow store that holds the champion is missing or is "
        f"not the one configured. Restore it (the tracking database and its mlartifacts/ folder, e.g. "
        f"data/mlflow.db and data/mlartifacts/) or point MLFLOW_TRACKING_URI at it. To start a new registry on "
        f"purpose (version numbers restart at 1 and the first new model becomes champion without a gate), set "
        f"allow_new_registry: true on the Dagster resource 'mlflow' for one run."
    )


def _version_order(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (0, version)


# -- the gate -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GateConfig:
    """A challenger replaces the champion unless it is worse, on the same test window, by more than:"""

    roc_auc_tolerance: float = 0.005  # absolute ROC AUC
    pr_auc_tolerance: float = 0.01  # absolute PR AUC (noisier: a few dozen positives move it)
    brier_tolerance: float = 0.001  # absolute Brier (≈3% of the Brier of a 3% base rate)


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    challenger: dict[str, float]
    champion: dict[str, float] | None = None
    champion_version: str | None = None


GATED = ("roc_auc", "pr_auc", "brier")
# Shown beside the gated metrics when challenger and champion are compared (not gated: informative).
COMPARED = (*GATED, "ece", "lift_top10", "capture_top10")


def gate(
    challenger: dict[str, float], champion: dict[str, float] | None, config: GateConfig = GateConfig()
) -> GateDecision:
    """Pure decision. No champion: promote. Otherwise every gated metric must be within tolerance. The
    decision keeps the :data:`COMPARED` figures of both (those present) for the comparison table."""
    mine = {k: challenger[k] for k in COMPARED if k in challenger or k in GATED}
    if champion is None:
        return GateDecision(True, "no champion yet: the first model becomes champion", mine)
    theirs = {k: champion[k] for k in COMPARED if k in champion or k in GATED}
    failures = []
    if mine["roc_auc"] < theirs["roc_auc"] - config.roc_auc_tolerance:
        failures.append(
            f"ROC AUC {mine['roc_auc']:.4f} < champion {theirs['roc_auc']:.4f} - {config.roc_auc_tolerance}"
        )
    if mine["pr_auc"] < theirs["pr_auc"] - config.pr_auc_tolerance:
        failures.append(f"PR AUC {mine['pr_auc']:.4f} < champion {theirs['pr_auc']:.4f} - {config.pr_auc_tolerance}")
    if mine["brier"] > theirs["brier"] + config.brier_tolerance:
        failures.append(f"Brier {mine['brier']:.5f} > champion {theirs['brier']:.5f} + {config.brier_tolerance}")
    if failures:
        return GateDecision(False, "kept champion: " + "; ".join(failures), mine, theirs)
    return GateDecision(True, "promoted: within tolerance of the champion on every gated metric", mine, theirs)


def record_gate(decision: GateDecision, registered: RegisteredVersion, settings: MlflowSettings) -> None:
    """Move ``champion`` if the gate says so; record the decision and its figures on run and version."""
    with tracking(settings) as client:
        if decision.promote:
            client.set_registered_model_alias(MODEL_NAME, CHAMPION, registered.version)
        tags = {
            "gate.decision": "promoted" if decision.promote else "kept_champion",
            "gate.reason": decision.reason[:4000],
            "gate.champion_version": decision.champion_version or "",
        }
        for key, value in tags.items():
            client.set_tag(registered.run_id, key, value)
            client.set_model_version_tag(MODEL_NAME, registered.version, key, value)
        for key, value in (decision.champion or {}).items():
            client.log_metric(registered.run_id, f"gate_champion_{key}", float(value))
        client.log_metric(registered.run_id, "gate_promoted", float(decision.promote))
