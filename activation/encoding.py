"""Pure functions that turn warehouse values into each destination's wire format, and hash payloads.

Values are first normalised to one canonical Python value per logical type (:func:`normalize`), so that the
same warehouse value always yields the same payload — the payload hash is what the diff compares, and a
value that drifted between ``87.0`` and ``87`` would resend every record on every run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class EncodingError(ValueError):
    """A warehouse value cannot be represented in the mapped type."""


def normalize(field_type: str, value: Any, digits: int | None = None) -> Any:
    """Canonical Python value for a logical type; ``None`` for SQL NULL, NaN and NaT."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if type(value).__name__ in {"NaTType", "NAType"}:
        return None
    if hasattr(value, "item") and not isinstance(value, str | bytes):  # numpy scalars
        value = value.item()
    if field_type == "string":
        return str(value)
    if field_type == "text":
        if isinstance(value, list | tuple):
            return "\n".join(str(v) for v in value if v is not None)
        if isinstance(value, dict):
            return json.dumps(value, sort_keys=True, default=str)
        return str(value)
    if field_type == "number":
        number = _to_float(value)
        return round(number, digits) if digits is not None else number
    if field_type == "integer":
        number = _to_float(value)
        if number != int(number):
            raise EncodingError(f"{value!r} is not a whole number")
        return int(number)
    if field_type == "bool":
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered not in {"true", "false", "1", "0"}:
                raise EncodingError(f"{value!r} is not a boolean")
            return lowered in {"true", "1"}
        return bool(value)
    if field_type == "date":
        return _to_date(value)
    if field_type == "datetime":
        return _to_datetime(value)
    raise EncodingError(f"unknown field type {field_type!r}")


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise EncodingError(f"{value!r} is a boolean, not a number")
    try:
        number = float(value)  # also Decimal (DuckDB DECIMAL columns) and numpy scalars
    except (TypeError, ValueError) as exc:
        raise EncodingError(f"{value!r} is not a number") from exc
    if math.isinf(number):
        raise EncodingError(f"{value!r} is not a finite number")
    return number


def _to_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError as exc:
        raise EncodingError(f"{value!r} is not a date") from exc


def _to_datetime(value: Any) -> dt.datetime:
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    else:
        try:
            moment = dt.datetime.fromisoformat(str(value))
        except ValueError as exc:
            raise EncodingError(f"{value!r} is not a datetime") from exc
    # The warehouse stores naive timestamps in UTC.
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def format_number(number: float) -> str:
    """Shortest decimal text that round-trips; integral values without a trailing ``.0``."""
    if number == int(number) and abs(number) < 1e15:
        return str(int(number))
    return repr(number)


def epoch_millis(moment: dt.datetime) -> int:
    return (moment - _EPOCH) // dt.timedelta(milliseconds=1)


def hubspot_value(field_type: str, value: Any) -> str:
    """HubSpot takes every property value as a string; ``""`` empties a property.

    Dates are epoch milliseconds of midnight UTC, datetimes epoch milliseconds, booleans ``true``/``false``.
    """
    if value is None:
        return ""
    if field_type == "number":
        return format_number(value)
    if field_type == "integer":
        return str(value)
    if field_type == "bool":
        return "true" if value else "false"
    if field_type == "date":
        return str(epoch_millis(dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)))
    if field_type == "datetime":
        return str(epoch_millis(value))
    return str(value)


def salesforce_value(field_type: str, value: Any) -> Any:
    """Salesforce REST takes JSON types: numbers, booleans, ISO dates; ``null`` empties a field.

    Salesforce stores an empty text as null; sending null for it keeps the Bulk path honest too, where an
    empty CSV cell would mean "leave unchanged" instead.
    """
    if value is None or value == "":
        return None
    if field_type == "date":
        return value.isoformat()
    if field_type == "datetime":
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value


# Bulk API 2.0 CSV: an empty cell leaves a field unchanged, so NULL must be written as #N/A.
BULK_NULL = "#N/A"


def salesforce_csv_value(value: Any) -> str:
    """A Salesforce JSON value (see :func:`salesforce_value`) as a Bulk API 2.0 CSV cell."""
    if value is None:
        return BULK_NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_number(value)
    return str(value)


def payload_hash(payload: Mapping[str, Any]) -> str:
    """Stable digest of an encoded payload; equal payloads hash equal whatever the key order."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]
