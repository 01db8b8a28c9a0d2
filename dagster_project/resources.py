"""Resources: the warehouse (one env var for dbt and Python), where raw data comes from, MLflow, the
training budget, and the CRMs.

Configuration enters here (``EnvVar`` fields, or ``*_from_env(environ)`` builders the definitions call
with the process environment) and reaches ``ml/`` and ``activation/`` as values: the libraries never
read the environment. Every field shows in the Launchpad with its description and can be overridden for
one run there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from activation import ConfigurationError, SyncOptions, make_destination
from activation.destination import Destination
from activation.mapping import DESTINATIONS
from ml import history, warehouse
from ml.engines import SparkLayout, check_engine, default_spark_dir
from ml.registry import EXPERIMENT, MODEL_NAME, TRACKING_ENV, MlflowSettings
from ml.sources.landing import DEFAULT_MAX_SHRINK, allowed_to_shrink, check_max_shrink
from ml.sources.synthetic import SCALES
from ml.split import SplitConfig
from ml.train import NIGHTLY_TIMEOUT_S, NIGHTLY_TRIALS, TrainConfig
from ml.warehouse import DEFAULT_MEMORY_LIMIT

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO / "data"  # the embedded default's home (git-ignored)

SOURCE_ENV = "LEADSCORE_SOURCE"  # synthetic (default) | files
SOURCE_DIR_ENV = "LEADSCORE_SOURCE_DIR"  # folder of exports, for files
SCALE_ENV = "LEADSCORE_SYNTHETIC_SCALE"  # accounts, or tiny/small/bench
SEED_ENV = "LEADSCORE_SYNTHETIC_SEED"
END_DATE_ENV = "LEADSCORE_SYNTHETIC_END_DATE"
ALLOW_SHRINK_ENV = "LEADSCORE_ALLOW_SHRINK"  # raw tables a load may empty or shrink a lot, comma-separated, or all
MAX_SHRINK_ENV = "LEADSCORE_MAX_SHRINK"  # share of a raw table's rows a load may drop (default 0.5)


class WarehouseResource(ConfigurableResource):
    """The DuckDB warehouse file, and the engine dbt builds it with. Readers open it read-only; writers
    belong to the warehouse pool. On Spark, Python still reads and writes this file: the raw tables are
    published to Parquet for Spark, and Spark's tables are views in it (``ml/engines.py``)."""

    path: str
    lock_timeout_s: float = Field(
        default=600.0,
        description="How long a step waits for the DuckDB file while a process outside the warehouse pool (a dbt "
        "left by a killed run, a SQL client) holds its lock, before it fails naming that process.",
    )
    engine: str = Field(
        default="duckdb",
        description="What dbt builds the warehouse with: duckdb (the file itself) or spark (env LEADSCORE_ENGINE; "
        "the dbt profile reads the same variable). README 'Scaling out'.",
    )
    spark_dir: str = Field(
        default="",
        description="Spark's raw Parquet, tables and metastore (env LEADSCORE_SPARK_DIR); empty: spark/ beside the "
        "warehouse file.",
    )
    memory_limit: str = Field(
        default=DEFAULT_MEMORY_LIMIT,
        description="DuckDB's memory limit in every Python connection (env LEADSCORE_DUCKDB_MEMORY_LIMIT; dbt's "
        "profile reads the same variable). Past it DuckDB spills to spill_dir.",
    )
    spill_dir: str = Field(
        default="", description="Where DuckDB spills (env LEADSCORE_DUCKDB_SPILL_DIR); empty: beside the warehouse."
    )
    history_chunk_rows: int = Field(
        default=0,
        description="Rows of lead_features one statement may build when the whole history is rebuilt (env "
        "LEADSCORE_HISTORY_CHUNK_ROWS); 0: from the memory limit (600,000 per GB). Smaller chunks use less memory.",
    )

    def history_max_rows(self) -> int:
        return self.history_chunk_rows or history.rows_per_chunk(self.memory_limit)

    def settings(self) -> warehouse.DuckDBSettings:
        return warehouse.DuckDBSettings(self.memory_limit, Path(self.spill_dir) if self.spill_dir else None)

    def spark_layout(self) -> SparkLayout | None:
        """Spark's folders when dbt runs on Spark, else None."""
        if check_engine(self.engine) != "spark":
            return None
        return SparkLayout(Path(self.spark_dir) if self.spark_dir else default_spark_dir(Path(self.path)))

    def connect(self, read_only: bool = False, log: Any = None) -> duckdb.DuckDBPyConnection:
        on_wait = log.info if log is not None else None
        return warehouse.connect_waiting(
            Path(self.path), read_only, self.lock_timeout_s, on_wait, settings=self.settings()
        )

    def wait_until_writable(self, log: Any = None) -> None:
        """Return once this process could take the write lock (before handing the file to dbt)."""
        if Path(self.path).exists():
            self.connect(log=log).close()


