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
* trust keys are added, or retired, in ``keys/trust.json``.

Every HLC stamp seen moves the local clock forward (``hlc.receive``), so local
changes made after a pull sort after what was pulled, whatever the wall clock.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from kiosk import audit, sessions, store, sync_status
from kiosk.trust import TrustedKey, TrustList

from . import hlc
from .conflicts import Conflict, replay_order
from .reference import BY_ENTITY
from .transport import CursorExpired, TransportError

log = logging.getLogger("sync.pull")

WO_FIELDS = ("status", "assignee", "priority", "notes", "description")
_WO_JSON = {"assetId": "asset_id", "roomNumber": "room_number", "type": "type"}


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


def get_state(db, key: str) -> str | None:
    row = db.execute("SELECT value FROM sync_state WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def set_state(db, key: str, value) -> None:
    db.execute("INSERT INTO sync_state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET"
               " value = excluded.value", [key, None if value is None else str(value)])


class Puller:
    def __init__(self, db, transport, *, hotels: list[str], node: str, clock, trust_path: Path,
                 page_size: int = 500):
        self.db, self.transport, self.hotels, self.node = db, transport, hotels, node
        self.clock, self.trust_path, self.page_size = clock, Path(trust_path), page_size

    def pull(self, *, max_pages: int | None = None, on_page=None) -> PullReport:
        """Pull every hotel until the cloud says there is no more (or an error)."""
        report = PullReport()
        for hotel_id in self.hotels:
            while max_pages is None or report.pages < max_pages:
                after = int(get_state(self.db, cursor_key(hotel_id)) or 0)
                try:
                    page = self.transport.pull(hotel_id, after, self.page_size)
                except CursorExpired as e:
                    if hotel_id in report.resynced:  # expired again right after a re-sync: try later
                        report.error = e.reason
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
        with store.transaction(self.db):
            replays = self._apply(hotel_id, page["changes"], now)
            set_state(self.db, cursor_key(hotel_id), int(page["cursor"]))
            sync_status.heard(self.db, now)
            set_state(self.db, "last_pull_at", now)  # the admin analytics' sync.lastPullAt
        return len(page["changes"]), replays

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
            with store.transaction(self.db):
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
                        _reference(self.db, hotel_id, {"entityType": etype, "op": "delete",
                                                       "entityId": "|".join(str(v) for v in row)})
                        report.removed += 1
            report.cursor = int(page["cursor"])
            set_state(self.db, cursor_key(hotel_id), report.cursor)
            set_state(self.db, "last_pull_at", self.clock.now())
            set_state(self.db, f"resynced_at:{hotel_id}", self.clock.now())
        log.info("re-synced from a snapshot", extra={"hotelId": hotel_id, "pages": report.pages,
                                                      "changes": report.changes, "removed": report.removed,
                                                      "cursor": report.cursor})
        return report

    def _apply(self, hotel_id: str, changes: list[dict], now: float) -> list[str]:
        """Apply pulled (or snapshot) changes inside the caller's transaction; returns replays."""
        replays: list[str] = []
        trust = None
        for ch in changes:
            kind = ch["entityType"]
            if kind in BY_ENTITY:
                _reference(self.db, hotel_id, ch)
            elif kind == "work_order":
                _work_order(self.db, hotel_id, ch, now)
            elif kind == "ticket":
                _ticket(self.db, hotel_id, ch, now)
            elif kind == "token_revocation":
                _revocation(self.db, hotel_id, ch, now)
            elif kind == "token_consumption":
                replay = _consumption(self.db, hotel_id, ch, self.node, now)
                if replay:
                    replays.append(replay)
            elif kind == "conflict":
                record_conflict(self.db, hotel_id, ch["data"], source="pull", now=now,
                                key=f"cloud:{ch['entityId']}")
            elif kind == "security_event":
                _security_event(self.db, hotel_id, ch, now)
            elif kind == "trust_key":
                trust = trust or TrustList.load(self.trust_path)
                _trust_key(self.db, trust, ch)
            else:
                log.warning("unknown entity type in pull", extra={"entityType": kind})
            if ch.get("hlc"):
                hlc.receive(self.db, self.node, ch["hlc"], now)
        if trust is not None:
            trust.save(self.trust_path)  # before the cursor commits: a crash re-applies the page
        return replays


def _columns(db, table: str) -> set[str]:
    """The table's columns, asked once per connection (a re-sync applies thousands of rows)."""
    cache = db.__dict__.setdefault("_pull_columns", {})
    if table not in cache:
        cache[table] = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
    return cache[table]


def _reference(db, hotel_id: str, ch: dict) -> None:
    table, keys = BY_ENTITY[ch["entityType"]]
    if ch["op"] == "delete":
        key_values = ch["entityId"].split("|")
        db.execute(f"DELETE FROM {table} WHERE hotel_id = ? AND " + " AND ".join(f"{k} = ?" for k in keys),
                   [hotel_id, *key_values])
        return
    cols = _columns(db, table) - {"hotel_id"}
    row = {k: v for k, v in ch["data"].items() if k in cols}  # only known columns reach the SQL
    row["hotel_id"] = hotel_id
    names = list(row)
    db.execute(f"INSERT OR REPLACE INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
               [row[n] for n in names])


def _pending_fields(db, hotel_id: str, work_order_id: str) -> set[str]:
    """Fields this kiosk changed and has not delivered yet."""
    out: set[str] = set()
    for (payload,) in db.execute("SELECT payload FROM outbox WHERE hotel_id = ? AND entity_type = 'work_order'"
                                 " AND entity_id = ? AND kind = 'work_order.updated' AND state = 'pending'",
                                 [hotel_id, work_order_id]):
        out |= set(json.loads(payload).get("changes", {}))
    return out


def _epoch(iso_text):
    from datetime import datetime

    if iso_text is None:
        return None
    if isinstance(iso_text, int | float):
        return float(iso_text)
    return datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp()


def _cloud_stamps(d: dict) -> dict[str, str]:
    """Per field, the newest write the cloud has judged (won or lost) for the value it sends."""
    base = d.get("updatedHlc") or ""
    judged, valued = d.get("judgedHlc") or {}, d.get("fieldHlc") or {}
    return {f: max(judged.get(f, ""), valued.get(f, ""), "" if (judged or valued) else base) for f in WO_FIELDS}


def _work_order(db, hotel_id: str, ch: dict, now: float) -> None:
    """Adopt the cloud's fields, except those this kiosk holds a newer write of.

    A field is taken when the cloud has judged a write at least as new as the one this
    kiosk holds (its stamp in ``field_hlc``) and none of this kiosk's writes to it is
    still undelivered.  So a page fetched before this kiosk's latest push was judged
    (pull and push run concurrently) cannot roll the field back, and once every write
    has been judged every kiosk holds the cloud's value.
    """
    d = ch["data"]
    wo_id = ch["entityId"]
    row = db.execute("SELECT status, assignee, priority, notes, description, version, field_hlc FROM work_orders"
                     " WHERE hotel_id = ? AND work_order_id = ?", [hotel_id, wo_id]).fetchone()
    cloud = _cloud_stamps(d)
    if row is None:
        db.execute("INSERT INTO work_orders (hotel_id, work_order_id, asset_id, room_number, type, description,"
                   " status, assignee, priority, notes, opened_at, closed_at, updated_at, version, field_hlc)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [hotel_id, wo_id, d.get("assetId"), d.get("roomNumber"), d.get("type") or "failure",
                    d.get("description") or "", d["status"], d.get("assignee"), d.get("priority") or "normal",
                    d.get("notes") or "", _epoch(d.get("openedAt")) or now, _epoch(d.get("closedAt")), now,
                    d.get("version") or 1, json.dumps(cloud, sort_keys=True)])
        return
    current = dict(zip(WO_FIELDS, row[:5], strict=True))
    mine = json.loads(row[6] or "{}")
    keep = _pending_fields(db, hotel_id, wo_id) | {f for f in WO_FIELDS if mine.get(f, "") > cloud[f]}
    take = [f for f in WO_FIELDS if f not in keep]
    changed = {f: d.get(f) for f in take if current[f] != d.get(f)
               and not (f in ("notes", "description") and (current[f] or "") == (d.get(f) or ""))}
    new = current | changed
    stamps = mine | {f: cloud[f] for f in take}
    version = row[5] if keep else max(row[5], d.get("version") or 1)
    db.execute("UPDATE work_orders SET status = ?, assignee = ?, priority = ?, notes = ?, description = ?,"
               " closed_at = CASE WHEN ? THEN ? ELSE closed_at END,"
               " updated_at = CASE WHEN ? THEN ? ELSE updated_at END, version = ?, field_hlc = ?"
               " WHERE hotel_id = ? AND work_order_id = ?",
               [new["status"], new["assignee"], new["priority"], new["notes"] or "", new["description"] or "",
                "status" in take, _epoch(d.get("closedAt")), bool(changed), now, version,
                json.dumps(stamps, sort_keys=True), hotel_id, wo_id])
    db.conn.executemany(
        "INSERT INTO work_order_history (hotel_id, work_order_id, field, old, new, by, at, hlc)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(hotel_id, wo_id, f, current[f], v, "cloud", now, cloud[f]) for f, v in changed.items()])


def _ticket(db, hotel_id: str, ch: dict, now: float) -> None:
    from kiosk import tickets as kt

    d = ch["data"]
    stamp = ch.get("hlc") or ""
    status = kt.normal(d.get("status") or "received")
    exists = db.execute("SELECT 1 FROM tickets WHERE hotel_id = ? AND ticket_id = ?",
                        [hotel_id, ch["entityId"]]).fetchone()
    if d.get("reply"):
        _ticket_reply(db, hotel_id, ch["entityId"], d, now)
    if exists:
        db.execute("UPDATE tickets SET merged_into = ? WHERE hotel_id = ? AND ticket_id = ?",
                   [d.get("mergedInto"), hotel_id, ch["entityId"]])
        if d.get("reply") and d.get("replyHlc") == stamp:
            return  # this change was a reply: the status it carries is not a newer step
        # the lifecycle: last writer wins by stamp, so an older copy never undoes a newer local step
        db.execute("UPDATE tickets SET status = ?, assignee = ?, status_hlc = ?, updated_at = ?"
                   " WHERE hotel_id = ? AND ticket_id = ? AND status_hlc < ?",
                   [status, d.get("assignee"), stamp, now, hotel_id, ch["entityId"], stamp])
        return
    text_terms = kt.terms(f"{d.get('title', '')} {d.get('description') or ''}")
    db.execute("INSERT INTO tickets (hotel_id, ticket_id, type, title, description, room_number, priority, queue,"
               " status, fingerprint, terms, created_at, created_by, merged_into, assignee, status_hlc, updated_at)"
               " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               [hotel_id, ch["entityId"], d.get("type") or "maintenance", d.get("title") or "",
                d.get("description") or "", d.get("roomNumber"), d.get("priority") or "normal",
                d.get("queue") or "", status, d.get("fingerprint") or "",
                json.dumps(sorted(text_terms)), _epoch(d.get("createdAt")) or now, d.get("createdBy") or "cloud",
                d.get("mergedInto"), d.get("assignee"), stamp, now])


