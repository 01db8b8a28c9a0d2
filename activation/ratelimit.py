"""Client-side pacing: a rolling-window rate limiter and the retry backoff schedule.

The limiter hands out *reservations*: a caller asks for the next free slot, gets the moment it may send,
and sleeps outside the lock. Two rules decide the slot:

* rolling window — at most ``max_requests`` sends in any ``interval`` seconds, the rule HubSpot enforces
  (``TEN_SECONDLY_ROLLING``). ``max_requests`` is set a little below the server's limit because the server
  counts arrivals, not sends, and latency jitter can shift a send into the next window;
* pacing — sends are spread evenly (``interval / max_requests`` apart) with a small burst allowance, so a
  long sync runs at the ceiling rate instead of bursting a whole window and then idling.

A 429 with ``Retry-After`` pauses every thread (:meth:`RateLimiter.pause`), and a server that announces a
different limit in its headers (``X-HubSpot-RateLimit-Max``) re-sizes the window.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


class RateLimiter:
    """Thread-safe rolling-window limiter with even pacing; ``clock``/``sleep`` are injectable for tests."""

    def __init__(
        self,
        max_requests: int,
        interval: float,
        *,
        burst: int = 10,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_requests < 1 or interval <= 0:
            raise ValueError("max_requests must be >= 1 and interval > 0")
        self._lock = threading.Lock()
        self._clock, self._sleep = clock, sleep
        self._burst = max(1, burst)
        self._slots: collections.deque[float] = collections.deque()
        self._paused_until = 0.0
        self._theoretical_arrival = 0.0
        self.configure(max_requests, interval)

    @property
    def max_requests(self) -> int:
        return self._max_requests

    def configure(self, max_requests: int, interval: float) -> None:
        """Change the limit, e.g. when the server's headers announce another tier than configured."""
        with self._lock:
            self._max_requests, self._interval = max(1, max_requests), interval
            self._spacing = interval / self._max_requests

    def reserve(self) -> float:
        """Claim the next slot and return how long to wait before sending (0 when it may send now)."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._paused_until, self._theoretical_arrival - self._burst * self._spacing)
            if self._slots:
                slot = max(slot, self._slots[-1])  # keep slots ordered so the window check below holds
            if len(self._slots) >= self._max_requests:
                slot = max(slot, self._slots[-self._max_requests] + self._interval)
            self._theoretical_arrival = max(self._theoretical_arrival, slot) + self._spacing
            self._slots.append(slot)
            while len(self._slots) > self._max_requests:
                self._slots.popleft()
            return slot - now

    def acquire(self) -> None:
        """Block until this thread may send one request."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)

    def pause(self, seconds: float) -> None:
        """No reservation starts within ``seconds`` from now (used on 429 / Retry-After)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped; attempts count the first try."""

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    # Upper bound for one server-requested wait (Retry-After); tests lower it to stay fast.
    max_retry_after: float = 60.0


def backoff_delay(policy: RetryPolicy, attempt: int, jitter: float) -> float:
    """Delay before retry number ``attempt`` (1-based), given a uniform random ``jitter`` in [0, 1).

    Full jitter — a random point in [cap/2, cap] — spreads the retries of concurrent workers apart while
    keeping a floor, so a storm of 429s or 5xx does not make every worker retry at the same instant.
    """
    cap = min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))
    return cap / 2 + cap / 2 * jitter


def backoff_schedule(policy: RetryPolicy, jitters: list[float]) -> list[float]:
    """The delays of successive retries (one jitter per retry) — handy to reason about the worst case."""
    return [backoff_delay(policy, attempt, j) for attempt, j in enumerate(jitters, start=1)]


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (integer or decimal seconds); ``None`` when absent/invalid."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # HTTP-date form: not used by either CRM; fall back to backoff
    return max(0.0, seconds)