DEFAULT_TRACKING_URI = f"sqlite:///{DATA_DIR / 'mlflow.db'}"
DEFAULT_MLFLOW_UI = "http://127.0.0.1:5000"
# MLflow 3's UI starts in its GenAI view (a per-browser setting); this query opens a page in the model
# training view, where runs, metrics and registered versions are.
MODEL_TRAINING_VIEW = "workflowType=machine_learning"


class MlflowResource(ConfigurableResource):
    """The MLflow tracking store and model registry the model is trained into and scored from."""

    tracking_uri: str = Field(
        default=DEFAULT_TRACKING_URI,
        description="MLflow tracking and registry URI (env MLFLOW_TRACKING_URI). A SQLite store keeps its "
        "artifacts in mlartifacts/ beside the database file.",
    )
    experiment: str = Field(default=EXPERIMENT, description="MLflow experiment of the nightly training runs.")
    ui_url: str = Field(
        default=DEFAULT_MLFLOW_UI,
        description="Base URL of the MLflow UI, for the links on the model's materializations (`make mlflow`).",
    )
    allow_new_registry: bool = Field(
        default=False,
        description="Train even though the warehouse's scores name a model version this store lacks (the store "
        "was lost or swapped): version numbers restart and the first new model becomes champion without a gate. "
        "Set it for one run, after restoring the store proved impossible.",
    )

    def settings(self) -> MlflowSettings:
        return MlflowSettings(tracking_uri=self.tracking_uri, experiment=self.experiment)

    def run_url(self, experiment_id: str, run_id: str) -> str:
        """The MLflow UI page of a run."""
        return f"{self.ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?{MODEL_TRAINING_VIEW}"

    def version_url(self, version: str) -> str:
        """The MLflow UI page of a registered version of the model."""
        return f"{self.ui_url.rstrip('/')}/#/models/{MODEL_NAME}/versions/{version}?{MODEL_TRAINING_VIEW}"


def mlflow_from_env(environ: Mapping[str, str]) -> MlflowResource:
    """The tracking URI from ``MLFLOW_TRACKING_URI`` (an ``EnvVar``, resolved when a run starts) when it is
    set, else the embedded default ``sqlite:///<repo>/data/mlflow.db``."""
    if environ.get(TRACKING_ENV):
        return MlflowResource(tracking_uri=EnvVar(TRACKING_ENV))
    return MlflowResource()


TRIALS_ENV, TIMEOUT_ENV = "LEADSCORE_OPTUNA_TRIALS", "LEADSCORE_OPTUNA_TIMEOUT_S"


def default_study_dir(tracking_uri: str) -> Path:
    """Where the Optuna studies live by default: ``optuna/`` beside a SQLite MLflow store (both are the
    model's history and move together; tests that isolate MLflow isolate the studies too), else
    ``<repo>/data/optuna``."""
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri.removeprefix("sqlite:///")).expanduser().resolve().parent / "optuna"
    return DATA_DIR / "optuna"


