"""Apply the entries of one push, in order, in ONE transaction (a crash applies nothing).

Per entry: a key seen before gets its first answer again (``duplicate`` if it
was applied, the same ``rejected`` if it was refused); otherwise the entry is
checked (storable text, hotel, shape, kind) and applied inside a savepoint, so a
refused entry leaves no trace but its answer.  After the first entry of an
entity that is not applied/duplicate, later entries of that entity in the push
get ``retry``.

Entry keys are scoped to their hotel (``applied_entries`` is keyed by hotel and key):

* an entry for a hotel the device does not serve is rejected (``FORBIDDEN_HOTEL``)
  before its key is even looked up, and that answer is NOT remembered: a device of
  hotel B pushing guessed keys "for hotel A" leaves nothing behind that could answer
  hotel A's real entry later;
* a key already applied for another hotel, or applied for this hotel by a device of
  another hotel, answers ``KEY_CONFLICT`` (rejected; never ``duplicate``, which would
  tell the kiosk that an effect it never had was delivered);
* an entry holding text no storage can keep (NUL, a lone surrogate) is rejected
  ``VALIDATION_ERROR`` before any of it reaches the database.

Applied and rejected answers for the device's own hotels are remembered under the
hotel and key; ``retry`` and the three refusals above are not (they are worked out
again, the same way, on every repeat).

A push costs a bounded number of statements whatever its size where its entries' kinds
allow it (:func:`apply_entries`): a kind may declare a set-wise function (``Push.many``)
that checks a run of entries in Python and a few reads, then writes the accepted ones
together and nothing of a refused one (so it needs no savepoint); every other entry is
applied alone in its savepoint.  Both paths give the same answers (tests/test_apply_setwise.py).
"""

from __future__ import annotations

import json
from typing import Any

from kiosk import hlc
from kiosk.errors import ValidationError
from sync import kinds

from . import changelog, pms_links, pms_outbox, relay_outbox, results, storage, upstream, validation
from .devices import Device
from .results import Rejected

#: the purge of remembered answers older than a cutoff, a chunk at a time (:mod:`.retention`)
PURGE_SQL = ("DELETE FROM applied_entries WHERE (hotel_id, key) IN (SELECT hotel_id, key"
             " FROM applied_entries WHERE applied_at < ? ORDER BY applied_at LIMIT ?)")


def apply_push(db, device: Device, entries: list[dict], now: float,
               max_skew: float = validation.MAX_CLOCK_SKEW_SECONDS) -> list[dict]:
    """One result per entry, in order, as docs/sync-protocol.md says; all in one transaction."""
    problems = validation.entry_keys(entries)
    if problems:
        raise ValidationError("every entry needs a key", {"fields": problems[:50]})
    with storage.transaction(db):
        storage.lock_hotels(db, served_hotels(device, entries))
        return apply_entries(db, device, entries, now, max_skew)


def served_hotels(device: Device, entries: list) -> list[str]:
    """The hotels a push names that its device serves: the only ones whose locks it takes
    (its entries for any other hotel are refused without touching that hotel)."""
    return sorted({h for e in entries if isinstance(e, dict) and device.serves(h := e.get("hotelId"))})


def apply_entries(db, device: Device, entries: list[dict], now: float,
                  max_skew: float = validation.MAX_CLOCK_SKEW_SECONDS) -> list[dict]:
    """:func:`apply_push` inside the caller's transaction (entries must have valid keys)."""
    return prepare(db, device, entries, now, max_skew).run()


def prepare(db, device: Device, entries: list[dict], now: float,
            max_skew: float = validation.MAX_CLOCK_SKEW_SECONDS, texts: list[str | None] | None = None) -> _Push:
    """A push ready to :meth:`~_Push.run`, the reads it starts with sent: its keys' first
    answers, its hotels' PMS links, whether this cloud is a hub.  Inside
    :func:`.storage.pipeline` they go in one round trip with whatever the caller reads next
    (:func:`.pushes.respond`: the Idempotency-Key's answer).

    Set-wise where it can be, so a push costs a handful of statements whatever its size: the
    keys' first answers are read in one query, each hotel's clock takes the push's stamps in
    one step, a run of entries of one kind that declares a set-wise function (``Push.many``)
    is applied by it in a few statements, the change log is numbered and written once
    (:func:`.changelog.deferred`), and the answers are remembered in one ``executemany``.
    Every other entry is applied alone in its savepoint, as before."""
    return _Push(db, device, now, max_skew, entries, texts)


