"""The HTTP plumbing both CRM clients share: pooled session, timeouts, retries, rate limiting, counters.

Each client subclasses :class:`ApiClient` and supplies two hooks: the auth header, and
:meth:`ApiClient.classify`, which turns a response into a :class:`Verdict` (success, wait and retry, get a
new token, stop for the day, fail). The retry loop itself — backoff with jitter for 5xx and timeouts,
``Retry-After`` for 429, one re-authentication for an expired session — lives here once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from activation.errors import (
    AuthenticationError,
    BatchConflict,
    BatchInvalid,
    DailyLimitReached,
    OutcomeUnknown,
    RequestFailed,
)
from activation.ratelimit import RateLimiter, RetryPolicy, backoff_delay, parse_retry_after
from activation.redact import redact


@dataclass(frozen=True)
class HttpSettings:
    """Transport settings; tests shrink the timeout and the backoff so faults cost milliseconds."""

    timeout: float = 30.0
    pool_size: int = 8
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # A 429 is the server asking us to wait, not an error: allow more of them than of failures.
    max_rate_limited_attempts: int = 12


class Outcome(Enum):
    OK = "ok"
    RETRY = "retry"  # transient (5xx, 423, malformed 2xx): back off and resend
    RATE_LIMITED = "rate_limited"  # 429: wait Retry-After / the window, then resend
    REAUTHENTICATE = "reauthenticate"  # expired session: get a new token once, then resend
    DAILY_LIMIT = "daily_limit"
    CONFLICT = "conflict"  # one record clashes with CRM data: split the batch
    INVALID = "invalid"  # one record's value is refused and the whole batch with it: split the batch
    AUTH = "auth"
    FAIL = "fail"


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    message: str = ""
    wait: float | None = None  # seconds the server asked us to wait, when it said
    code: str = ""  # the CRM's error code, when it names one

    @classmethod
    def ok(cls) -> Verdict:
        return cls(Outcome.OK)


class ClientStats:
    """Thread-safe counters of what a client did; the sync engine reports the difference over a run."""

    FIELDS = ("api_calls", "rate_limited", "retries", "timeouts", "server_errors", "reauthentications")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self.FIELDS, 0)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class DailyBudget:
    """Requests left in a daily allocation, as last announced by the server, minus what was sent since.

    Each send reserves one request; each response's announcement can only lower the estimate (taking the
    minimum accounts for requests still in flight from other threads). When nothing is left the client
    stops *before* sending, so concurrency does not overshoot the limit into a 429/403.
    """

    def __init__(self, description: str) -> None:
        self._lock = threading.Lock()
        self._left: int | None = None  # unknown until the first response
        self._description = description

    def reserve(self) -> None:
        with self._lock:
            if self._left is None:
                return
            if self._left <= 0:
                raise DailyLimitReached(f"{self._description} is spent; the rest waits for the next run")
            self._left -= 1

    def announce(self, remaining: int) -> None:
        with self._lock:
            self._left = remaining if self._left is None else min(self._left, remaining)


def response_excerpt(response: requests.Response, limit: int = 400) -> str:
    """Status and the start of the body, redacted: enough to act on, never a credential."""
    text = response.text[:limit].replace("\n", " ")
    return redact(f"HTTP {response.status_code}: {text}")


class ApiClient:
    """Base class of the CRM clients. Subclasses implement :meth:`auth_headers` and :meth:`classify`."""

    def __init__(
        self,
        *,
        settings: HttpSettings,
        limiter: RateLimiter | None,
        logger: logging.Logger,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ) -> None:
        self.settings = settings
        self.limiter = limiter
        self.stats = ClientStats()
        self.log = logger
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self.session = requests.Session()
        # One pool sized for the worker threads: connections are reused instead of re-opened per batch.
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=settings.pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    # --- hooks -------------------------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        raise NotImplementedError

    def classify(self, response: requests.Response) -> Verdict:
        raise NotImplementedError

    def observe(self, response: requests.Response) -> None:
        """Read rate-limit headers of every response (overridden by clients that have some)."""

    def before_request(self) -> None:
        """Raise before sending when it is known to be pointless (e.g. daily allocation spent)."""

    def reauthenticate(self) -> None:
        raise AuthenticationError("the session expired and this client cannot get a new token")

    # --- the retry loop ----------------------------------------------------------------------------
    def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        data: bytes | str | Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        authenticated: bool = True,
        accept: Callable[[requests.Response], Verdict] | None = None,
        idempotent: bool = True,
    ) -> requests.Response:
        """Send one API request, retrying what can be retried; returns only a successful response.

        ``accept`` re-judges a response :meth:`classify` found fine, e.g. a 2xx whose body confirms nothing.
        ``idempotent=False`` (a create: sending it twice makes two records) resends only what the server
        certainly did not process (429, 423, a connection never opened, an expired session); a timeout, a
        dropped connection, a 5xx or a 2xx that confirms nothing raise :class:`OutcomeUnknown` at once.
        """
        retry = self.settings.retry
        path = urlsplit(url).path
        failures = rate_limited = 0
        reauthenticated = False
        while True:
            if authenticated:  # unauthenticated calls (OAuth) do not count against API allocations
                self.before_request()
            if self.limiter is not None:
                self.limiter.acquire()
            all_headers = {**(self.auth_headers() if authenticated else {}), **(headers or {})}
            try:
                response = self.session.request(
                    method, url, json=json, data=data, headers=all_headers, timeout=self.settings.timeout
                )
            except (requests.Timeout, requests.ConnectionError) as exc:
                self.stats.add("api_calls")
                self.stats.add("timeouts")
                failures += 1
                reason = f"{method} {path}: {type(exc).__name__}"
                if not idempotent and not never_sent(exc):
                    raise OutcomeUnknown(f"{reason}: sent, but no answer came; the CRM may have applied it") from None
                if failures >= retry.max_attempts:
                    raise RequestFailed(f"{reason}, giving up after {failures} attempts", retryable=True) from None
                self._back_off(failures, reason)
                continue
            except requests.RequestException as exc:  # a request that cannot be sent (e.g. an invalid header)
                # Its text may quote the headers, credentials included: pass on a redacted message only.
                raise RequestFailed(f"{method} {path}: {type(exc).__name__}: {redact(str(exc))}") from None
            self.stats.add("api_calls")
            self.observe(response)
            verdict = self.classify(response)
            if verdict.outcome is Outcome.OK and accept is not None:
                verdict = accept(response)
            outcome = verdict.outcome
            if outcome is Outcome.OK:
                return response
            reason = f"{method} {path}: {verdict.message or response_excerpt(response)}"
            if outcome is Outcome.RATE_LIMITED:
                self.stats.add("rate_limited")
                rate_limited += 1
                if rate_limited >= self.settings.max_rate_limited_attempts:
                    raise RequestFailed(f"{reason} (still rate limited after {rate_limited} tries)", retryable=True)
                wait = verdict.wait if verdict.wait is not None else self._jittered(rate_limited)
                wait = min(wait, retry.max_retry_after)
                self.log.warning("rate limited, every worker pauses %.2fs: %s", wait, reason)
                if self.limiter is not None:
                    self.limiter.pause(wait)
                else:
                    self._sleep(wait)
                self.stats.add("retries")
            elif outcome is Outcome.RETRY:
                self.stats.add("server_errors")
                if not idempotent and (response.status_code >= 500 or response.ok):
                    raise OutcomeUnknown(f"{reason}: the CRM may have applied it", status=response.status_code)
                failures += 1
                if failures >= retry.max_attempts:
                    raise RequestFailed(f"{reason}, giving up after {failures} attempts", retryable=True)
                self._back_off(failures, reason, floor=verdict.wait)
            elif outcome is Outcome.REAUTHENTICATE and not reauthenticated:
                self.log.info("session expired (%s); getting a new token", path)
                self.stats.add("reauthentications")
                self.reauthenticate()
                reauthenticated = True
            elif outcome in (Outcome.REAUTHENTICATE, Outcome.AUTH):
                raise AuthenticationError(reason)
            elif outcome is Outcome.DAILY_LIMIT:
                raise DailyLimitReached(reason)
            elif outcome is Outcome.CONFLICT:
                raise BatchConflict(reason)
            elif outcome is Outcome.INVALID:
                raise BatchInvalid(reason, verdict.code or "VALIDATION_ERROR")
            else:
                raise RequestFailed(reason, status=response.status_code, retryable=False)

    def _jittered(self, attempt: int) -> float:
        with self._rng_lock:
            jitter = self._rng.random()
        return backoff_delay(self.settings.retry, attempt, jitter)

    def _back_off(self, attempt: int, reason: str, floor: float | None = None) -> None:
        delay = max(self._jittered(attempt), floor or 0.0)
        self.stats.add("retries")
        self.log.warning("retry %d in %.2fs after %s", attempt, delay, reason)
        self._sleep(delay)

    def close(self) -> None:
        self.session.close()


def never_sent(exc: requests.RequestException) -> bool:
    """Whether a transport error happened before the request left (no connection could be opened): only
    then is resending a create safe without looking first."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


def parse_wait(response: requests.Response) -> float | None:
    return parse_retry_after(response.headers.get("Retry-After"))