def _ticket_reply(db, hotel_id: str, ticket_id: str, d: dict, now: float) -> None:
    """A reply to the guest made at another kiosk: a history row (field ``reply``) like a local
    one, unless a reply with a later (or the same) stamp is here already."""
    stamp = d.get("replyHlc") or ""
    latest = db.execute("SELECT new, hlc FROM item_history WHERE hotel_id = ? AND kind = 'ticket' AND item_id = ?"
                        " AND field = 'reply' ORDER BY id DESC LIMIT 1", [hotel_id, ticket_id]).fetchone()
    if latest is not None and ((latest[1] or "") >= stamp or latest[0] == d["reply"]):
        return
    db.execute("INSERT INTO item_history (hotel_id, kind, item_id, field, old, new, by, at, hlc)"
               " VALUES (?, 'ticket', ?, 'reply', ?, ?, ?, ?, ?)",
               [hotel_id, ticket_id, latest[0] if latest else None, d["reply"], d.get("replyBy") or "cloud", now,
                stamp])


def _revocation(db, hotel_id: str, ch: dict, now: float) -> None:
    jti = ch["entityId"]
    cur = db.execute("INSERT INTO remote_revocations (jti, hotel_id, revoked_at, hlc) VALUES (?, ?, ?, ?)"
                     " ON CONFLICT(jti) DO NOTHING", [jti, hotel_id, ch["data"].get("revokedAt") or now,
                                                     ch.get("hlc") or ""])
    if cur.rowcount == 0:
        return
    db.execute("UPDATE qr_tokens SET revoked_at = ?, revoked_by = 'cloud' WHERE jti = ? AND hotel_id = ?"
               " AND revoked_at IS NULL", [now, jti, hotel_id])
    ended = sessions.end_for_token(db, hotel_id, jti, now=now, reason="revoked")
    audit.record(db, hotel_id=hotel_id, event="token.revoked", outcome="success", at=now, actor="cloud",
                 jti=jti, details={"source": "pull", "sessionsEnded": ended})