class _Push:
    def __init__(self, db, device: Device, now: float, max_skew: float, entries: list[dict],
                 texts: list[str | None] | None = None):
        self.db, self.device, self.now, self.max_skew = db, device, now, max_skew
        self.entries = entries
        self.rows: dict[str, list] = {}  # key -> (hotel, device, answer, device's hotels) of its first answers
        self.remember: list[list] = []
        self.relay: list[dict] = []
        # written once (by the caller, for its digest too), looked at twice
        self.texts = [validation.text_of(raw) for raw in entries] if texts is None else texts
        self.refused = [_refused(device, raw, text) for raw, text in zip(entries, self.texts, strict=True)]
        self._hub = db.execute(upstream.SELECT)  # a hub: what it applies goes on to the chain's cloud
        looked_up = [raw for raw, r in zip(entries, self.refused, strict=True) if r is None]
        self._links = pms_links.select_many(db, sorted({raw["hotelId"] for raw in looked_up}))  # once a push
        self._answers = self._select_answers([raw["key"] for raw in looked_up])

    def run(self) -> list[dict]:
        """One result per entry, in order (in the caller's transaction)."""
        self.relayed = self._hub.fetchone() is not None
        self.links = pms_links.fetched(self._links)
        self._load_answers()
        with changelog.deferred(self.db):
            out = self.apply(self.entries)
            self.finish()
        return out

    def apply(self, entries: list[dict]) -> list[dict]:
        refused = self.refused
        checked: dict[int, Any] = {}
        for i, raw in enumerate(entries):
            if refused[i] is None:
                try:
                    checked[i] = validation.entry(raw, self.now, self.max_skew, self.texts[i])
                except Rejected as r:
                    checked[i] = r
        self._receive(e for e in checked.values() if not isinstance(e, Rejected))
        blocked: set[tuple] = set()
        out: list[dict] = []
        i = 0
        while i < len(entries):
            raw = entries[i]
            entity = _entity(raw)
            result = refused[i] or self._answer(raw)
            if result is None and entity in blocked:
                result = results.retry(raw["key"], f"blocked by an earlier entry of {entity[1]} {entity[2]}")
            if result is None:
                run = self._run(entries, checked, i, blocked)
                if len(run) > 1:
                    for j, result in zip(run, self._apply_many(entries, checked, run), strict=True):
                        if result["status"] != "applied":
                            blocked.add(_entity(entries[j]))
                        out.append(result)
                    i += len(run)
                    continue
                result = self._apply_one(raw, checked[i])
            if result["status"] not in ("applied", "duplicate") and entity is not None:
                blocked.add(entity)
            out.append(result)
            i += 1
        return out

    def finish(self) -> None:
        """Remember the answers and queue the hub's relay, one ``executemany`` each."""
        if self.remember:
            # ON CONFLICT: a refusal remembered for this hotel from a device that does not serve it
            # (ignored by _decide) gives way to this answer
            self.db.conn.executemany(
                "INSERT INTO applied_entries (key, device_id, hotel_id, kind, entity_type, entity_id, hlc,"
                " result, applied_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hotel_id, key) DO UPDATE SET"
                " device_id = excluded.device_id, kind = excluded.kind, entity_type = excluded.entity_type,"
                " entity_id = excluded.entity_id, hlc = excluded.hlc, result = excluded.result,"
                " applied_at = excluded.applied_at", self.remember)
        if self.relay:
            relay_outbox.queue_many(self.db, self.device.device_id, self.relay, self.now)

    # --- the keys' first answers -------------------------------------------------------------

    def _select_answers(self, keys: list[str]) -> list:
        """The remembered answers of every key of the push: one query a chunk, sent."""
        unique = sorted(set(keys))
        return [self.db.execute("SELECT a.key, a.hotel_id, a.device_id, a.result, d.hotels FROM applied_entries a"
                                f" LEFT JOIN devices d ON d.device_id = a.device_id WHERE {cond}", params)
                for cond, params in (storage.one_of(self.db, "a.key", chunk) for chunk in storage.chunks(unique))]

    def _load_answers(self) -> None:
        for cur in self._answers:
            for key, row_hotel, row_device, text, hotels in cur.fetchall():
                self.rows.setdefault(key, []).append(
                    (row_hotel, row_device, json.loads(text), None if hotels is None else json.loads(hotels)))

    def _answer(self, raw: dict) -> dict | None:
        """The first answer to this hotel's key (remembered, or given earlier in this push)."""
        return _decide(self.device, raw, self.rows.get(raw["key"], ()))

    def _remember(self, raw: dict, result: dict) -> None:
        stored = {k: v for k, v in result.items() if k != "key"}
        text = _APPLIED if stored == {"status": "applied"} else json.dumps(stored)
        self.rows.setdefault(raw["key"], []).append((raw["hotelId"], self.device.device_id, stored,
                                                     list(self.device.hotels)))
        self.remember.append([raw["key"], self.device.device_id, raw["hotelId"],
                              *(_short(raw.get(f)) for f in ("kind", "entityType", "entityId", "hlc")),
                              text, self.now])

    # --- clocks --------------------------------------------------------------------------------

    def _receive(self, checked) -> None:
        """Each hotel's cloud clock takes the latest stamp of the push's entries of known kinds,
        once (the receive rule is a maximum: taking them one by one ends in the same state)."""
        latest: dict[str, str] = {}
        for e in checked:
            declared = kinds.pushed(e.kind)
            if declared is not None and e.entityType == declared[0].push_entity:
                latest[e.hotelId] = max(latest.get(e.hotelId, ""), e.hlc)
        for hotel_id in sorted(latest):
            hlc.receive(self.db, changelog.clock(hotel_id), latest[hotel_id], self.now)

    # --- applying ------------------------------------------------------------------------------

    def _run(self, entries: list[dict], checked: dict, i: int, blocked: set) -> list[int]:
        """The entries from ``i`` on that one set-wise call may apply: valid, of entry kinds
        that declare the same ``many`` function (a scan's ``token.used`` and ``session.opened``
        go together), not answered before, not blocked, and each of its own entity."""
        many = self._many(checked.get(i))
        if many is None:
            return [i]
        run, entities, keys = [i], {_entity(entries[i])}, {entries[i]["key"]}
        for j in range(i + 1, len(entries)):
            raw = entries[j]
            entity = _entity(raw)
            if (self._many(checked.get(j)) != many or entity in entities or entity in blocked or raw["key"] in keys
                    or self._answer(raw) is not None):
                break
            run.append(j)
            entities.add(entity)
            keys.add(raw["key"])
        return run

    @staticmethod
    def _many(e) -> str | None:
        """The set-wise function of a valid entry's kind, if it declares one."""
        if e is None or isinstance(e, Rejected):
            return None
        declared = kinds.pushed(e.kind)
        if declared is None or e.entityType != declared[0].push_entity:
            return None
        return declared[1].many

    def _apply_many(self, entries: list[dict], checked: dict, run: list[int]) -> list[dict]:
        es = [checked[i] for i in run]
        answers = kinds.resolve(self._many(es[0]))(self.db, es, self.now)
        out = []
        for i, e, answer in zip(run, es, answers, strict=True):
            raw = entries[i]
            if isinstance(answer, Rejected):  # a set-wise function wrote nothing for it
                if answer.after_rollback is not None:
                    answer.after_rollback(answer.reason)
                result = results.rejected(raw["key"], answer.reason)
            else:
                self._effects(raw, e)
                result = results.applied(raw["key"], answer or [])
            self._remember(raw, result)
            out.append(result)
        return out

    def _apply_one(self, raw: dict, e) -> dict:
        key = raw["key"]
        if isinstance(e, Rejected):  # its envelope was refused: nothing to roll back
            result = results.rejected(key, e.reason)
            self._remember(raw, result)
            return result
        db = self.db
        db.execute("SAVEPOINT entry")
        held = changelog.mark(db)
        try:
            declared = kinds.pushed(e.kind)
            if declared is None:
                raise Rejected("UNKNOWN_KIND", e.kind)
            kind, push = declared
            if e.entityType != kind.push_entity:
                raise Rejected("INVALID_ENTRY", f"{e.kind} needs entityType {kind.push_entity}, not {e.entityType}")
            conflicts = kinds.resolve(push.cloud)(db, e, self.now) or []
            self._effects(raw, e)
            result = results.applied(key, conflicts)
        except Rejected as r:
            db.execute("ROLLBACK TO entry")
            changelog.rollback_to(db, held)
            if r.after_rollback is not None:
                r.after_rollback(r.reason)
            result = results.rejected(key, r.reason)
        db.execute("RELEASE entry")
        self._remember(raw, result)
        return result

    def _effects(self, raw: dict, e) -> None:
        """What an applied entry means beyond its own tables: the PMS's outbox (same
        transaction), the hub's relay to the chain."""
        pms_outbox.queue_for_entry(self.db, e, self.device.device_id, self.now, links=self.links)
        if self.relayed:
            self.relay.append(raw)


