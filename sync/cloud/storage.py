"""Where the cloud keeps its data: one declared interface, two implementations.

* :class:`CloudStorage` — what the cloud needs of a database (the interface, an abstract
  base class like huey's ``BaseStorage``; tests/test_cloud_storage.py is its contract,
  run against every implementation).
* :class:`SqliteStorage` — ``cloud.db`` in the data dir (the embedded default: a demo, the
  tests, one hotel; one process).
* :class:`PostgresStorage` — ``--database postgresql://…`` (a chain: several stateless
  worker processes, on more machines, against one PostgreSQL), psycopg 3 with a
  connection pool.

The cloud's modules speak to a connection of either through the same small surface, the
one ``sqlite_utils.Database`` already gave them: ``db.execute(sql, params)`` (a cursor with
``fetchone``/``fetchall``/``rowcount``), ``db.conn.execute``, ``db.conn.executemany``,
``db.query(sql, params)`` (dict rows), and :func:`transaction` / :func:`lock_hotels`
around writes (each connection knows its backend: ``db.backend``).  :func:`pipeline` around
a transaction lets PostgreSQL's statements go without waiting for each answer (a push waits
four times whatever its size); :func:`one_statement` around a single write spares PostgreSQL
a ``BEGIN`` and a ``COMMIT``.  Both change nothing on SQLite.  SQL is written once,
portably, in the ``qmark`` parameter style (``?``; PostgreSQL's class turns it into
PostgreSQL's own ``$1``, ``$2``…), with ``INSERT … ON CONFLICT``, ``RETURNING``, ``GREATEST``/``LEAST``
(registered for SQLite), no SQLite date functions.  The schema is written once too
(sync/cloud/schema.py), its column types named; each backend gives their names in its own
words (``column_types``).

Ordering under concurrency (which one SQLite writer gave for free): every change-log row
takes its sequence number from a per-hotel counter row in the same transaction
(``changelog.record``), so on PostgreSQL the row lock makes commit order equal sequence
order per hotel — a puller can never skip a change that commits late — and a push takes a
per-hotel transaction lock (:func:`lock_hotels`) before it judges anything, so two kiosks
pushing the same entity are judged in one order and two workers given the same
Idempotency-Key apply it once.  Hotels stay parallel.  A push locks only the hotels its
device serves: its entries for any other hotel are refused without waiting for (or
holding up) that hotel.

Adding a backend: docs/architecture.md, "Cloud storage backends".
"""

from __future__ import annotations

import abc
import contextlib
import functools
import hashlib
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar

from kiosk import store
from kiosk.errors import ConfigError, DatabaseUnavailable, KioskError
from kiosk.files import fsync_dir, make_dirs

from . import guest_vault, pg_inserts, schema

FILENAME = "cloud.db"


