"""Pure planning: what to send (diff against the last confirmed state), and how to cut it into batches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from activation.destination import OutgoingRecord
from activation.encoding import payload_hash

CREATE, UPDATE, CLEAR = "create", "update", "clear"


@dataclass(frozen=True)
class Plan:
    """The records to send (sorted by key, so batches and replays are deterministic) and what is unchanged."""

    changes: tuple[OutgoingRecord, ...]
    unchanged: int

    def count(self, action: str) -> int:
        return sum(1 for change in self.changes if change.action == action)


def plan_changes(
    desired: Mapping[str, Mapping[str, Any]],
    confirmed: Mapping[str, str],
    empty_payload: Mapping[str, Any],
    *,
    clear_missing: bool,
) -> Plan:
    """Diff desired payloads (key -> payload) against confirmed hashes (key -> hash of the last payload
    the destination confirmed).

    New keys are creates, changed hashes updates. Keys confirmed before but no longer desired get the
    empty payload (a clear) unless their confirmed payload already is the empty one.
    """
    changes: list[OutgoingRecord] = []
    unchanged = 0
    for key, payload in desired.items():
        digest = payload_hash(payload)
        previous = confirmed.get(key)
        if previous == digest:
            unchanged += 1
        else:
            changes.append(OutgoingRecord(key, payload, digest, CREATE if previous is None else UPDATE))
    if clear_missing:
        empty_digest = payload_hash(empty_payload)
        for key, previous in confirmed.items():
            if key not in desired and previous != empty_digest:
                changes.append(OutgoingRecord(key, dict(empty_payload), empty_digest, CLEAR))
    changes.sort(key=lambda change: change.key)
    return Plan(tuple(changes), unchanged)


def make_batches(records: Sequence[OutgoingRecord], size: int) -> list[list[OutgoingRecord]]:
    """Consecutive batches of at most ``size`` records: the fewest requests the API allows."""
    if size < 1:
        raise ValueError("batch size must be at least 1")
    return [list(records[start : start + size]) for start in range(0, len(records), size)]


def split_batch(records: Sequence[OutgoingRecord]) -> tuple[list[OutgoingRecord], list[OutgoingRecord]]:
    """Halves of a batch that failed as a whole (409): retried separately until the culprit is alone."""
    if len(records) < 2:
        raise ValueError("a batch of one record cannot be split")
    middle = len(records) // 2
    return list(records[:middle]), list(records[middle:])


def samples(changes: Sequence[OutgoingRecord], per_action: int) -> list[dict[str, Any]]:
    """A few payloads per action, for dry-run reports."""
    picked: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for change in changes:
        if seen.get(change.action, 0) < per_action:
            seen[change.action] = seen.get(change.action, 0) + 1
            picked.append({"action": change.action, "key": change.key, "payload": dict(change.payload)})
    return picked
