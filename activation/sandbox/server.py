"""The sandbox HTTP server: routing, authentication, rate limits, fault injection and the admin API.

Both CRMs are served from one port (their paths do not overlap): HubSpot under ``/crm/v3``, Salesforce
under ``/services``, and an unauthenticated admin API under ``/_admin`` for tests and the bench. The server
binds 127.0.0.1 only — it accepts any well-formed credential it was configured with and must never be
reachable from another machine.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from activation.sandbox.config import (
    DEFAULT_HUBSPOT_TOKEN,
    FaultConfig,
    SandboxConfig,
)
from activation.sandbox.faults import FaultDice
from activation.sandbox.hubspot_api import HubSpotApi, hubspot_error
from activation.sandbox.salesforce_api import SalesforceApi, sf_errors
from activation.sandbox.store import Store
from activation.sandbox.web import Request, Response, Router, json_response

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


class RollingWindow:
    """HubSpot's per-token limits: a rolling window of N requests and a daily count."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hits: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._daily: collections.Counter[str] = collections.Counter()

    def hit(self, token: str, per_window: int, window: float, daily: int) -> tuple[str | None, dict[str, str], float]:
        """Count a request; returns (policy that refused it or None, rate-limit headers, seconds to wait)."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits[token]
            while hits and hits[0] <= now - window:
                hits.popleft()
            refused, wait = None, 0.0
            if self._daily[token] >= daily:
                refused = "DAILY"
            elif len(hits) >= per_window:
                refused, wait = "TEN_SECONDLY_ROLLING", hits[0] + window - now
            else:
                hits.append(now)
                self._daily[token] += 1
            headers = {
                "X-HubSpot-RateLimit-Max": str(per_window),
                "X-HubSpot-RateLimit-Remaining": str(max(0, per_window - len(hits))),
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(window * 1000)),
                "X-HubSpot-RateLimit-Daily": str(daily),
                "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, daily - self._daily[token])),
            }
        return refused, headers, wait

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()
            self._daily.clear()


def format_retry_after(seconds: float) -> str:
    """Whole seconds as HTTP says; below one second (shrunk test windows) a decimal, which clients accept."""
    if seconds >= 1:
        return str(int(seconds + 0.999))
    return f"{max(seconds, 0.001):.3f}"


class CrmSandbox:
    """The application behind the HTTP server; usable without sockets by calling :meth:`dispatch`."""

    def __init__(self, config: SandboxConfig, state_path: str | Path) -> None:
        self.config = config
        self.store = Store(state_path)
        self._dice = FaultDice(config.faults.seed)
        self.window = RollingWindow()
        self.hubspot = HubSpotApi(self.store, config, lambda: self._dice)
        self.salesforce = SalesforceApi(self.store, config, lambda: self._dice)
        self.router = Router()
        self.hubspot.register(self.router)
        self.salesforce.register(self.router)
        self._stats_lock = threading.Lock()
        self._stats: collections.Counter[str] = collections.Counter()
        self.config.hubspot_limits()  # fail at start on an unknown tier

    # --- faults ----------------------------------------------------------------------------------------
    def set_faults(self, changes: dict[str, Any]) -> FaultConfig:
        self.config.faults = self.config.faults.updated(changes)
        if "seed" in changes:
            self._dice = FaultDice(self.config.faults.seed)
        return self.config.faults

    # --- stats -----------------------------------------------------------------------------------------
    def _count(self, *keys: str) -> None:
        with self._stats_lock:
            for key in keys:
                self._stats[key] += 1

    def stats(self) -> dict[str, Any]:
        with self._stats_lock:
            counts = dict(self._stats)
        return {
            "requests": counts.get("requests", 0),
            "by_route": {k[6:]: v for k, v in sorted(counts.items()) if k.startswith("route:")},
            "by_status": {k[7:]: v for k, v in sorted(counts.items()) if k.startswith("status:")},
            "rate_limited": counts.get("rate_limited", 0),
            "injected": {k[9:]: v for k, v in sorted(counts.items()) if k.startswith("injected:")},
            "salesforce_api_usage": self.salesforce.api_usage,
        }

    def reset_stats(self) -> None:
        with self._stats_lock:
            self._stats.clear()

    # --- dispatch --------------------------------------------------------------------------------------
    def dispatch(self, request: Request) -> Response:
        if request.path.startswith("/_admin/"):
            return self._admin(request)
        matched = self.router.match(request.method, request.path)
        if matched is None:
            if self.router.allows_path(request.path):
                return json_response(405, {"status": "error", "message": "Method not allowed"})
            return json_response(404, {"status": "error", "message": f"No route for {request.path}"})
        route, handler, params = matched
        request.params = params
        api = route.split(".", 1)[0]
        if api == "hubspot":
            response = self._hubspot_gate(request, route)
        elif route == "salesforce.oauth.token":
            response = None
        else:
            response = self._salesforce_gate(request)
        extra_headers: dict[str, str] = {}
        if isinstance(response, dict):
            extra_headers, response = response, None
        if response is None:
            response = self._inject(request, api, route) or handler(request)
        response.headers = {**extra_headers, **response.headers}
        self._count("requests", f"route:{route}", f"status:{response.status}")
        if response.status == 429:
            self._count("rate_limited")
        self._log(api, route, request, response)
        return response

    def _hubspot_gate(self, request: Request, route: str) -> Response | dict[str, str]:
        token = request.bearer_token()
        scopes = self.config.hubspot_tokens.get(token or "")
        if scopes is None:
            return hubspot_error(
                401,
                "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
                "INVALID_AUTHENTICATION",
            )
        needed = HubSpotApi.required_scope(route, request.params.get("object_type", ""))
        if needed not in scopes:
            return hubspot_error(
                403,
                "This app hasn't been granted all required scopes to make this call.",
                "MISSING_SCOPES",
                errors=[
                    {
                        "message": "One or more scopes are required.",
                        "context": {"requiredGranularScopes": [needed]},
                    }
                ],
            )
        per_window, daily = self.config.hubspot_limits()
        window = self.config.hubspot_window_seconds
        refused, headers, wait = self.window.hit(token or "", per_window, window, daily)
        if refused is None:
            return headers
        limit = "daily" if refused == "DAILY" else "ten_secondly_rolling"
        response = json_response(
            429,
            {
                "status": "error",
                "message": f"You have reached your {limit} limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": str(uuid.uuid4()),
                "policyName": refused,
            },
            headers,
        )
        if refused != "DAILY":
            response.headers["Retry-After"] = format_retry_after(wait)
        return response

    def _salesforce_gate(self, request: Request) -> Response | dict[str, str]:
        problem = self.salesforce.authenticate(request)
        if problem is not None:
            return problem
        allowed, usage = self.salesforce.count_request()
        if not allowed:
            response = sf_errors(403, "TotalRequests Limit exceeded.", "REQUEST_LIMIT_EXCEEDED")
            response.headers["Sforce-Limit-Info"] = usage
            return response
        return {"Sforce-Limit-Info": usage}

    def _inject(self, request: Request, api: str, route: str) -> Response | None:
        """Faults decided per (request body, repetition): deterministic whatever the thread order."""
        faults = self.config.faults
        if faults.latency > 0:
            time.sleep(faults.latency)
        key = f"{request.method} {request.path} {hashlib.blake2b(request.body, digest_size=12).hexdigest()}"
        if api == "hubspot" and self._dice.hit("429", key, faults.p_429):
            self._count("injected:429")
            wait = format_retry_after(self.config.hubspot_window_seconds / 10)
            return json_response(
                429,
                {
                    "status": "error",
                    "message": "You have reached your ten_secondly_rolling limit.",
                    "errorType": "RATE_LIMIT",
                    "correlationId": str(uuid.uuid4()),
                    "policyName": "TEN_SECONDLY_ROLLING",
                },
                {"Retry-After": wait},
            )
        if self._dice.hit("5xx", key, faults.p_5xx):
            self._count("injected:5xx")
            if api == "hubspot":
                return hubspot_error(503, "Service temporarily unavailable (sandbox fault)", "INTERNAL_ERROR")
            return sf_errors(503, "Server temporarily unavailable (sandbox fault)", "SERVER_UNAVAILABLE")
        if self._dice.hit("timeout", key, faults.p_timeout):
            self._count("injected:timeout")
            # Process the request, then answer too late: the client must cope with writes it never saw.
            matched = self.router.match(request.method, request.path)
            assert matched is not None
            response = matched[1](request)
            response.delay = faults.timeout_delay
            return response
        return None

    def _log(self, api: str, route: str, request: Request, response: Response) -> None:
        try:
            with self.store.transaction() as conn:
                conn.execute(
                    "INSERT INTO request_log (at, api, route, method, path, status) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        dt.datetime.now(dt.UTC).isoformat(),
                        api,
                        route,
                        request.method,
                        request.path,
                        response.status,
                    ),
                )
        except Exception:  # the log is for people; never fail a request because of it
            log.debug("request log write failed", exc_info=True)

    # --- admin -----------------------------------------------------------------------------------------
    def _admin(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")[1:]
        method = request.method
        body = request.json() if request.body else {}
        if parts == ["stats"] and method == "GET":
            return json_response(200, self.stats())
        if parts == ["stats", "reset"] and method == "POST":
            self.reset_stats()
            return json_response(200, self.stats())
        if parts == ["faults"]:
            if method == "POST":
                try:
                    self.set_faults(body)
                except (TypeError, ValueError) as exc:
                    return json_response(400, {"message": str(exc)})
            return json_response(200, self.config.faults.as_dict())
        if parts == ["limits"] and method == "POST":
            allowed = {
                "hubspot_max_per_window",
                "hubspot_daily_limit",
                "hubspot_window_seconds",
                "salesforce_daily_limit",
                "salesforce_token_lifetime",
            }
            unknown = set(body) - allowed
            if unknown:
                return json_response(400, {"message": f"unknown limits {sorted(unknown)}; known: {sorted(allowed)}"})
            for name, value in body.items():
                setattr(self.config, name, value)
            return json_response(200, {name: getattr(self.config, name) for name in sorted(allowed)})
        if parts == ["limits", "reset"] and method == "POST":
            self.window.reset()
            self.salesforce.api_usage = 0
            return json_response(200, {"reset": True})
        if parts == ["salesforce", "expire-tokens"] and method == "POST":
            return json_response(200, {"expired": self.salesforce.expire_tokens()})
        if len(parts) == 3 and parts[0] == "hubspot" and parts[2] == "objects" and method == "GET":
            return json_response(200, {"results": self.hubspot.dump_objects(parts[1])})
        if len(parts) == 3 and parts[0] == "salesforce" and parts[2] == "records" and method == "GET":
            return json_response(200, {"records": self.salesforce.dump_records(parts[1])})
        if len(parts) == 3 and parts[0] == "salesforce" and parts[2] == "fields" and method == "POST":
            self.salesforce.add_fields(parts[1], body.get("fields", []))
            return json_response(200, {"ok": True})
        return json_response(404, {"message": f"no admin route {method} {request.path}"})

    def close(self) -> None:
        self.store.close()


def _make_handler(app: CrmSandbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so pooled client sessions reuse connections
        # Headers and body go out in two writes; with Nagle on, the body waits for the client's delayed ACK
        # (~40 ms per request on a kept-alive connection).
        disable_nagle_algorithm = True

        def _handle(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = Request(self.command, split.path, parse_qs(split.query), self.headers, body)
            try:
                response = app.dispatch(request)
            except Exception:
                log.exception("sandbox handler failed for %s %s", self.command, split.path)
                response = json_response(500, {"status": "error", "message": "sandbox internal error"})
            if response.delay:
                time.sleep(response.delay)
            try:
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(response.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout); the request was processed all the same

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

    return Handler


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True  # a response held back by an injected timeout must not block shutdown
    allow_reuse_address = True


@dataclass
class SandboxHandle:
    """A running sandbox: its URLs, the credentials it accepts, and an admin client."""

    url: str
    app: CrmSandbox
    state_path: Path

    @property
    def hubspot_url(self) -> str:
        return self.url

    @property
    def salesforce_login_url(self) -> str:
        return self.url

    def env(self) -> dict[str, str]:
        """Environment variables that point leadscore's clients at this sandbox."""
        config = self.app.config
        token = next(iter(config.hubspot_tokens), DEFAULT_HUBSPOT_TOKEN)
        return {
            "HUBSPOT_ACCESS_TOKEN": token,
            "HUBSPOT_BASE_URL": self.url,
            "HUBSPOT_TIER": config.hubspot_tier,
            "SALESFORCE_LOGIN_URL": self.url,
            "SALESFORCE_CLIENT_ID": config.salesforce_client_id,
            "SALESFORCE_CLIENT_SECRET": config.salesforce_client_secret,
        }

    @property
    def admin(self) -> SandboxAdmin:
        return SandboxAdmin(self.url)