class TrainingResource(ConfigurableResource):
    """The nightly tuning budget, where the Optuna study is kept (so an interrupted run resumes it), and the
    least training data a model is trained on (below it training is skipped and the champion stays)."""

    n_trials: int = Field(
        default=NIGHTLY_TRIALS, description="Optuna trials per nightly training (env LEADSCORE_OPTUNA_TRIALS)."
    )
    timeout_s: float = Field(
        default=NIGHTLY_TIMEOUT_S,
        description="Seconds the tuning may take; whichever of trials and time ends first stops it "
        "(env LEADSCORE_OPTUNA_TIMEOUT_S).",
    )
    study_dir: str = Field(
        default="",
        description="Folder of the Optuna study database (studies.db). Empty: optuna/ beside the SQLite MLflow "
        "store (data/optuna by default), or data/optuna under the repo for a remote tracking server.",
    )

    min_leads: int = Field(
        default=SplitConfig.min_leads, description="Fewest leads in the training window; fewer: training is skipped."
    )
    min_conversions: int = Field(
        default=SplitConfig.min_conversions,
        description="Fewest conversions in the training window; fewer: training is skipped.",
    )
    learning_curve: bool = Field(
        default=True,
        description="Log the learning curve (test AUC at 10/25/50/100% of the training accounts) with each model.",
    )
    ablation: bool = Field(
        default=True,
        description="Log the ablation table (AUC lost without each feature group and reason) with each model.",
    )

    def split_config(self) -> SplitConfig:
        return SplitConfig(min_leads=self.min_leads, min_conversions=self.min_conversions)

    def train_config(self, tracking_uri: str) -> TrainConfig:
        study_dir = Path(self.study_dir).expanduser().resolve() if self.study_dir else default_study_dir(tracking_uri)
        return TrainConfig(
            n_trials=self.n_trials,
            timeout_s=self.timeout_s,
            study_dir=study_dir,
            learning_curve=TrainConfig.learning_curve if self.learning_curve else (),
            ablation=self.ablation,
        )


# The learning curve and the ablation refit the model ~25 times after training (about a minute and a half
# on the default data): on by default, off where only the pipeline's path matters (the tests' nightlies).
DIAGNOSTICS_ENV = "LEADSCORE_MODEL_DIAGNOSTICS"


def training_from_env(environ: Mapping[str, str]) -> TrainingResource:
    """The nightly budget from ``LEADSCORE_OPTUNA_TRIALS`` / ``_TIMEOUT_S`` (defaults 12 / 240 s) and the
    diagnostics switch ``LEADSCORE_MODEL_DIAGNOSTICS`` (on / off, default on)."""
    try:
        n_trials = int(environ.get(TRIALS_ENV, "").strip() or NIGHTLY_TRIALS)
        timeout_s = float(environ.get(TIMEOUT_ENV, "").strip() or NIGHTLY_TIMEOUT_S)
    except ValueError as exc:
        raise ValueError(f"{TRIALS_ENV} must be a whole number and {TIMEOUT_ENV} a number of seconds: {exc}") from None
    if n_trials < 1 or timeout_s <= 0:
        raise ValueError(f"{TRIALS_ENV} must be at least 1 and {TIMEOUT_ENV} positive")
    diagnostics = environ.get(DIAGNOSTICS_ENV, "on").strip().lower() or "on"
    if diagnostics not in ("on", "off"):
        raise ValueError(f"{DIAGNOSTICS_ENV} must be on or off, not {diagnostics!r}")
    on = diagnostics == "on"
    return TrainingResource(n_trials=n_trials, timeout_s=timeout_s, learning_curve=on, ablation=on)


class SourcesResource(ConfigurableResource):
    """``synthetic`` (the embedded default) or ``files`` (a folder of CSV/Parquet exports)."""

    kind: str = "synthetic"
    files_dir: str = ""
    synthetic_scale: int = SCALES["small"]
    synthetic_seed: int = 7
    synthetic_end_date: str = ""  # last day of history; empty: yesterday (UTC)
    # Volume guards of the landing step (ml/sources/landing.py): tables (or "all") that may shrink anyway, and
    # the share of a table's rows a load may drop before it is refused.
    allow_shrink: list[str] = Field(default_factory=list)
    max_shrink: float = DEFAULT_MAX_SHRINK