class CloudStorage(abc.ABC):
    """What the cloud needs of a database.

    A storage object is made once per process (``open_storage``), is safe to share
    between threads, and hands out connections: :meth:`connect` (the calling thread's
    own, kept) for commands and background jobs, :meth:`acquire` / :meth:`release` around
    one HTTP request.  Connections have the surface described in the module docstring and
    carry their backend's class as ``db.backend``, so :func:`transaction` and
    :func:`lock_hotels` need only the connection.
    """

    #: the backend's name (``sqlite``, ``postgresql``)
    dialect: ClassVar[str]
    #: the parameter style the cloud's SQL is written in; a backend that speaks another
    #: translates it in its connection's ``execute``
    paramstyle: ClassVar[str] = "qmark"
    #: the schema's column types in this backend's words (sync/cloud/schema.py)
    column_types: ClassVar[dict[str, str]]
    #: how many server processes may share the database (``None``: any number)
    processes: int | None
    #: the guests' keys (sync/cloud/guest_vault.py): ``guest-keys.db`` in the data dir; None:
    #: no personal field is sealed (a PostgreSQL storage opened without a data dir)
    vault: guest_vault.Vault | None = None

    @abc.abstractmethod
    def prepare(self) -> None:
        """Make the database ready for use: create it if missing, then :meth:`migrate`."""

    @abc.abstractmethod
    def migrate(self) -> int:
        """Apply the pending migrations of sync/cloud/schema.py, each in its own
        transaction; returns how many (0 when the schema is current).  Safe to run at once
        from several processes, and again."""

    @abc.abstractmethod
    def connect(self, migrate: bool = False):
        """A connection for the calling thread (``migrate``: :meth:`prepare` first)."""

    @abc.abstractmethod
    def acquire(self):
        """A connection for one request; give it back with :meth:`release`."""

    @abc.abstractmethod
    def release(self, db) -> None:
        """Give back a connection from :meth:`acquire` (what it left open is rolled back)."""

    def ping(self) -> None:
        """One round trip to the database (``DatabaseUnavailable`` if it does not answer)."""
        d = self.acquire()
        try:
            d.execute("SELECT 1").fetchone()
        except KioskError:
            raise
        except Exception as e:
            raise self.unavailable(e) from None
        finally:
            self.release(d)

    def unavailable(self, exc: BaseException) -> KioskError:
        """``DATABASE_UNAVAILABLE``, in one line, for a database that did not answer."""
        return KioskError(f"the database did not answer: {str(exc).splitlines()[0][:300] if str(exc) else exc!r}",
                          {}, code="DATABASE_UNAVAILABLE")

    @abc.abstractmethod
    def close(self) -> None:
        """Close what the storage holds open (a pool); connections handed out end with it."""

    def schema(self) -> list[list[str]]:
        """The migrations in this backend's words."""
        return schema.migrations(self.column_types)

    @classmethod
    @abc.abstractmethod
    def transaction(cls, db) -> AbstractContextManager:
        """One write transaction on ``db``, committed at the end, rolled back on any
        exception.  Inside another on the same connection it joins it as a savepoint: an
        exception rolls back what the inner block wrote and goes on up; nothing is
        committed before the outermost block ends."""

    @classmethod
    @abc.abstractmethod
    def lock_hotels(cls, db, hotels: Iterable[str]) -> None:
        """Inside a transaction: wait for, then hold until it ends, each hotel's lock, so
        two writers of one hotel go one after the other (and writers of different hotels
        need not)."""


def _greatest(*args):
    vals = [a for a in args if a is not None]
    return max(vals) if vals else None


def _least(*args):
    vals = [a for a in args if a is not None]
    return min(vals) if vals else None


# --- SQLite ----------------------------------------------------------------------------------

#: each connection's page cache (16 MiB; SQLite's default is 2 MiB) and how many pages the
#: write-ahead log takes before a commit copies it into the database (10,000 pages, 40 MiB;
#: the default is 1,000), the log cut back to 64 MiB after.  A push of 500 tickets dirties
#: pages in ten B-trees (tickets, changes, remembered keys and their indexes): with the
#: defaults, a 100,000-entry drain re-read pages it had just written (8 reads an entry) and
#: copied the log into the database every few pushes, a page written over and over each
#: time.  Measured (bench/README.md): a 100,000-entry drain's cloud spent 40 % less system
#: time, and the drain's push took 12-30 % less time.
_SQLITE_TUNING = ("PRAGMA cache_size = -16384", "PRAGMA wal_autocheckpoint = 10000",
                  "PRAGMA journal_size_limit = 67108864")


