"""Shared fixtures: a tiny synthetic warehouse, built once per session with the real dbt project.

Every test that needs a warehouse gets a real DuckDB file in a temp dir; nothing touches data/.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from ml import warehouse as warehouse_lib
from ml.sources.synthetic import SCALES, SyntheticConfig, load_synthetic

REPO = Path(__file__).resolve().parents[1]
DBT_PROJECT = warehouse_lib.DBT_PROJECT_DIR
# A fixed end date keeps the tiny warehouse identical from day to day.
TINY_END_DATE = dt.date(2026, 6, 30)


# `make test` spreads test files over two workers (pytest-xdist, --dist loadfile) in collection order: the
# longest files go first, so that one worker does not finish long after the other.
LONGEST_FIRST = ("test_operable.py", "test_spark_parity.py", "test_orchestration.py", "test_real_exports.py")


def pytest_configure(config: pytest.Config) -> None:
    """Parse the dbt project (Dagster's manifest) once, before any xdist worker starts: two workers preparing
    it at the same time on a fresh clone wait on each other's file lock and can time out."""
    if not hasattr(config, "workerinput"):  # the controller, or a run without workers
        from dagster_project.project import dbt_project

        dbt_project()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


def tiny_config(**overrides) -> SyntheticConfig:
    return SyntheticConfig(**{"n_accounts": SCALES["tiny"], "end_date": TINY_END_DATE, **overrides})


def run_dbt(
    warehouse: Path, *args: str, project_dir: Path = DBT_PROJECT, check: bool = True
) -> subprocess.CompletedProcess:
    """Run dbt against ``warehouse``; by default fail the test with dbt's output when dbt fails."""
    result = warehouse_lib.run_dbt(warehouse, *args, base_env=os.environ, project_dir=project_dir)
    if check and result.returncode != 0:
        raise AssertionError(f"dbt {' '.join(args)} failed:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}")
    return result


@pytest.fixture(scope="session", autouse=True)
def isolated_mlflow(tmp_path_factory):
    """Nothing a test runs may touch data/: MLflow tracking goes to a temp store for the session (and with it
    the Optuna studies, which live beside a SQLite store unless the training resource says otherwise)."""
    root = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        yield root


@pytest.fixture(scope="session", autouse=True)
def isolated_crm(tmp_path_factory):
    """Tests sync to a CRM sandbox in a temp dir, never to data/ and never to a real CRM whose credentials
    happen to be in the shell."""
    root = tmp_path_factory.mktemp("crm")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LEADSCORE_CRM", "sandbox")
        env.setenv("LEADSCORE_CRM_SANDBOX_STATE", str(root / "crm_sandbox.sqlite"))
        for name in (
            "HUBSPOT_ACCESS_TOKEN",
            "SALESFORCE_CLIENT_ID",
            "SALESFORCE_CLIENT_SECRET",
            "SALESFORCE_JWT_KEY_FILE",
        ):
            env.delenv(name, raising=False)
        yield root


@pytest.fixture(scope="session", autouse=True)
def isolated_mail(tmp_path_factory):
    """Digests the nightlies send go to a local mail sink in a temp dir, never to data/mail or a real relay."""
    root = tmp_path_factory.mktemp("mail")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LEADSCORE_MAIL_DIR", str(root))
        for name in ("LEADSCORE_SMTP_HOST", "LEADSCORE_SLACK_WEBHOOK_URL", "LEADSCORE_SMTP_PASSWORD"):
            env.delenv(name, raising=False)
        yield root


@pytest.fixture(scope="session", autouse=True)
def no_model_diagnostics():
    """The nightlies tests run skip the learning curve and the ablation (~25 refits of the model each):
    tests/ml/test_ml_candidates.py and tests/test_ml_assets.py exercise them on purpose."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LEADSCORE_MODEL_DIAGNOSTICS", "off")
        yield


@pytest.fixture(scope="session")
def tiny_raw_warehouse(tmp_path_factory) -> Path:
    """A warehouse file with only the tiny synthetic raw data (copied by tests that modify it)."""
    path = tmp_path_factory.mktemp("raw") / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        load_synthetic(con, tiny_config())
    return path


@pytest.fixture(scope="session")
def built_warehouse(tmp_path_factory, tiny_raw_warehouse) -> Path:
    """The tiny warehouse after a full ``dbt build`` (every model and test). Read-only for tests."""
    path = tmp_path_factory.mktemp("built") / "warehouse.duckdb"
    shutil.copy(tiny_raw_warehouse, path)
    run_dbt(path, "build")
    return path


@pytest.fixture
def warehouse_copy(tmp_path, built_warehouse) -> Path:
    """A private copy of the built warehouse for tests that write."""
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(built_warehouse, path)
    return path


def query(path: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()
