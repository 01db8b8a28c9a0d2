"""What the sync engine needs from a CRM, and what a CRM tells it back — nothing vendor-specific here."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from activation.encoding import EncodingError, normalize
from activation.errors import ConfigurationError
from activation.http import ClientStats
from activation.mapping import DestinationTarget, ObjectMapping


@dataclass(frozen=True)
class OutgoingRecord:
    """One record to write: its key, the encoded fields (without the id), and why it is sent."""

    key: str
    payload: Mapping[str, Any]
    payload_hash: str
    action: str  # "create" (never confirmed before), "update", or "clear" (left the desired set)


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


class Destination(Protocol):
    """A CRM the engine can sync to (HubSpot, Salesforce, or a test double)."""

    name: str
    batch_size: int  # the API's maximum records per request
    bulk_threshold: int | None  # above this many changed records use send_bulk; None = never
    stats: ClientStats

    def prepare(self, obj: ObjectMapping) -> None:
        """Check (and where allowed, create) the CRM fields ``obj`` needs; raise ConfigurationError if not."""

    def encode(self, obj: ObjectMapping, row: Mapping[str, Any]) -> dict[str, Any]:
        """The CRM payload for one warehouse row (without the id field)."""

    def empty_payload(self, obj: ObjectMapping) -> dict[str, Any]:
        """The payload that clears every mapped field of a record."""

    def send_batch(self, obj: ObjectMapping, records: Sequence[OutgoingRecord]) -> list[RecordResult]:
        """Write at most ``batch_size`` records; one result per record. Raises on whole-request failure."""

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
