"""A key per guest: personal fields sealed at rest, and shredded with the key (docs/privacy.md).

Every personal field a kiosk stores (a reservation's name, e-mail and phone; the display name
of a guest's sessions and codes; the words of requests, replies, questions and messages; the
same fields in outbox entries) is written as a *sealed* string: AES-256-GCM under a data key
of its own guest (hotel + subject: the confirmation number, or whoever wrote it)::

    pii1.<tag>.<kid>.<base64url(nonce | ciphertext | tag)>

``tag`` says what the field was (``n`` a name, ``c`` contact details, ``t`` words), so a
field whose key is gone reads as what the guest erasure writes (:mod:`kiosk.erased`: "Erased
guest", null, "(erased)"). ``kid`` names the key; the key's id and the tag are the cipher's
associated data, so a sealed value cannot be moved to another key or kind.

The keys live in the ``guest_keys`` table of the kiosk's own database, written in the same
transaction as the data they seal (so no crash can leave data whose key was never stored).
A backup holds them **only wrapped** under the hotel's backup key, which the kiosk's upstream
keeps (:func:`for_backup`; sync/cloud/backup_keys.py); a restored kiosk takes the live keys
of the directory it replaces (:func:`merge_live`) or unwraps the backup's with the key and
the hotel's erasures from the upstream, leaving the erased guests' out (:func:`unwrap`,
sync/key_escrow.py). A guest's erasure deletes their key (:func:`destroy`, with
``secure_delete`` and a truncated WAL, sync/pull.py): every copy of their data — in the
database, in the outbox, in every backup made before — is then unreadable for good.

Reading is transparent: the store's connections open sealed values as rows are fetched
(:func:`row_factory`), so the owners' queries and the screens read plain values. Request
texts are also kept as content terms for twin detection: those are *blind* (a keyed
HMAC of each term, :func:`blind`, the key beside the guests' keys), so they match each
other without holding the words.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import sqlite3
from collections.abc import Iterable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import erased

VERSION = "pii1"
PREFIX = VERSION + "."
#: what a sealed field reads as once its key is gone, by tag
UNREADABLE = {"n": erased.NAME, "c": None, "t": erased.TEXT}
#: the blind-index key's row (never a guest: a subject cannot be empty)
_BLIND = ("", "")
#: values never sealed: they say nothing about anyone (what an erasure writes)
_PLAIN = frozenset({erased.NAME, erased.TEXT})


class Connection(sqlite3.Connection):
    """The store's connection class: somewhere to keep the keys this connection has read
    (``_keys``: kid -> cipher, ``_subjects``: (hotel, subject) -> kid) and the database's
    ``data_version`` they were read at (another process's erasure empties them)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._keys: dict[str, AESGCM | None] = {}
        self._subjects: dict[tuple[str, str], str] = {}
        self._version = -1
        #: False: this database has no guest keys (the cloud's): nothing is sealed
        self.sealing = True


def _conn(db) -> sqlite3.Connection:
    return db.conn if hasattr(db, "conn") else db


def _fresh(conn) -> None:
    """Forget cached keys when another connection committed since (it may have destroyed one)."""
    v = conn.execute("PRAGMA data_version").fetchone()[0]
    if v != conn._version:
        conn._keys.clear()
        conn._subjects.clear()
        conn._version = v


def _has_table(conn) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'guest_keys'").fetchone() is not None


def _key_for(conn, hotel_id: str, subject: str, *, create: bool) -> tuple[str, AESGCM] | None:
    if not isinstance(conn, Connection) or not conn.sealing:
        return None
    _fresh(conn)
    kid = conn._subjects.get((hotel_id, subject))
    if kid is not None:
        return kid, conn._keys[kid]
    row = conn.execute("SELECT kid, key FROM guest_keys WHERE hotel_id = ? AND subject = ?",
                       [hotel_id, subject]).fetchone()
    if row is None:
        if not create:
            return None
        row = (os.urandom(8).hex(), AESGCM.generate_key(bit_length=256))
        conn.execute("INSERT INTO guest_keys (kid, hotel_id, subject, key) VALUES (?, ?, ?, ?)",
                     [row[0], hotel_id, subject, row[1]])
    cipher = AESGCM(bytes(row[1]))
    conn._keys[row[0]] = cipher
    conn._subjects[(hotel_id, subject)] = row[0]
    return row[0], cipher


def _cipher(conn, kid: str) -> AESGCM | None:
    if not isinstance(conn, Connection):
        return None
    _fresh(conn)
    if kid in conn._keys:
        return conn._keys[kid]
    row = conn.execute("SELECT key, hotel_id, subject FROM guest_keys WHERE kid = ?", [kid]).fetchone()
    cipher = AESGCM(bytes(row[0])) if row else None
    conn._keys[kid] = cipher
    if row:
        conn._subjects[(row[1], row[2])] = kid
    return cipher


def has_key(db, hotel_id: str, subject: str | None) -> bool:
    """Whether ``subject`` has a key here (a guest whose data this kiosk keeps sealed)."""
    return bool(subject) and _key_for(_conn(db), hotel_id, str(subject), create=False) is not None


def seal(db, hotel_id: str, subject: str | None, value: Any, tag: str = "t", *, create: bool = True) -> Any:
    """``value`` sealed under the guest's key (made, in the caller's transaction, if the guest
    has none yet; with ``create=False`` only under a key the guest has: words written to
    someone who may be staff).  Not a string, empty, already sealed, an erased marker, no
    subject, or a connection that is not the store's: ``value`` as it is."""
    if value.__class__ is not str or not value or not subject or value in _PLAIN or value.startswith(PREFIX):
        return value
    found = _key_for(_conn(db), hotel_id, str(subject), create=create)
    if found is None:
        return value
    return sealed_with(*found, value, tag)


def sealed_with(kid: str, cipher: AESGCM, value: str, tag: str) -> str:
    """``value`` sealed under the key ``kid`` (a fresh nonce; the version, tag and key id are
    the associated data)."""
    nonce = os.urandom(12)
    aad = f"{VERSION}.{tag}.{kid}".encode()
    body = base64.urlsafe_b64encode(nonce + cipher.encrypt(nonce, value.encode(), aad)).decode()
    return f"{VERSION}.{tag}.{kid}.{body}"


def open_value(conn, value: Any) -> Any:
    """A sealed value's plain text, or what it reads as once its key is gone; anything else as
    it is."""
    if value.__class__ is not str or not value.startswith(PREFIX):
        return value
    parts = value.split(".", 3)
    if len(parts) != 4 or parts[1] not in UNREADABLE:
        return value
    _v, tag, kid, body = parts
    return opened_with(_cipher(_conn(conn), kid), tag, kid, body)


def opened_with(cipher: AESGCM | None, tag: str, kid: str, body: str) -> Any:
    """A sealed value's parts opened under ``cipher`` (None: its key is gone): the plain text,
    or what the field reads as once erased (also when tampered with)."""
    if cipher is None:
        return UNREADABLE[tag]
    try:
        raw = base64.urlsafe_b64decode(body)
        return cipher.decrypt(raw[:12], raw[12:], f"{VERSION}.{tag}.{kid}".encode()).decode()
    except (InvalidTag, ValueError):
        return UNREADABLE[tag]


def row_factory(cursor: sqlite3.Cursor, row: tuple) -> tuple:
    """The store's row factory: a row with sealed values comes back with them opened."""
    for v in row:
        if v.__class__ is str and v.startswith(PREFIX):
            conn = cursor.connection
            return tuple(open_value(conn, x) for x in row)
    return row


def seal_fields(db, hotel_id: str, subject: str | None, payload: Any, *, sealer=None) -> Any:
    """A payload (an outbox entry's) with every name, contact and free-text field sealed under
    the guest's key, at any depth (the fields :mod:`kiosk.erased` scrubs).  ``sealer(value,
    tag)``: how one value is sealed (the cloud's keys: sync/cloud/guest_vault.py)."""
    if not subject:
        return payload
    if sealer is None:
        def sealer(v, tag):
            return seal(db, hotel_id, subject, v, tag)
    return _sealed_tree(payload, sealer)


def _sealed_tree(payload: Any, sealer) -> Any:
    if isinstance(payload, dict):
        out = {}
        for k, v in payload.items():
            if isinstance(v, str):
                tag = "n" if k in erased.NAME_KEYS else "c" if k in erased.CONTACT_KEYS else \
                    "t" if k in erased.TEXT_KEYS else None
                out[k] = sealer(v, tag) if tag else v
            elif k in erased.TEXT_KEYS and isinstance(v, dict) and set(v) <= {"old", "new"}:
                out[k] = {f: sealer(t, "t") for f, t in v.items()}
            else:
                out[k] = _sealed_tree(v, sealer)
        return out
    if isinstance(payload, list):
        return [_sealed_tree(v, sealer) for v in payload]
    return payload


def open_tree(db, value: Any) -> Any:
    """A payload with every sealed string in it opened (what is pushed to the cloud)."""
    if isinstance(value, dict):
        return {k: open_tree(db, v) for k, v in value.items()}
    if isinstance(value, list):
        return [open_tree(db, v) for v in value]
    return open_value(db, value)


def subject_of(db, value: Any) -> str | None:
    """The guest whose key sealed the first sealed string in ``value`` (an outbox payload), if
    this box still holds it: what the push names as the entry's ``subject``, so the cloud seals
    the same fields under its own key for that guest (sync/cloud/guest_vault.py)."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for v in value:
            found = subject_of(db, v)
            if found:
                return found
        return None
    if value.__class__ is not str or not value.startswith(PREFIX):
        return None
    parts = value.split(".", 3)
    if len(parts) != 4:
        return None
    row = _conn(db).execute("SELECT subject FROM guest_keys WHERE kid = ?", [parts[2]]).fetchone()
    return row[0] if row and row[0] else None


def destroy(db, hotel_id: str, subject: str) -> int:
    """Delete the guest's key (inside the caller's transaction): what it sealed, wherever a copy
    is, reads as erased from then on.  Returns the number of keys deleted (0 or 1)."""
    conn = _conn(db)
    if not subject:
        return 0  # never a hotel's backup key nor the index key
    n = conn.execute("DELETE FROM guest_keys WHERE hotel_id = ? AND subject = ?", [hotel_id, subject]).rowcount
    conn.execute("DELETE FROM guest_keys_wrapped WHERE hotel_id = ? AND subject = ?", [hotel_id, subject])
    if isinstance(conn, Connection):
        kid = conn._subjects.pop((hotel_id, subject), None)
        if kid is not None:
            conn._keys[kid] = None
    return n


def blind(db, terms: Iterable[str]) -> list[str]:
    """Content terms as a blind index: the first 16 hex digits of HMAC-SHA256 of each, under
    this box's index key (kept with the guests' keys, never in a backup), sorted.  Call inside
    a transaction (the key is made on first use)."""
    conn = _conn(db)
    if not isinstance(conn, Connection) or not conn.sealing:
        return sorted(set(terms))
    key = conn.__dict__.get("_index_key")
    if key is None:
        conn.execute("INSERT OR IGNORE INTO guest_keys (kid, hotel_id, subject, key) VALUES ('index', ?, ?, ?)",
                     [*_BLIND, os.urandom(32)])
        key = bytes(conn.execute("SELECT key FROM guest_keys WHERE hotel_id = ? AND subject = ?",
                                 list(_BLIND)).fetchone()[0])
        conn.__dict__["_index_key"] = key
    return sorted({hmac.new(key, t.encode(), hashlib.sha256).hexdigest()[:16] for t in terms})


def _wrap_aad(hotel_id: str, subject: str, kid: str) -> bytes:
    return f"{VERSION}.wrap.{hotel_id}.{subject}.{kid}".encode()


def hotel_key(db, hotel_id: str) -> tuple[str, bytes] | None:
    """The hotel's backup key as this kiosk last had it from its upstream (id, bytes), or None."""
    row = _conn(db).execute("SELECT kid, key FROM guest_keys WHERE hotel_id = ? AND subject = ''",
                            [hotel_id]).fetchone()
    return (row[0].removeprefix("hotel."), bytes(row[1])) if row else None


