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
Tracking URI from ``MLFLOW_TRACKING_URI`` (default ``sqlite:///data/mlflow.db``); artifacts in
``mlartifacts/`` next to a SQLite tracking database. Nothing here downloads: requirements are pinned
from the installed versions instead of being inferred.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types.schema import AnyType, ColSpec, Schema

from ml.bundle import ModelBundle
from ml.features import CATEGORICAL, FEATURE_NAMES

MODEL_NAME = "lead_scoring"
CHAMPION = "champion"
CHALLENGER = "challenger"
EXPERIMENT = "lead_scoring"
TRACKING_ENV = "MLFLOW_TRACKING_URI"
REQUIREMENTS = ("lightgbm", "numpy", "pandas", "pyarrow", "scikit-learn")


@dataclass(frozen=True)
class MlflowSettings:
    tracking_uri: str
    artifact_location: str | None = None  # for a new experiment; default: mlartifacts/ beside the SQLite file
    experiment: str = EXPERIMENT

    @classmethod
    def from_env(cls) -> MlflowSettings:
        uri = os.environ.get(TRACKING_ENV) or f"sqlite:///{(Path('data') / 'mlflow.db').resolve()}"
        return cls(uri)

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
    existing = client.get_experiment_by_name(settings.experiment)
    if existing is not None:
        return existing.experiment_id
    root = settings.artifact_root()
    location = f"{root.rstrip('/')}/{settings.experiment}" if root else None
    return client.create_experiment(settings.experiment, artifact_location=location)


# -- the pyfunc -----------------------------------------------------------------------------------
class LeadScoringModel(mlflow.pyfunc.PythonModel):
    """Serves a saved :class:`ModelBundle` (artifact ``bundle``)."""

    def load_context(self, context) -> None:
        self.bundle = ModelBundle.load(Path(context.artifacts["bundle"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.bundle.predict(model_input)


def signature() -> ModelSignature:
    inputs = Schema(
        [ColSpec("string" if name in CATEGORICAL else AnyType(), name, required=True) for name in FEATURE_NAMES]
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


def model_input(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in the signature's types: categoricals as ``object`` strings (None when missing), numerics as
    float64. Use it for the input example and whenever calling the pyfunc from pandas 3 data."""
    out = {}
    for name in FEATURE_NAMES:
        column = frame[name]
        if name in CATEGORICAL:
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
    """One MLflow run: params, metrics, plots, the pyfunc (signature + input example), a registered
    version of ``lead_scoring`` with alias ``challenger``."""
    bundle_dir = bundle.save(work_dir / "bundle")
    with tracking(settings) as client:
        experiment = experiment_id(client, settings)
        with mlflow.start_run(experiment_id=experiment, run_name=run_name) as run:
            mlflow.set_tags(tags or {})
            mlflow.log_params({k: _param(v) for k, v in params.items()})
            mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v == v})  # NaN dropped
            if artifacts_dir is not None and artifacts_dir.exists():
                mlflow.log_artifacts(str(artifacts_dir), artifact_path="evaluation")
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=LeadScoringModel(),
                artifacts={"bundle": str(bundle_dir)},
                signature=signature(),
                input_example=model_input(example_rows.head(5)),
                registered_model_name=MODEL_NAME,
                pip_requirements=_requirements(),
            )
            version = str(info.registered_model_version)
            client.set_registered_model_alias(MODEL_NAME, CHALLENGER, version)
            return RegisteredVersion(version, run.info.run_id, f"models:/{MODEL_NAME}/{version}")


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


def gate(
    challenger: dict[str, float], champion: dict[str, float] | None, config: GateConfig = GateConfig()
) -> GateDecision:
    """Pure decision. No champion: promote. Otherwise every gated metric must be within tolerance."""
    mine = {k: challenger[k] for k in GATED}
    if champion is None:
        return GateDecision(True, "no champion yet: the first model becomes champion", mine)
    theirs = {k: champion[k] for k in GATED}
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