def _consumption(db, hotel_id: str, ch: dict, node: str, now: float) -> str | None:
    d = ch["data"]
    jti, kiosk = d["jti"], d["kioskId"]
    if kiosk == node:
        return None  # our own consumption, echoed back
    cur = db.execute("INSERT INTO remote_consumptions (jti, hotel_id, kiosk_id, session_id, consumed_at, one_time,"
                     " hlc) VALUES (?, ?, ?, ?, ?, 1, ?) ON CONFLICT DO NOTHING",
                     [jti, hotel_id, kiosk, d.get("sessionId"), d.get("consumedAt") or now, d["hlc"]])
    if cur.rowcount == 0:
        return None
    mine = db.execute("SELECT session_id, hlc FROM consumed_tokens WHERE jti = ? AND hotel_id = ?",
                      [jti, hotel_id]).fetchone()
    if mine is None:
        return None
    uses = [{"kioskId": node, "sessionId": mine[0], "hlc": mine[1]}] + [
        {"kioskId": r[0], "sessionId": r[1], "hlc": r[2]} for r in db.execute(
            "SELECT kiosk_id, session_id, hlc FROM remote_consumptions WHERE jti = ? AND hotel_id = ?",
            [jti, hotel_id])]
    keeper, *_ = replay_order(uses)
    mine_use = uses[0]
    other = {"kioskId": kiosk, "sessionId": d.get("sessionId"), "hlc": d["hlc"]}
    ended = [] if keeper == mine_use else sessions.end_for_token(db, hotel_id, jti, now=now, reason="token_replay")
    loser = other if keeper == mine_use else mine_use
    details = {"keeper": keeper, "ended": loser, "consumptions": uses, "sessionsEndedHere": ended}
    db.execute("INSERT INTO security_events (hotel_id, kind, subject, details, detected_at, key)"
               " VALUES (?, 'TOKEN_REPLAY', ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING",
               [hotel_id, jti, json.dumps(details), now, f"replay:{jti}:{loser['kioskId']}"])
    c = Conflict("qr_token", jti, None, "token-replay",
                 f"replay: the session at {keeper['kioskId']} (earliest) is kept;"
                 f" the one at {loser['kioskId']} is ended", other, mine_use)
    record_conflict(db, hotel_id, c.to_json(), source="pull", now=now, key=f"replay:{jti}:{loser['kioskId']}")
    audit.record(db, hotel_id=hotel_id, event="security.token_replay", outcome="detected", at=now, jti=jti,
                 details=details)
    return jti


