"""What the sync engine needs from a CRM, and what a CRM tells it back — nothing vendor-specific here."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from activation.encoding import EncodingError, normalize
from activation.errors import ConfigurationError
from activation.http import ClientStats
from activation.mapping import UPSERT, DestinationTarget, ObjectMapping

# How a record is found in the CRM.
BY_ID = "id"  # the CRM's own record id (update mode)
BY_EMAIL = "email"  # HubSpot contacts without an id in the export: their e-mail address (update mode)
BY_KEY = "key"  # leadscore's key in a unique property / external id field (upsert mode)

NOT_FOUND = "not_found"  # reject code: the record does not exist in the CRM (update mode never creates)


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
    Upsert mode matches on the key itself.
    """
    if target.mode == UPSERT:
        return Address(target.routes[0].object, BY_KEY, key)
    for route in target.routes:
        value = _text(row.get(route.record_id or ""))
        if value:
            return Address(route.object, BY_ID, value)
    email = _text(row.get(target.match_email or ""))
    if email and target.match_email:
        return Address(target.routes[0].object, BY_EMAIL, email.lower())
    return None


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


class Destination(Protocol):
    """A CRM the engine can sync to (HubSpot, Salesforce, or a test double)."""

    name: str
    batch_size: int  # the API's maximum records per request
    bulk_threshold: int | None  # above this many changed records use send_bulk; None = never
    stats: ClientStats

    def identify(self) -> str:
        """Which CRM instance this is (HubSpot portal id, Salesforce org id): sync state belongs to one."""

    def prepare(self, obj: ObjectMapping) -> None:
        """Check (and where allowed, create) the CRM fields ``obj`` needs; raise ConfigurationError if not."""

    def check(self, obj: ObjectMapping, record: OutgoingRecord) -> RecordResult | None:
        """A reject for a value the CRM is known to refuse (after :meth:`prepare`), without sending it."""

    def resolve(self, obj: ObjectMapping, records: Sequence[OutgoingRecord]) -> dict[str, str]:
        """The CRM record id of each record addressed by e-mail (key -> id), for those the CRM holds.
        Read-only: finding never creates."""

    def encode(self, obj: ObjectMapping, row: Mapping[str, Any]) -> dict[str, Any]:
        """The CRM payload for one warehouse row (without the id field)."""

    def empty_payload(self, obj: ObjectMapping) -> dict[str, Any]:
        """The payload that clears every mapped field of a record."""

    def send_batch(self, obj: ObjectMapping, records: Sequence[OutgoingRecord]) -> list[RecordResult]:
        """Write at most ``batch_size`` records of one (object, match) group; one result per record.

        Raises on whole-request failure (:class:`BatchConflict` / :class:`BatchInvalid` when the engine
        should split the batch to isolate the record at fault)."""

    def send_bulk(self, obj: ObjectMapping, records: Sequence[OutgoingRecord]) -> list[RecordResult]:
        """Write any number of records through a bulk API; one result per record."""


class MappedDestination:
    """What every destination does the same way with a mapping: find its target, encode rows, empty fields.

    Subclasses set ``name`` and ``encode_value`` (a logical type + canonical value -> wire value function).
    """

    name: str
    encode_value: Callable[[str, Any], Any]

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