class SqliteStorage(CloudStorage):
    """``cloud.db`` in the data dir, opened like the kiosk's store (kiosk/store.py: WAL,
    ``synchronous=FULL``, busy timeout, ``BEGIN IMMEDIATE``); the schema version is
    ``PRAGMA user_version``."""

    dialect = "sqlite"
    column_types = schema.SQLITE_TYPES
    processes = 1  # one writer: more worker processes would only wait for each other

    def __init__(self, data_dir: str | Path):
        self.root = Path(data_dir)
        self.path = self.root / FILENAME
        self.url = f"sqlite:///{self.path}"
        self._local = threading.local()
        self.vault = guest_vault.Vault(self.root / guest_vault.FILENAME)

    def prepare(self) -> None:
        """Create the data dir (0700) and the database (0600), and migrate."""
        make_dirs(self.root)  # each new directory fsync'ed into its parent: a power cut keeps it
        self.root.chmod(0o700)
        os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        fsync_dir(self.root)  # cloud.db's own directory entry (docs/durability.md)
        self.path.chmod(0o600)
        self.vault.prepare()
        for extra in (self.path.with_name(self.path.name + "-wal"), self.path.with_name(self.path.name + "-shm")):
            # a CLI command closing the database just now deletes these: gone is fine (the
            # power-cut suite found `serve` failing to start on exactly that race)
            with contextlib.suppress(FileNotFoundError):
                extra.chmod(0o600)
        self.migrate()

    def migrate(self) -> int:
        d = self.connect(migrate=False)
        try:
            return self.migrate_connection(d)
        finally:
            d.conn.close()

    @classmethod
    def migrate_connection(cls, d) -> int:
        """:meth:`migrate` on an open connection (kiosk/store.py's runner, the cloud's schema)."""
        return store.run_migrations(d, schema.migrations(cls.column_types))

    def connect(self, migrate: bool = False):
        """A new connection to ``cloud.db`` (the caller closes it: ``d.conn.close()``)."""
        d = store.connect(self.path, migrate=False, sealed=False)
        for pragma in _SQLITE_TUNING:
            d.conn.execute(pragma)
        d.conn.create_function("greatest", -1, _greatest, deterministic=True)
        d.conn.create_function("least", -1, _least, deterministic=True)
        d.dialect, d.backend = self.dialect, SqliteStorage
        d.vault = self.vault
        d.conn.row_factory = guest_vault.row_factory(self.vault)  # sealed personal fields read as plain
        if migrate:
            self.migrate_connection(d)
        return d

    def acquire(self):
        """The calling thread's connection, opened on first use and kept (SQLite connections
        are cheap to keep; one writer at a time whatever their number)."""
        d = getattr(self._local, "db", None)
        if d is None:
            d = self._local.db = self.connect()
        return d

    def release(self, db) -> None:
        pass  # kept for the thread's next request

    def close(self) -> None:
        pass  # nothing shared: each connection is its thread's

    @classmethod
    def transaction(cls, db) -> AbstractContextManager:
        return store.transaction(db)  # BEGIN IMMEDIATE, or a SAVEPOINT inside one

    @classmethod
    def lock_hotels(cls, db, hotels: Iterable[str]) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already made this the only writer."""


# --- PostgreSQL --------------------------------------------------------------------------------

@functools.lru_cache(maxsize=2048)
def to_pg(sql: str) -> str:
    """``?`` placeholders to PostgreSQL's own ``$1``, ``$2``…, which psycopg's ``RawCursor``
    sends as they are.  Each text is converted once: psycopg parses a query for its ``%s``
    at every execution once it has more than 50 parameters (a push's ``IN (…)`` lists have
    hundreds), and that parse was a millisecond of each push."""
    return pg_inserts.numbered(sql)


class PgCursor:
    """A cursor whose rows come with their sealed personal fields opened (as SQLite's row
    factory opens them: sync/cloud/guest_vault.py).  Inside :func:`pipeline` its statement
    may not be answered yet: reading anything of it first waits for the answers of every
    statement sent so far (one round trip for all of them)."""

    def __init__(self, cur, vault=None, db: PgDatabase | None = None, sent: int = 0):
        self._cur = cur
        self._vault = vault
        self._db, self._sent = db, sent

    def _ready(self) -> None:
        if self._db is not None:
            self._db.answered(self._sent)

    def fetchone(self):
        self._ready()
        row = self._cur.fetchone() if self._cur.description else None
        return row if row is None or self._vault is None else guest_vault.open_row(self._vault, row)

    def fetchall(self):
        self._ready()
        rows = self._cur.fetchall() if self._cur.description else []
        if self._vault is None:
            return rows
        return [guest_vault.open_row(self._vault, r) for r in rows]

    def __iter__(self):
        return iter(self.fetchall())

    @property
    def rowcount(self) -> int:
        self._ready()
        return self._cur.rowcount

    @property
    def description(self):
        self._ready()
        return self._cur.description


#: (host, port, database, table) -> its columns' types (:meth:`PgDatabase.column_types`)
_COLUMN_TYPES: dict[tuple, dict[str, str]] = {}


def _raw_cursor(conn):
    from psycopg import RawCursor  # imported with the pool: a SQLite cloud needs no psycopg

    return RawCursor(conn)


class PgDatabase:
    """A pooled PostgreSQL connection with the surface the cloud's modules use."""

    dialect = "postgresql"

    def __init__(self, conn, vault: guest_vault.Vault | None = None):
        self.raw = conn
        self.conn = self  # code written for sqlite_utils says db.conn.execute(...)
        self.backend = PostgresStorage
        self.vault = vault
        self._pipeline = None  # psycopg's Pipeline while :func:`pipeline` is open
        self._sent = self._synced = 0  # statements sent in it, and how many of them are answered

    def execute(self, sql: str, params: Any = ()) -> PgCursor:
        cur = _raw_cursor(self.raw)
        cur.execute(to_pg(sql), list(params) if params else None)
        if self._pipeline is None:
            return PgCursor(cur, self.vault)
        self._sent += 1
        return PgCursor(cur, self.vault, self, self._sent)

    def executemany(self, sql: str, seq) -> None:
        """``sql`` for each row of ``seq``.  An ``INSERT … VALUES (…)`` goes as ONE statement
        (sync/cloud/pg_inserts.py): its rows as one JSON parameter where every value is of its
        column's kind, else as multi-row ``VALUES`` (at most :data:`~.pg_inserts.MULTI_ROW_PARAMS`
        parameters a statement).  The server executes it once instead of once per row
        (psycopg's pipelined ``executemany`` still costs an execution per row: bench/README.md).
        Anything else, and an ``ON CONFLICT … DO UPDATE`` whose rows name one key twice, goes
        row by row."""
        rows = [list(p) for p in seq]
        one = pg_inserts.json_rows(sql, rows, self.column_types)
        batched = [one] if one is not None else pg_inserts.multi_row(sql, rows)
        cur = _raw_cursor(self.raw)  # $n placeholders, sent as they are (no client-side parse)
        if batched is None:
            cur.executemany(to_pg(sql), rows)
        else:
            for text, params in batched:
                cur.execute(text, params)
        if self._pipeline is not None:
            self._sent += 1  # answered with the next statement whose answer is read
        else:
            cur.close()

    def column_types(self, table: str) -> dict[str, str]:
        """``table``'s columns and their types as PostgreSQL names them, read once per process
        and database (a read inside :func:`pipeline` waits for the answers sent before it)."""
        info = self.raw.info
        key = (info.host, info.port, info.dbname, table)
        known = _COLUMN_TYPES.get(key)
        if known is None:
            cur = _raw_cursor(self.raw)
            cur.execute("SELECT attname, format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid ="
                        " to_regclass($1) AND attnum > 0 AND NOT attisdropped", [table])
            known = _COLUMN_TYPES[key] = dict(cur.fetchall())
        return known

    def query(self, sql: str, params: Any = ()) -> Iterator[dict]:
        cur = self.execute(sql, params)
        if cur.description is None:
            return iter(())
        names = [c.name for c in cur.description]
        return (dict(zip(names, row, strict=True)) for row in cur.fetchall())

    def answered(self, sent: int) -> None:
        """Inside :func:`pipeline`: the answers of the statements sent so far, once, if the
        ``sent``-th is not answered yet (a database error in any of them is raised here)."""
        if self._pipeline is not None and sent > self._synced:
            self._synced = self._sent
            self._pipeline.sync()

    @contextlib.contextmanager
    def pipelined(self) -> Iterator[PgDatabase]:
        """Statements sent without waiting for each answer (psycopg's pipeline mode): what is
        only written goes with the next statement whose answer is read, so a push costs a
        round trip per read, not per statement.  A database error surfaces at that read or at
        the end (and fails the transaction around it all the same)."""
        if self._pipeline is not None:
            yield self
            return
        with self.raw.pipeline() as p:
            self._pipeline, self._sent, self._synced = p, 0, 0
            try:
                yield self
            finally:
                self._pipeline = None

    def close(self) -> None:
        pass


