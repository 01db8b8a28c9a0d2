"""Pure planning: what to send (diff against the last confirmed state), and how to cut it into batches."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from activation.destination import Address, OutgoingRecord
from activation.encoding import payload_hash

NEW, UPDATE, CLEAR = "new", "update", "clear"
# A clear for a person who asked to be forgotten: once the CRM confirms it, the state row itself is deleted.
ERASE = "erase"
CLEARING = (CLEAR, ERASE)


@dataclass(frozen=True)
class Desired:
    """What one record should hold in the CRM, and where it is."""

    payload: Mapping[str, Any]
    address: Address


@dataclass(frozen=True)
class Confirmed:
    """What this CRM instance last confirmed for one record (``activation.sync_state``)."""

    payload_hash: str
    cleared: bool
    address: Address | None  # where the record was confirmed; a clear goes there
    erased: bool = False  # the person was erased from the warehouse: clear the CRM, then forget the record


@dataclass(frozen=True)
class Plan:
    """The records to send (sorted by key, so batches and replays are deterministic) and what is unchanged."""

    changes: tuple[OutgoingRecord, ...]
    unchanged: int
    forget: tuple[str, ...] = ()  # erased keys with nothing left to clear: their state rows are deleted

    def count(self, action: str) -> int:
        return sum(1 for change in self.changes if change.action == action)


def desired_hash(desired: Desired) -> str:
    """The payload and its address: a record that moved to another CRM record is sent again."""
    return payload_hash({"payload": dict(desired.payload), "address": desired.address.token()})


def plan_changes(
    desired: Mapping[str, Desired],
    confirmed: Mapping[str, Confirmed],
    empty_payload: Mapping[str, Any],
    *,
    clear_missing: bool,
    keep: frozenset[str] | set[str] = frozenset(),
) -> Plan:
    """Diff desired records (key -> payload and address) against what the destination last confirmed.

    Keys never confirmed are new, changed hashes updates. Keys confirmed before but no longer desired get the
    empty payload at their confirmed address (a clear) unless already cleared. ``keep`` holds keys that are
    still in the relation but cannot be addressed this run (their id vanished from the export): they are
    neither sent nor cleared. Erased people are cleared whatever ``clear_missing`` says (an erase), and
    forgotten once nothing of theirs is left in the CRM.
    """
    changes: list[OutgoingRecord] = []
    unchanged = 0
    for key, wanted in desired.items():
        digest = desired_hash(wanted)
        previous = confirmed.get(key)
        if previous is not None and previous.payload_hash == digest:
            unchanged += 1
        else:
            action = NEW if previous is None else UPDATE
            changes.append(OutgoingRecord(key, wanted.payload, digest, action, wanted.address))
    empty = dict(empty_payload)
    forget = []
    for key, previous in confirmed.items():
        if key in desired or key in keep:
            continue
        if previous.erased and (previous.cleared or previous.address is None):
            forget.append(key)  # nothing of theirs is left in the CRM: only the state row remains
        elif previous.erased or (clear_missing and not previous.cleared and previous.address is not None):
            assert previous.address is not None
            digest = desired_hash(Desired(empty, previous.address))
            action = ERASE if previous.erased else CLEAR
            changes.append(OutgoingRecord(key, empty, digest, action, previous.address))
    changes.sort(key=lambda change: change.key)
    return Plan(tuple(changes), unchanged, tuple(sorted(forget)))


def plan_creates(desired: Mapping[str, Desired], confirmed: Mapping[str, Confirmed]) -> Plan:
    """Create mode: a key this CRM instance confirmed once is never sent again, whatever its payload or
    address became; every other key is new. Nothing is cleared (the created records are the CRM's now);
    the state of erased keys is simply forgotten."""
    changes = [
        OutgoingRecord(key, wanted.payload, desired_hash(wanted), NEW, wanted.address)
        for key, wanted in desired.items()
        if key not in confirmed
    ]
    changes.sort(key=lambda change: change.key)
    unchanged = sum(1 for key in desired if key in confirmed)
    forget = sorted(key for key, previous in confirmed.items() if previous.erased and key not in desired)
    return Plan(tuple(changes), unchanged, tuple(forget))


def shared_addresses(desired: Mapping[str, Desired]) -> dict[str, list[str]]:
    """Keys whose address another key also claims (key -> the other keys), e.g. two leads exported with the
    same CRM record id: writing either score onto that record would be a guess, so both are rejected."""
    owners: dict[str, list[str]] = defaultdict(list)
    for key, wanted in desired.items():
        owners[wanted.address.token()].append(key)
    return {key: [k for k in keys if k != key] for keys in owners.values() if len(keys) > 1 for key in keys}


def make_batches(
    records: Sequence[OutgoingRecord], size: int, group: Callable[[OutgoingRecord], Hashable] | None = None
) -> list[list[OutgoingRecord]]:
    """Batches of at most ``size`` records of one group each (e.g. one CRM object and one way of matching),
    full except the last of each group: the fewest requests the API allows."""
    if size < 1:
        raise ValueError("batch size must be at least 1")
    groups: dict[Hashable, list[OutgoingRecord]] = defaultdict(list)
    for record in records:
        groups[group(record) if group else None].append(record)
    return [members[start : start + size] for members in groups.values() for start in range(0, len(members), size)]


def split_batch(records: Sequence[OutgoingRecord]) -> tuple[list[OutgoingRecord], list[OutgoingRecord]]:
    """Halves of a batch that failed as a whole (409, or a 400 for one bad value): retried separately until
    the record at fault stands alone."""
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
            target = change.address.token() if change.address else None
            picked.append(
                {"action": change.action, "key": change.key, "target": target, "payload": dict(change.payload)}
            )
    return picked