def keep_hotel_key(db, hotel_id: str, kid: str, key: bytes) -> None:
    """Keep the hotel's backup key (from the upstream; inside the caller's transaction)."""
    if len(key) != 32 or not hotel_id:
        raise ValueError("a hotel's backup key is 32 bytes, for a named hotel")
    _conn(db).execute("INSERT INTO guest_keys (kid, hotel_id, subject, key) VALUES (?, ?, '', ?)"
                      " ON CONFLICT (hotel_id, subject) DO UPDATE SET kid = excluded.kid, key = excluded.key",
                      ["hotel." + kid, hotel_id, key])


def for_backup(path: str) -> dict:
    """Make the database file ``path`` (a backup's fresh copy) hold no guest key in a form it can
    open alone: each guest's key is wrapped (AES-256-GCM) under its hotel's backup key, which the
    upstream holds and the copy does not, and every key row is deleted with ``secure_delete``
    on and the journal in memory (no byte of them stays in the file).  A guest of a hotel whose
    backup key this kiosk never had (never linked) is left out.  Returns the counts."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = MEMORY")
        conn.execute("PRAGMA secure_delete = ON")
        if not _has_table(conn):
            return {"wrapped": 0, "leftOut": 0}
        hotels = {h: (kid.removeprefix("hotel."), AESGCM(bytes(k))) for kid, h, k in conn.execute(
            "SELECT kid, hotel_id, key FROM guest_keys WHERE subject = '' AND hotel_id <> ''")}
        wrapped, left = [], 0
        for kid, hotel_id, subject, key in conn.execute(
                "SELECT kid, hotel_id, subject, key FROM guest_keys WHERE subject <> ''").fetchall():
            if hotel_id not in hotels:
                left += 1
                continue
            hkid, cipher = hotels[hotel_id]
            nonce = os.urandom(12)
            wrapped.append((kid, hotel_id, subject, nonce + cipher.encrypt(nonce, bytes(key),
                                                                          _wrap_aad(hotel_id, subject, kid)), hkid))
        conn.execute("BEGIN")
        conn.executemany("INSERT OR REPLACE INTO guest_keys_wrapped (kid, hotel_id, subject, wrapped, hotel_kid)"
                         " VALUES (?, ?, ?, ?, ?)", wrapped)
        conn.execute("DELETE FROM guest_keys")
        conn.execute("COMMIT")
        return {"wrapped": len(wrapped), "leftOut": left}
    finally:
        conn.close()


def wrapped_hotels(db) -> list[str]:
    """The hotels whose guests' keys wait wrapped (a restored backup)."""
    return [r[0] for r in _conn(db).execute("SELECT DISTINCT hotel_id FROM guest_keys_wrapped ORDER BY hotel_id")]


