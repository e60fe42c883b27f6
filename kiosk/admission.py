"""Admission: a bound on work in flight, refused at once past it, never queued on a thread.

The kiosk's web server has a fixed number of threads.  Work that holds one for long — a
model run (speech takes seconds in a model worker) or a live feed (a staff terminal's
event stream is open for hours) — must not be able to take them all, or one guest with
sixteen recordings, or eight staff tabs, stop the lobby.  So each such kind of work goes
through a :class:`Gate` with a bound in total and a bound per holder (a session):

* under both bounds the work enters at once;
* past either it is refused at once with :class:`~kiosk.errors.Busy` (``429 BUSY``,
  ``details.scope`` says which bound, ``details.retryAfter`` when to try again) — the
  request spends microseconds of a thread, not the model's timeout.

The server is sized for it (``kiosk serve``): ``server.threads`` threads serve requests
and ``capacity.streams`` more are there for the feeds, so the feeds' gate being full can
never leave fewer than ``server.threads`` threads for everything else, and the model
gate (``capacity.model_runs`` below ``server.threads``) always leaves some free.
"""

from __future__ import annotations

import threading
from collections import Counter
from contextlib import contextmanager

from .errors import Busy


class Gate:
    """At most ``total`` holders at once, at most ``per_key`` with the same key."""

    def __init__(self, name: str, *, total: int, per_key: int, retry_after: int):
        self.name = name
        self.total = total
        self.per_key = per_key
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self._held: Counter[str] = Counter()
        self._n = 0
        self.refused = 0  # how many were turned away (for the log and tests)

    def enter(self, key: str) -> None:
        """Take a place for ``key`` or raise :class:`Busy`; pair with :meth:`leave`."""
        with self._lock:
            if self._held[key] >= self.per_key:
                scope = f"{self.name}_per_session"
            elif self._n >= self.total:
                scope = self.name
            else:
                self._held[key] += 1
                self._n += 1
                return
            self.refused += 1
        raise Busy(_MESSAGES[self.name] if self.name in _MESSAGES else f"too much {self.name} in flight",
                   {"scope": scope, "retryAfter": self.retry_after})

    def leave(self, key: str) -> None:
        with self._lock:
            if self._held[key] <= 0:  # pragma: no cover - a programming error, never raised at a user
                return
            self._held[key] -= 1
            if not self._held[key]:
                del self._held[key]
            self._n -= 1

    def release_once(self, key: str):
        """A callable that leaves once however often it is called (a stream's close and its
        generator's ``finally`` both call it)."""
        done = threading.Lock()

        def release() -> None:
            if done.acquire(blocking=False):
                self.leave(key)
        return release

    @contextmanager
    def held(self, key: str):
        self.enter(key)
        try:
            yield
        finally:
            self.leave(key)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._n


_MESSAGES = {
    "model_runs": "the kiosk is busy with other requests; try again in a moment",
    "streams": "too many live screens are open; this one refreshes by itself instead",
}


class Capacity:
    """The kiosk's gates, built from the ``capacity`` config section."""

    def __init__(self, cfg):
        self.models = Gate("model_runs", total=cfg.model_runs, per_key=cfg.model_runs_per_session,
                           retry_after=cfg.retry_after_seconds)
        self.streams = Gate("streams", total=cfg.streams, per_key=cfg.streams_per_session,
                            retry_after=cfg.stream_retry_seconds)
