"""Outbox delivery: batches, per-entity order, backoff with jitter, dead letters.

:class:`Pusher` takes the due entries (oldest first, skipping every entry that
has an earlier pending entry of the same entity still waiting), pushes them as
one batch, and records every result in ONE transaction:

- ``applied`` / ``duplicate`` -> ``delivered``
- ``rejected`` -> ``dead`` with the reason (an admin can retry or drop it)
- ``retry`` or a transport failure -> attempts + 1, next attempt after
  ``min(max, base * 2^(attempts-1))``, the upper half jittered; a 429 (the cloud's
  per-device push quota) is such a failure, and its ``Retry-After`` is the least wait

A crash between the push and that transaction leaves the entries pending; the
next push repeats them and the cloud answers ``duplicate``: exactly once.

:meth:`Pusher.drain` over a transport that sends in the background (``push_async``: the
HTTP one) keeps the agent's work off the wire's critical path: while the cloud applies a
batch, the next one is read and made ready as if this one were delivered, and it is sent the
moment this one's answer says every entry was delivered; this one's results are recorded
while the next is at the cloud.  An answer with anything else (a retry, a rejection, an
error) drops the batch read ahead, unsent, and the next is read again afresh: a batch never
travels beside one whose fate is unknown, so an entity's later entry never passes an earlier
one the cloud asked to see again.
"""

from __future__ import annotations

import hashlib
import json
import random
from concurrent.futures import Future
from dataclasses import dataclass, field

from kiosk import guest_keys, outbox, store, sync_status

from .transport import TransportError

_DUE_SQL = """
SELECT o.id, o.idempotency_key, o.hotel_id, o.kind, o.entity_type, o.entity_id, o.payload, o.hlc,
       o.created_at, o.attempts
FROM outbox o
WHERE o.state = 'pending' AND o.next_attempt_at <= :now
  AND NOT EXISTS (SELECT 1 FROM outbox p
                  WHERE p.entity_type = o.entity_type AND p.entity_id = o.entity_id
                    AND p.state = 'pending' AND p.id < o.id AND p.next_attempt_at > :now)
  AND o.id NOT IN (SELECT value FROM json_each(:skip))
ORDER BY o.id LIMIT :limit
"""


def entries_of(db, rows: list[dict]) -> list[dict]:
    """Outbox rows as the push sends them (docs/sync-protocol.md): a guest's sealed names and
    words opened (plain text over TLS; a key destroyed since: as erased, kiosk/guest_keys.py)."""
    out = []
    for r in rows:
        sealed = json.loads(r["payload"])
        has_sealed = guest_keys.PREFIX in r["payload"]  # (most entries: nothing to open, no walk)
        entry = {"key": r["idempotency_key"], "hotelId": r["hotel_id"], "kind": r["kind"],
                 "entityType": r["entity_type"], "entityId": r["entity_id"], "hlc": r["hlc"],
                 "createdAt": r["created_at"], "payload": guest_keys.open_tree(db, sealed) if has_sealed else sealed}
        if has_sealed:
            subject = guest_keys.subject_of(db, sealed)
            if subject:
                entry["subject"] = subject  # the cloud seals the guest's fields under its key for them
        out.append(entry)
    return out


@dataclass
class PushReport:
    sent: int = 0
    applied: int = 0
    duplicate: int = 0
    rejected: int = 0
    retried: int = 0
    conflicts: int = 0
    error: str | None = None
    counts: dict = field(default_factory=dict)

    @property
    def delivered(self) -> int:
        return self.applied + self.duplicate


def batch_key(keys: list[str]) -> str:
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:32]


def get_state(db, key: str) -> str | None:
    return sync_status.get(db, key)


