"""The SOQL subset the sandbox answers (``GET /services/data/vXX.X/query?q=...``).

``SELECT field, ... FROM SObject [WHERE condition [AND condition ...]] [ORDER BY field [ASC|DESC]]
[LIMIT n]``, a condition being ``field = value``, ``field != value`` or ``field [NOT] IN (value, ...)``,
a value ``'text'`` (``\\'`` escapes a quote), ``true``, ``false``, ``null``, a number or a date
(``2026-11-02``). Names are case-insensitive, as in SOQL. Anything else (OR, relationship fields,
functions, sub-queries) is a ``MALFORMED_QUERY`` 400 that says it is outside the subset, rather than a
wrong answer. Id fields match in their 15- or 18-character form. Results come in pages of
``salesforce_query_batch_size`` records; ``nextRecordsUrl`` fetches the next page, as Salesforce does.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
import threading
from dataclasses import dataclass
from typing import Any

from activation.salesforce_ids import normalize_salesforce_id
from activation.sandbox.shapes import sf_errors
from activation.sandbox.web import Refusal

# Describe types holding free text, which SOQL compares ignoring case (one list for the records' checks too).
TEXT_TYPES = frozenset({"string", "textarea", "picklist", "combobox", "email", "phone", "url"})

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^'\\]|\\.)*')|(?P<op>!=|<>|=|\(|\)|,)|(?P<word>[A-Za-z_][A-Za-z0-9_.]*)"
    r"|(?P<number>-?\d+(?:\.\d+)?(?:-\d\d-\d\d)?))"
)
_KEYWORDS = {"select", "from", "where", "and", "or", "not", "in", "order", "by", "asc", "desc", "limit", "nulls"}


@dataclass(frozen=True)
class Condition:
    field: str
    operator: str  # "=", "!=", "IN", "NOT IN"
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Query:
    fields: tuple[str, ...]
    sobject: str
    conditions: tuple[Condition, ...]
    order_by: str | None = None
    descending: bool = False
    limit: int | None = None


def malformed(message: str) -> Refusal:
    return Refusal(sf_errors(400, message, "MALFORMED_QUERY"))


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.strip()
    while position < len(text):
        found = _TOKEN.match(text, position)
        if not found or found.end() == position:
            raise malformed(f"unexpected token at position {position}: {text[position : position + 20]!r}")
        kind = found.lastgroup or ""
        tokens.append((kind, found.group(kind)))
        position = found.end()
    return tokens


def parse_query(text: str) -> Query:
    """Parse the SOQL subset; field and object names are returned as written (resolved later)."""
    tokens = tokenize(text)
    cursor = _Cursor(tokens)
    cursor.keyword("select")
    fields = [cursor.name()]
    while cursor.peek_op(","):
        cursor.next()
        fields.append(cursor.name())
    cursor.keyword("from")
    sobject = cursor.name()
    conditions: list[Condition] = []
    if cursor.peek_keyword("where"):
        cursor.next()
        conditions.append(_condition(cursor))
        while cursor.peek_keyword("and", "or"):
            if cursor.next()[1].lower() == "or":
                raise malformed("OR is outside the sandbox's SOQL subset (use IN)")
            conditions.append(_condition(cursor))
    order_by, descending, limit = None, False, None
    if cursor.peek_keyword("order"):
        cursor.next()
        cursor.keyword("by")
        order_by = cursor.name()
        if cursor.peek_keyword("asc", "desc"):
            descending = cursor.next()[1].lower() == "desc"
    if cursor.peek_keyword("limit"):
        cursor.next()
        kind, value = cursor.next()
        if kind != "number" or not value.isdigit():
            raise malformed("LIMIT needs a whole number")
        limit = int(value)
    if not cursor.done():
        raise malformed(f"unexpected {cursor.next()[1]!r}")
    return Query(tuple(fields), sobject, tuple(conditions), order_by, descending, limit)


def _condition(cursor: _Cursor) -> Condition:
    field = cursor.name()
    kind, token = cursor.next()
    if kind == "op" and token in ("=", "!=", "<>"):
        return Condition(field, "=" if token == "=" else "!=", (_value(cursor.next()),))
    negated = kind == "word" and token.lower() == "not"
    if negated:
        kind, token = cursor.next()
    if kind != "word" or token.lower() != "in":
        raise malformed(f"expected =, != or IN after {field}, got {token!r} (sandbox subset)")
    if not cursor.peek_op("("):
        raise malformed("IN needs a parenthesised list of values")
    cursor.next()
    values = [_value(cursor.next())]
    while cursor.peek_op(","):
        cursor.next()
        values.append(_value(cursor.next()))
    if not cursor.peek_op(")"):
        raise malformed("unclosed IN list")
    cursor.next()
    return Condition(field, "NOT IN" if negated else "IN", tuple(values))


def _value(token: tuple[str, str]) -> Any:
    kind, text = token
    if kind == "string":
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    if kind == "number":
        return text if "-" in text[1:] else float(text) if "." in text else int(text)  # dates stay text
    if kind == "word" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if kind == "word" and text.lower() == "null":
        return None
    raise malformed(f"{text!r} is not a value (quote text values)")


class _Cursor:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens, self.position = tokens, 0

    def done(self) -> bool:
        return self.position >= len(self.tokens)

    def next(self) -> tuple[str, str]:
        if self.done():
            raise malformed("unexpected end of query")
        token = self.tokens[self.position]
        self.position += 1
        return token

    def peek_keyword(self, *words: str) -> bool:
        return (
            not self.done()
            and self.tokens[self.position][0] == "word"
            and (self.tokens[self.position][1].lower() in words)
        )

    def peek_op(self, op: str) -> bool:
        return not self.done() and self.tokens[self.position] == ("op", op)

    def keyword(self, word: str) -> None:
        if not self.peek_keyword(word):
            got = self.tokens[self.position][1] if not self.done() else "end of query"
            raise malformed(f"expected {word.upper()}, got {got!r}")
        self.next()

    def name(self) -> str:
        kind, text = self.next()
        if kind != "word" or text.lower() in _KEYWORDS:
            raise malformed(f"expected a name, got {text!r}")
        if "." in text:
            raise malformed(f"relationship fields such as {text!r} are outside the sandbox's SOQL subset")
        if text.endswith("()") or text.lower() == "count":
            raise malformed("aggregate functions are outside the sandbox's SOQL subset")
        return text


def run_query(
    fields_of: dict[str, sqlite3.Row], query: Query, records: list[tuple[str, dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Apply ``query`` to ``records`` ((id, fields) of one sObject, not deleted); ``fields_of`` is describe.

    Raises a Refusal (``INVALID_FIELD``) for a name the object does not have."""
    by_lower = {name.lower(): name for name in fields_of}

    def resolve(name: str) -> str:
        found = by_lower.get(name.lower())
        if found is None:
            raise Refusal(sf_errors(400, f"No such column '{name}' on entity '{query.sobject}'", "INVALID_FIELD"))
        return found

    selected = [resolve(f) for f in query.fields]
    conditions = [(resolve(c.field), c) for c in query.conditions]
    rows = []
    for record_id, values in records:
        current = {**values, "Id": record_id}
        if all(_holds(current.get(name), fields_of[name]["type"], c) for name, c in conditions):
            rows.append(current)
    if query.order_by:
        key = resolve(query.order_by)
        rows.sort(key=lambda r: (r.get(key) is None, str(r.get(key))), reverse=query.descending)
    if query.limit is not None:
        rows = rows[: query.limit]
    return [{name: row.get(name) for name in selected} for row in rows]


