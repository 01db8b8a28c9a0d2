"""Keep the UI's partition status equal to the as-of days the warehouse really holds.

The history tables are built in two ways: a partition run builds every day of its window (and Dagster
records exactly those partitions), while the training-history rebuild of a new warehouse builds one
snapshot a week from the start of the data in a single run for one partition. Left alone, the UI would
then show 1 of ~540 partitions filled although ~90 weekly snapshots exist, and "Missing" would offer a
daily backfill of the whole history. So after every build the asset records each as-of day found in its
table as a materialization of that day's partition, and wipes the record of days the table no longer has
(a full rebuild drops them) where the instance's storage can (Postgres; a local SQLite instance cannot, so
it warns instead). Days between weekly snapshots stay missing, because they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dagster import AssetExecutionContext, AssetKey, AssetMaterialization


@dataclass(frozen=True)
class PartitionChanges:
    to_record: list[str]  # in the table, not recorded
    to_wipe: list[str]  # recorded, no longer in the table
    outside: int  # as-of days in the table before the first partition or after the last


def partition_changes(
    in_table: Iterable[str], recorded: Iterable[str], valid: Iterable[str], this_run: Iterable[str] = ()
) -> PartitionChanges:
    """What to record and wipe so that recorded partitions == the table's as-of days (within ``valid``).

    ``this_run`` are the partitions the current run materializes itself: never recorded twice, and
    never wiped (a failed write would have failed the step before this point).
    """
    valid_set, run_set = set(valid), set(this_run)
    table = set(in_table)
    known = set(recorded) | run_set
    return PartitionChanges(
        to_record=sorted((table & valid_set) - known),
        to_wipe=sorted((set(recorded) & valid_set) - table - run_set),
        outside=len(table - valid_set),
    )


def reconcile_partitions(
    context: AssetExecutionContext, key: AssetKey, in_table: Iterable[str], this_run: Iterable[str]
) -> PartitionChanges:
    """Apply :func:`partition_changes` to the instance for ``key`` and say what was done."""
    partitions_def = context.assets_def.specs_by_key[key].partitions_def
    assert partitions_def is not None, f"{key} is not partitioned"
    instance = context.instance
    changes = partition_changes(
        in_table, instance.get_materialized_partitions(key), partitions_def.get_partition_keys(), this_run
    )
    for day in changes.to_record:
        context.log_event(
            AssetMaterialization(
                asset_key=key,
                partition=day,
                description="As-of day found in the table (built by a training-history rebuild)",
                metadata={"recorded_by": "partition reconciliation", "run_partition": context.partition_key_range.end},
            )
        )
    if changes.to_wipe:
        try:
            instance.wipe_asset_partitions(key, changes.to_wipe)
        except NotImplementedError:  # the SQLite event log of a local instance cannot wipe partitions
            shown = ", ".join(changes.to_wipe[:5]) + (" ..." if len(changes.to_wipe) > 5 else "")
            context.log.warning(
                f"{key.to_user_string()}: {len(changes.to_wipe)} partitions are recorded as materialized but the "
                f"table holds no rows for them ({shown}); this instance's storage cannot wipe them, so the UI "
                "still shows them filled"
            )
    if changes.to_record:
        context.log.info(
            f"{key.to_user_string()}: recorded {len(changes.to_record)} as-of days found in the table as partitions"
        )
    return changes
