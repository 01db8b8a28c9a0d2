"""The nightly job over every asset and its schedule."""

from __future__ import annotations

import os

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    build_schedule_from_partitioned_job,
    define_asset_job,
    in_process_executor,
)

from dagster_project.partitions import daily_partitions

NIGHTLY_AT_ENV = "LEADSCORE_NIGHTLY_AT"  # HH:MM, UTC


def parse_time_of_day(text: str) -> tuple[int, int]:
    """'02:00' -> (2, 0); refuses anything that is not a valid UTC time of day."""
    try:
        hour_text, minute_text = text.strip().split(":")
        hour, minute = int(hour_text), int(minute_text)
    except ValueError:
        raise ValueError(f"{NIGHTLY_AT_ENV} must look like HH:MM, not {text!r}") from None
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise ValueError(f"{NIGHTLY_AT_ENV} is not a time of day: {text!r}")
    return hour, minute


nightly_job = define_asset_job(
    "nightly",
    selection=AssetSelection.all(),
    partitions_def=daily_partitions,
    description="Everything, for yesterday's partition: sources, the warehouse, then what reads it.",
    # One process for all steps: they take turns in the warehouse pool anyway, and a process per step
    # would load the definitions (dbt manifest, ML libraries) seven times over, ~20 s each.
    executor_def=in_process_executor,
)

_hour, _minute = parse_time_of_day(os.environ.get(NIGHTLY_AT_ENV, "02:00"))

# Runs for the latest complete day (yesterday) and is on as soon as the daemon is up.
nightly_schedule = build_schedule_from_partitioned_job(
    nightly_job,
    hour_of_day=_hour,
    minute_of_hour=_minute,
    default_status=DefaultScheduleStatus.RUNNING,
)