def unwrap(db, hotel_id: str, kid: str, key: bytes, erased: set[str]) -> dict:
    """A restored backup's wrapped keys of ``hotel_id`` unwrapped under its backup key (``kid``,
    ``key``, from the upstream) into the live keys, but those of guests in ``erased`` (erased
    since the backup: they stay unreadable); every wrapped row of the hotel deleted.  Inside the
    caller's transaction (with ``secure_delete`` on).  Returns the counts."""
    conn = _conn(db)
    cipher = AESGCM(key)
    out = {"unwrapped": 0, "erased": 0, "unreadable": 0}
    for wkid, subject, blob, hkid in conn.execute("SELECT kid, subject, wrapped, hotel_kid FROM guest_keys_wrapped"
                                                  " WHERE hotel_id = ?", [hotel_id]).fetchall():
        if subject in erased:
            out["erased"] += 1
            continue
        try:
            if hkid != kid:
                raise InvalidTag
            raw = cipher.decrypt(bytes(blob)[:12], bytes(blob)[12:], _wrap_aad(hotel_id, subject, wkid))
        except (InvalidTag, ValueError):
            out["unreadable"] += 1  # wrapped under another key (another upstream): stays unreadable
            continue
        conn.execute("INSERT OR IGNORE INTO guest_keys (kid, hotel_id, subject, key) VALUES (?, ?, ?, ?)",
                     [wkid, hotel_id, subject, raw])
        out["unwrapped"] += 1
    conn.execute("DELETE FROM guest_keys_wrapped WHERE hotel_id = ?", [hotel_id])
    if isinstance(conn, Connection):
        conn._keys.clear()
        conn._subjects.clear()
    return out


