"""A hotel's current state, paged: what a kiosk whose cursor fell off the retained log
(``CURSOR_EXPIRED``) re-syncs from (``GET /sync/v1/snapshot``).

Every entity the hotel's kiosks hold, as pull would send it (``op: upsert``; the same
``entityType``/``entityId``/``data``/``hlc``), so the kiosk applies it with the same
code and the same conflict rules, and its own undelivered changes survive: trust keys,
reference data, work orders, tickets, revocations, consumed tokens, then the conflicts
and security events of the last :data:`RECENT_SECONDS` (records, not state).
Consumptions come before security events, so a kiosk involved in a replay detects it
itself first (and then holds the cloud's record under the same key).

The first page fixes ``cursor``: the hotel's last change-log sequence number when the
snapshot began; the kiosk pulls on after it once the last page is applied.  Pages read
the state as it is when each is served, which may be newer than ``cursor``: applying an
older change from the log after it is harmless (reference data is replaced again by the
newer change that follows in the log, work orders and tickets merge by stamp, the rest
is add-only).  ``next`` is an opaque token for the next page (null on the last).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable

from kiosk.errors import ValidationError
from sync import kinds

from . import events, retention, tickets, validation, workorders

MAX_PAGE = 1000
RECENT_SECONDS = 30 * 86400


def _change(etype: str, eid: str, data: dict, stamp: str | None) -> dict:
    return {"entityType": etype, "entityId": eid, "op": "upsert", "data": data, "hlc": stamp or ""}


def trust_key_rows(db, hotel_id, after, n, now):
    rows = db.execute("SELECT kid, data FROM trust_keys WHERE kid > ? ORDER BY kid LIMIT ?",
                      [after[0] if after else "", n]).fetchall()
    out = [((kid,), _change("trust_key", kid, d, None)) for kid, text in rows
           if hotel_id in (d := json.loads(text)).get("hotels", [])]
    return out, [r[0] for r in rows[-1:]], len(rows) < n


def reference_rows(db, hotel_id, after, n, now):
    after = after or ["", ""]
    rows = db.execute("SELECT entity_type, entity_id, data, hlc FROM ref_data WHERE hotel_id = ?"
                      " AND (entity_type, entity_id) > (?, ?) ORDER BY entity_type, entity_id LIMIT ?",
                      [hotel_id, after[0], after[1], n]).fetchall()
    return ([((r[0], r[1]), _change(r[0], r[1], json.loads(r[2]), r[3])) for r in rows],
            list(rows[-1][:2]) if rows else None, len(rows) < n)


def work_order_rows(db, hotel_id, after, n, now):
    rows = list(db.query("SELECT * FROM work_orders WHERE hotel_id = ? AND work_order_id > ?"
                         " ORDER BY work_order_id LIMIT ?", [hotel_id, after[0] if after else "", n]))
    return ([((r["work_order_id"],), _change("work_order", r["work_order_id"], workorders.snapshot(r),
                                             r["updated_hlc"])) for r in rows],
            [rows[-1]["work_order_id"]] if rows else None, len(rows) < n)


def ticket_rows(db, hotel_id, after, n, now):
    rows = list(db.query("SELECT * FROM tickets WHERE hotel_id = ? AND ticket_id > ? ORDER BY ticket_id LIMIT ?",
                         [hotel_id, after[0] if after else "", n]))
    return ([((r["ticket_id"],), _change("ticket", r["ticket_id"], tickets.snapshot(r),
                                         r.get("status_hlc") or r.get("hlc"))) for r in rows],
            [rows[-1]["ticket_id"]] if rows else None, len(rows) < n)


def revocation_rows(db, hotel_id, after, n, now):
    rows = db.execute("SELECT jti, revoked_at, hlc FROM revocations WHERE hotel_id = ? AND jti > ?"
                      " ORDER BY jti LIMIT ?", [hotel_id, after[0] if after else "", n]).fetchall()
    return ([((r[0],), _change("token_revocation", r[0], {"jti": r[0], "revokedAt": r[1]}, r[2])) for r in rows],
            [rows[-1][0]] if rows else None, len(rows) < n)


def consumption_rows(db, hotel_id, after, n, now):
    after = after or ["", ""]
    rows = db.execute("SELECT jti, kiosk_id, session_id, consumed_at, hlc FROM consumptions WHERE hotel_id = ?"
                      " AND (jti, kiosk_id) > (?, ?) ORDER BY jti, kiosk_id LIMIT ?",
                      [hotel_id, after[0], after[1], n]).fetchall()
    return ([((r[0], r[1]), _change("token_consumption", f"{r[0]}@{r[1]}",
                                    {"jti": r[0], "kioskId": r[1], "sessionId": r[2], "consumedAt": r[3],
                                     "hlc": r[4]}, r[4])) for r in rows],
            list(rows[-1][:2]) if rows else None, len(rows) < n)


def conflict_rows(db, hotel_id, after, n, now):
    rows = db.execute("SELECT id, entity_type, entity_id, field, rule, outcome, incoming, current FROM conflicts"
                      " WHERE hotel_id = ? AND id > ? AND detected_at >= ? ORDER BY id LIMIT ?",
                      [hotel_id, int(after[0]) if after else 0, now - RECENT_SECONDS, n]).fetchall()
    out = []
    for r in rows:
        incoming = json.loads(r[6])
        data = {"entityType": r[1], "entityId": r[2], "field": r[3], "rule": r[4], "outcome": r[5],
                "incoming": incoming, "current": json.loads(r[7]), "conflictId": r[0]}
        out.append(((r[0],), _change("conflict", str(r[0]), data, str(incoming.get("hlc") or ""))))
    return out, [str(rows[-1][0])] if rows else None, len(rows) < n


def security_event_rows(db, hotel_id, after, n, now):
    rows = db.execute("SELECT id, kind, subject, details, detected_at, event_key FROM security_events"
                      " WHERE hotel_id = ? AND id > ? AND detected_at >= ? ORDER BY id LIMIT ?",
                      [hotel_id, int(after[0]) if after else 0, now - RECENT_SECONDS, n]).fetchall()
    out = []
    for r in rows:
        e = events.security_event_json(r[0], r[5], r[1], r[2], json.loads(r[3]), r[4])
        out.append(((r[0],), _change("security_event", e["key"], e, None)))
    return out, [str(rows[-1][0])] if rows else None, len(rows) < n


def sections() -> list[tuple[str, Callable]]:
    """The sections, in the order they are served: (name, fetch(db, hotel, after_key, n, now)),
    as the sync kinds declare them (:mod:`sync.kinds`)."""
    return [(name, kinds.resolve(target)) for name, target in kinds.snapshot_sections()]


def _encode(cursor: int, section: int, after: list | None) -> str:
    raw = json.dumps([cursor, section, after], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,2000}")
_ID_DIGITS = re.compile(r"[0-9]{1,18}")


def _decode(token: str) -> tuple[int, int, list | None]:
    """A page token as :func:`_encode` made it, checked strictly: anything else (not base64url,
    a cursor past PostgreSQL's bigint, an id of superscript digits, text no storage keeps)
    is a 400 VALIDATION_ERROR, never a 500."""
    bad = ValidationError("page is not a token from a previous snapshot page", {"field": "page"})
    if not _TOKEN.fullmatch(token):
        raise bad
    try:
        cursor, section, after = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, TypeError, binascii.Error):
        raise bad from None
    ok = (type(cursor) is int and 0 <= cursor < 2**63 and type(section) is int and 0 <= section < len(sections())
          and (after is None or (isinstance(after, list) and 1 <= len(after) <= 2
                                 and all(isinstance(a, str) and validation.storable_text(a, 300) for a in after))))
    if not ok or (after is not None and sections()[section][0] in ("conflict", "security_event")
                  and not _ID_DIGITS.fullmatch(after[0])):
        raise bad
    return cursor, section, after


def head(db, hotel_id: str) -> int:
    """The hotel's last change-log sequence number (at least how far its log was purged)."""
    row = db.execute("SELECT max(seq) FROM changes WHERE hotel_id = ?", [hotel_id]).fetchone()
    return max(row[0] or 0, retention.horizon(db, hotel_id))


def page(db, hotel_id: str, token: str | None, limit: int, now: float) -> dict:
    """One page of the hotel's snapshot: ``{hotelId, cursor, changes, next}``."""
    limit = max(1, min(limit, MAX_PAGE))
    if token:
        cursor, section, after = _decode(token)
    else:
        cursor, section, after = head(db, hotel_id), 0, None
    changes: list[dict] = []
    served = sections()
    while section < len(served) and len(changes) < limit:
        items, last, done = served[section][1](db, hotel_id, after, limit - len(changes), now)
        changes += [c for _, c in items]
        if done:
            section, after = section + 1, None
        else:
            after = [str(a) for a in last]
    nxt = _encode(cursor, section, after) if section < len(served) else None
    return {"hotelId": hotel_id, "cursor": cursor, "changes": changes, "next": nxt}