def _entity(raw: dict) -> tuple | None:
    parts = (raw.get("hotelId"), raw.get("entityType"), raw.get("entityId"))
    return parts if all(isinstance(p, str) for p in parts) else None


def _refused(device: Device, raw: dict, text: str | None) -> dict | None:
    """The answers given before the key is looked up, never remembered: text that cannot be
    stored, an entry for a hotel the device does not serve.  ``text``: ``raw`` as
    :func:`.validation.text_of` writes it."""
    problem = validation.unstorable(raw, text=text)
    if problem is not None:
        return results.rejected(raw["key"], f"VALIDATION_ERROR: {problem}"[:500])
    hotel = raw.get("hotelId")
    if not device.serves(hotel):
        shown = hotel if isinstance(hotel, str) else json.dumps(hotel)[:64]
        return results.rejected(raw["key"], f"FORBIDDEN_HOTEL: device {device.device_id} may not write for"
                                            f" hotel {shown[:64]}")
    return None


_CONFLICT = "KEY_CONFLICT: this key was used by another device for another hotel"
#: the answer remembered for most entries, written once
_APPLIED = json.dumps({"status": "applied"})


def _decide(device: Device, raw: dict, rows) -> dict | None:
    """The first answer to this hotel's key from its remembered ``rows`` (hotel, device, answer,
    the device's hotels); KEY_CONFLICT if the key names another hotel's effect."""
    key, hotel = raw["key"], raw["hotelId"]
    answer = None
    for row_hotel, row_device, original, hotels in rows:
        applied = original.get("status") == "applied"
        if row_hotel != hotel:
            if applied:  # the key already means an effect in another hotel
                return results.rejected(key, _CONFLICT if row_device != device.device_id else
                                        "KEY_CONFLICT: this device used this key for another hotel")
            continue  # another hotel's refusal takes nothing from this one
        if row_device != device.device_id and hotels is not None and hotel not in hotels:
            # remembered for this hotel from a device that does not serve it (a version before
            # hotel-scoped keys remembered such refusals, or the device moved to other hotels)
            if applied:
                return results.rejected(key, "KEY_CONFLICT: this key was applied by a device of another hotel")
            continue
        answer = results.duplicate(key, original) if applied else {"key": key, **original}
    return answer


def _short(value: Any) -> str | None:
    return value[:200] if isinstance(value, str) else None