def sources_from_env(environ: Mapping[str, str]) -> SourcesResource:
    """The sources configuration from environment variables, refusing unknown or incomplete settings."""
    kind = environ.get(SOURCE_ENV, "synthetic").strip().lower() or "synthetic"
    if kind not in ("synthetic", "files"):
        raise ValueError(f"{SOURCE_ENV} must be 'synthetic' or 'files', not {kind!r}")
    files_dir = environ.get(SOURCE_DIR_ENV, "")
    if kind == "files" and not files_dir:
        raise ValueError(f"{SOURCE_ENV}=files needs {SOURCE_DIR_ENV}, the folder of exports")
    scale_text = environ.get(SCALE_ENV, "small")
    scale = SCALES[scale_text] if scale_text in SCALES else int(scale_text)
    allow_shrink = [name.strip().lower() for name in environ.get(ALLOW_SHRINK_ENV, "").split(",") if name.strip()]
    try:
        allowed_to_shrink(allow_shrink)
    except ValueError as exc:
        raise ValueError(f"{ALLOW_SHRINK_ENV}: {exc}") from None
    try:
        max_shrink = check_max_shrink(environ.get(MAX_SHRINK_ENV, "").strip() or DEFAULT_MAX_SHRINK)
    except ValueError as exc:
        raise ValueError(f"{MAX_SHRINK_ENV}: {exc}") from None
    return SourcesResource(
        kind=kind,
        files_dir=files_dir,
        synthetic_scale=scale,
        synthetic_seed=int(environ.get(SEED_ENV, "7")),
        synthetic_end_date=environ.get(END_DATE_ENV, ""),
        allow_shrink=allow_shrink,
        max_shrink=max_shrink,
    )


CRM_ENV = "LEADSCORE_CRM"  # sandbox (the embedded default) | live
CRM_DESTINATIONS_ENV = "LEADSCORE_CRM_DESTINATIONS"  # which CRMs to sync, comma-separated
SANDBOX_STATE_ENV = "LEADSCORE_CRM_SANDBOX_STATE"
DEFAULT_SANDBOX_STATE = DATA_DIR / "crm_sandbox.sqlite"  # beside the repo's data/, whatever the warehouse
# Non-secret settings of each CRM, read when the definitions load; secrets go through EnvVar.
CRM_SETTINGS = {
    "hubspot": ("HUBSPOT_BASE_URL", "HUBSPOT_TIER"),
    "salesforce": (
        "SALESFORCE_LOGIN_URL",
        "SALESFORCE_CLIENT_ID",
        "SALESFORCE_JWT_KEY_FILE",
        "SALESFORCE_USERNAME",
        "SALESFORCE_API_VERSION",
        "SALESFORCE_BULK_THRESHOLD",
    ),
}
CRM_SECRETS = {"hubspot": ("HUBSPOT_ACCESS_TOKEN",), "salesforce": ("SALESFORCE_CLIENT_SECRET",)}
# Variables whose presence says someone meant a real CRM: in sandbox mode they are refused, not ignored.
CRM_CREDENTIALS = (
    "HUBSPOT_ACCESS_TOKEN",
    "SALESFORCE_CLIENT_ID",
    "SALESFORCE_CLIENT_SECRET",
    "SALESFORCE_JWT_KEY_FILE",
)


