"""The cloud's side of a hotel's PMS: read its reservations, deliver the PMS outbox, exactly once.

One pass for a hotel (:meth:`PmsRunner.run_hotel`):

1. take the hotel's lease (:func:`.pms_links.take_lease`): with several workers or machines
   only one runs the hotel's connector; the others skip it until the lease runs out;
2. every ``poll`` seconds, read the hotel's reservations (page by page, as the PMS serves
   them), keep the PMS's ids (``pms_reservations``) and overlay the rows on the hotel's
   reference data in ONE transaction, so they reach every kiosk by pull like an export;
3. deliver the actions that are due, oldest first, one entity's in order:

   * an action is *claimed* (attempts + 1, ``maybe_sent``, hidden for :data:`HOLD`
     seconds) and that is committed before the request leaves: a worker killed mid-send
     leaves an action that is sent again only after a look-up;
   * a PMS with no idempotency key for the action (OPERA's charges and service requests)
     is asked first whether an earlier attempt arrived (``find``: the reservation's
     postings, the hotel's service requests, by the action's reference); found is
     delivered, not sent again;
   * 429/503 wait the PMS's Retry-After; other 5xx, timeouts and lost connections back
     off (5 s, 15 s, 1 min, 5 min, then every 15 min); a refusal that will never succeed,
     or a charge for a reservation the PMS cancelled, is a dead letter with the PMS's words
     and a conflict (rule ``pms-authoritative``) every kiosk of the hotel pulls.

:class:`PmsRunner` runs the passes in a thread of ``kiosk-cloud serve`` (every
:data:`TICK` seconds; reading every ``poll``), for every linked hotel.
"""

from __future__ import annotations

import logging
import threading

import requests

from sync.conflicts import Conflict

from . import changelog, connectors, leases, pms_links, pms_outbox, refdata, storage
from .connectors.errors import PmsError

log = logging.getLogger("kiosk.cloud.pms")

TICK = 2.0        # seconds between delivery passes
HOLD = 120.0      # seconds a claimed action is hidden from other workers (longer than a call may take)
CANCELLED = ("Canceled", "NoShow")