def _holds(value: Any, typ: str, condition: Condition) -> bool:
    wanted = [_comparable(v, typ) for v in condition.values]
    present = _comparable(value, typ) in wanted
    return present if condition.operator in ("=", "IN") else not present


def _comparable(value: Any, typ: str) -> Any:
    if value is None:
        return None
    if typ in ("id", "reference") and isinstance(value, str):
        return normalize_salesforce_id(value) or value
    if typ in TEXT_TYPES and isinstance(value, str):
        return value.lower()  # SOQL text comparisons ignore case
    return value


class QueryCursors:
    """Pages of query results still to be fetched with ``nextRecordsUrl`` (kept in memory, like a
    server-side cursor that expires with the sandbox)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pages: dict[str, tuple[list[dict[str, Any]], int]] = {}
        self._numbers = itertools.count(1)

    def page(self, rows: list[dict[str, Any]], size: int, version: str, total: int | None = None) -> dict[str, Any]:
        total = len(rows) if total is None else total
        first, rest = rows[:size], rows[size:]
        payload: dict[str, Any] = {"totalSize": total, "done": not rest, "records": first}
        if rest:
            locator = f"01gSANDBOX{next(self._numbers):08d}-{size}"
            with self._lock:
                self._pages[locator] = (rest, total)
            payload["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}"
        return payload

    def take(self, locator: str) -> tuple[list[dict[str, Any]], int] | None:
        """The rows left after a page and the query's total; None for an unknown or spent locator."""
        with self._lock:
            return self._pages.pop(locator, None)
