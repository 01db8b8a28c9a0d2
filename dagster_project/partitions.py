"""Daily partitions of the history assets and the pure functions that turn a partition window into
dbt arguments (unit-tested without running dbt)."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping

from dagster import DailyPartitionsDefinition

# The first day that can be built. History models need ~90 days of data before it, so the default
# suits the embedded synthetic data (two years up to yesterday); set it to your own data's start.
PARTITIONS_START_ENV = "LEADSCORE_PARTITIONS_START"
DEFAULT_PARTITIONS_START = "2025-01-01"

# A partition is a day of data: the latest one is yesterday (end_offset 0), complete at midnight UTC.
daily_partitions = DailyPartitionsDefinition(
    start_date=os.environ.get(PARTITIONS_START_ENV, DEFAULT_PARTITIONS_START), timezone="UTC"
)


def latest_partition_at(moment: dt.datetime) -> str | None:
    """The latest complete day at ``moment`` (None before the first partition).

    The CRM syncs ask this for the moment their run was launched, not for now: a nightly launched for
    yesterday that is still running after midnight is still the latest run and must still sync."""
    keys = daily_partitions.get_partition_keys(current_time=moment)
    return keys[-1] if keys else None


HISTORY_TAG = "daily_history"
# The dbt models that read the scores (lead_alerts): built after scoring, by assets_workflow.py.
WORKFLOW_TAG = "workflow"


def dbt_build_args(vars_: Mapping[str, object] | None = None, full_refresh: bool = False) -> list[str]:
    """Arguments of the ``dbt build`` the assets run (selection is added by dagster-dbt)."""
    args = ["build"]
    if vars_:
        args += ["--vars", json.dumps(dict(vars_), sort_keys=True)]
    if full_refresh:
        args.append("--full-refresh")
    return args


TRAINING_SNAPSHOT_EVERY_DAYS = 7  # the training history is weekly (README, "Partitions")


def training_history_vars(last_day: dt.date, first_partition_day: dt.date | None = None) -> dict[str, object]:
    """dbt vars that rebuild the whole training history (weekly snapshots from the start of the data)
    up to ``last_day``; used with --full-refresh to bootstrap an empty warehouse. With a partition range
    (``first_partition_day`` before ``last_day``) every day of the range is built too, so that each
    partition Dagster records for the run exists in the tables."""
    vars_: dict[str, object] = {"max_date": last_day.isoformat(), "snapshot_every_days": TRAINING_SNAPSHOT_EVERY_DAYS}
    if first_partition_day is not None and first_partition_day < last_day:
        vars_["daily_from"] = first_partition_day.isoformat()
    return vars_


MIN_TRAINING_SNAPSHOTS = 8


def needs_training_history(as_of_days_built: int) -> bool:
    """A warehouse with fewer snapshots than this has nothing to train on yet."""
    return as_of_days_built < MIN_TRAINING_SNAPSHOTS
