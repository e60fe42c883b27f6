"""The cloud's (and a property hub's) guest keys: personal fields sealed at rest under a key per
guest, the keys in a file of their own (docs/privacy.md, "A key per guest at the cloud").

The cloud holds what kiosks hold of a guest, and more: the PMS's reservations (name, e-mail,
phone), the words of their requests and of replies to them, their questions and messages in
the event log, a service request on its way to the PMS, and on a hub the relay queue's
copies.  Each of those fields is stored *sealed* exactly as a kiosk seals it
(kiosk/guest_keys.py: ``pii1.<tag>.<kid>.<AES-256-GCM>``), under the guest's data key:

* the key of (hotel, confirmation number) for a reservation, its change-log copies, the
  guest's requests (a guest's ``created_by`` is the confirmation) and whatever a kiosk pushes
  about them: a kiosk's entry names its guest (``subject``, docs/sync-protocol.md) when its
  payload holds that guest's sealed fields;
* the keys live in ``guest-keys.db`` beside ``cloud.db`` (the data directory; with PostgreSQL
  too, so the database, its base backups and its WAL archive hold only sealed values), in the
  ``guest_keys`` table a kiosk uses.  **A backup of the cloud's database never holds a key**:
  the vault is backed up apart, for no longer than the retention it must honour
  (docs/operations.md), or not at all.

Reading is transparent: the storage's connections open sealed values as rows are fetched,
whole column values and values inside a JSON column alike (:func:`open_row`), so queries,
comparisons, the pull, the PMS's requests, exports and screens see plain text, as before.

A guest's erasure (sync/cloud/erasure.py) deletes the key (:func:`destroy`: ``secure_delete``
and a truncated WAL in the vault): from then on every copy of their fields (in ``cloud.db``,
PostgreSQL's dead tuples and WAL, every backup made before) reads as erased.  A guest erased
here gets no new key: what arrives about them later is stored as erased.

Keys are made in a short transaction of the vault's own, committed before the data they seal
(no lock is held across the two databases, so several workers never wait on each other in a
cycle); a transaction of ``cloud.db`` rolled back leaves an unused key, which seals nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterable
from json.encoder import encode_basestring_ascii as _encode_string  # json.dumps' own quoting (C)
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kiosk import erased, guest_keys, migrations
from kiosk.files import fsync_dir

FILENAME = "guest-keys.db"
#: how long a connection trusts that a subject has no key (:attr:`Keys.absent`)
ABSENT_SECONDS = 5.0
#: the change log's entity types that hold a guest's fields (:func:`seal_change`)
SEALED_CHANGES = frozenset({"reservation", "ticket"})
#: a sealed string inside a JSON text (base64url body; nothing to unescape)
_EMBEDDED = re.compile(r'"(pii1\.[nct]\.[0-9a-f]+\.[A-Za-z0-9_=-]+)"')
_SCHEMA = [
    migrations.GUEST_KEYS.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1),  # a kiosk's table
    # the ids of keys destroyed (random, naming nobody): how a connection's cache forgets them
    """CREATE TABLE IF NOT EXISTS destroyed_keys (seq INTEGER PRIMARY KEY AUTOINCREMENT, kid TEXT NOT NULL)""",
    # each hotel's backup key, which kiosks wrap their backups' guest keys under (written by
    # sync/cloud/backup_keys.py; an earlier version kept it in the cloud's database)
    """CREATE TABLE IF NOT EXISTS hotel_backup_keys (
        hotel_id TEXT PRIMARY KEY, kid TEXT NOT NULL, key TEXT NOT NULL, created_at REAL NOT NULL
    )""",
]


class Keys:
    """One thread's connection to the vault and the keys it has read: kid -> cipher (None: a
    key that does not exist, or was destroyed), (hotel, subject) -> kid.  Keys never change,
    so the cache is kept; when another connection committed (SQLite's ``data_version``) the
    keys destroyed since are dropped from it (``destroyed_keys``), read once per row read."""

    def __init__(self, path: Path):
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = FULL")
        self.conn.execute("PRAGMA secure_delete = ON")  # a deleted key's bytes are zeroed in the file
        for sql in _SCHEMA:
            self.conn.execute(sql)
        self.ciphers: dict[str, AESGCM | None] = {}
        self.kids: dict[tuple[str, str], str] = {}
        #: (hotel, subject) found to have no key, and when: staff who open tickets are asked
        #: about at every push; a key made since by another process is seen within
        #: :data:`ABSENT_SECONDS`, or at once when this connection sees the vault change
        self.absent: dict[tuple[str, str], float] = {}
        self.version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        self.seen = self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM destroyed_keys").fetchone()[0]

    def fresh(self) -> None:
        """Forget the keys another connection destroyed since the last look."""
        v = self.conn.execute("PRAGMA data_version").fetchone()[0]
        if v == self.version:
            return
        self.version = v
        self.absent.clear()
        for seq, kid in self.conn.execute("SELECT seq, kid FROM destroyed_keys WHERE seq > ? ORDER BY seq",
                                          [self.seen]).fetchall():
            self.seen = seq
            self._forget(kid)

    def _forget(self, kid: str) -> None:
        self.ciphers[kid] = None
        for k in [k for k, v in self.kids.items() if v == kid]:
            del self.kids[k]

    def _keep(self, kid: str, hotel_id: str, subject: str, key: bytes) -> AESGCM:
        """A key read from the file, into the cache."""
        self.ciphers[kid] = cipher = AESGCM(bytes(key))
        self.kids[(hotel_id, subject)] = kid
        self.absent.pop((hotel_id, subject), None)
        return cipher

    def cipher(self, kid: str) -> AESGCM | None:
        if kid not in self.ciphers:
            row = self.conn.execute("SELECT hotel_id, subject, key FROM guest_keys WHERE kid = ?", [kid]).fetchone()
            self.ciphers[kid] = self._keep(kid, *row) if row else None
        return self.ciphers[kid]

    def of(self, hotel_id: str, subject: str) -> tuple[str, AESGCM] | None:
        """The guest's key (cached; a key destroyed since it was cached seals what is written
        now unreadable: the guest was erased, which is right)."""
        kid = self.kids.get((hotel_id, subject))
        if kid is not None and self.ciphers.get(kid) is not None:
            return kid, self.ciphers[kid]
        since = self.absent.get((hotel_id, subject))
        if since is not None and time.monotonic() - since < ABSENT_SECONDS:
            return None
        row = self.conn.execute("SELECT kid, key FROM guest_keys WHERE hotel_id = ? AND subject = ?",
                                [hotel_id, subject]).fetchone()
        if row is None:
            self.absent[(hotel_id, subject)] = time.monotonic()
            return None
        return row[0], self._keep(row[0], hotel_id, subject, row[1])

    def load(self, hotel_id: str, subjects: set[str]) -> set[str]:
        """The keys of ``subjects`` into the cache, a query per 500; returns the subjects found."""
        found = set()
        listed = sorted(subjects)
        for at in range(0, len(listed), 500):
            chunk = listed[at:at + 500]
            for kid, subject, key in self.conn.execute(
                    f"SELECT kid, subject, key FROM guest_keys WHERE hotel_id = ? AND subject IN"
                    f" ({', '.join('?' * len(chunk))})", [hotel_id, *chunk]):
                self._keep(kid, hotel_id, subject, key)
                found.add(subject)
        return found

    @contextlib.contextmanager
    def transaction(self):
        """One short write transaction of the vault (committed at the end, rolled back on an
        exception)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")


