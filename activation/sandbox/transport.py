"""HTTP/1.1 on top of ``http.server``: read request bodies defensively, write responses.

A client bug must come back as a 4xx in the API's shape, never as a hang or a 500: a ``Content-Length``
that is not a number, is negative or promises more than arrives (read with a timeout), ``Transfer-Encoding:
chunked`` (decoded), a body too large. After a body error the connection is closed, since the rest of the
stream can no longer be trusted as the next request.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from activation.sandbox.shapes import error_for
from activation.sandbox.web import Request, Response

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 160 * 1024 * 1024  # a Bulk upload may be 150 MB
_DIGITS = re.compile(r"^[0-9]+$")
_CHUNK_SIZE = re.compile(r"^([0-9A-Fa-f]{1,16})(?:;.*)?$")


class BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def make_handler(dispatch: Callable[[Request], Response], body_timeout: Callable[[], float]) -> type:
    """A request handler class that turns each HTTP request into a :class:`Request` for ``dispatch``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so pooled client sessions reuse connections
        # Headers and body go out in two writes; with Nagle on, the body waits for the client's delayed ACK
        # (~40 ms per request on a kept-alive connection).
        disable_nagle_algorithm = True

        def _handle(self) -> None:
            split = urlsplit(self.path)
            try:
                body = self._read_body(body_timeout())
            except BodyError as exc:
                self.close_connection = True
                self._send(error_for(split.path, exc.status, exc.message))
                return
            try:
                query = parse_qs(split.query)
            except ValueError:
                query = {}
            request = Request(self.command, split.path, query, self.headers, body)
            try:
                response = dispatch(request)
            except Exception:
                log.exception("sandbox handler failed for %s %s", self.command, split.path)
                response = error_for(split.path, 500, "sandbox internal error")
            if response.delay:
                time.sleep(response.delay)
            if response.drop:
                self.close_connection = True  # no status line at all: the client sees the connection end
                return
            self._send(response)

        def _send(self, response: Response) -> None:
            try:
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                for name, value in response.headers.items():
                    self.send_header(name, value)
                if self.close_connection:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(response.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout); the request was processed all the same

        def _read_body(self, timeout: float) -> bytes:
            encoding = (self.headers.get("Transfer-Encoding") or "").strip().lower()
            lengths = self.headers.get_all("Content-Length") or []
            if encoding and encoding != "chunked":
                raise BodyError(400, f"unsupported Transfer-Encoding {encoding!r} (only chunked)")
            if not encoding and not lengths:
                return b""
            if not encoding and (len(set(lengths)) > 1 or not _DIGITS.match(lengths[0].strip())):
                raise BodyError(400, f"invalid Content-Length {', '.join(lengths)!r}")
            self.connection.settimeout(timeout)
            try:
                return self._read_chunked() if encoding else self._read_exactly(int(lengths[0]))
            except TimeoutError:
                raise BodyError(400, "the request body is shorter than announced (timed out reading it)") from None
            finally:
                self.connection.settimeout(None)

        def _read_exactly(self, length: int) -> bytes:
            if length > MAX_BODY_BYTES:
                raise BodyError(413, f"request body of {length} bytes exceeds {MAX_BODY_BYTES}")
            data = self.rfile.read(length)
            if len(data) < length:
                raise BodyError(400, f"the request body has {len(data)} bytes, Content-Length says {length}")
            return data

        def _read_chunked(self) -> bytes:
            parts, total = [], 0
            while True:
                line = self.rfile.readline(1024).strip().decode("latin-1")
                found = _CHUNK_SIZE.match(line)
                if not found:
                    raise BodyError(400, f"malformed chunk size line {line[:40]!r}")
                size = int(found.group(1), 16)
                total += size
                if total > MAX_BODY_BYTES:
                    raise BodyError(413, f"request body exceeds {MAX_BODY_BYTES} bytes")
                if size == 0:
                    break
                chunk = self.rfile.read(size)
                if len(chunk) < size or self.rfile.read(2) != b"\r\n":
                    raise BodyError(400, "truncated or malformed chunk")
                parts.append(chunk)
            while self.rfile.readline(1024).strip():  # trailers, up to the empty line
                pass
            return b"".join(parts)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

    return Handler
