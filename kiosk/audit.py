"""The audit log: every scan attempt and every security event, per hotel — as a hash chain.

Rows are written inside the caller's transaction (a successful scan) or in a
transaction of their own (a refused one), and each is also logged as a JSON
line.

**The chain** (docs/audit-log.md).  Every row this module writes takes the next place in
the kiosk's one chain (``seq`` 1, 2, …, whatever its hotel) and stores ``prev_hash``, the
hash of the row before it, and ``row_hash`` = SHA-256 of a canonical encoding of
(``prev_hash``, ``seq``, hotel, time, event, outcome, actor, session, jti, client, code,
``details`` exactly as stored): :func:`row_hash`.  Computed in the insert's transaction,
from one read of the head through the ``audit_chain`` index.  Rows written before the
chain existed (migration 13) stay outside it; the first chained row's ``prev_hash`` is the
genesis, the hash of how many such rows there were and the last one's id
(:func:`genesis_hash`), so deleting one of them shows too.  ``repeats`` (identical refusals
counted on their first row, :class:`Refusals`) is updated in place and is NOT hashed.

**Checkpoints**: :func:`checkpoint` signs (the kiosk's Ed25519 key) the chain's length and
head, and the (length, hash) of the previous checkpoint as the chain holds it now, keeps
it in ``audit_checkpoints`` and queues it for the cloud (``audit.checkpoint``), which
refuses one that does not extend the last it holds (sync/cloud/audit_chain.py).
:func:`verify` recomputes the chain and checks it against the checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from . import store
from .trust import b64u, key_id, raw_public, unb64u

log = logging.getLogger("kiosk.audit")

NO_HOTEL = "-"

#: the tag of the canonical encodings below; a new encoding gets a new tag
ROW_TAG = "hotel-kiosk/audit-row/v1"
GENESIS_TAG = "hotel-kiosk/audit-genesis/v1"
#: what a checkpoint's signature covers, before its JSON: a checkpoint's signature can never
#: be taken for a token's or anything else this key signs
CHECKPOINT_CONTEXT = b"hotel-kiosk/audit-checkpoint/v1\n"
#: at most one checkpoint per this many seconds (the agent looks every minute)
CHECKPOINT_INTERVAL_SECONDS = 300.0
#: the outbox entry and entity type of a checkpoint (sync/kinds/audit_checkpoint.py)
CHECKPOINT_KIND = "audit.checkpoint"
CHECKPOINT_ENTITY = "audit_checkpoint"

_COLUMNS = "hotel_id, at, event, outcome, actor, session_id, jti, client, code, details"


def _canonical(value) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True).encode()


def row_hash(prev_hash: str, seq: int, hotel_id: str, at: float, event: str, outcome: str, actor: str | None,
             session_id: str | None, jti: str | None, client: str | None, code: str | None, details: str) -> str:
    """The hash of one chained row: SHA-256 (hex) of a JSON array of the tag, ``prev_hash``
    and the row's fields in a fixed order (``details`` as the text stored)."""
    return hashlib.sha256(_canonical([ROW_TAG, prev_hash, seq, hotel_id, float(at), event, outcome, actor,
                                      session_id, jti, client, code, details])).hexdigest()


def genesis_hash(pre_chain_rows: int, last_pre_chain_id: int) -> str:
    """The first chained row's ``prev_hash``: how many rows came before the chain, and the
    last one's id (0, 0 on a kiosk that had none)."""
    return hashlib.sha256(_canonical([GENESIS_TAG, pre_chain_rows, last_pre_chain_id])).hexdigest()


def _head(db) -> tuple[int, str] | None:
    """(seq, row_hash) of the chain's newest row, None before the first: one read of the index."""
    row = db.execute("SELECT seq, row_hash FROM audit_log WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1"
                     ).fetchone()
    return (row[0], row[1]) if row else None