class Vault:
    """``guest-keys.db``: one :class:`Keys` per thread (SQLite, WAL, autocommit: each write a
    short transaction of its own), shared by a storage's connections as ``db.vault``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._local = threading.local()

    def prepare(self) -> None:
        """Create the file (0600, its directory entry synced) and its tables."""
        self.keys()

    def keys(self) -> Keys:
        """This thread's keys (the file and its tables made on first use)."""
        k = getattr(self._local, "keys", None)
        if k is None:
            if not self.path.exists():
                os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
                fsync_dir(self.path.parent)
            k = self._local.keys = Keys(self.path)
        return k


def of(db) -> Vault | None:
    """The vault of a storage connection (None: nothing is sealed, e.g. a bare test database)."""
    return getattr(db, "vault", None)


def _erased(db, hotel_id: str, subjects: Iterable[str]) -> set[str]:
    subjects = sorted(set(subjects))
    out: set[str] = set()
    for at in range(0, len(subjects), 500):
        chunk = subjects[at:at + 500]
        out |= {r[0] for r in db.execute(
            f"SELECT confirmation FROM guest_erasures WHERE hotel_id = ? AND confirmation IN"
            f" ({', '.join('?' * len(chunk))})", [hotel_id, *chunk]).fetchall()}
    return out


def ensure(db, hotel_id: str, subjects: Iterable[str]) -> None:
    """Make the keys ``subjects`` of ``hotel_id`` lack, in one short transaction of the vault
    (committed before the caller's data); none for a guest erased here.  Every key of
    ``subjects`` is in the cache after (a batch then seals without a read a value)."""
    vault = of(db)
    if vault is None:
        return
    keys = vault.keys()
    keys.fresh()
    wanted = {str(s) for s in subjects if s}
    wanted -= {s for s in wanted if keys.ciphers.get(keys.kids.get((hotel_id, s), "")) is not None}
    if not wanted:
        return
    have = keys.load(hotel_id, wanted)
    missing = sorted(wanted - have - _erased(db, hotel_id, wanted - have))
    if not missing:
        return
    with keys.transaction() as conn:
        conn.executemany("INSERT OR IGNORE INTO guest_keys (kid, hotel_id, subject, key) VALUES (?, ?, ?, ?)",
                         [(os.urandom(8).hex(), hotel_id, s, AESGCM.generate_key(bit_length=256)) for s in missing])
    keys.load(hotel_id, set(missing))


