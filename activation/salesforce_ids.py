"""Salesforce record ids: key prefixes, the 15 -> 18 character form, and case-insensitive matching.

A Salesforce id is 15 case-sensitive characters: a 3-character key prefix naming the object (``00Q``
Lead, ``003`` Contact, ``001`` Account, ...), then the pod and the record number. The API also returns an
18-character form whose last 3 characters encode, 5 characters at a time, which of the first 15 are upper
case; that form survives tools that ignore case (spreadsheets, SQL collations, e-mail). Exports contain
both forms, sometimes with the case mangled. :func:`normalize_salesforce_id` turns any of them into the
one canonical 18-character id, so the warehouse, the sandbox and the clients compare ids the same way.

The same rule lives in SQL in ``dbt/macros/crm_ids.sql`` (staging normalises exports with it).
"""

from __future__ import annotations

import re

KEY_PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "Opportunity": "006",
    "User": "005",
    "Organization": "00D",
    "Lead": "00Q",
    "Task": "00T",
}
_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SHAPE = re.compile(r"^[A-Za-z0-9]{15}([A-Za-z0-5]{3})?$")


def checksum_suffix(id15: str) -> str:
    """The 3 characters that turn a 15-character id into its 18-character form."""
    suffix = []
    for start in range(0, 15, 5):
        bits = sum(1 << i for i, char in enumerate(id15[start : start + 5]) if "A" <= char <= "Z")
        suffix.append(_SUFFIX_ALPHABET[bits])
    return "".join(suffix)


def to_18(id15: str) -> str:
    """The 18-character form of a (case-correct) 15-character id."""
    if len(id15) != 15:
        raise ValueError(f"a 15-character Salesforce id is expected, got {id15!r}")
    return id15 + checksum_suffix(id15)


def normalize_salesforce_id(value: str | None) -> str | None:
    """The canonical 18-character id of a 15- or 18-character id, or ``None`` when it is not one.

    An 18-character id may come in any case: its suffix says which of the first 15 characters are upper
    case, and that case is restored. A 15-character id is taken as typed (its case is the id).
    """
    if value is None:
        return None
    text = value.strip()
    if not _SHAPE.match(text):
        return None
    if len(text) == 15:
        return to_18(text)
    suffix = text[15:].upper()
    chars = list(text[:15])
    for block, code in enumerate(suffix):
        bits = _SUFFIX_ALPHABET.index(code)
        for offset in range(5):
            position = block * 5 + offset
            if chars[position].isalpha():
                upper = bool(bits >> offset & 1)
                chars[position] = chars[position].upper() if upper else chars[position].lower()
    canonical = "".join(chars)
    return canonical + suffix if checksum_suffix(canonical) == suffix else None


def key_prefix(record_id: str) -> str:
    return record_id[:3]


def make_salesforce_id(prefix: str, number: int, pod: str = "8d") -> str:
    """A realistic 18-character id: key prefix, a 2-character pod, the record number in base 62."""
    if len(prefix) != 3 or len(pod) != 2 or number < 0:
        raise ValueError("prefix has 3 characters, pod 2, and the number is not negative")
    digits = []
    while True:
        number, rest = divmod(number, 62)
        digits.append(_BASE62[rest])
        if number == 0:
            break
    body = "".join(reversed(digits)).rjust(10, "0")
    if len(body) > 10:
        raise ValueError("record number too large for a Salesforce id")
    return to_18(prefix + pod + body)
