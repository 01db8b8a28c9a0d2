"""HubSpot property value rules: what makes a value invalid, and how e-mails are normalised.

One invalid value fails a whole batch in HubSpot (400, nothing written), so these checks run over every
input before anything is stored. The codes and message texts follow what HubSpot answers.
"""

from __future__ import annotations

import json
import re
import sqlite3

MAX_STRING_LENGTH = 65_536
# Properties HubSpot defines as whole numbers: a decimal there is INVALID_INTEGER, not INVALID_DECIMAL.
INTEGER_PROPERTIES = frozenset({"numberofemployees", "hs_object_id"})
_DECIMAL = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")
_INTEGER = re.compile(r"^[-+]?\d+$")
_EPOCH_MILLIS = re.compile(r"^-?\d+$")
# local@domain.tld: no quotes or spaces in the local part, a dotted domain ending in letters (HubSpot also
# checks the TLD against IANA's list; any 2+ letters is the sandbox's approximation).
_EMAIL = re.compile(r"^[^@\s\"]+@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$", re.IGNORECASE)


def normalize_email(value: str) -> str:
    """HubSpot stores e-mail addresses trimmed and lower-cased, and matches them that way."""
    return value.strip().lower()


def canonical_value(name: str, value: str) -> str:
    """The form a value is stored and matched in (only ``email`` is normalised)."""
    return normalize_email(value) if name == "email" else value


def value_problem(prop: sqlite3.Row, value: str) -> tuple[str, str] | None:
    """``(error code, message)`` when ``value`` is not valid for the property, else None. ``""`` clears."""
    if value == "":
        return None
    typ, name = prop["type"], prop["name"]
    if typ != "string" and value != value.strip():
        return "LEADING_TRAILING_WHITESPACE", f'"{value}" includes leading or trailing whitespace.'
    if typ == "number":
        return _number_problem(name, value)
    if typ in {"date", "datetime"}:
        return _date_problem(typ, value)
    if typ == "bool" and value not in {"true", "false"}:
        return "INVALID_BOOLEAN", f"{value} is not a valid boolean: use true or false"
    if typ == "enumeration":
        return _option_problem(prop, value)
    if len(value) > MAX_STRING_LENGTH:
        return "TOO_LONG", f"{name} is longer than {MAX_STRING_LENGTH} characters"
    if name == "email" and not _EMAIL.match(value):
        return "INVALID_EMAIL", f"Email address {value} is invalid"
    return None


def _number_problem(name: str, value: str) -> tuple[str, str] | None:
    if name in INTEGER_PROPERTIES:
        return None if _INTEGER.match(value) else ("INVALID_INTEGER", f"{value} was not a valid integer.")
    # The pattern refuses NaN and Infinity, which Python's float() would accept.
    return None if _DECIMAL.match(value) else ("INVALID_DECIMAL", f"{value} was not a valid number.")


def _date_problem(typ: str, value: str) -> tuple[str, str] | None:
    if not _EPOCH_MILLIS.match(value):
        return "INVALID_DATE", f"{value} is not a valid date: dates travel as epoch milliseconds"
    if typ == "date" and int(value) % 86_400_000 != 0:
        return "INVALID_DATE", f"{value} is not midnight UTC: a date must be midnight UTC in epoch milliseconds"
    return None


def _option_problem(prop: sqlite3.Row, value: str) -> tuple[str, str] | None:
    allowed = [o.get("value") for o in json.loads(prop["options"] or "[]") if isinstance(o, dict)]
    chosen = value.split(";") if prop["field_type"] == "checkbox" else [value]
    if set(chosen) <= set(allowed):
        return None
    return "INVALID_OPTION", f"{value} was not one of the allowed options: [{', '.join(map(str, allowed))}]"
