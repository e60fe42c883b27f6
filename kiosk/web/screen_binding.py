"""The lobby's camera feed belongs to the kiosk's own screen, not to any local process.

A camera scan opens a session for whoever holds the code up; the lobby's browser must get
it, and nothing else on the box.  Two measures:

* **Peer credentials.** The feed (``/screen/events``) and the claim endpoint answer only
  loopback connections whose socket belongs to the kiosk's own user or to one of
  ``screen.allowed_uids`` (the kiosk browser's user).  Linux knows which user owns each
  TCP socket (``/proc/net/tcp``, the ``uid`` column): the peer's socket is the one whose
  local port is the request's remote port and whose remote port is ours.
* **Claims, not sessions.** The feed carries a one-time claim code, valid for
  ``screen.claim_seconds``; the lobby redeems it with ``POST /screen/claim``, which sets
  the session as an HttpOnly cookie.  No session JWT ever crosses the feed or reaches a
  script.
"""

from __future__ import annotations

import os
import secrets
import threading
import time

LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


def _ports(field: str) -> int:
    return int(field.rsplit(":", 1)[1], 16)


def socket_owner(remote_port: int, local_port: int) -> int | None:
    """The uid owning the TCP socket (remote_port -> local_port) on this host, if any."""
    # /proc/self/net, not /proc/net: the systemd unit's ProcSubset=pid hides the latter
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if _ports(cols[1]) == remote_port and _ports(cols[2]) == local_port:
                        return int(cols[7])
        except OSError:
            continue
    return None


def peer_allowed(environ: dict, allowed_uids: list[int]) -> bool:
    if environ.get("REMOTE_ADDR") not in LOOPBACK:
        return False
    try:
        remote, local = int(environ["REMOTE_PORT"]), int(environ["SERVER_PORT"])
    except (KeyError, TypeError, ValueError):
        return False
    uid = socket_owner(remote, local)
    return uid is not None and (uid == os.getuid() or uid in allowed_uids)


class Claims:
    """One-time codes for camera scans; a code is redeemed once, within its TTL.

    What a code stands for is the scan event's ``pending`` scan (checked, not yet consumed:
    redeeming it consumes the code and opens the session) or, from older callers, its
    ``result`` (a session already open)."""

    def __init__(self, ttl: float):
        self.ttl = ttl
        self._lock = threading.Lock()
        self._items: dict[str, tuple[float, dict]] = {}

    def code_for(self, event: dict) -> str:
        """The claim of a scan event (made once, however many screens listen)."""
        with self._lock:
            if "_claim" not in event:
                code = secrets.token_urlsafe(18)
                item = {"pending": event["pending"]} if "pending" in event else event["result"]
                self._items[code] = (time.monotonic() + self.ttl, item)
                event["_claim"] = code
                now = time.monotonic()
                for k in [k for k, (exp, _) in self._items.items() if exp < now]:
                    del self._items[k]
            return event["_claim"]

    def redeem(self, code: str) -> dict | None:
        with self._lock:
            item = self._items.pop(code, None)
        if item is None or item[0] < time.monotonic():
            return None
        return item[1]
