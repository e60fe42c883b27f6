"""How the outbox reaches a cloud: one narrow interface, an HTTP and an in-memory implementation.

``push(device_id, entries, idempotency_key) -> list[result]`` returns one result
per entry as docs/sync-protocol.md says, ``pull(hotel_id, after, limit, wait=0) -> page``
one page of the hotel's change log (:class:`kiosk.errors.CursorExpired` when the cursor fell off
the cloud's retained log; ``wait`` > 0: a long-poll, the cloud answers when a change arrives or
after ``wait`` seconds), ``snapshot(hotel_id, page, limit) -> page`` one page of
the hotel's current state to re-sync from; or raises :class:`TransportError` for
anything that leaves the batch's fate unknown (timeout, connection drop, 5xx,
401, 429) — those entries are simply retried later, which the cloud's idempotency
keys make safe (after a 429's ``Retry-After`` at the earliest).  ``health``, if given, returns the fleet-health headers sent with
every request (:mod:`sync.health`).  ``push_async`` and ``pull_async``, where a transport
has them, start a push or a page's request and return a future of its answer
(:mod:`sync.delivery` and :mod:`sync.pull` read ahead meanwhile).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import requests

from kiosk import jsontext
from kiosk.errors import CursorExpired


class TransportError(Exception):
    """The push did not get a usable answer; ``too_large`` asks for a smaller batch,
    ``retry_after`` (seconds) says when the cloud wants to hear again (a 429's Retry-After),
    ``status`` is the cloud's HTTP status if it answered."""

    def __init__(self, reason: str, *, too_large: bool = False, retry_after: float | None = None,
                 status: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.too_large = too_large
        self.retry_after = retry_after
        self.status = status

    @property
    def refused(self) -> bool:
        """The cloud refused this kiosk's credential (401; a 403 to a push: the credential is not
        this device's).  Nothing gets through until the kiosk is linked with a working one."""
        return self.status == 401 or (self.status == 403 and self.reason.startswith("push "))


def _status_error(r, prefix: str = "") -> TransportError:
    return TransportError(f"{prefix}HTTP {r.status_code}: {r.text[:200]}", status=r.status_code)


def retry_after(value: str | None, most: float = 3600.0) -> float | None:
    """A ``Retry-After`` header's seconds (bounded; an HTTP date or junk: None)."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    if seconds is None or seconds != seconds or seconds < 0:
        return None
    return min(seconds, most)


def _health_headers(health) -> dict[str, str]:
    if health is None:
        return {}
    try:
        return health()
    except Exception:  # telemetry never stops a sync
        return {}


class HttpTransport:
    """The real thing: HTTPS (TLS verified), Bearer credential, timeouts on every request."""

    def __init__(self, url: str, credential: str, *, connect_timeout: float = 3.0,
                 read_timeout: float = 15.0, ca_bundle: str | None = None, health=None):
        self.url = url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {credential}"
        self.session.verify = ca_bundle or True
        self.health_headers = health
        self._sender: ThreadPoolExecutor | None = None

    def push(self, device_id: str, entries: list[dict], idempotency_key: str) -> list[dict]:
        try:
            r = self.session.post(f"{self.url}/sync/v1/push", json={"deviceId": device_id, "entries": entries},
                                  headers={**_health_headers(self.health_headers), "Idempotency-Key": idempotency_key},
                                  timeout=self.timeout)
        except requests.RequestException as e:
            raise TransportError(f"{type(e).__name__}: {e}"[:300]) from None
        if r.status_code == 413:
            raise TransportError("HTTP 413: batch too large", too_large=True)
        if r.status_code == 429:  # the device's push quota (docs/sync-protocol.md): wait, lose nothing
            raise TransportError(f"HTTP 429: {r.text[:200]}", retry_after=retry_after(r.headers.get("Retry-After")),
                                 status=429)
        if r.status_code == 403:
            raise _status_error(r, "push ")
        if r.status_code != 200:
            raise _status_error(r)
        try:
            results = jsontext.loads(r.content)["results"]  # (the standard library's reading, faster)
        except (ValueError, KeyError, TypeError):
            raise TransportError("the cloud's answer is not a push result") from None
        if not isinstance(results, list) or len(results) != len(entries):
            raise TransportError("the cloud answered a different number of results")
        return results

    def push_async(self, device_id: str, entries: list[dict], idempotency_key: str) -> Future:
        """:meth:`push` on the transport's one background thread (a future of its results or
        its TransportError): the agent reads its next batch while the cloud works on this one
        (sync/delivery.py).  One request at a time there: a second waits for the first."""
        return self._background().submit(self.push, device_id, entries, idempotency_key)

    def pull_async(self, hotel_id: str, after: int, limit: int) -> Future:
        """:meth:`pull` (no wait) on the same thread: the next page comes while the agent
        applies this one (sync/pull.py)."""
        return self._background().submit(self.pull, hotel_id, after, limit)

    def _background(self) -> ThreadPoolExecutor:
        if self._sender is None:
            self._sender = ThreadPoolExecutor(1, thread_name_prefix="sync-send")
        return self._sender

    def _get_page(self, path: str, params: dict, what: str, timeout=None) -> dict:
        try:
            r = self.session.get(f"{self.url}{path}", params=params, headers=_health_headers(self.health_headers),
                                 timeout=timeout or self.timeout)
        except requests.RequestException as e:
            raise TransportError(f"{type(e).__name__}: {e}"[:300]) from None
        if r.status_code == 410:
            raise CursorExpired(f"HTTP 410: {r.text[:200]}", {"status": 410})
        if r.status_code != 200:
            raise _status_error(r)
        try:
            page = jsontext.loads(r.content)
            ok = isinstance(page["changes"], list) and isinstance(page["cursor"], int)
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise TransportError(f"the cloud's answer is not a {what} page")
        return page

    def pull(self, hotel_id: str, after: int, limit: int, wait: float = 0) -> dict:
        """One page of the hotel's changes after ``after``; TransportError if no usable answer,
        CursorExpired if the cloud no longer keeps the changes after ``after``.

        ``wait`` (whole seconds, at most the protocol's 25): a long-poll — with nothing after
        ``after`` the cloud holds the answer until a change arrives or ``wait`` passes; the
        read timeout is the wait plus the usual one, so a quiet hotel is no timeout."""
        params = {"hotel": hotel_id, "after": after, "limit": limit}
        timeout = None
        if wait > 0:
            params["wait"] = int(wait)
            timeout = (self.timeout[0], self.timeout[1] + int(wait))
        return self._get_page("/sync/v1/pull", params, "pull", timeout)

    def snapshot(self, hotel_id: str, page: str | None, limit: int) -> dict:
        """One page of the hotel's current state (``page``: the previous page's ``next``)."""
        params = {"hotel": hotel_id, "limit": limit} | ({"page": page} if page else {})
        return self._get_page("/sync/v1/snapshot", params, "snapshot")

    def backup_key(self, hotel_id: str) -> dict:
        """The hotel's backup key and erasures (``POST /sync/v1/backup-key``, sync/key_escrow.py)."""
        try:
            r = self.session.post(f"{self.url}/sync/v1/backup-key", json={"hotelId": hotel_id}, timeout=self.timeout)
        except requests.RequestException as e:
            raise TransportError(f"{type(e).__name__}: {e}"[:300]) from None
        if r.status_code != 200:
            raise _status_error(r)
        try:
            return r.json()
        except ValueError:
            raise TransportError("the cloud's answer is not a backup key") from None

    def health(self) -> dict:
        try:
            r = self.session.get(f"{self.url}/sync/v1/health", timeout=self.timeout)
            return {"reachable": r.status_code == 200, "status": r.status_code,
                    "credential": "refused" if r.status_code in (401, 403) else
                                  "ok" if r.status_code == 200 else "unknown"}
        except requests.RequestException as e:
            return {"reachable": False, "error": type(e).__name__}


class InMemoryTransport:
    """Applies pushes straight to a reference-cloud database; for unit tests and benchmarks."""

    def __init__(self, cloud_db, device, clock, max_skew: float | None = None, health=None):
        self.db, self.device, self.clock = cloud_db, device, clock
        self.max_skew = max_skew
        self.health_headers = health
        self.down = False

    def _seen(self, kind: str) -> None:
        from .cloud import fleet

        if self.health_headers is not None:
            fleet.seen(self.db, self.device.device_id, fleet.report(_health_headers(self.health_headers)),
                       kind=kind, now=self.clock.now())

    def push(self, device_id: str, entries: list[dict], idempotency_key: str) -> list[dict]:
        from .cloud.apply import apply_push

        if self.down:
            raise TransportError("ConnectionError: cloud down (in-memory)")
        self._seen("push")
        if self.max_skew is None:
            return apply_push(self.db, self.device, entries, self.clock.now())
        return apply_push(self.db, self.device, entries, self.clock.now(), self.max_skew)

    def _hotel(self, hotel_id: str) -> None:
        if self.down:
            raise TransportError("ConnectionError: cloud down (in-memory)")
        if not self.device.serves(hotel_id):
            raise TransportError(f"HTTP 403: not for hotel {hotel_id}")

    def pull(self, hotel_id: str, after: int, limit: int, wait: float = 0) -> dict:
        """``wait`` is accepted and not honoured: the in-memory cloud answers at once."""
        from .cloud import changelog, retention

        self._hotel(hotel_id)
        self._seen("pull")
        page = changelog.page(self.db, hotel_id, after, limit)
        try:
            retention.check_cursor(self.db, hotel_id, after)  # after the page, as the cloud's app does
        except CursorExpired as e:
            raise CursorExpired(f"HTTP 410: {e.message}", e.details) from None
        return page | {"serverTime": self.clock.now()}

    def snapshot(self, hotel_id: str, page: str | None, limit: int) -> dict:
        from .cloud import snapshot

        self._hotel(hotel_id)
        self._seen("pull")
        return snapshot.page(self.db, hotel_id, page, limit, self.clock.now()) | {"serverTime": self.clock.now()}

    def backup_key(self, hotel_id: str) -> dict:
        from .cloud import backup_keys

        self._hotel(hotel_id)
        return backup_keys.answer(self.db, hotel_id, self.clock.now())

    def health(self) -> dict:
        return {"reachable": not self.down}