class SandboxAdmin:
    """Thin client of the admin API (works against a sandbox in another process too)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        response = requests.request(method, f"{self.url}/_admin/{path}", json=payload, timeout=self.timeout)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "stats")

    def reset_stats(self) -> dict[str, Any]:
        return self._call("POST", "stats/reset")

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        return self._call("POST", "faults", changes)

    def set_limits(self, **limits: Any) -> dict[str, Any]:
        return self._call("POST", "limits", limits)

    def reset_limits(self) -> None:
        self._call("POST", "limits/reset")

    def expire_salesforce_tokens(self) -> int:
        return self._call("POST", "salesforce/expire-tokens")["expired"]

    def hubspot_objects(self, object_type: str) -> list[dict[str, Any]]:
        return self._call("GET", f"hubspot/{object_type}/objects")["results"]

    def salesforce_records(self, sobject: str) -> list[dict[str, Any]]:
        return self._call("GET", f"salesforce/{sobject}/records")["records"]

    def add_salesforce_fields(self, sobject: str, fields: list[dict[str, Any]]) -> None:
        self._call("POST", f"salesforce/{sobject}/fields", {"fields": fields})


def start_server(config: SandboxConfig, state_path: str | Path, port: int = 0) -> tuple[SandboxServer, CrmSandbox, str]:
    """Bind 127.0.0.1:``port`` (0 = ephemeral) and return the server (not yet serving), app and base URL."""
    app = CrmSandbox(config, state_path)
    server = SandboxServer((LOOPBACK, port), _make_handler(app))
    url = f"http://{LOOPBACK}:{server.server_address[1]}"
    app.salesforce.base_url = url
    return server, app, url


@contextlib.contextmanager
def run_sandbox(
    config: SandboxConfig | None = None, *, state_path: str | Path | None = None, **overrides: Any
) -> Iterator[SandboxHandle]:
    """Run a sandbox in a background thread for the ``with`` block; yields its :class:`SandboxHandle`.

    ``overrides`` set :class:`SandboxConfig` fields (``faults=`` may be a dict). Without ``state_path`` the
    state lives in a temporary directory removed afterwards.
    """
    config = dataclasses.replace(config) if config is not None else SandboxConfig()
    for name, value in overrides.items():
        if name == "faults" and isinstance(value, dict):
            value = FaultConfig().updated(value)
        if not hasattr(config, name):
            raise TypeError(f"unknown sandbox setting {name!r}")
        setattr(config, name, value)
    with contextlib.ExitStack() as stack:
        if state_path is None:
            state_path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crm-sandbox-"))) / "state.sqlite"
        server, app, url = start_server(config, state_path)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            yield SandboxHandle(url=url, app=app, state_path=Path(state_path))
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
            app.close()
