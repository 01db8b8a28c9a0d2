"""The sandbox HTTP server: routing, authentication, rate limits, fault injection.

Both CRMs are served from one port (their paths do not overlap): HubSpot under ``/crm/v3`` (plus the
account-info endpoints), Salesforce under ``/services`` — on the bare URL, which plays the generic login host,
and under ``/my/{domain}``, the org's My Domain — and an unauthenticated admin API under ``/_admin`` for
tests and the bench. The server binds 127.0.0.1 only — it accepts any well-formed credential it was
configured with and must never be reachable from another machine.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
import secrets
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from activation.salesforce_ids import make_salesforce_id
from activation.sandbox.admin import SALESFORCE_OBJECTS, AdminApi, SandboxAdmin
from activation.sandbox.config import DEFAULT_HUBSPOT_TOKEN, FaultConfig, SandboxConfig
from activation.sandbox.faults import FaultDice
from activation.sandbox.hubspot_api import OBJECT_TYPE_IDS, HubSpotApi
from activation.sandbox.salesforce_api import SalesforceApi
from activation.sandbox.shapes import api_of, error_for, hubspot_error, sf_errors
from activation.sandbox.slack import SlackWebhooks
from activation.sandbox.store import Store
from activation.sandbox.transport import make_handler
from activation.sandbox.web import Handler, Refusal, Request, Response, Router, json_response

__all__ = ["CrmSandbox", "SandboxAdmin", "SandboxHandle", "run_sandbox", "start_server"]

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
MY_DOMAIN_ROOT = "/my/"


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


def new_portal_id() -> str:
    return str(10_000_000 + secrets.randbelow(90_000_000))


def new_org_id() -> str:
    return make_salesforce_id("00D", secrets.randbelow(62**7), "5g")


def format_retry_after(seconds: float) -> str:
    """Whole seconds as HTTP says; below one second (shrunk test windows) a decimal, which clients accept."""
    if seconds >= 1:
        return str(int(seconds + 0.999))
    return f"{max(seconds, 0.001):.3f}"


def rate_limited(policy: str, headers: dict[str, str]) -> Response:
    limit = "daily" if policy == "DAILY" else "ten_secondly_rolling"
    body = {
        "status": "error",
        "message": f"You have reached your {limit} limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": policy,
    }
    return json_response(429, body, headers)


class CrmSandbox:
    """The application behind the HTTP server; usable without sockets by calling :meth:`dispatch`."""

    def __init__(self, config: SandboxConfig, state_path: str | Path) -> None:
        config.validate()  # fail at start on an unknown tier or a malformed org id
        self.config = config
        self.store = Store(state_path)
        # Each state file is its own CRM instance: a new sandbox is a new portal and org, so sync state kept
        # for another one is never mistaken for this one's.
        wanted_portal = str(config.hubspot_portal_id) if config.hubspot_portal_id else None
        config.hubspot_portal_id = int(self.store.identity("hubspot_portal_id", new_portal_id, wanted_portal))
        config.salesforce_org_id = self.store.identity("salesforce_org_id", new_org_id, config.salesforce_org_id)
        self._dice = FaultDice(config.faults.seed)
        self.window = RollingWindow()
        self.hubspot = HubSpotApi(self.store, config, lambda: self._dice)
        self.salesforce = SalesforceApi(self.store, config, lambda: self._dice)
        self.router = Router()
        self.hubspot.register(self.router)
        self.salesforce.register(self.router)
        self.admin = AdminApi(self)
        self.slack = SlackWebhooks()  # Slack incoming webhooks (the digest's summary), under /slack/services
        self._stats_lock = threading.Lock()
        self._stats: collections.Counter[str] = collections.Counter()

    # --- seeding ---------------------------------------------------------------------------------------
    def seed_hubspot(self, object_type: str, records: list[dict[str, Any]]) -> int:
        """Insert HubSpot records (``{"id": "<numeric id>", "properties": {...}}``) whose id is not held yet;
        existing records are never touched. Returns how many were inserted."""
        return self.hubspot.seed(object_type, records)

    def seed_salesforce(self, sobject: str, records: list[dict[str, Any]]) -> int:
        """Insert Salesforce records (``{"Id": ..., field: value}``) whose Id is not held yet; returns how many."""
        return self.salesforce.records.seed(sobject, records)

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            "hubspot": {kind: self.hubspot.count(kind) for kind in OBJECT_TYPE_IDS},
            "salesforce": {sobject: self.salesforce.records.count(sobject) for sobject in SALESFORCE_OBJECTS},
        }

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
        usage = self.salesforce.auth.usage
        return {
            "requests": counts.get("requests", 0),
            "by_route": {k[6:]: v for k, v in sorted(counts.items()) if k.startswith("route:")},
            "by_status": {k[7:]: v for k, v in sorted(counts.items()) if k.startswith("status:")},
            "rate_limited": counts.get("rate_limited", 0),
            "injected": {k[9:]: v for k, v in sorted(counts.items()) if k.startswith("injected:")},
            "salesforce_api_usage": usage.total,
            "salesforce_app_api_usage": usage.app,
        }

    def reset_stats(self) -> None:
        with self._stats_lock:
            self._stats.clear()

    # --- dispatch --------------------------------------------------------------------------------------
    def dispatch(self, request: Request) -> Response:
        if self.slack.serves(request.path):  # before /_admin: /_admin/slack/ is the webhooks' admin
            return self.slack.handle(request)
        if request.path.startswith("/_admin"):
            return self.admin.handle(request)
        if request.path.startswith(MY_DOMAIN_ROOT):
            problem = self._enter_my_domain(request)
            if problem is not None:
                return problem
        matched = self.router.match(request.method, request.path)
        if matched is None:
            status = 405 if self.router.allows_path(request.path) else 404
            return error_for(request.path, status, f"No route for {request.method} {request.path}")
        route, handler, request.params = matched
        api = route.split(".", 1)[0]
        gate = self._gate(request, route)
        extra_headers: dict[str, str] = {}
        if isinstance(gate, dict):
            extra_headers, gate = gate, None
        response = gate or self._inject(request, api, handler) or _answer(handler, request)
        response.headers = {**extra_headers, **response.headers}
        self._count("requests", f"route:{route}", f"status:{response.status}")
        if response.status == 429:
            self._count("rate_limited")
        self._log(api, route, request, response)
        return response

    def _enter_my_domain(self, request: Request) -> Response | None:
        """Strip ``/my/{domain}`` so the path is served as Salesforce; other domains do not resolve."""
        prefix = f"{MY_DOMAIN_ROOT}{self.config.salesforce_my_domain}"
        rest = request.path[len(prefix) :]
        if not request.path.startswith(prefix) or (rest and not rest.startswith("/")):
            return error_for(request.path, 404, "No My Domain of that name is served here")
        if api_of(rest) not in {"salesforce", "oauth"} or rest.startswith(MY_DOMAIN_ROOT):
            return error_for(request.path, 404, f"The requested resource does not exist: {rest or '/'}")
        request.path, request.via_my_domain = rest, True
        return None

    def _gate(self, request: Request, route: str) -> Response | dict[str, str] | None:
        """Authentication and limits before a handler runs: a refusal, or headers to add to its answer."""
        if route.startswith("hubspot."):
            return self._hubspot_gate(request, route)
        if route == "salesforce.oauth.token":
            return None
        if route == "salesforce.identity":  # identity calls do not count against the allocation
            return self.salesforce.authenticate(request)
        return self._salesforce_gate(request)

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
        if needed is not None and needed not in scopes:
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
        response = rate_limited(refused, headers)
        if refused != "DAILY":
            response.headers["Retry-After"] = format_retry_after(wait)
        return response

    def _salesforce_gate(self, request: Request) -> Response | dict[str, str]:
        problem = self.salesforce.authenticate(request)
        if problem is not None:
            return problem
        faults = self.config.faults
        if self._dice.hit("concurrent_limit", _request_key(request), faults.p_concurrent_limit):
            # The short-lived concurrent long-running-request limit: refused before processing, not charged.
            self._count("injected:concurrent_limit")
            response = sf_errors(403, "ConcurrentPerOrgLongTxn Limit exceeded.", "REQUEST_LIMIT_EXCEEDED")
            response.headers["Sforce-Limit-Info"] = self.salesforce.auth.limit_info()
            return response
        allowed, usage = self.salesforce.count_request()
        if not allowed:
            response = sf_errors(403, "TotalRequests Limit exceeded.", "REQUEST_LIMIT_EXCEEDED")
            response.headers["Sforce-Limit-Info"] = usage
            return response
        return {"Sforce-Limit-Info": usage}

    def _inject(self, request: Request, api: str, handler: Handler) -> Response | None:
        """Faults decided per (request body, repetition): deterministic whatever the thread order."""
        faults = self.config.faults
        if faults.latency > 0:
            time.sleep(faults.latency)
        key = _request_key(request)
        if api == "hubspot" and self._dice.hit("429", key, faults.p_429):
            self._count("injected:429")
            wait = format_retry_after(self.config.hubspot_window_seconds / 10)
            return rate_limited("TEN_SECONDLY_ROLLING", {"Retry-After": wait})
        if self._dice.hit("5xx", key, faults.p_5xx):
            self._count("injected:5xx")
            if api == "hubspot":
                return hubspot_error(503, "Service temporarily unavailable (sandbox fault)", "INTERNAL_ERROR")
            return sf_errors(503, "Server temporarily unavailable (sandbox fault)", "SERVER_UNAVAILABLE")
        if self._dice.hit("timeout", key, faults.p_timeout):
            self._count("injected:timeout")
            # Process the request, then answer too late: the client must cope with writes it never saw.
            response = _answer(handler, request)
            response.delay = faults.timeout_delay
            return response
        if self._dice.hit("5xx_after_commit", key, faults.p_5xx_after_commit):
            self._count("injected:5xx_after_commit")
            _answer(handler, request)  # the write commits; a gateway then loses the answer
            status = (502, 503, 504)[int(self._dice.roll("5xx_status", key) * 3)]
            if api == "hubspot":
                return hubspot_error(status, "Bad gateway (sandbox fault, after commit)", "INTERNAL_ERROR")
            return sf_errors(status, "Server unavailable (sandbox fault, after commit)", "SERVER_UNAVAILABLE")
        if self._dice.hit("disconnect_after_commit", key, faults.p_disconnect_after_commit):
            self._count("injected:disconnect_after_commit")
            response = _answer(handler, request)
            response.drop = True
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

    def close(self) -> None:
        self.salesforce.bulk.stop()  # after its current chunk: what is left resumes at the next start
        self.store.close()


def _answer(handler: Handler, request: Request) -> Response:
    try:
        return handler(request)
    except Refusal as refusal:
        return refusal.response


def _request_key(request: Request) -> str:
    return f"{request.method} {request.path} {hashlib.blake2b(request.body, digest_size=12).hexdigest()}"


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True  # a response held back by an injected timeout must not block shutdown
    allow_reuse_address = True


@dataclass
class SandboxHandle:
    """A running sandbox: its URLs, the identities and credentials it accepts, and an admin client."""

    url: str
    app: CrmSandbox
    state_path: Path

    @property
    def hubspot_url(self) -> str:
        return self.url

    @property
    def salesforce_login_url(self) -> str:
        """The org's My Domain URL: the login URL to configure (client credentials work only there)."""
        return f"{self.url}{MY_DOMAIN_ROOT}{self.app.config.salesforce_my_domain}"

    @property
    def salesforce_generic_login_url(self) -> str:
        """The generic login host (login.salesforce.com's part): JWT bearer only."""
        return self.url

    @property
    def portal_id(self) -> int:
        return self.app.config.hubspot_portal_id

    @property
    def org_id(self) -> str:
        return self.app.config.salesforce_org_id

    def env(self) -> dict[str, str]:
        """Environment variables that point leadscore's clients at this sandbox."""
        config = self.app.config
        token = next(iter(config.hubspot_tokens), DEFAULT_HUBSPOT_TOKEN)
        return {
            "HUBSPOT_ACCESS_TOKEN": token,
            "HUBSPOT_BASE_URL": self.url,
            "HUBSPOT_TIER": config.hubspot_tier,
            "SALESFORCE_LOGIN_URL": self.salesforce_login_url,
            "SALESFORCE_CLIENT_ID": config.salesforce_client_id,
            "SALESFORCE_CLIENT_SECRET": config.salesforce_client_secret,
        }

    @property
    def admin(self) -> SandboxAdmin:
        return SandboxAdmin(self.url)

    def slack_webhook_url(self) -> str:
        """The default Slack incoming webhook (channel ``#sales-morning``); a secret, as a real one is."""
        return f"{self.url}{self.app.slack.default_path}"


def start_server(config: SandboxConfig, state_path: str | Path, port: int = 0) -> tuple[SandboxServer, CrmSandbox, str]:
    """Bind 127.0.0.1:``port`` (0 = ephemeral) and return the server (not yet serving), app and base URL."""
    app = CrmSandbox(config, state_path)
    server = SandboxServer((LOOPBACK, port), make_handler(app.dispatch, lambda: app.config.body_read_timeout))
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