class PmsRunner:
    """Runs the connectors of every linked hotel; one per process, many processes may run."""

    def __init__(self, store: storage.CloudStorage, data_dir, clock, *, poll: float = 60.0,
                 owner: str | None = None, batch: int = 50):
        self.store, self.data_dir, self.clock = store, data_dir, clock
        self.poll, self.batch = poll, batch
        self.owner = owner or leases.owner()
        self._connectors: dict[str, tuple[tuple, object]] = {}
        self._read_at: dict[str, float] = {}
        self._never_read = poll >= 10 ** 8  # --pms-poll off
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- the thread ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="pms-runner", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and give up its leases, so a restarted cloud carries on at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return  # still sending: its lease runs out by itself
        for hotel_id in list(self._connectors):
            try:
                self.release(hotel_id)
            except Exception:  # the database is gone: the lease runs out by itself
                log.exception("could not give up the PMS lease", extra={"hotelId": hotel_id})

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # the runner outlives any one failure; the next tick tries again
                log.exception("PMS pass failed")
            self._stop.wait(TICK)

    # ---- passes --------------------------------------------------------------------------

    def run_once(self) -> dict[str, dict]:
        db = self.store.acquire()
        try:
            hotels = [link.hotel_id for link in pms_links.all_links(db)]
        finally:
            self.store.release(db)
        return {h: self.run_hotel(h) for h in hotels}

    def run_hotel(self, hotel_id: str, *, read: bool | None = None) -> dict:
        """One pass for one hotel; returns what it did (``skipped`` when another holds the lease)."""
        out = {"read": None, "delivered": 0, "retrying": 0, "dead": 0, "unreachable": 0, "skipped": False}
        db = self.store.acquire()
        try:
            now = self.clock.now()
            with storage.transaction(db):
                link = pms_links.get(db, hotel_id)
                leased = link is not None and pms_links.take_lease(db, hotel_id, self.owner, now)
            if not leased:
                out["skipped"] = True
                return out
            try:
                conn = self._connector(link)
            except PmsError as e:  # its credentials file is missing or wrong here: another machine may have it
                self._error(db, hotel_id, e.message)
                with storage.transaction(db):
                    pms_links.release_lease(db, hotel_id, self.owner)
                out["skipped"] = True
                return out
            if read if read is not None else (not self._never_read and now >= self._read_at.get(hotel_id, 0.0)):
                out["read"] = self._read(db, link, conn)
            for action in self._due(db, hotel_id):
                result = self._deliver(db, link, conn, action)
                out[result] += 1
                if result == "unreachable":  # the PMS timed out or is down: the others wait for the next pass
                    break
        finally:
            self.store.release(db)
        return out

    def release(self, hotel_id: str) -> None:
        db = self.store.acquire()
        try:
            with storage.transaction(db):
                pms_links.release_lease(db, hotel_id, self.owner)
        finally:
            self.store.release(db)

    # ---- pieces --------------------------------------------------------------------------

    def _connector(self, link: pms_links.Link):
        try:
            creds = pms_links.credentials(self.data_dir, link)
        except Exception as e:
            raise PmsError(f"credentials for {link.hotel_id}: {getattr(e, 'message', e)}", permanent=True) from e
        ident = (link.kind, link.url, link.pms_hotel, tuple(sorted(creds.items())))
        cached = self._connectors.get(link.hotel_id)
        if cached is None or cached[0] != ident:
            conn = connectors.open_connector(link.kind, link.url, link.pms_hotel, creds, self.clock,
                                             session=requests.Session())
            self._connectors[link.hotel_id] = cached = (ident, conn)
        return cached[1]

    def _error(self, db, hotel_id: str, message: str) -> None:
        with storage.transaction(db):
            pms_links.record_error(db, hotel_id, message, self.clock.now())

    def _read(self, db, link: pms_links.Link, conn) -> dict | None:
        started = self.clock.now()
        try:
            rows = list(conn.read_reservations())
        except PmsError as e:
            self._error(db, link.hotel_id, e.message)
            self._read_at[link.hotel_id] = started + (e.retry_after or min(self.poll, 30.0))
            return None
        now = self.clock.now()
        with storage.transaction(db):
            pms_links.remember_reservations(db, link.hotel_id, rows)
            kiosk_rows = [{k: v for k, v in r.items() if k != "pms_id"} for r in rows if r.get("confirmation")]
            counts = refdata.merge_rows(db, link.hotel_id, "reservations", kiosk_rows, now)
            pms_links.record_read(db, link.hotel_id, len(rows), now)
        self._read_at[link.hotel_id] = started + self.poll
        return counts

    def _due(self, db, hotel_id: str) -> list[pms_outbox.Action]:
        with storage.transaction(db):
            return pms_outbox.due(db, hotel_id, self.clock.now(), self.batch)

    def _deliver(self, db, link: pms_links.Link, conn, a: pms_outbox.Action) -> str:
        now = self.clock.now()
        with storage.transaction(db):
            if not pms_links.take_lease(db, link.hotel_id, self.owner, now):
                return "retrying"  # the lease ran out and another took it: it carries on
            data, refusal = self._prepare(db, a)
            if refusal is not None:
                self._dead(db, a, refusal, now)
                return "dead"
            if data is None:
                return "retrying"
            if not pms_outbox.claim(db, a, now, HOLD):
                return "retrying"
        try:
            ref = None
            if a.maybe_sent and a.action not in conn.IDEMPOTENT:
                ref = conn.find(a.action, data, a.reference)
            if ref is None:
                ref = conn.send(a.action, data, a.reference)
        except (ValueError, KeyError, TypeError) as e:  # the action cannot be put in the PMS's words
            with storage.transaction(db):
                self._dead(db, a, f"the action cannot be sent: {type(e).__name__}: {e}"[:500], self.clock.now())
            return "dead"
        except PmsError as e:
            now = self.clock.now()
            with storage.transaction(db):
                if e.permanent:
                    self._dead(db, a, e.message, now)
                    return "dead"
                wait = e.retry_after if e.retry_after is not None else pms_outbox.backoff(a.attempts + 1)
                pms_outbox.retry(db, a.id, e.message, now + wait)
                pms_links.record_error(db, link.hotel_id, e.message, now)
            return "unreachable" if e.status is None or e.status >= 500 or e.status == 429 else "retrying"
        with storage.transaction(db):
            pms_outbox.delivered(db, a.id, ref, self.clock.now())
        return "delivered"

    def _prepare(self, db, a: pms_outbox.Action) -> tuple[dict | None, str | None]:
        """The action's data completed with the PMS's ids: (data, None) to send, (None, None)
        to wait (put off here), (None, why) for a dead letter."""
        data = dict(a.data)
        now = self.clock.now()
        if a.action == "charge":
            res = pms_links.reservation(db, a.hotel_id, data["confirmation"])
            if res is None:
                pms_outbox.retry(db, a.id, f"reservation {data['confirmation']} has not come from the PMS yet",
                                 now + pms_outbox.backoff(a.attempts + 1), maybe_sent=a.maybe_sent)
                return None, None
            if res[1] in CANCELLED:
                return None, f"the PMS has reservation {data['confirmation']} as {res[1]}: not charged"
            data["pmsId"] = res[0]
        elif a.action == "service_request":  # the stay it is for: named, or the one in the room
            res = pms_links.reservation(db, a.hotel_id, data["confirmation"]) if data.get("confirmation") else None
            pms_id = res[0] if res is not None else pms_links.in_house(db, a.hotel_id, data["room"])
            if pms_id:
                data["pmsId"] = pms_id
        elif a.action == "maintenance_resolve":
            ref = pms_outbox.delivered_ref(db, a.hotel_id, "maintenance", a.entity)
            if ref is None:
                return None, "no maintenance was opened in the PMS for this work order"
            data["pmsRef"] = ref
        elif a.action == "service_request_status":
            ref = pms_outbox.delivered_ref(db, a.hotel_id, "service_request", a.entity)
            if ref is None:
                return None, "no service request was opened in the PMS for this ticket"
            data["pmsRef"] = ref
        return data, None

    def _dead(self, db, a: pms_outbox.Action, why: str, now: float) -> None:
        pms_outbox.dead(db, a.id, why, now)
        stamp = changelog.stamp(db, now, a.hotel_id)
        c = Conflict("pms_action", a.reference, None, "pms-authoritative",
                     f"the PMS refused the {a.action.replace('_', ' ')}: {why}"[:500],
                     {"value": {"action": a.action, "entity": a.entity, "data": a.data}, "hlc": stamp,
                      "by": a.device_id}, {"value": why[:1000], "hlc": stamp})
        changelog.conflict(db, a.hotel_id, c, a.source_key, now, a.device_id)
        log.warning("PMS dead letter for %s: %s %s: %s", a.hotel_id, a.action, a.reference, why)
