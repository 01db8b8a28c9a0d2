"""What the sync engine needs from a CRM, and what a CRM tells it back — nothing vendor-specific here."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from activation.encoding import EncodingError, normalize
from activation.errors import ConfigurationError
from activation.http import ClientStats
from activation.mapping import CREATE, UPSERT, DestinationTarget, ObjectMapping

# How a record is found in the CRM.
BY_ID = "id"  # the CRM's own record id (update mode)
BY_EMAIL = "email"  # HubSpot contacts without an id in the export: their e-mail address (update mode)
BY_KEY = "key"  # leadscore's key in a unique property / external id field (upsert mode)

NOT_FOUND = "not_found"  # reject code: the record does not exist in the CRM (update mode never creates)
NO_CRM_RECORD = "no_crm_record"  # create mode: the row names no record to attach the new one to
OUTCOME_UNKNOWN = "OUTCOME_UNKNOWN"  # a create was sent and not answered: looked up before any resend


@dataclass(frozen=True)
class Address:
    """Where one record lives in the CRM: the object and how to find it there."""

    object: str
    match: str  # BY_ID, BY_EMAIL or BY_KEY
    value: str

    def token(self) -> str:
        """Part of what the diff compares: a record that moves (a Lead converted into a Contact, an id
        found for an address) is sent again to its new place."""
        return f"{self.object}:{self.match}:{self.value}"


@dataclass(frozen=True)
class OutgoingRecord:
    """One record to write: its key, the encoded fields, where it goes, and why it is sent."""

    key: str
    payload: Mapping[str, Any]
    payload_hash: str
    action: str  # "new" (never confirmed by this CRM instance), "update", or "clear" (left the desired set)
    address: Address | None = None


@dataclass(frozen=True)
class RecordResult:
    """The destination's verdict on one record. Only ``ok`` results count as synced."""

    key: str
    ok: bool
    created: bool = False
    crm_id: str | None = None
    error_code: str = ""
    message: str = ""

    @classmethod
    def failed(cls, key: str, code: str, message: str) -> RecordResult:
        return cls(key=key, ok=False, error_code=code, message=message)

    @property
    def not_found(self) -> bool:
        return self.error_code == NOT_FOUND


def resolve_address(target: DestinationTarget, key: str, row: Mapping[str, Any]) -> Address | None:
    """Where a warehouse row goes, or ``None`` when the export gives no way to find its CRM record.

    Update mode takes the first route whose record-id column is set, then (HubSpot contacts) the e-mail.
    Upsert mode matches on the key itself. Create mode names the object created and, as ``value``, the
    record it is attached to (found the way update mode finds records).
    """
    if target.mode == UPSERT:
        return Address(target.routes[0].object, BY_KEY, key)
    routes, match_email = target.routes, target.match_email
    if target.mode == CREATE and target.attach is not None:
        routes, match_email = target.attach.routes, target.attach.match_email
    created = target.routes[0].object if target.mode == CREATE else None
    for route in routes:
        value = _text(row.get(route.record_id or ""))
        if value:
            return Address(created or route.object, BY_ID, value)
    email = _text(row.get(match_email or ""))
    if email and match_email:
        return Address(created or routes[0].object, BY_EMAIL, email.lower())
    return None