def merge_live(restored: str, live: str) -> int:
    """Give a restored database (``restored``, not yet in place) the keys this box holds now
    (``live``, the database it replaces) instead of its wrapped ones: the guests erased since
    the backup have none, so they stay erased.  Returns the number of keys taken over."""
    conn = sqlite3.connect(restored, isolation_level=None)
    try:
        conn.execute("PRAGMA secure_delete = ON")
        if not _has_table(conn):
            return 0
        conn.execute("ATTACH DATABASE ? AS live", [live])
        try:
            if conn.execute("SELECT 1 FROM live.sqlite_master WHERE name = 'guest_keys'").fetchone() is None:
                return 0
            conn.execute("BEGIN")
            n = conn.execute("INSERT OR IGNORE INTO guest_keys (kid, hotel_id, subject, key, created_at)"
                             " SELECT kid, hotel_id, subject, key, created_at FROM live.guest_keys").rowcount
            conn.execute("DELETE FROM guest_keys_wrapped")
            conn.execute("COMMIT")
            return n
        finally:
            conn.execute("DETACH DATABASE live")
    finally:
        conn.close()


def reader(path: str) -> sqlite3.Connection:
    """A read-only connection to a kiosk's database (``kiosk.db``) that opens sealed values as
    the store does: for tools and tests reading a kiosk's file from outside."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, factory=Connection)
    conn.row_factory = row_factory
    return conn