class CrmResource(ConfigurableResource):
    """Where the activation assets sync: the local CRM sandbox, or the real HubSpot portal and Salesforce org.

    ``mode`` is chosen by configuration (``LEADSCORE_CRM``), never by a missing credential: a live deployment
    without one fails before it syncs anything, naming the variable, and CRM credentials found in sandbox mode
    are refused so that nobody believes they synced to a real CRM.
    """

    mode: str = "sandbox"
    destinations: list[str] = Field(default_factory=lambda: list(DESTINATIONS))
    # Sync even when most of what a CRM holds would be cleared (set it in the Launchpad for one run, after
    # checking the warehouse); max_change_share also refuses wholesale changes when set.
    force: bool = False
    max_change_share: float | None = None
    sandbox_state: str = str(DEFAULT_SANDBOX_STATE)
    # Names (never values) of CRM credentials set in the environment while in sandbox mode.
    credentials_in_environment: list[str] = Field(default_factory=list)
    # Live settings, by their documented variable names (activation/README.md); secrets arrive as EnvVar.
    settings: dict[str, str] = Field(default_factory=dict)
    hubspot_access_token: str | None = None
    salesforce_client_secret: str | None = None

    def sync_options(self) -> SyncOptions:
        return SyncOptions(force=self.force, max_change_fraction=self.max_change_share)

    def live_values(self, destination: str) -> dict[str, str]:
        """The values a live client is built from, under the variable names its messages use."""
        values = {name: value for name, value in self.settings.items() if name in CRM_SETTINGS[destination]}
        secrets = {"HUBSPOT_ACCESS_TOKEN": self.hubspot_access_token,
                   "SALESFORCE_CLIENT_SECRET": self.salesforce_client_secret}  # fmt: skip
        values.update({name: secrets[name] or "" for name in CRM_SECRETS[destination] if secrets[name]})
        return values

    @contextlib.contextmanager
    def open(self, destination: str, conn: duckdb.DuckDBPyConnection, log: Any) -> Iterator[Destination]:
        """A client for ``destination``: the real CRM, or the sandbox seeded from the warehouse's CRM copy."""
        if self.mode == "live":
            client = make_destination(destination, self.live_values(destination))
            try:
                yield client
            finally:
                client.close()  # type: ignore[attr-defined]
            return
        if self.credentials_in_environment:
            names = ", ".join(self.credentials_in_environment)
            raise ConfigurationError(
                f"{names} set, but {CRM_ENV} is 'sandbox' (the default): set {CRM_ENV}=live to sync to the real "
                f"CRM, or unset {names} to use the local sandbox"
            )
        # Imported here: only the embedded default needs the sandbox.
        from activation.sandbox import run_sandbox, seed_from_warehouse

        with run_sandbox(state_path=self.sandbox_state) as sandbox:
            seeded = seed_from_warehouse(sandbox.app, conn)
            if any(seeded.values()):
                log.info(f"CRM sandbox: copied the company's CRM records it lacked: {seeded}")
            before = sandbox.app.counts()[destination]
            log.info(f"{CRM_ENV}=sandbox: syncing {destination} to the local CRM sandbox at {sandbox.url} "
                     f"(state in {self.sandbox_state}); it holds {before}")  # fmt: skip
            client = make_destination(destination, sandbox.env())
            try:
                yield client
            finally:
                client.close()  # type: ignore[attr-defined]
            after = sandbox.app.counts()[destination]
            log.info(f"CRM sandbox now holds {after} records" + (" (none created)" if after == before else ""))


def crm_from_env(environ: Mapping[str, str]) -> CrmResource:
    """The CRM configuration from environment variables; refuses an unknown mode or destination."""
    mode = environ.get(CRM_ENV, "sandbox").strip().lower() or "sandbox"
    if mode not in ("sandbox", "live"):
        raise ValueError(f"{CRM_ENV} must be 'sandbox' or 'live', not {mode!r}")
    wanted = environ.get(CRM_DESTINATIONS_ENV, ",".join(DESTINATIONS))
    destinations = [d.strip().lower() for d in wanted.split(",") if d.strip()]
    unknown = sorted(set(destinations) - set(DESTINATIONS))
    if unknown:
        raise ValueError(f"{CRM_DESTINATIONS_ENV} names unknown CRMs {unknown}; use {', '.join(DESTINATIONS)}")
    state = Path(environ.get(SANDBOX_STATE_ENV) or DEFAULT_SANDBOX_STATE).expanduser().resolve()
    if mode == "sandbox":
        found = [name for name in CRM_CREDENTIALS if environ.get(name)]
        return CrmResource(destinations=destinations, sandbox_state=str(state), credentials_in_environment=found)
    settings = {name: environ[name] for d in destinations for name in CRM_SETTINGS[d] if environ.get(name)}
    # Secrets resolve when a run starts; one that is not set then fails the sync, naming the variable.
    hubspot_token = EnvVar("HUBSPOT_ACCESS_TOKEN") if "hubspot" in destinations else None
    jwt = bool(environ.get("SALESFORCE_JWT_KEY_FILE"))
    salesforce_secret = EnvVar("SALESFORCE_CLIENT_SECRET") if "salesforce" in destinations and not jwt else None
    return CrmResource(
        mode="live",
        destinations=destinations,
        sandbox_state=str(state),
        settings=settings,
        hubspot_access_token=hubspot_token,
        salesforce_client_secret=salesforce_secret,
    )