#: how long a connection attempt to PostgreSQL may take, and how long a request waits for a
#: pooled connection, before the answer is DATABASE_UNAVAILABLE
CONNECT_TIMEOUT_SECONDS = 5
POOL_TIMEOUT_SECONDS = 8.0
#: the advisory lock migrations run under (several workers may start at once)
MIGRATION_LOCK = 727274


class PostgresStorage(CloudStorage):
    """A PostgreSQL database behind a pool of autocommit connections; the schema version is
    the ``schema_version`` table."""

    dialect = "postgresql"
    paramstyle = "qmark"  # written so; PgDatabase.execute says it as PostgreSQL's $1… (to_pg)
    column_types = schema.POSTGRES_TYPES

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 16, data_dir: str | Path | None = None):
        self.url = url
        self.root = Path(data_dir) if data_dir is not None else None
        self.vault = guest_vault.Vault(self.root / guest_vault.FILENAME) if self.root is not None else None
        self.min_size, self.max_size = min_size, max_size
        self._pool = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self.processes = None  # any number: stateless workers

    def _where(self) -> str:
        """``host:port/dbname`` of the URL (never its password)."""
        from psycopg.conninfo import conninfo_to_dict

        try:
            d = conninfo_to_dict(self.url)
        except Exception:
            return "the --database URL"
        return f"{d.get('host') or 'localhost'}:{d.get('port') or 5432}/{d.get('dbname') or ''}"

    def unavailable(self, exc: BaseException) -> DatabaseUnavailable:
        """One line for a database that does not answer, whatever psycopg or its pool raised."""
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        return DatabaseUnavailable(f"cannot reach the PostgreSQL database at {self._where()}: {first}",
                                   {"database": self._where()})

    def _pool_(self):
        with self._lock:
            if self._pool is None:
                import psycopg
                from psycopg_pool import ConnectionPool

                # the pool retries a failed connection in the background and logs a warning for
                # each try: a database that is down said the same thing 20 times before the pool
                # gave up after 30 s.  Its own reports are kept for real faults (ERROR); a first
                # connection made here says at once, in one line, that the database does not answer.
                logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
                try:
                    psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT_SECONDS).close()
                except psycopg.Error as e:
                    raise self.unavailable(e) from None
                self._pool = ConnectionPool(self.url, min_size=self.min_size, max_size=self.max_size,
                                            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_SECONDS},
                                            configure=_configure, open=True, timeout=POOL_TIMEOUT_SECONDS)
            return self._pool

    def _getconn(self):
        from psycopg_pool import PoolTimeout

        try:
            return self._pool_().getconn()
        except PoolTimeout as e:  # every connection busy, or the database went away
            raise self.unavailable(e) from None

    def ping(self) -> None:
        """One round trip to the database (DatabaseUnavailable if it does not answer)."""
        import psycopg

        d = self.acquire()
        try:
            d.execute("SELECT 1").fetchone()
        except psycopg.OperationalError as e:
            raise self.unavailable(e) from None
        finally:
            self.release(d)

    def prepare(self) -> None:
        """Migrate (the database itself is made by its administrator); the data dir (0700) and
        its guest-key vault made if missing."""
        if self.vault is not None:
            make_dirs(self.root)
            self.root.chmod(0o700)
            self.vault.prepare()
        self.migrate()

    def migrate(self) -> int:
        """Under an advisory lock: several workers may start at once."""
        applied = 0
        conn = self._getconn()
        try:
            conn.execute(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
            try:
                conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
                row = conn.execute("SELECT version FROM schema_version").fetchone()
                if row is None:
                    conn.execute("INSERT INTO schema_version VALUES (0)")
                    current = 0
                else:
                    current = row[0]
                migrations = self.schema()
                for i in range(current, len(migrations)):
                    with conn.transaction():
                        for stmt in migrations[i]:
                            conn.execute(stmt)
                        conn.execute("UPDATE schema_version SET version = %s", [i + 1])
                    applied += 1
                if applied:
                    _COLUMN_TYPES.clear()  # columns read before a migration are read again
            finally:
                conn.execute(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")
        finally:
            self._pool_().putconn(conn)
        return applied

    def acquire(self) -> PgDatabase:
        """A connection out of the pool for one request; give it back with :meth:`release`."""
        return PgDatabase(self._getconn(), self.vault)

    def release(self, d: PgDatabase) -> None:
        self._pool_().putconn(d.raw)  # the pool rolls back anything left open

    def connect(self, migrate: bool = False) -> PgDatabase:
        """This thread's connection (checked out of the pool on first use, kept)."""
        d = getattr(self._local, "db", None)
        if d is None or d.raw.closed:
            if migrate:
                self.prepare()
            d = self._local.db = PgDatabase(self._getconn(), self.vault)
        return d

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    @classmethod
    @contextlib.contextmanager
    def transaction(cls, db: PgDatabase) -> Iterator[PgDatabase]:
        # psycopg: BEGIN … COMMIT on the autocommit connection, a SAVEPOINT inside one
        with db.raw.transaction():
            yield db

    @classmethod
    def lock_hotels(cls, db: PgDatabase, hotels: Iterable[str]) -> None:
        """Transaction-scoped advisory locks, taken sorted, so two pushes never deadlock."""
        for h in sorted({h for h in hotels if isinstance(h, str)}):
            db.execute("SELECT pg_advisory_xact_lock(?)", [_lock_key(h)])


#: the planner's cost of a random page read, for a connection whose server keeps PostgreSQL's
#: default (4, a spinning disk's): what the PostgreSQL manual suggests for solid-state storage
#: or data that fits in memory, as a cloud's working set does.  At 4, a push's lookup of 100
#: entry keys read the whole ``applied_entries`` table instead of its ``key`` index until the
#: table held some 100,000 rows (1.35 ms against 0.09 ms at 14,000 rows: bench/README.md).
#: A value the administrator chose (server, database or role) is kept.
RANDOM_PAGE_COST = "1.1"


def _configure(conn) -> None:
    """Each new pooled connection: :data:`RANDOM_PAGE_COST` where the default is in force."""
    conn.execute("SELECT set_config('random_page_cost', %s, false) FROM pg_settings WHERE name = 'random_page_cost'"
                 " AND source = 'default'", [RANDOM_PAGE_COST])


def _lock_key(hotel_id: str) -> int:
    return int.from_bytes(hashlib.sha256(b"hotel:" + hotel_id.encode(errors="surrogatepass")).digest()[:8], "big",
                          signed=True)


# --- one surface -----------------------------------------------------------------------------

def open_storage(data_dir: str | Path | None = None, database: str | None = None, *,
                 pool_size: int = 16) -> CloudStorage:
    """``database`` (a ``postgresql://`` URL) if given, else ``cloud.db`` in ``data_dir``.
    ``pool_size``: PostgreSQL connections per process (one per server thread)."""
    if database:
        if not database.startswith(("postgresql://", "postgres://")):
            raise ConfigError(f"--database must be a postgresql:// URL, not {database.split(':', 1)[0]}:…",
                              {"field": "database"})
        return PostgresStorage(database, max_size=pool_size, data_dir=data_dir)
    if data_dir is None:
        raise ConfigError("give --data-dir (SQLite) or --database (PostgreSQL)", {"field": "database"})
    return SqliteStorage(data_dir)


def backend(db) -> type[CloudStorage]:
    """The storage class a connection belongs to (SQLite for a plain ``sqlite_utils`` one)."""
    return getattr(db, "backend", SqliteStorage)


def transaction(db) -> AbstractContextManager:
    """One write transaction on either storage (:meth:`CloudStorage.transaction`)."""
    return backend(db).transaction(db)


#: values an ``IN (…)`` list carries at most (SQLite's default limit is 32,766 parameters)
IN_LIST = 500


def chunks(values: list, size: int = IN_LIST) -> Iterator[list]:
    """``values`` in slices of at most ``size``: one ``IN (…)`` list (or one batch) each."""
    for at in range(0, len(values), size):
        yield values[at:at + size]


def insert_rows(db, sql: str, rows: list[list]) -> tuple[str, list]:
    """``sql``, an insert of one row (``… VALUES (?, …)``, then perhaps ``ON CONFLICT …`` and
    ``RETURNING …``), for all of ``rows`` as ONE statement: its text and parameters.  On
    PostgreSQL the rows as one JSON parameter where every value is of its column's kind
    (sync/cloud/pg_inserts.py: the same text for any number of rows); otherwise ``VALUES
    (?, …), (?, …)``."""
    if isinstance(db, PgDatabase):
        one = pg_inserts.json_rows(sql, rows, db.column_types, returning=True)
        if one is not None:
            return one
    return pg_inserts.values_rows(sql, rows)


def one_of(db, column: str, values: list) -> tuple[str, list]:
    """The condition "``column`` is one of ``values``" and its parameters.  On PostgreSQL
    ``column = ANY(?)``, the values one array: the statement's text is the same however many
    they are, so each connection prepares it once and plans it once (with ``IN (?, …)`` a push
    of each size was a statement of its own, prepared only after five runs of that size).  On
    SQLite ``column IN (?, …)``."""
    if isinstance(db, PgDatabase):
        return f"{column} = ANY(?)", [list(values)]
    return f"{column} IN ({', '.join('?' * len(values))})", list(values)


def one_statement(db) -> AbstractContextManager:
    """Around a write that is one statement: SQLite's write transaction (``BEGIN IMMEDIATE``
    under the process's writer lock, so threads queue instead of meeting the busy handler); on
    PostgreSQL nothing, since a statement on an autocommit connection is a transaction of its
    own (a ``BEGIN`` and a ``COMMIT`` around it would be two more round trips)."""
    return contextlib.nullcontext(db) if isinstance(db, PgDatabase) else transaction(db)


def lock_hotels(db, hotels: Iterable[str]) -> None:
    """Inside a transaction: each hotel's lock (:meth:`CloudStorage.lock_hotels`)."""
    backend(db).lock_hotels(db, hotels)


@contextlib.contextmanager
def secure_delete(db) -> Iterator[None]:
    """Within: what the connection deletes or overwrites is zeroed in the database file, freed
    pages included (SQLite ``PRAGMA secure_delete=ON``; set outside a transaction), then the
    connection's setting as it was.  A guest's erasure runs in it (sync/cloud/erasure.py).
    PostgreSQL has no such switch: an old row version stays in the table's file as a dead
    tuple until ``VACUUM`` reclaims it (autovacuum, or ``VACUUM`` by hand)."""
    if backend(db) is not SqliteStorage:
        yield
        return
    before = db.conn.execute("PRAGMA secure_delete").fetchone()[0]
    db.conn.execute("PRAGMA secure_delete = ON")
    try:
        yield
    finally:
        db.conn.execute(f"PRAGMA secure_delete = {store.SECURE_DELETE_WORDS.get(before, 'FAST')}")


def pipeline(db) -> AbstractContextManager:
    """Within: on PostgreSQL, statements go without waiting for each answer (a round trip per
    statement whose answer is read: :meth:`PgDatabase.pipelined`); on SQLite, nothing changes
    (every statement is a call into the same process)."""
    return db.pipelined() if isinstance(db, PgDatabase) else contextlib.nullcontext(db)


def checkpoint(db) -> bool:
    """After a commit that must leave no old bytes behind (a guest's erasure): SQLite's
    write-ahead log copied into the database and truncated to nothing (``PRAGMA
    wal_checkpoint(TRUNCATE)``), so the log's older copies of the pages are gone from disk.
    False if a reader kept it from finishing (the next checkpoint does).  PostgreSQL: nothing
    (True)."""
    if backend(db) is not SqliteStorage:
        return True
    return store.checkpoint_truncate(db)