def missing_required(target: DestinationTarget, row: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(reject code, message)`` for the first ``required`` column the row leaves empty, else None."""
    for column, code in target.required.items():
        if not _text(row.get(column)):
            return code, f"{column} is empty: nothing is sent without it"
    return None


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


class Destination(Protocol):
    """A CRM the engine can sync to (HubSpot, Salesforce, or a test double)."""

    name: str
    batch_size: int  # the API's maximum records per request
    bulk_threshold: int | None  # above this many changed records use send_bulk; None = never
    stats: ClientStats
    # Create mode: how long after a write the CRM's lookup finds it (HubSpot's search index trails writes).
    lookup_settle_seconds: float

    def identify(self) -> str:
        """Which CRM instance this is (HubSpot portal id, Salesforce org id): sync state belongs to one."""

    def prepare(self, obj: ObjectMapping) -> None:
        """Check (and where allowed, create) the CRM fields ``obj`` needs; raise ConfigurationError if not."""

    def check(self, obj: ObjectMapping, record: OutgoingRecord) -> RecordResult | None:
        """A reject for a value the CRM is known to refuse (after :meth:`prepare`), without sending it."""

    def resolve(self, obj: ObjectMapping, records: Sequence[OutgoingRecord]) -> dict[str, str]:
        """The CRM record id of each record addressed by e-mail (key -> id), for those the CRM holds.
        Read-only: finding never creates."""

    def find_created(self, obj: ObjectMapping, keys: Sequence[str]) -> dict[str, str]:
        """Create mode: the CRM id of each record already created with one of these keys (key -> id), read
        through the field that carries the key. Read-only."""

    def encode(self, obj: ObjectMapping, row: Mapping[str, Any]) -> dict[str, Any]:
        """The CRM payload for one warehouse row (without the id field)."""

    def empty_payload(self, obj: ObjectMapping) -> dict[str, Any]:
        """The payload that clears every mapped field of a record."""

    def send_batch(self, obj: ObjectMapping, records: Sequence[OutgoingRecord]) -> list[RecordResult]:
        """Write at most ``batch_size`` records of one (object, match) group; one result per record.

        Raises on whole-request failure (:class:`BatchConflict` / :class:`BatchInvalid` when the engine
        should split the batch to isolate the record at fault)."""

    def send_bulk(
        self, obj: ObjectMapping, records: Sequence[OutgoingRecord]
    ) -> Iterator[tuple[list[OutgoingRecord], list[RecordResult]]]:
        """Write any number of records through a bulk API, in jobs taken in order; yields each job's records
        with one result per record as soon as the job is done, so what it wrote is recorded before the next
        job starts (and a job's results are not held until the last one ends)."""


class MappedDestination:
    """What every destination does the same way with a mapping: find its target, encode rows, empty fields.

    Subclasses set ``name`` and ``encode_value`` (a logical type + canonical value -> wire value function).
    """

    name: str
    encode_value: Callable[[str, Any], Any]
    lookup_settle_seconds: float = 0.0

    def target(self, obj: ObjectMapping) -> DestinationTarget:
        target = obj.target(self.name)
        if target is None:
            raise ConfigurationError(f"mapping object {obj.name!r} has no {self.name} destination")
        return target

    def encode(self, obj: ObjectMapping, row: Mapping[str, Any]) -> dict[str, Any]:
        """Normalise each mapped column of ``row`` and encode it for this destination.

        Raises :class:`EncodingError` naming the column when a value does not fit its mapped type.
        """
        payload = {}
        for field, name in obj.fields_for(self.name):
            try:
                value = normalize(field.type, row.get(field.column), field.digits)
                if field.values is not None and value is not None:
                    value = translate(field.values, value, self.name)
            except EncodingError as exc:
                raise EncodingError(f"column {field.column} ({field.type}): {exc}") from None
            payload[name] = self.encode_value(field.type, value)
        return payload

    def empty_payload(self, obj: ObjectMapping) -> dict[str, Any]:
        return {name: self.encode_value(field.type, None) for field, name in obj.fields_for(self.name)}

    def check(self, obj: ObjectMapping, record: OutgoingRecord) -> RecordResult | None:
        return None

    def resolve(self, obj: ObjectMapping, records: Sequence[OutgoingRecord]) -> dict[str, str]:
        if records:
            raise ConfigurationError(f"{self.name} cannot find records by e-mail; map a record id column")
        return {}


def translate(values: Mapping[str, Mapping[str, str]], value: Any, destination: str) -> str:
    """The destination's value for a warehouse value (``high`` -> ``HIGH``); EncodingError when unmapped."""
    found = values.get(str(value))
    if found is None:
        raise EncodingError(f"{value!r} is not one of the mapped values {sorted(values)}")
    return found[destination]
