"""`make run`: execute the nightly job through Dagster for the latest partition, then summarise.

The run is recorded in the Dagster instance ($DAGSTER_HOME), so it shows up in the UI of `make dev`
exactly like a scheduled run.
"""

from __future__ import annotations

import argparse
import sys

from dagster import DagsterInstance

from dagster_project.definitions import defs
from dagster_project.partitions import daily_partitions, needs_training_history
from ml.sources.summary import format_summary, warehouse_summary
from ml.warehouse import connect, scalar, table_exists, warehouse_path


def built_snapshots() -> int:
    """How many as-of days lead_features holds (0 for a new warehouse)."""
    if not warehouse_path().exists():
        return 0
    with connect(read_only=True) as con:
        if not table_exists(con, "main", "lead_features"):
            return 0
        return scalar(con, "SELECT count(DISTINCT as_of) FROM main.lead_features")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--partition", help="day to run (default: the latest complete day)")
    args = parser.parse_args(argv)
    partition = args.partition or daily_partitions.get_last_partition_key()
    job = defs.resolve_job_def("nightly")
    instance = DagsterInstance.get()
    print(f"running job 'nightly' for partition {partition} (warehouse {warehouse_path()})", flush=True)
    # INFO, not DEBUG: a person reads this output (every event is still in the instance for the UI).
    run_config: dict = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    if needs_training_history(built_snapshots()):
        print("no training history yet: this run also rebuilds the weekly snapshots from the start of the data")
        run_config["ops"] = {"dbt_daily_history": {"config": {"rebuild_training_history": True}}}
    result = job.execute_in_process(
        instance=instance, partition_key=partition, run_config=run_config, raise_on_error=False
    )
    if not result.success:
        failed = [e.step_key for e in result.all_events if e.is_step_failure]
        print(f"nightly run {result.run_id} FAILED in steps {failed}; see `make dev` for its logs", file=sys.stderr)
        return 1
    with connect(read_only=True) as con:
        print(f"nightly run {result.run_id} succeeded\n{format_summary(warehouse_summary(con))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
