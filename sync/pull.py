"""Sync down: pull the cloud's change log after a cursor and apply it locally.

Each page is applied in ONE transaction together with the new cursor, so a
crash mid-pull repeats at most one page, and applying a page twice changes
nothing (every apply below is idempotent).  What comes down and how it merges
(the rules are :mod:`sync.conflicts`, the table is docs/conflicts.md):

* reference data (rooms, reservations, staff, rate plans, offers, assets, tasks)
  replaces the local row: the PMS is authoritative;
* work orders take the cloud's fields, except fields this kiosk changed and has
  not delivered yet (they are judged by the cloud when delivered, and the next
  pull brings the verdict); each field the pull changes gets a history row;
* tickets are upserted, with ``merged_into`` when the cloud merged them;
* revocations stop the token here too and end its open sessions;
* tokens consumed at other kiosks merge by union; a one-time token consumed
  here as well is a replay: the earliest by HLC keeps its session, the other
  session is ended, and both kiosks record a security event and a conflict;
* security events the cloud recorded reach every kiosk of the hotel (once, by key);
* a guest's erasure scrubs what the kiosk holds of them (sync/kinds/guest_erasure.py), with
  SQLite's ``secure_delete`` on and the write-ahead log truncated after the page;
* trust keys are added, or retired, in ``keys/trust.json``.

Every HLC stamp seen moves the local clock forward (``hlc.receive``), so local
changes made after a pull sort after what was pulled, whatever the wall clock.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from kiosk import hlc, store, sync_status
from kiosk.errors import CursorExpired
from kiosk.property import tables

from . import kinds
from .reference import BY_ENTITY
from .transport import TransportError

log = logging.getLogger("sync.pull")


@dataclass
class PullReport:
    pages: int = 0
    changes: int = 0
    error: str | None = None
    replays: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # hotels the cloud will not serve this device
    resynced: list[str] = field(default_factory=list)  # hotels re-synced from a snapshot (CURSOR_EXPIRED)


@dataclass
class ResyncReport:
    hotel_id: str
    pages: int = 0
    changes: int = 0
    removed: int = 0  # reference rows the cloud no longer holds, deleted here
    cursor: int | None = None
    replays: list[str] = field(default_factory=list)


def cursor_key(hotel_id: str) -> str:
    return f"pull_cursor:{hotel_id}"


def cursor(db, hotel_id: str) -> int:
    """Where pull goes on from for ``hotel_id``."""
    return int(sync_status.get(db, cursor_key(hotel_id)) or 0)


class Puller:
    def __init__(self, db, transport, *, hotels: list[str], node: str, clock, trust_path: Path,
                 page_size: int = 500):
        self.db, self.transport, self.hotels, self.node = db, transport, hotels, node
        self.clock, self.trust_path, self.page_size = clock, Path(trust_path), page_size

    def pull(self, *, max_pages: int | None = None, on_page=None, hotels: list[str] | None = None,
             wait: float = 0, lock=None, guard=None) -> PullReport:
        """Pull every hotel (or ``hotels``) until the cloud says there is no more (or an error).

        ``wait``: the first request for each hotel is a long-poll of that many seconds (the
        cloud answers when a change arrives; the live pull, agent/runner.py).  ``lock``: another
        puller works on the same database (the agent's scheduled pull beside its live pull):
        pages are asked for without it, and each is applied under it only if the hotel's cursor
        is still the one the page was asked after — else it is dropped and asked again from
        the new cursor, so no page is applied twice and the cursor never moves back.
        ``guard``, if given, is asked under the lock before a page is applied: False drops the
        page and ends the run (the cloud link changed meanwhile).  With a ``lock`` an expired
        cursor is not re-synced here (``report.error``): the lock's other holder does that."""
        report = PullReport()
        # one puller alone on its database, over a transport that can (the HTTP one): the next
        # page is asked for while this one is applied; used only if the cursor is where it began
        ahead_ok = lock is None and hasattr(self.transport, "pull_async")
        for hotel_id in self.hotels if hotels is None else hotels:
            first = True
            ahead = None  # (the cursor it was asked after, future of the page)
            while max_pages is None or report.pages < max_pages:
                after = cursor(self.db, hotel_id)
                try:
                    asked, ahead = ahead, None
                    if asked is not None and asked[0] == after:
                        page = asked[1].result()
                    else:
                        page = self.transport.pull(hotel_id, after, self.page_size, wait=wait) if first and wait \
                            else self.transport.pull(hotel_id, after, self.page_size)
                except CursorExpired as e:
                    if lock is not None or hotel_id in report.resynced:
                        # expired again right after a re-sync (try later), or not this puller's to re-sync
                        report.error = e.message
                        return report
                    log.warning("cursor expired: re-syncing from a snapshot",
                                extra={"hotelId": hotel_id, "after": after})
                    report.resynced.append(hotel_id)
                    try:
                        r = self.resync(hotel_id)
                    except TransportError as e2:
                        if e2.refused:
                            with store.transaction(self.db):
                                sync_status.credential_refused(self.db, e2.reason, self.clock.now())
                        report.error = e2.reason
                        return report
                    report.replays += r.replays
                    continue
                except TransportError as e:
                    if e.refused:  # 401: nothing gets through until the kiosk is linked again
                        with store.transaction(self.db):
                            sync_status.credential_refused(self.db, e.reason, self.clock.now())
                        report.error = e.reason
                        return report
                    if e.reason.startswith("HTTP 403"):  # this device is not linked for that hotel
                        report.refused.append(hotel_id)
                        log.warning("pull refused for a hotel", extra={"hotelId": hotel_id, "reason": e.reason})
                        break
                    report.error = e.reason
                    return report
                first = False
                if ahead_ok and page.get("more") and (max_pages is None or report.pages + 1 < max_pages):
                    ahead = (int(page["cursor"]), self.transport.pull_async(hotel_id, int(page["cursor"]),
                                                                            self.page_size))
                if lock is None:
                    n, replays = self.apply_page(hotel_id, page)
                else:
                    with lock:
                        if guard is not None and not guard():
                            report.error = "dropped a page: the puller is out of date"
                            return report
                        if cursor(self.db, hotel_id) != after:  # the other puller applied it meanwhile
                            continue
                        n, replays = self.apply_page(hotel_id, page)
                report.pages += 1
                report.changes += n
                report.replays += replays
                if on_page:
                    on_page(n)
                if not page.get("more"):
                    break
        return report

    def apply_page(self, hotel_id: str, page: dict) -> tuple[int, list[str]]:
        """Apply one page and save its cursor, in one transaction."""
        now = self.clock.now()
        with self._erasing(page["changes"]), store.transaction(self.db):
            replays = self._apply(hotel_id, page["changes"], now)
            sync_status.put(self.db, {cursor_key(hotel_id): int(page["cursor"]),
                                      "last_pull_at": now})  # the admin analytics' sync.lastPullAt
            sync_status.heard(self.db, now)
        return len(page["changes"]), replays

    @contextlib.contextmanager
    def _erasing(self, changes: list[dict]):
        """Around a page's transaction: a page that erases a guest (a kind that ``erases``) is
        applied with ``secure_delete`` on (what it overwrites or deletes is zeroed in the file) and
        the write-ahead log is truncated after its commit, so the erased bytes are gone from
        ``kiosk.db`` and ``kiosk.db-wal``.  Other pages as they are."""
        if not kinds.erasing(changes):
            yield
            return
        with store.secure_delete(self.db):
            yield
        if not store.checkpoint_truncate(self.db):
            log.warning("the write-ahead log could not be truncated after an erasure: a reader held it;"
                        " the next checkpoint will")

    def resync(self, hotel_id: str) -> ResyncReport:
        """Re-sync ``hotel_id`` from the cloud's snapshot of its current state, then let pull go on
        after the snapshot's cursor (docs/sync-protocol.md, "Retention and resync").

        Each page is applied in its own transaction by the same code as a pulled page (so
        this kiosk's undelivered changes survive, and the outbox is not touched); after the
        last page, in one transaction with the new cursor, reference rows of a table the
        cloud holds rows of but not this one are deleted (the PMS dropped them while the
        change that said so was purged).  A crash part-way leaves the old cursor: the next
        pull is CURSOR_EXPIRED again and the re-sync starts over (applying is idempotent)."""
        report = ResyncReport(hotel_id)
        seen: dict[str, set[str]] = {}
        token = None
        while True:
            page = self.transport.snapshot(hotel_id, token, self.page_size)
            now = self.clock.now()
            with self._erasing(page["changes"]), store.transaction(self.db):
                report.replays += self._apply(hotel_id, page["changes"], now)
                sync_status.heard(self.db, now)
            for ch in page["changes"]:
                if ch["entityType"] in BY_ENTITY:
                    seen.setdefault(ch["entityType"], set()).add(ch["entityId"])
            report.pages += 1
            report.changes += len(page["changes"])
            token = page.get("next")
            if not token:
                break
        with store.transaction(self.db):
            for etype, ids in seen.items():
                table, keys = BY_ENTITY[etype]
                for row in self.db.execute(f"SELECT {', '.join(keys)} FROM {table} WHERE hotel_id = ?",
                                           [hotel_id]).fetchall():
                    if "|".join(str(v) for v in row) not in ids:
                        tables.delete(self.db, hotel_id, table, keys, [str(v) for v in row])
                        report.removed += 1
            report.cursor = int(page["cursor"])
            sync_status.put(self.db, {cursor_key(hotel_id): report.cursor, "last_pull_at": self.clock.now(),
                                      f"resynced_at:{hotel_id}": self.clock.now()})
        log.info("re-synced from a snapshot", extra={"hotelId": hotel_id, "pages": report.pages,
                                                      "changes": report.changes, "removed": report.removed,
                                                      "cursor": report.cursor})
        return report

    def _apply(self, hotel_id: str, changes: list[dict], now: float) -> list[str]:
        """Apply pulled (or snapshot) changes inside the caller's transaction, each by its kind
        (:mod:`sync.kinds`); returns the replays found."""
        ctx = kinds.PullContext(self.db, self.node, now, self.trust_path)
        newest = hlc.latest(ch["hlc"] for ch in changes if ch.get("hlc"))
        if newest is not None:
            # the page's latest stamp, once and first: the receive rule is a maximum, so this is
            # where one by one would end, and what a change applied here stamps sorts after all
            hlc.receive(self.db, self.node, newest, now)
        for ch in changes:
            kind = kinds.pulled(ch["entityType"])
            if kind is None:
                log.warning("unknown entity type in pull", extra={"entityType": ch["entityType"]})
            else:
                kind.pull(ctx, hotel_id, ch)
        ctx.save()  # the trust list, before the cursor commits: a crash re-applies the page
        return ctx.replays
