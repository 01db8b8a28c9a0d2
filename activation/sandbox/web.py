"""Tiny request/response types and a regex router, so API handlers are plain functions of a Request."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]  # case-insensitive (http.client.HTTPMessage)
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # filled by the router from the path

    def json(self) -> Any:
        """Parsed JSON body; raises ValueError with the parser's message."""
        return json.loads(self.body.decode("utf-8") or "null")

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8"), keep_blank_values=True).items()}

    def bearer_token(self) -> str | None:
        value = self.headers.get("Authorization") or ""
        scheme, _, token = value.partition(" ")
        return token.strip() or None if scheme.lower() == "bearer" else None


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json;charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    # Hold the answer this long after processing (injected timeout): the write landed, the reply is late.
    delay: float = 0.0


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(payload).encode(), headers=dict(headers or {}))


def csv_response(status: int, text: str) -> Response:
    return Response(status, text.encode(), content_type="text/csv")


Handler = Callable[[Request], Response]


class Router:
    """Routes ``METHOD /path/{param}/...`` patterns to handlers, each with a name for the request stats."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], str, Handler]] = []

    def add(self, method: str, pattern: str, name: str, handler: Handler) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern.rstrip("/"))
        self._routes.append((method, re.compile(f"^{regex}/?$"), name, handler))

    def match(self, method: str, path: str) -> tuple[str, Handler, dict[str, str]] | None:
        for route_method, regex, name, handler in self._routes:
            found = regex.match(path)
            if found and route_method == method:
                return name, handler, found.groupdict()
        return None

    def allows_path(self, path: str) -> bool:
        return any(regex.match(path) for _, regex, _, _ in self._routes)
