"""Tiny request/response types and a regex router, so API handlers are plain functions of a Request."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]  # case-insensitive (http.client.HTTPMessage)
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # filled by the router from the path
    via_my_domain: bool = False  # came in under {url}/my/{domain} (Salesforce's My Domain host)

    def json(self) -> Any:
        """Parsed JSON body; raises ValueError (also for non-UTF-8 bytes, NaN/Infinity and absurd nesting),
        so every handler has one exception to turn into a 400."""
        try:
            return json.loads(self.body.decode("utf-8") or "null", parse_constant=_no_constant, parse_float=_finite)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None

    def form(self) -> dict[str, str]:
        """The form-encoded body (first value per name); ValueError for bytes that are not UTF-8."""
        text = self.body.decode("utf-8")
        return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True, errors="strict").items()}

    def bearer_token(self) -> str | None:
        value = self.headers.get("Authorization") or ""
        scheme, _, token = value.partition(" ")
        return token.strip() or None if scheme.lower() == "bearer" else None

    def basic_credentials(self) -> tuple[str, str] | None:
        """``Authorization: Basic`` as RFC 6749 2.3.1 defines it (each half form-encoded, then base64);
        ``None`` without such a header, ValueError when it is malformed."""
        value = self.headers.get("Authorization") or ""
        scheme, _, encoded = value.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise ValueError("malformed Basic credentials") from None
        client_id, colon, secret = decoded.partition(":")
        if not colon:
            raise ValueError("malformed Basic credentials")
        return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"{text} is out of range")
    return number


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json;charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    # Hold the answer this long after processing (injected timeout): the write landed, the reply is late.
    delay: float = 0.0
    # Close the connection instead of answering (injected fault): the write landed, no reply ever comes.
    drop: bool = False


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(payload).encode(), headers=dict(headers or {}))


def csv_response(status: int, text: str) -> Response:
    return Response(status, text.encode(), content_type="text/csv")


class Refusal(Exception):
    """Raised anywhere below a handler to answer at once with ``response`` (an error in the API's shape)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def json_object(request: Request, error: Callable[[str], Response]) -> dict[str, Any]:
    """The body as a JSON object; otherwise raise a Refusal with ``error(reason)``, in the caller's API shape."""
    try:
        body = request.json()
    except ValueError as exc:
        raise Refusal(error(f"invalid JSON: {exc}")) from None
    if not isinstance(body, dict):
        raise Refusal(error("a JSON object is expected"))
    return body


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

    def patterns(self) -> list[tuple[str, str, str]]:
        """(method, regex, route name) of every route: the fuzz test walks them all."""
        return [(method, regex.pattern, name) for method, regex, name, _ in self._routes]
