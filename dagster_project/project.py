"""The dbt project, loaded once per process, with its manifest prepared automatically.

Nobody runs ``dbt parse`` by hand: when the manifest is missing or older than any file of the dbt
project (an analyst edited a model), loading the definitions parses the project first. ``dagster
dev`` would do this too (``prepare_if_dev``), but ``make run``, the tests and a deployed code location
must not depend on having been started that way.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from dagster_dbt import DbtProject

from ml.warehouse import DBT_PROJECT_DIR

DBT_SOURCE_SUFFIXES = {".sql", ".yml", ".yaml", ".md", ".csv"}
IGNORED_DIRS = {"target", "logs", "dbt_packages"}


def newest_source_mtime(project_dir: Path) -> float:
    """Modification time of the newest file that changes what ``dbt parse`` produces."""
    newest = 0.0
    for path in project_dir.rglob("*"):
        if path.suffix in DBT_SOURCE_SUFFIXES and not IGNORED_DIRS & set(path.relative_to(project_dir).parts):
            newest = max(newest, path.stat().st_mtime)
    return newest


def manifest_is_stale(manifest_path: Path, project_dir: Path) -> bool:
    return not manifest_path.exists() or manifest_path.stat().st_mtime < newest_source_mtime(project_dir)


@cache
def dbt_project() -> DbtProject:
    project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
    if manifest_is_stale(project.manifest_path, project.project_dir):
        project.preparer.prepare(project)
    return project