def seal(db, hotel_id: str, subject: str | None, value: Any, tag: str = "t", *, create: bool = True) -> Any:
    """``value`` sealed under the guest's key (made first if the guest has none and ``create``);
    a guest erased here: what their erasure writes; no key and not ``create``, no subject, not a
    string, already sealed, or no vault: ``value`` as it is."""
    vault = of(db)
    if (vault is None or value.__class__ is not str or not value or not subject or value in guest_keys._PLAIN
            or value.startswith(guest_keys.PREFIX)):
        return value
    keys = vault.keys()
    subject = str(subject)
    found = keys.of(hotel_id, subject)
    if found is None:
        if not create:
            return value
        ensure(db, hotel_id, [subject])
        found = keys.of(hotel_id, subject)
        if found is None:  # erased here: never readable again
            return guest_keys.UNREADABLE[tag]
    return guest_keys.sealed_with(*found, value, tag)


def seal_fields(db, hotel_id: str, subject: str | None, payload: Any, *, create: bool = True) -> Any:
    """A payload with every name, contact and free-text field sealed under the guest's key (the
    fields a kiosk seals: kiosk/guest_keys.py's ``seal_fields``)."""
    if of(db) is None or not subject:
        return payload
    return guest_keys.seal_fields(None, hotel_id, subject, payload,
                                  sealer=lambda v, tag: seal(db, hotel_id, subject, v, tag, create=create))


def seal_reservation(db, hotel_id: str, confirmation: str, row: dict) -> dict:
    """A reservation's row with every field that says who the guest is sealed under their key
    (every text field but those :data:`kiosk.erased.RESERVATION_KEPT` keeps: the ones their
    erasure clears)."""
    if of(db) is None:
        return row
    return {k: v if k in erased.RESERVATION_KEPT or v.__class__ is not str else
            seal(db, hotel_id, confirmation, v,
                 "n" if k in erased.NAME_KEYS else "c" if k in erased.CONTACT_KEYS else "t")
            for k, v in row.items()}


def seal_change(db, hotel_id: str, entity_type: str, entity_id: str, data: dict) -> dict:
    """A change's data as the change log keeps it: a reservation sealed under its guest's key,
    a ticket's words under its creator's key if they have one (a guest: their requests)."""
    if of(db) is None or not isinstance(data, dict):
        return data
    if entity_type == "reservation":
        return seal_reservation(db, hotel_id, entity_id, data)
    if entity_type == "ticket":  # (a staff member's ticket, most of them: nothing to look through)
        subject = data.get("createdBy")
        return seal_fields(db, hotel_id, subject, data, create=False) if has_key(db, hotel_id, subject) else data
    return data


def subject_of(e) -> str | None:
    """The guest a kiosk's entry is about, as the kiosk named it (``subject``), else None."""
    return getattr(e, "subject", None) or None


def has_key(db, hotel_id: str, subject: str | None) -> bool:
    vault = of(db)
    return vault is not None and bool(subject) and vault.keys().of(hotel_id, str(subject)) is not None


def _quoted(value: Any) -> str:
    return "null" if value is None else _encode_string(value)


def open_text(keys: Keys, value: str) -> Any:
    """A column value with its sealed values opened: the whole value, or each sealed string
    inside a JSON text (the caller checked the cache is current: :meth:`Keys.fresh`)."""
    if value.startswith(guest_keys.PREFIX):
        return _open(keys, value)
    if '"pii1.' not in value:
        return value
    return _EMBEDDED.sub(lambda m: _quoted(_open(keys, m.group(1))), value)


def _open(keys: Keys, value: str) -> Any:
    parts = value.split(".", 3)
    if len(parts) != 4 or parts[1] not in guest_keys.UNREADABLE:
        return value
    _v, tag, kid, body = parts
    cipher = keys.ciphers[kid] if kid in keys.ciphers else keys.cipher(kid)
    return guest_keys.opened_with(cipher, tag, kid, body)


def open_row(vault: Vault, row: tuple) -> tuple:
    """A fetched row with every sealed value in it opened (the storage's reads); the cache
    checked once for the row (a key another process destroyed is forgotten)."""
    for v in row:
        if v.__class__ is str and "pii1." in v:
            keys = vault.keys()
            keys.fresh()
            return tuple(open_text(keys, x) if x.__class__ is str else x for x in row)
    return row


def row_factory(vault: Vault):
    """A SQLite row factory over ``vault`` (the cloud's SQLite connections)."""
    return lambda _cursor, row: open_row(vault, row)


def destroy(db, hotel_id: str, subject: str) -> int:
    """Delete the guest's key (its id logged in ``destroyed_keys`` for the other connections'
    caches), its bytes zeroed in the vault's file and its WAL truncated: what it sealed,
    wherever a copy is, reads as erased from then on.  Returns 0 or 1."""
    vault = of(db)
    if vault is None or not subject:
        return 0
    keys = vault.keys()
    row = keys.conn.execute("SELECT kid FROM guest_keys WHERE hotel_id = ? AND subject = ?",
                            [hotel_id, subject]).fetchone()
    if row is None:
        return 0
    with keys.transaction() as conn:
        conn.execute("DELETE FROM guest_keys WHERE kid = ?", [row[0]])
        conn.execute("INSERT INTO destroyed_keys (kid) VALUES (?)", [row[0]])
    keys._forget(row[0])
    with contextlib.suppress(sqlite3.OperationalError):
        keys.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return 1