def _security_event(db, hotel_id: str, ch: dict, now: float) -> None:
    """A security event the cloud recorded (a replay between two other kiosks, say): shown here
    too, once, by its key (a kiosk involved already holds it under the same key)."""
    d = ch["data"]
    db.execute("INSERT INTO security_events (hotel_id, kind, subject, details, detected_at, key)"
               " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING",
               [hotel_id, str(d.get("kind") or "UNKNOWN"), str(d.get("subject") or ""),
                json.dumps(d.get("details") or {}), float(d.get("detectedAt") or now), ch["entityId"]])


def _trust_key(db, trust: TrustList, ch: dict) -> None:
    key = TrustedKey.from_json(ch["data"])
    trust.add(key)
    stamp = _epoch(key.added_at) if key.added_at else None
    if stamp:
        newest = float(get_state(db, "trust_newest_at") or 0)
        set_state(db, "trust_newest_at", max(newest, stamp))


def record_conflict(db, hotel_id: str, c: dict, *, source: str, now: float, key: str | None = None) -> None:
    """Record a conflict (from a push result or a pull) on this kiosk; idempotent by ``key``."""
    db.execute("INSERT INTO conflicts (hotel_id, entity_type, entity_id, field, rule, outcome, local_version,"
               " remote_version, source, detected_at, key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
               " ON CONFLICT(key) DO NOTHING",
               [hotel_id, c.get("entityType"), c.get("entityId"), c.get("field"), c.get("rule"), c.get("outcome"),
                json.dumps(c.get("incoming")), json.dumps(c.get("current")), source, now, key])