# --- the workflow: CRM tasks and the morning digest --------------------------------------------------------
WORKFLOW_TASKS_ENV = "LEADSCORE_WORKFLOW_TASKS"  # on (default) | off: a CRM task per new alert
DIGEST_EMAIL_ENV = "LEADSCORE_DIGEST_EMAIL"  # on (default) | off
DIGEST_SLACK_ENV = "LEADSCORE_DIGEST_SLACK"  # off (default) | on
SMTP_HOST_ENV = "LEADSCORE_SMTP_HOST"  # empty: the local mail sink (the embedded default)
SMTP_PORT_ENV = "LEADSCORE_SMTP_PORT"
SMTP_STARTTLS_ENV = "LEADSCORE_SMTP_STARTTLS"
SMTP_USERNAME_ENV = "LEADSCORE_SMTP_USERNAME"
SMTP_PASSWORD_ENV = "LEADSCORE_SMTP_PASSWORD"  # a secret: EnvVar
DIGEST_FROM_ENV = "LEADSCORE_DIGEST_FROM"
SLACK_WEBHOOK_ENV = "LEADSCORE_SLACK_WEBHOOK_URL"  # a secret: EnvVar; empty in sandbox mode: the sandbox's
MAIL_DIR_ENV = "LEADSCORE_MAIL_DIR"  # where the local sink files what it receives
DEFAULT_MAIL_DIR = DATA_DIR / "mail"
DEFAULT_DIGEST_FROM = "Leadscore <leadscore@localhost>"


def switch(environ: Mapping[str, str], name: str, default: bool) -> bool:
    """An on/off variable: on/off, true/false, 1/0, yes/no (any case); refuses anything else."""
    text = environ.get(name, "").strip().lower()
    if not text:
        return default
    if text in ("on", "true", "1", "yes"):
        return True
    if text in ("off", "false", "0", "no"):
        return False
    raise ValueError(f"{name} must be on or off, not {text!r}")


class WorkflowResource(ConfigurableResource):
    """What the workflow delivers, and how: a switch per channel, SMTP (or the local sink), Slack."""

    crm_tasks: bool = Field(default=True, description="Create one CRM task per new alert for the lead's owner.")
    digest_email: bool = Field(default=True, description="Send each rep's morning digest by e-mail.")
    digest_slack: bool = Field(default=False, description="Post each rep's digest summary to a Slack webhook.")
    smtp_host: str = Field(
        default="", description="SMTP relay; empty: the local mail sink, which files the messages under mail_dir."
    )
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_username: str = ""
    smtp_password: str | None = None
    digest_from: str = DEFAULT_DIGEST_FROM
    slack_webhook_url: str | None = None
    mail_dir: str = str(DEFAULT_MAIL_DIR)

    def smtp_settings(self, sink_port: int | None = None) -> Any:
        from activation.digest import SmtpSettings

        if not self.smtp_host:
            if sink_port is None:
                raise ValueError("no SMTP host and no local sink")
            return SmtpSettings(host="127.0.0.1", port=sink_port)
        return SmtpSettings(
            host=self.smtp_host,
            port=self.smtp_port,
            starttls=self.smtp_starttls,
            username=self.smtp_username or None,
            password=self.smtp_password or None,
        )


def workflow_from_env(environ: Mapping[str, str]) -> WorkflowResource:
    """The workflow's switches and delivery settings from environment variables (README 'Workflow')."""
    return WorkflowResource(
        crm_tasks=switch(environ, WORKFLOW_TASKS_ENV, True),
        digest_email=switch(environ, DIGEST_EMAIL_ENV, True),
        digest_slack=switch(environ, DIGEST_SLACK_ENV, False),
        smtp_host=environ.get(SMTP_HOST_ENV, "").strip(),
        smtp_port=int(environ.get(SMTP_PORT_ENV) or 25),
        smtp_starttls=switch(environ, SMTP_STARTTLS_ENV, False),
        smtp_username=environ.get(SMTP_USERNAME_ENV, "").strip(),
        smtp_password=EnvVar(SMTP_PASSWORD_ENV) if environ.get(SMTP_PASSWORD_ENV) else None,
        digest_from=environ.get(DIGEST_FROM_ENV, "").strip() or DEFAULT_DIGEST_FROM,
        slack_webhook_url=EnvVar(SLACK_WEBHOOK_ENV) if environ.get(SLACK_WEBHOOK_ENV) else None,
        mail_dir=str(Path(environ.get(MAIL_DIR_ENV) or DEFAULT_MAIL_DIR).expanduser().resolve()),
    )
