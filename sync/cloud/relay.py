"""A property hub's relay: its kiosks' entries up to the chain's cloud, the chain's changes down.

A cloud linked upstream (:mod:`.upstream`) runs one relay per process (a thread of
``kiosk-cloud serve``; the lease in ``upstream_link`` lets one of several workers relay).
Each pass:

* **up** — the relay outbox (:mod:`.relay_outbox`), oldest first, in batches, pushed as the
  hub's device with each entry's own key, stamp and payload and the kiosk it came from
  (``origin``).  The chain cloud applies it as if the kiosk had pushed it (its key is
  remembered there: sent twice, applied once) and refuses what is not for the hub's
  hotels.  An answer that never came leaves the batch waiting: it is sent again.
* **down** — for every hotel the hub's kiosks serve, the chain's change log after the hub's
  cursor (a snapshot when the cursor fell off it), page by page, each page and its cursor
  in one transaction: each change goes to its kind's ``relay`` function (the sync kinds
  registry), which writes the hub's own state through the table's owner and logs the
  change for the hub's kiosks.  A change the hub already logged the same way (its own
  kiosks' write coming back from the chain) is skipped, so kiosks do not get it twice.

With the chain away the hub works as a cloud for its kiosks (they push, pull, claim codes
at it), and the relay catches up when the chain is back.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading

from kiosk.errors import CursorExpired
from sync import kinds
from sync.transport import HttpTransport, TransportError

from . import changelog, devices, fleet, leases, relay_outbox, storage, upstream

log = logging.getLogger("kiosk.cloud.relay")

TICK = 0.5            # seconds between passes (none while a backlog is left: the next pass at once)
BATCH = 500           # entries per push up (a kiosk's agent pushes as many); halved on a 413
PAGE = 500            # changes per page down
MAX_BATCHES = 20      # per pass, so a long backlog does not hold the pull back
FLEET_EVERY = 15.0    # seconds between reports of the kiosks behind the hub


class Relay:
    def __init__(self, store: storage.CloudStorage, data_dir, clock, *, owner: str | None = None):
        self.store, self.data_dir, self.clock = store, data_dir, clock
        self.owner = owner or leases.owner()
        self._transport: tuple[tuple, HttpTransport] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.wake = threading.Event()  # set when kiosks pushed: relay at once
        self._fleet_at = float("-inf")
        self.batch = BATCH  # halved each time the chain finds a push too large (413), as the agent does

    # ---- the thread ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="relay", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and give up the lease, so a restarted hub relays at once."""
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return
        try:
            db = self.store.acquire()
            try:
                with storage.transaction(db):
                    upstream.release_lease(db, self.owner)
            finally:
                self.store.release(db)
        except Exception:
            log.exception("could not give up the relay's lease")

    def _loop(self) -> None:
        while not self._stop.is_set():
            out = {}
            try:
                out = self.run_once()
            except Exception:  # the relay outlives any one failure; the next pass tries again
                log.exception("relay pass failed")
            if out.get("more") and not out.get("error"):
                continue  # a backlog left after a whole pass (its pull done): the next pass at once
            self.wake.wait(TICK)
            self.wake.clear()

    # ---- a pass --------------------------------------------------------------------------

    def run_once(self) -> dict:
        out = {"linked": False, "pushed": 0, "delivered": 0, "dead": 0, "pulled": 0, "more": False, "error": None}
        db = self.store.acquire()
        try:
            with storage.transaction(db):
                link = upstream.get(db)
                leased = link is not None and upstream.take_lease(db, self.owner, self.clock.now())
            if link is None or not leased:
                return out
            out["linked"] = True
            conn = self._connect()
            if conn is None:
                out["error"] = "the link file DATA_DIR/upstream.json is missing or unreadable: run `kiosk-cloud link`"
                self._error(db, out["error"])
                return out
            transport, device_id = conn
            try:
                self._push(db, transport, device_id, out)
                self._pull(db, transport, out)
                self._report_fleet(db, transport)
            except TransportError as e:
                out["error"] = e.reason
                self._error(db, f"the chain cloud: {e.reason}")
        finally:
            self.store.release(db)
        return out

    def _connect(self) -> tuple[HttpTransport, str] | None:
        data = upstream.read_file(self.data_dir)
        if data is None:
            return None
        ident = (data["url"], data["deviceId"], data["credential"])
        if self._transport is None or self._transport[0] != ident:  # `link` again: the new one from now on
            self._transport = (ident, HttpTransport(data["url"], data["credential"], health=self._health))
        return self._transport[1], data["deviceId"]

    def _error(self, db, why: str) -> None:
        with storage.transaction(db):
            upstream.record(db, now=self.clock.now(), error=why)

    def _health(self) -> dict[str, str]:
        """The hub's own fleet report to the chain: its version, clock and relay backlog."""
        from kiosk import __version__

        db = self.store.acquire()
        try:
            n = relay_outbox.counts(db)
            oldest = relay_outbox.oldest_waiting(db)
        finally:
            self.store.release(db)
        now = self.clock.now()
        return {fleet.VERSION: __version__, fleet.CLOCK: f"{now:.3f}", fleet.PENDING: str(n["pending"]),
                fleet.OLDEST: f"{max(0.0, now - oldest) if oldest else 0:.1f}", fleet.DEAD: str(n["dead"])}

    def _report_fleet(self, db, transport: HttpTransport) -> None:
        now = self.clock.now()
        if now - self._fleet_at < FLEET_EVERY:
            return
        with storage.transaction(db):
            report = fleet.report_for_upstream(db, fleet.Policy(), now)
        try:
            r = transport.session.post(f"{transport.url}/sync/v1/fleet/relayed", json={"devices": report},
                                       headers=self._health(), timeout=transport.timeout)
        except Exception as e:  # telemetry never stops a relay
            log.info("fleet report not delivered", extra={"reason": str(e)[:200]})
            return
        if r.status_code == 200:
            self._fleet_at = now

    # ---- up ------------------------------------------------------------------------------

    def _push(self, db, transport: HttpTransport, device_id: str, out: dict) -> None:
        for _ in range(MAX_BATCHES):
            with storage.transaction(db):
                batch = relay_outbox.due(db, self.clock.now(), self.batch)
            if not batch:
                return
            entries = [raw | {"origin": origin} for _, raw, origin in batch]
            key = "relay-" + hashlib.sha256("|".join(e["key"] for e in entries).encode()).hexdigest()[:40]
            try:
                results = transport.push(device_id, entries, key)
            except TransportError as e:
                if e.too_large and self.batch > 1:  # (else the same batch would be refused for ever)
                    self.batch = max(1, self.batch // 2)
                with storage.transaction(db):
                    relay_outbox.wait(db, [i for i, _, _ in batch], e.reason, self.clock.now())
                raise
            with storage.transaction(db):
                counts = relay_outbox.settle(db, [(i, r) for (i, _, _), r in zip(batch, results, strict=True)],
                                             self.clock.now())
                upstream.record(db, now=self.clock.now(), pushed=True)
            out["pushed"] += len(batch)
            out["delivered"] += counts["delivered"]
            out["dead"] += counts["dead"]
            if counts["waiting"]:
                return  # the chain asked for some later: not in this pass
        out["more"] = True  # the pass's batches all went, whole: perhaps more is due

    # ---- down ----------------------------------------------------------------------------

    def _hotels(self, db) -> list[str]:
        return sorted({h for d in devices.list_devices(db) if not d["revokedAt"] for h in d["hotels"]})

    def _pull(self, db, transport: HttpTransport, out: dict) -> None:
        for hotel in self._hotels(db):
            with storage.transaction(db):
                after = upstream.cursor(db, hotel)
            while True:
                try:
                    page = transport.pull(hotel, after, PAGE)
                except CursorExpired:
                    out["pulled"] += self._resync(db, transport, hotel)
                    break
                self._apply(db, hotel, page["changes"], page["cursor"])
                out["pulled"] += len(page["changes"])
                after = page["cursor"]
                if not page.get("more"):
                    break
        with storage.transaction(db):
            upstream.record(db, now=self.clock.now(), pulled=True)

    def _resync(self, db, transport: HttpTransport, hotel: str) -> int:
        """The hotel's state from the chain's snapshot, then its log from the snapshot's cursor."""
        token, cursor, n = None, None, 0
        while True:
            page = transport.snapshot(hotel, token, PAGE)
            cursor = page["cursor"] if cursor is None else cursor
            self._apply(db, hotel, page["changes"], None)
            n += len(page["changes"])
            token = page.get("next")
            if not token:
                break
        with storage.transaction(db):
            upstream.set_cursor(db, hotel, cursor, self.clock.now())
        log.info("re-synced a hotel from the chain's snapshot", extra={"hotelId": hotel, "changes": n})
        return n

    def _apply(self, db, hotel: str, changes: list[dict], cursor: int | None) -> None:
        now = self.clock.now()
        erasing = kinds.erasing(changes)  # a guest's erasure: no old bytes left in the hub's files
        with storage.secure_delete(db) if erasing else contextlib.nullcontext(), storage.transaction(db):
            storage.lock_hotels(db, [hotel])  # in order with the hub's own pushes for the hotel
            for ch in changes:
                apply_change(db, hotel, ch, now)
            if cursor is not None:
                upstream.set_cursor(db, hotel, cursor, now)
        if erasing:
            storage.checkpoint(db)


def apply_change(db, hotel: str, ch: dict, now: float) -> bool:
    """One change from the chain into the hub (inside the caller's transaction); False when it
    was skipped (no kind sends it down, or the hub already logged it the same way)."""
    kind = kinds.pulled(ch.get("entityType") or "")
    if kind is None or kind.relay is None:
        log.warning("a change from the chain no kind applies", extra={"entityType": ch.get("entityType")})
        return False
    if ch["entityType"] != "conflict":
        seen = changelog.latest(db, hotel, ch["entityType"], ch["entityId"])
        if seen is not None and seen == (ch.get("op") or "upsert", ch.get("data")):
            return False
    kinds.resolve(kind.relay)(db, hotel, ch, now)
    return True
