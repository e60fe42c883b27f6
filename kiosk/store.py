"""The local SQLite store.

One file per kiosk instance, opened through sqlite-utils with WAL,
``synchronous=FULL``, a busy timeout and foreign keys.  Migrations run when a
store is opened.  Writes that must be atomic go through :func:`transaction`
(``BEGIN IMMEDIATE`` … ``COMMIT``; a ``SAVEPOINT`` when already inside one), so the consumed token, its session, the
workflow row, the audit row and the outbox rows land together or not at all.

Connections are opened in autocommit mode (``isolation_level=None``); inside a
transaction use ``db.execute`` with parameters, never the sqlite-utils write
helpers, which commit on their own.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils

from . import guest_keys
from .errors import SchemaTooNew, StorageFull, StoreBusy
from .files import PRIVATE_FILE, make_private
from .migrations import MIGRATIONS

_WRITER_LOCKS: dict[str, threading.RLock] = {}
_REGISTRY = threading.Lock()


def writer_lock(path: str | Path) -> threading.RLock:
    """One lock per database file in this process (see :func:`transaction`)."""
    key = str(Path(path).resolve())
    with _REGISTRY:
        return _WRITER_LOCKS.setdefault(key, threading.RLock())


def connect(path: str | Path, *, busy_timeout_ms: int = 5000, synchronous: str = "FULL",
            migrate: bool = True, serialize_writers: bool = True, sealed: bool = True) -> sqlite_utils.Database:
    """Open (and if needed create and migrate) the store at ``path``.

    With ``serialize_writers`` the connection's write transactions also take a
    process-wide lock for the file, so threads of one process queue for the write
    lock in order instead of sleeping in SQLite's busy handler (which backs off in
    steps up to 100 ms); other processes (the agent) still meet the busy timeout.
    With ``sealed`` (a kiosk's store) personal fields sealed under their guest's key are
    opened as rows are read (kiosk/guest_keys.py); the cloud's store holds none.
    """
    if synchronous not in ("FULL", "EXTRA", "NORMAL"):
        raise ValueError(f"synchronous={synchronous!r}")
    private_files(path)
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                           timeout=busy_timeout_ms / 1000, factory=guest_keys.Connection)
    if sealed:
        conn.row_factory = guest_keys.row_factory  # sealed personal fields read as plain text
    else:
        conn.sealing = False
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA foreign_keys = ON")
    if conn.execute("PRAGMA secure_delete").fetchone()[0] == 0:
        # deleted and overwritten content is zeroed in the pages written anyway (a guest's data
        # must not outlive its erasure in a page's free space, docs/privacy.md); many builds
        # (Debian's) default to ON already, which is kept
        conn.execute("PRAGMA secure_delete = FAST")
    db = sqlite_utils.Database(conn)
    db.writer_lock = writer_lock(path) if serialize_writers else None
    db.busy_timeout_s = busy_timeout_ms / 1000
    if migrate:
        run_migrations(db)
    return db


def private_files(path: str | Path) -> None:
    """Create the database file 0600 whatever the umask (SQLite would make it 0644 under the
    usual 022, and gives its -wal and -shm files the database's mode), and take group and
    other bits off an older one and its -wal, -shm and -journal: they hold guest data."""
    name = str(path)
    if name in ("", ":memory:") or name.startswith("file:"):
        return
    # Only a database that does not exist yet is opened here: closing a descriptor of a
    # database this process already has open would drop its connections' locks (files.make_private).
    if not os.path.lexists(name):
        try:
            os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE))
        except FileExistsError:  # made meanwhile by another connection: made private below
            pass
        except OSError:  # no such directory, a read-only mount…: SQLite says so in its own words
            return
    for suffix in ("", "-wal", "-shm", "-journal"):
        make_private(name + suffix)


def schema_version(db: sqlite_utils.Database) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def run_migrations(db: sqlite_utils.Database, migrations: list[list[str]] = MIGRATIONS) -> int:
    """Apply pending migrations, each in its own transaction; returns the number applied.

    ``migrations`` is the kiosk's by default; the reference cloud passes its own.
    """
    applied = 0
    found = schema_version(db)
    if found > len(migrations):
        raise SchemaTooNew(f"the database is at schema version {found}; this version of the program knows"
                           f" {len(migrations)}: it was written by a newer version",
                           {"schemaVersion": found, "known": len(migrations)})
    while True:
        with transaction(db):
            current = schema_version(db)
            if current >= len(migrations):
                return applied
            for stmt in migrations[current]:
                db.execute(stmt)
            db.execute(f"PRAGMA user_version = {current + 1}")
        applied += 1


@contextlib.contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``; rolls back on any exception.

    Inside another transaction of the same connection (and thread: the writer lock is
    re-entrant) it joins it as a ``SAVEPOINT``: an exception rolls back what this block
    wrote and goes on up, and nothing is committed until the outermost block ends.  So a
    function that owns a table (``workorders.create``, ``tokens.revoke_remote``…) opens its
    own transaction and is still usable inside a larger one (a pulled page, a scan).
    """
    lock = getattr(db, "writer_lock", None)
    if lock is not None and not lock.acquire(timeout=getattr(db, "busy_timeout_s", 5.0)):
        raise StoreBusy("the local store is busy; try again", {"reason": "in-process writer queue"})
    try:
        if db.conn.in_transaction:
            with _savepoint(db):
                yield db
            return
        try:
            db.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise StoreBusy("the local store is busy; try again", {"reason": str(e)}) from e
            raise
        try:
            yield db
        except BaseException as e:
            db.conn.rollback()
            _raise_if_full(e)
            raise
        else:
            try:
                db.conn.execute("COMMIT")
            except BaseException as e:  # e.g. disk full or I/O error: leave no transaction open
                if db.conn.in_transaction:
                    db.conn.rollback()
                _raise_if_full(e)
                raise
    finally:
        if lock is not None:
            lock.release()


@contextlib.contextmanager
def _savepoint(db: sqlite_utils.Database) -> Iterator[None]:
    depth = db.__dict__.get("_savepoints", 0) + 1
    db.__dict__["_savepoints"] = depth
    name = f"sp_{depth}"
    db.conn.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute(f"ROLLBACK TO {name}")
            db.conn.execute(f"RELEASE {name}")
        raise
    else:
        db.conn.execute(f"RELEASE {name}")
    finally:
        db.__dict__["_savepoints"] = depth - 1


#: ``PRAGMA secure_delete``'s answer -> the word that sets it again
SECURE_DELETE_WORDS = {0: "OFF", 1: "ON", 2: "FAST"}


@contextlib.contextmanager
def secure_delete(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """Within (call outside a transaction): what this connection deletes or overwrites is zeroed
    in the file, freed pages included (``PRAGMA secure_delete=ON``); then the setting as it
    was.  A guest's erasure is applied in it (sync/kinds/guest_erasure.py)."""
    before = db.conn.execute("PRAGMA secure_delete").fetchone()[0]
    db.conn.execute("PRAGMA secure_delete = ON")
    try:
        yield db
    finally:
        db.conn.execute(f"PRAGMA secure_delete = {SECURE_DELETE_WORDS.get(before, 'FAST')}")


def checkpoint_truncate(db: sqlite_utils.Database, attempts: int = 5) -> bool:
    """Copy the write-ahead log into the database and truncate it to nothing (``PRAGMA
    wal_checkpoint(TRUNCATE)``, outside a transaction), so no older copy of a page stays in
    the ``-wal`` file: after a commit whose old bytes must be gone (a guest's erasure).  A
    reader of an older snapshot (another process) can keep it from finishing: tried again a
    few times; False if it never finished (the next checkpoint will)."""
    import time

    for i in range(attempts):
        busy, _log, _done = db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if not busy:
            return True
        time.sleep(0.05 * (i + 1))
    return False


def _raise_if_full(exc: BaseException) -> None:
    """SQLite's "database or disk is full" (SQLITE_FULL) is STORAGE_FULL: nothing was changed."""
    if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
        raise StorageFull("the disk is full; nothing was changed", {"reason": str(exc)}) from exc