class Pusher:
    def __init__(self, db, transport, *, device_id: str, clock, batch_size: int = 500,
                 backoff_base: float = 1.0, backoff_max: float = 300.0, rng: random.Random | None = None):
        self.db, self.transport, self.device_id, self.clock = db, transport, device_id, clock
        self.batch_size = batch_size
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.rng = rng or random.Random()

    def backoff(self, attempts: int) -> float:
        delay = min(self.backoff_max, self.backoff_base * 2 ** max(0, attempts - 1))
        return delay / 2 + self.rng.random() * delay / 2

    def due(self, now: float, skip: list[int] | tuple = ()) -> list[dict]:
        """The next batch: due entries, oldest first, none behind an earlier one of its entity
        that waits; ``skip``: ids taken as delivered (the batch at the cloud, read ahead of)."""
        return list(self.db.query(_DUE_SQL, {"now": now, "limit": self.batch_size,
                                             "skip": json.dumps(list(skip))}))

    def push_once(self) -> PushReport:
        """Push one batch of due entries (if any) and record the outcome."""
        rows = self.due(self.clock.now())
        if not rows:
            return PushReport()
        return self._record(rows, self._send(entries_of(self.db, rows), background=False))

    def _send(self, entries: list[dict], *, background: bool) -> Future:
        """The batch's push, started: a future of its results or its TransportError, in the
        transport's own thread when ``background`` and the transport can, else done here."""
        key = batch_key([e["key"] for e in entries])
        start = getattr(self.transport, "push_async", None) if background else None
        if start is not None:
            return start(self.device_id, entries, key)
        done: Future = Future()
        try:
            done.set_result(self.transport.push(self.device_id, entries, key))
        except TransportError as e:
            done.set_exception(e)
        return done

    def _record(self, rows: list[dict], sent: Future) -> PushReport:
        """Wait for the batch's answer and record what it did to each entry, in one transaction."""
        report = PushReport(sent=len(rows))
        wait = 0.0  # the cloud's Retry-After: no entry of this batch is tried again sooner
        refused = False
        try:
            results = sent.result()
        except TransportError as e:
            if e.too_large and self.batch_size > 1:
                self.batch_size = max(1, self.batch_size // 2)
            report.error = e.reason
            refused = e.refused
            wait = e.retry_after or 0.0
            results = [{"status": "retry", "reason": e.reason}] * len(rows)
        done_at = self.clock.now()
        delivered, dead, retry, lost = [], [], [], []
        for row, res in zip(rows, results, strict=True):
            status = res.get("status") if isinstance(res, dict) else None
            if status in ("applied", "duplicate"):
                delivered.append((done_at, row["id"]))
                setattr(report, status, getattr(report, status) + 1)
                original = res.get("original") if status == "duplicate" else res
                for i, c in enumerate((original or {}).get("conflicts") or []):
                    lost.append((row, i, c))
            elif status == "rejected":
                dead.append((str(res.get("reason", "rejected"))[:500], row["id"]))
                report.rejected += 1
            else:
                reason = str(res.get("reason", "retry") if isinstance(res, dict) else "bad result")[:500]
                retry.append((reason, done_at + max(wait, self.backoff(row["attempts"] + 1)), row["id"]))
                report.retried += 1
        with store.transaction(self.db):
            outbox.record_results(self.db, delivered=delivered, dead=dead, retry=retry)
            for row, i, c in lost:  # the cloud resolved a conflict against this entry: record why
                sync_status.record_conflict(self.db, row["hotel_id"], c, source="push", now=done_at,
                                     key=f"cloud:{c['conflictId']}" if "conflictId" in c
                                     else f"{row['idempotency_key']}:{i}")
            report.conflicts += len(lost)
            state = {"last_push_at": done_at, "last_error": report.error}
            if report.error is None:
                state["last_push_ok_at"] = done_at
                sync_status.heard(self.db, done_at)  # only a successful exchange is "heard"
            elif refused:
                sync_status.credential_refused(self.db, report.error, done_at)
            sync_status.put(self.db, state)
        return report

    def drain(self, *, max_batches: int | None = None, on_batch=None) -> PushReport:
        """Push until nothing is due (or a transport error, or ``max_batches``); over a
        transport with ``push_async``, a batch read ahead goes as soon as the one before it is
        all delivered (the module's docstring)."""
        total = PushReport()
        n = 0
        flight = None  # (rows, future of its answer): the batch at the cloud; never one after max_batches
        while max_batches is None or n < max_batches:
            if flight is None:
                rows = self.due(self.clock.now())
                if not rows:
                    break
                flight = (rows, self._send(entries_of(self.db, rows), background=True))
            rows, sent = flight
            n += 1
            ahead, ahead_entries = [], []
            if len(rows) == self.batch_size and (max_batches is None or n < max_batches):
                ahead = self.due(self.clock.now(), skip=[r["id"] for r in rows])
                if ahead:
                    ahead_entries = entries_of(self.db, ahead)
            flight = None
            if ahead and _all_delivered(sent):
                flight = (ahead, self._send(ahead_entries, background=True))
            r = self._record(rows, sent)
            for f in ("sent", "applied", "duplicate", "rejected", "retried", "conflicts"):
                setattr(total, f, getattr(total, f) + getattr(r, f))
            total.error = r.error
            if on_batch:
                on_batch(r)
            if r.error:
                break
        return total


def _all_delivered(sent: Future) -> bool:
    """Whether the batch's answer (waited for) says every entry was applied or a duplicate."""
    try:
        results = sent.result()
    except TransportError:
        return False
    return all(isinstance(res, dict) and res.get("status") in ("applied", "duplicate") for res in results)


def backlog(db, now: float) -> dict:
    """What ``kiosk-agent status`` shows."""
    pending, oldest = db.execute("SELECT count(*), min(created_at) FROM outbox WHERE state = 'pending'").fetchone()
    dead = db.execute("SELECT count(*) FROM outbox WHERE state = 'dead'").fetchone()[0]
    ok_at = get_state(db, "last_push_ok_at")
    heard = get_state(db, "last_heard_at")
    cred = sync_status.credential(db)
    return {"pending": pending, "oldestPendingAgeSeconds": round(now - oldest, 3) if oldest else None,
            "dead": dead, "lastSuccessfulPushAt": float(ok_at) if ok_at else None,
            "lastHeardAt": float(heard) if heard else None,
            "lastError": get_state(db, "last_error"),
            "credential": cred["credential"], "credentialError": cred["credentialError"]}