def _append(db, values: list) -> None:
    head = _head(db)
    if head is None:  # the first chained row: the chain starts after whatever is there
        n, last = db.execute("SELECT count(*), coalesce(max(id), 0) FROM audit_log WHERE seq IS NULL").fetchone()
        seq, prev = 1, genesis_hash(n, last)
    else:
        seq, prev = head[0] + 1, head[1]
    db.execute(f"INSERT INTO audit_log ({_COLUMNS}, seq, prev_hash, row_hash)"
               " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               [*values, seq, prev, row_hash(prev, seq, *values)])


def record(db, *, hotel_id: str | None, event: str, outcome: str, at: float,
           actor: str | None = None, session_id: str | None = None, jti: str | None = None,
           client: str | None = None, code: str | None = None,
           details: dict[str, Any] | None = None) -> None:
    """Insert one audit row, chained (inside the caller's transaction, or one of its own) and log it."""
    details = details or {}
    values = [hotel_id or NO_HOTEL, float(at), event, outcome, actor, session_id, jti, client, code,
              json.dumps(details, separators=(",", ":"), sort_keys=True)]
    if db.conn.in_transaction:
        _append(db, values)
    else:  # the head read and the insert must be one transaction
        with store.transaction(db):
            _append(db, values)
    log.info(event, extra={"audit": {"hotelId": hotel_id or NO_HOTEL, "event": event,
                                     "outcome": outcome, "actor": actor, "sessionId": session_id,
                                     "jti": jti, "client": client, "code": code, **details}})


def record_now(db, **kwargs) -> None:
    """Like :func:`record`, in a transaction of its own."""
    with store.transaction(db):
        record(db, **kwargs)


def rows(db, hotel_id: str, limit: int = 100) -> list[dict]:
    return list(db.query("SELECT * FROM audit_log WHERE hotel_id = ? ORDER BY id DESC LIMIT ?",
                         [hotel_id, limit]))


class Refusals:
    """Refused attempts, audited without letting a flood grow the log.

    The first refusal of a kind — (hotel, event, client, code, token) — in a minute is a
    row; each identical one after it adds one to that row's ``repeats`` (an update in
    place: the file does not grow).  Bounded in memory: past ``MAX_KEYS`` kinds, the
    oldest are forgotten (their next refusal starts a new row).  The first row is chained
    like any other; ``repeats`` is outside its hash (it changes after the row is written).
    """

    MAX_KEYS = 4096

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._rows: dict[tuple, int] = {}  # key -> audit row id

    def record(self, db, *, hotel_id: str | None, event: str, at: float, client: str | None = None,
               jti: str | None = None, code: str | None = None, details: dict[str, Any] | None = None,
               actor: str | None = None, session_id: str | None = None, kind: tuple = ()) -> None:
        """``kind``: what else tells refusals apart besides hotel, event, client, code and token
        (e.g. the session, the reason and the request for a refused credential)."""
        key = (hotel_id, event, client, code, jti, *kind, int(at // 60))
        with self._lock:
            row_id = self._rows.get(key)
        with store.transaction(db):
            if row_id is not None and db.execute("UPDATE audit_log SET repeats = repeats + 1 WHERE id = ?",
                                                 [row_id]).rowcount == 1:
                return
            record(db, hotel_id=hotel_id, event=event, outcome="refused", at=at, actor=actor, session_id=session_id,
                   jti=jti, client=client, code=code, details=details)
            row_id = db.execute("SELECT last_insert_rowid()").fetchone()[0]
        with self._lock:
            self._rows[key] = row_id
            for k in [k for k in self._rows if k[-1] < key[-1]]:  # earlier minutes are done
                del self._rows[k]
            while len(self._rows) > self.MAX_KEYS:
                del self._rows[next(iter(self._rows))]


# --- checkpoints --------------------------------------------------------------------------------

def hash_at(db, length: int) -> str:
    """The chain's hash after ``length`` rows as the chain holds it now: the row_hash of row
    ``seq = length`` (the genesis for 0); "" when the chain has no such row."""
    if length == 0:
        row = db.execute("SELECT prev_hash FROM audit_log WHERE seq = 1").fetchone()
    else:
        row = db.execute("SELECT row_hash FROM audit_log WHERE seq = ?", [length]).fetchone()
    return row[0] if row and row[0] else ""


def sign_checkpoint(signing_key: Ed25519PrivateKey, body: dict) -> tuple[str, str]:
    """(the checkpoint's JSON text, its signature, URL-safe base64): the signature covers
    :data:`CHECKPOINT_CONTEXT` and the text, which travels as is."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return text, b64u(signing_key.sign(CHECKPOINT_CONTEXT + text.encode()))


def signature_ok(text: str, signature: str, public_key: Ed25519PublicKey) -> bool:
    try:
        public_key.verify(unb64u(signature), CHECKPOINT_CONTEXT + text.encode())
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def last_checkpoint(db) -> dict | None:
    rows = list(db.query("SELECT * FROM audit_checkpoints ORDER BY id DESC LIMIT 1"))
    return rows[0] if rows else None


def checkpoint(db, signing_key: Ed25519PrivateKey, *, kiosk_id: str, hotels: list[str], now: float,
               min_interval: float = CHECKPOINT_INTERVAL_SECONDS, node: str | None = None) -> dict | None:
    """Sign a checkpoint of the chain and queue it for the cloud, when the chain's head is not
    the last checkpoint's and that one is at least ``min_interval`` old; returns its body, or
    None (nothing new, too soon, nothing chained yet).

    The body: ``kioskId``, ``hotels``, ``length`` and ``headHash`` (the chain now), ``prevLength``
    (the last checkpoint's length, 0 for the first) and ``prevHash`` — the hash after
    ``prevLength`` rows *as the chain holds it now*, not as the last checkpoint recorded it:
    the cloud compares it with the checkpoint it holds, so a history rewritten since shows
    there (AUDIT_REWRITTEN) — ``at``, ``kid`` and ``publicKey`` (the cloud pins the first key it
    sees for the kiosk).  Kept in ``audit_checkpoints`` and queued (``audit.checkpoint``,
    entity the kiosk id, under the first hotel) in one transaction."""
    if not hotels:
        raise ValueError("a checkpoint needs the kiosk's hotels")
    with store.transaction(db):
        head = _head(db)
        last = last_checkpoint(db)
        if head is None and last is None:
            return None
        length, head_hash = head if head is not None else (0, "")
        if last is not None:
            if (last["length"], last["head_hash"]) == (length, head_hash):
                return None
            if 0 <= now - last["at"] < min_interval:
                return None
        prev_length = last["length"] if last is not None else 0
        prev_hash = hash_at(db, prev_length)
        if last is not None and prev_hash != last["head_hash"]:
            log.warning("the audit chain no longer holds the last checkpoint's head: rewritten since?",
                        extra={"length": prev_length, "checkpoint": last["id"]})
        public = signing_key.public_key()
        body = {"v": 1, "kioskId": kiosk_id, "hotels": list(hotels), "length": length, "headHash": head_hash,
                "prevLength": prev_length, "prevHash": prev_hash, "at": float(now), "kid": key_id(public),
                "publicKey": b64u(raw_public(public))}
        text, signature = sign_checkpoint(signing_key, body)
        from . import outbox  # outbox imports this module

        queued = outbox.enqueue(db, hotel_id=hotels[0], kind=CHECKPOINT_KIND, entity_type=CHECKPOINT_ENTITY,
                                entity_id=kiosk_id, payload={"checkpoint": text, "signature": signature},
                                node=node or kiosk_id, now=now)
        db.execute("INSERT INTO audit_checkpoints (hotel_id, length, head_hash, prev_length, prev_hash, at, body,"
                   " signature, outbox_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [hotels[0], length, head_hash, prev_length, prev_hash, float(now), text, signature,
                    queued.idempotency_key])
    log.info("audit checkpoint", extra={"length": length, "headHash": head_hash, "prevLength": prev_length})
    return body


# --- verify -------------------------------------------------------------------------------------

MAX_PROBLEMS = 100


def verify(db, public_key: Ed25519PublicKey | None = None, expect: list[tuple[int, str]] = ()) -> dict:
    """Recompute the chain and check it against this kiosk's checkpoints (their signatures
    too, with ``public_key``) and against ``expect``: (length, hash) pairs from elsewhere,
    e.g. the cloud's last checkpoint of this kiosk.

    Returns ``ok``, ``rows``, ``preChain`` (rows before the chain), ``length``, ``headHash``,
    ``checkpoints`` (how many), ``lastCheckpoint``, ``problems`` (at most 100: ``id`` and
    ``seq`` of the row, or ``checkpoint``, and ``reason``) and ``firstBadRow`` (the id of the
    first row that does not fit, or None).  After a row that does not fit, the walk goes on
    from that row's stored hash, so each changed row is named, not every row after it."""
    problems: list[dict] = []

    def problem(reason: str, **where) -> None:
        if len(problems) < MAX_PROBLEMS:
            problems.append({**where, "reason": reason})

    cps = list(db.query("SELECT id, length, head_hash, prev_length, prev_hash, at, body, signature"
                        " FROM audit_checkpoints ORDER BY id"))
    anchors: dict[int, list[tuple[str, str]]] = {}  # length -> [(hash, what says so)]
    for c in cps:
        anchors.setdefault(c["length"], []).append((c["head_hash"], f"checkpoint {c['id']}"))
        anchors.setdefault(c["prev_length"], []).append((c["prev_hash"], f"checkpoint {c['id']} (its previous)"))
    for length, h in expect:
        anchors.setdefault(int(length), []).append((h, f"the expected hash at {length}"))

    rows = pre = last_pre_id = 0
    started = False
    expected_seq, expected_prev = 1, ""
    length, head_hash = 0, ""
    for r in db.execute(f"SELECT id, seq, prev_hash, row_hash, {_COLUMNS} FROM audit_log ORDER BY id"):
        rows += 1
        rid, seq, prev, stored = r[0], r[1], r[2], r[3]
        if seq is None:
            if started:
                problem("a row outside the chain, written after the chain began (not by the kiosk)", id=rid)
            else:
                pre, last_pre_id = pre + 1, rid
            continue
        if not started:
            started = True
            expected_prev = genesis_hash(pre, last_pre_id)
            for h, what in anchors.get(0, []):
                if h and h != expected_prev:
                    problem(f"{what} names another start of the chain: the rows before it changed", id=rid, seq=seq)
        if seq != expected_seq:
            problem(f"it is row {seq} of the chain where row {expected_seq} was due: rows before it were"
                    " removed, or rows moved", id=rid, seq=seq)
        elif prev != expected_prev:
            problem("it does not follow the row before it (prev_hash): that row was removed or replaced, or"
                    " (the first chained row) rows before the chain changed", id=rid, seq=seq)
        elif stored != row_hash(prev, seq, *r[4:]):
            problem("its contents do not match its hash: changed after it was written", id=rid, seq=seq)
        else:
            for h, what in anchors.get(seq, []):
                if h and h != stored:
                    problem(f"{what} says the chain read otherwise here: the history up to this row was"
                            " rewritten", id=rid, seq=seq)
                    break
        expected_seq, expected_prev = (seq or 0) + 1, stored or ""
        length, head_hash = seq, stored or ""
    for c in cps:
        if c["length"] > length:
            problem(f"checkpoint {c['id']} counted {c['length']} rows; the chain has {length}: rows were"
                    " deleted since", checkpoint=c["id"])
            break
    for before, c in zip([None, *cps], cps, strict=False):
        try:
            body = json.loads(c["body"])
        except ValueError:
            body = None
        if not isinstance(body, dict) or (body.get("length"), body.get("headHash"), body.get("prevLength"),
                                          body.get("prevHash")) != (c["length"], c["head_hash"],
                                                                    c["prev_length"], c["prev_hash"]):
            problem("its columns are not what was signed", checkpoint=c["id"])
        elif public_key is not None and not signature_ok(c["body"], c["signature"], public_key):
            problem("its signature is not this kiosk's key's", checkpoint=c["id"])
        if before is not None and (c["prev_length"], c["prev_hash"]) != (before["length"], before["head_hash"]):
            problem(f"it does not extend checkpoint {before['id']}: the chain had changed when it was made",
                    checkpoint=c["id"])
    last = cps[-1] if cps else None
    first_bad = next((p["id"] for p in problems if "id" in p), None)
    return {"ok": not problems, "rows": rows, "preChain": pre, "length": length, "headHash": head_hash,
            "checkpoints": len(cps),
            "lastCheckpoint": last and {"id": last["id"], "length": last["length"], "headHash": last["head_hash"],
                                        "at": last["at"]},
            "problems": problems, "firstBadRow": first_bad}
