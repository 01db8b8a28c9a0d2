"""HubSpot's CRM search (``POST /crm/v3/objects/{type}/search``): request checks and filter matching.

As strict as HubSpot's: at most 5 filter groups (OR-ed), 10 filters per group and 25 in all (AND-ed within
a group), 100 values per ``IN``, ``limit`` up to 200, and no page beyond the 10,000th result. String
comparisons ignore case. The search index trails writes (``hubspot_search_lag_seconds``: what was created
more recently is not found yet), and the endpoint has its own per-second limit per token: both are what a
client relying on search to find what it wrote must live with.
"""

from __future__ import annotations

import collections
import datetime as dt
import threading
import time
from dataclasses import dataclass
from typing import Any

from activation.sandbox.shapes import hubspot_error
from activation.sandbox.web import Refusal, Response

MAX_GROUPS, MAX_FILTERS_PER_GROUP, MAX_FILTERS = 5, 10, 25
MAX_IN_VALUES = 100
DEFAULT_LIMIT, MAX_LIMIT = 10, 200
MAX_RESULTS = 10_000
OPERATORS = {"EQ", "NEQ", "IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY"}


@dataclass(frozen=True)
class Filter:
    name: str
    operator: str
    values: tuple[str, ...]

    def matches(self, properties: dict[str, str]) -> bool:
        value = properties.get(self.name)
        # EQ ignores case; IN is case-sensitive on its input: values are matched against the lower-cased
        # stored value, so only lower-case inputs can match (HubSpot's search docs).
        wanted = set(self.values) if self.operator in ("IN", "NOT_IN") else {v.lower() for v in self.values}
        if self.operator == "HAS_PROPERTY":
            return bool(value)
        if self.operator == "NOT_HAS_PROPERTY":
            return not value
        present = value is not None and value.lower() in wanted
        return present if self.operator in ("EQ", "IN") else not present


@dataclass(frozen=True)
class SearchRequest:
    groups: tuple[tuple[Filter, ...], ...]
    properties: tuple[str, ...]
    limit: int
    after: int

    def matches(self, properties: dict[str, str]) -> bool:
        return not self.groups or any(all(f.matches(properties) for f in group) for group in self.groups)


def parse_search(body: dict[str, Any], known: set[str]) -> SearchRequest:
    """The search body, checked like HubSpot checks it; a Refusal (400) names the first problem."""
    groups_raw = body.get("filterGroups", [])
    if not isinstance(groups_raw, list) or not all(isinstance(g, dict) for g in groups_raw):
        raise Refusal(_invalid("filterGroups must be a list of objects"))
    if len(groups_raw) > MAX_GROUPS:
        raise Refusal(_invalid(f"at most {MAX_GROUPS} filterGroups are allowed, got {len(groups_raw)}"))
    groups, total = [], 0
    for group in groups_raw:
        filters_raw = group.get("filters", [])
        if not isinstance(filters_raw, list) or not all(isinstance(f, dict) for f in filters_raw):
            raise Refusal(_invalid("filters must be a list of objects"))
        if len(filters_raw) > MAX_FILTERS_PER_GROUP:
            raise Refusal(_invalid(f"at most {MAX_FILTERS_PER_GROUP} filters per group, got {len(filters_raw)}"))
        total += len(filters_raw)
        groups.append(tuple(_parse_filter(f, known) for f in filters_raw))
    if total > MAX_FILTERS:
        raise Refusal(_invalid(f"at most {MAX_FILTERS} filters in all, got {total}"))
    properties = body.get("properties", [])
    if not isinstance(properties, list) or not all(isinstance(p, str) for p in properties):
        raise Refusal(_invalid("properties must be a list of property names"))
    limit = body.get("limit", DEFAULT_LIMIT)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise Refusal(_invalid(f"limit must be an integer from 1 to {MAX_LIMIT}"))
    after = body.get("after", 0)
    if isinstance(after, str) and after.isdigit():
        after = int(after)
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise Refusal(_invalid("after must be a paging cursor (a non-negative number)"))
    if after + limit > MAX_RESULTS:
        raise Refusal(_invalid(f"search returns at most {MAX_RESULTS} results for a query; narrow the filters"))
    return SearchRequest(tuple(groups), tuple(properties), limit, after)


def _parse_filter(raw: dict[str, Any], known: set[str]) -> Filter:
    name, operator = raw.get("propertyName"), raw.get("operator")
    if not isinstance(name, str) or not isinstance(operator, str):
        raise Refusal(_invalid("each filter needs a propertyName and an operator"))
    if operator not in OPERATORS:
        raise Refusal(_invalid(f"operator {operator!r} is not one of {sorted(OPERATORS)} (sandbox subset)"))
    if name not in known:
        raise Refusal(_invalid(f"Property {name!r} does not exist"))
    if operator in ("IN", "NOT_IN"):
        values = raw.get("values")
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            raise Refusal(_invalid(f"{operator} needs 'values': a non-empty list of strings"))
        if len(values) > MAX_IN_VALUES:
            raise Refusal(_invalid(f"{operator} takes at most {MAX_IN_VALUES} values, got {len(values)}"))
        return Filter(name, operator, tuple(values))
    if operator in ("EQ", "NEQ"):
        value = raw.get("value")
        if not isinstance(value, str):
            raise Refusal(_invalid(f"{operator} needs a string 'value'"))
        return Filter(name, operator, (value,))
    return Filter(name, operator, ())


def visible(created_at: str, lag_seconds: float, now: dt.datetime | None = None) -> bool:
    """Whether the search index holds an object created at ``created_at`` (ISO, UTC) yet."""
    if lag_seconds <= 0:
        return True
    created = dt.datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    return (now or dt.datetime.now(dt.UTC)) - created >= dt.timedelta(seconds=lag_seconds)


class SecondlyLimit:
    """The search API's own limit: N requests per second per token."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hits: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)

    def allow(self, token: str, per_second: int) -> bool:
        now = time.monotonic()
        with self._lock:
            hits = self._hits[token]
            while hits and hits[0] <= now - 1.0:
                hits.popleft()
            if len(hits) >= per_second:
                return False
            hits.append(now)
            return True


def search_rate_limited() -> Response:
    message = "You have reached your secondly limit."
    response = hubspot_error(429, message, "RATE_LIMITS", errorType="RATE_LIMIT", policyName="SECONDLY")
    response.headers["Retry-After"] = "1"
    return response


def _invalid(message: str) -> Response:
    return hubspot_error(400, message, "VALIDATION_ERROR")
