"""Failed-scan limits: per presented code, and a small penalty per source.

Only failures count, so a guest who scans correctly is never slowed down.

* **Per code**: the same code (its SHA-256) refused ``max_failures_per_code`` times within
  ``window_seconds`` is refused at once (``RATE_LIMITED``) until the window has passed —
  a damaged code left in front of the camera stops costing anything, and nobody else's
  code is affected.
* **Per source** (an address, or ``camera``): past ``max_failures`` failures within the
  window, the source may try once per ``penalty_seconds`` — a brute-forcer is slowed to a
  crawl, while a guest behind the same address (or at the same camera, after somebody
  showed it ten junk codes) waits a second or two, never a minute.

In memory, per process, bounded.

:class:`AttemptLimiter` is the other kind: every attempt counts (a guest session's requests,
questions and offer taps, ``guest.*_per_minute``), at most ``limit`` in a sliding window.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict, deque

from .errors import RateLimited


def code_key(text: object) -> str | None:
    if not isinstance(text, str) or not text:
        return None
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


class _Window:
    def __init__(self, window: float, max_keys: int):
        self.window, self.max_keys = window, max_keys
        self.fails: OrderedDict[str, deque[float]] = OrderedDict()

    def recent(self, key: str, now: float) -> deque[float]:
        q = self.fails.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def add(self, key: str, now: float) -> None:
        q = self.recent(key, now)
        q.append(now)
        self.fails[key] = q
        self.fails.move_to_end(key)
        while len(self.fails) > self.max_keys:
            self.fails.popitem(last=False)


class FailureLimiter:
    def __init__(self, max_failures: int, window_seconds: float, *, max_failures_per_code: int = 3,
                 penalty_seconds: float = 2.0, max_clients: int = 10_000):
        self.max_failures = max_failures
        self.per_code = max_failures_per_code
        self.penalty = penalty_seconds
        self.window = window_seconds
        self._sources = _Window(window_seconds, max_clients)
        self._codes = _Window(window_seconds, max_clients * 4)
        self._lock = threading.Lock()

    def check(self, client: str, now: float, code: str | None = None) -> None:
        """Raise :class:`RateLimited` if this code, or this source, must wait."""
        with self._lock:
            if code is not None:
                q = self._codes.recent(code, now)
                if len(q) >= self.per_code:
                    raise RateLimited("this code was refused several times; it will not be checked again for a"
                                      " while", {"retryAfter": max(1, int(q[0] + self.window - now) + 1),
                                                 "scope": "code"})
            q = self._sources.recent(client, now)
            if len(q) >= self.max_failures and now < q[-1] + self.penalty:
                raise RateLimited("too many failed scans; wait a moment and try again",
                                  {"retryAfter": max(1, int(q[-1] + self.penalty - now + 0.999)), "scope": "source"})

    def fail(self, client: str, now: float, code: str | None = None) -> None:
        with self._lock:
            self._sources.add(client, now)
            if code is not None:
                self._codes.add(code, now)


class AttemptLimiter:
    """At most ``limit`` attempts per key within a sliding ``window_seconds``; every attempt
    counts, a refused one does not (so the key is let in again as its oldest attempts age
    out).  In memory, per process, bounded to ``max_keys`` keys (the least recent forgotten)."""

    def __init__(self, window_seconds: float = 60.0, *, max_keys: int = 10_000):
        self.window = window_seconds
        self._attempts = _Window(window_seconds, max_keys)
        self._refused: OrderedDict[str, float] = OrderedDict()  # key -> when its refusals began
        self._lock = threading.Lock()

    def hit(self, key: str, now: float, limit: int, *, message: str, scope: str) -> None:
        """Count an attempt, or raise :class:`RateLimited` (``retryAfter``: whole seconds until
        the oldest attempt in the window ages out; ``scope``).  The refusal's ``first`` is true
        for the first refusal of a run (what is worth an audit row), false for the rest."""
        with self._lock:
            q = self._attempts.recent(key, now)
            if len(q) >= limit:
                first = key not in self._refused
                self._refused[key] = self._refused.get(key, now)
                self._refused.move_to_end(key)
                while len(self._refused) > self._attempts.max_keys:
                    self._refused.popitem(last=False)
                err = RateLimited(message, {"retryAfter": max(1, int(q[-limit] + self.window - now + 0.999)),
                                            "scope": scope})
                err.first = first  # type: ignore[attr-defined]
                raise err
            self._refused.pop(key, None)
            self._attempts.add(key, now)
