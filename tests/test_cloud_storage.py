"""The cloud's storage interface (sync/cloud/storage.py ``CloudStorage``): one contract,
run against every implementation — SQLite in a temporary data dir, and a fresh database
of the session's throwaway PostgreSQL server (skipped, saying why, where none can run).

A new backend passes these before anything else of the cloud runs on it
(docs/architecture.md, "Cloud storage backends").
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid

import pytest

from sync.cloud import schema, storage


class Boom(Exception):
    """Raised inside a transaction to see it rolled back."""


@pytest.fixture(params=["sqlite", "postgresql"])
def st(request, tmp_path):
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("pg").new_database(f"st{uuid.uuid4().hex[:12]}")
    s = storage.open_storage(tmp_path / "cloud", url)
    s.prepare()
    yield s
    s.close()


@pytest.fixture
def d(st):
    conn = st.acquire()
    yield conn
    st.release(conn)


def nodes(st) -> list[str]:
    """What another connection (another thread's) sees committed in ``hlc_state``."""
    out = []

    def look():
        conn = st.acquire()
        try:
            out.extend(r[0] for r in conn.execute("SELECT node FROM hlc_state ORDER BY node").fetchall())
        finally:
            st.release(conn)

    t = threading.Thread(target=look)
    t.start()
    t.join(10)
    return out


def put(conn, node: str, n: int = 0) -> None:
    conn.execute("INSERT INTO hlc_state (node, wall_ms, counter) VALUES (?, ?, ?)", [node, n, 0])


# --- the contract ----------------------------------------------------------------------------

def test_it_implements_the_interface(st, d):
    assert isinstance(st, storage.CloudStorage)
    assert storage.backend(d) is type(st)
    assert st.dialect in ("sqlite", "postgresql") and st.paramstyle == "qmark"
    assert set(st.column_types) == {"INT", "REAL", "SERIAL"}


def test_a_transaction_commits_at_its_end_and_rolls_back_on_an_exception(st, d):
    with storage.transaction(d):
        put(d, "a")
        assert nodes(st) == []  # not before the end
    assert nodes(st) == ["a"]
    with pytest.raises(Boom), storage.transaction(d):
        put(d, "b")
        raise Boom
    assert nodes(st) == ["a"]
    with storage.transaction(d):  # the connection is usable again
        put(d, "c")
    assert nodes(st) == ["a", "c"]


def test_a_nested_transaction_joins_the_outer_one_as_a_savepoint(st, d):
    with storage.transaction(d):
        put(d, "outer")
        with storage.transaction(d):
            put(d, "inner")
        assert nodes(st) == []  # nothing is committed before the outermost block ends
        with pytest.raises(Boom), storage.transaction(d):
            put(d, "undone")
            raise Boom
        # the failed inner block's write is gone; the outer goes on
        assert [r[0] for r in d.execute("SELECT node FROM hlc_state ORDER BY node").fetchall()] == [
            "inner", "outer"]
    assert nodes(st) == ["inner", "outer"]
    with pytest.raises(Boom), storage.transaction(d):
        with storage.transaction(d):
            put(d, "joined")
        raise Boom  # the outer's failure takes the committed-looking inner block with it
    assert nodes(st) == ["inner", "outer"]


def test_a_hotel_lock_makes_two_writers_of_that_hotel_go_one_after_the_other(st):
    with storage.transaction(d := st.acquire()):
        d.execute("INSERT INTO hotel_seq (hotel_id, seq) VALUES ('h', 0)")
    st.release(d)
    spans, errors = [], []

    def writer():
        conn = st.acquire()
        try:
            with storage.transaction(conn):
                storage.lock_hotels(conn, ["h", "h"])
                start = time.monotonic()
                seq = conn.execute("SELECT seq FROM hotel_seq WHERE hotel_id = 'h'").fetchone()[0]
                time.sleep(0.3)  # a read-modify-write that would lose an update without the lock
                conn.execute("UPDATE hotel_seq SET seq = ? WHERE hotel_id = 'h'", [seq + 1])
                spans.append((start, time.monotonic()))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            st.release(conn)

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    d = st.acquire()
    try:
        assert d.execute("SELECT seq FROM hotel_seq WHERE hotel_id = 'h'").fetchone()[0] == 2
    finally:
        st.release(d)
    (a0, a1), (b0, b1) = sorted(spans)
    assert a1 <= b0  # the second began its read only after the first had written


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrate_is_idempotent_and_an_older_database_is_upgraded_from_its_version(backend, tmp_path, request,
                                                                                   monkeypatch):
    url = None
    if backend == "postgresql":
        url = request.getfixturevalue("pg").new_database(f"st{uuid.uuid4().hex[:12]}")
    st = storage.open_storage(tmp_path / "cloud", url)
    try:
        monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:5])  # as an earlier release left it
        st.prepare()
        d = st.acquire()
        with storage.transaction(d):
            d.execute("INSERT INTO hotel_seq (hotel_id, seq) VALUES ('h', 7)")
        st.release(d)
        monkeypatch.undo()
        assert st.migrate() == len(schema.MIGRATIONS) - 5
        assert st.migrate() == 0
        st.prepare()
        assert st.migrate() == 0
        d = st.acquire()
        try:
            assert d.execute("SELECT seq FROM hotel_seq").fetchall() == [(7,)]
            assert d.execute("SELECT count(*) FROM push_quota").fetchone()[0] == 0  # migration 8's table
            assert d.execute("SELECT reply_hlc FROM tickets").fetchall() == []  # migration 9's column
        finally:
            st.release(d)
    finally:
        st.close()


def test_sql_is_written_once_in_the_qmark_style(d):
    rows = d.execute("SELECT ? || '%' AS x, greatest(?, ?, NULL) AS g", ["a", 1, 3]).fetchall()
    assert [tuple(r) for r in rows] == [("a%", 3)]
    assert list(d.query("SELECT ? AS name", ["x"])) == [{"name": "x"}]


def test_lock_hotels_outside_the_names_of_hotels_is_harmless(d):
    with storage.transaction(d):
        storage.lock_hotels(d, [])
        storage.lock_hotels(d, [None, 3, "h"])  # what is not a hotel id is passed over


# --- the schema ------------------------------------------------------------------------------

#: the shipped migrations, as each backend runs them: never edited, only appended to
SHIPPED = {
    "sqlite": ["b959eaea7c8a20c5", "3b92a03f80b501e5", "9c8eb94de2ae3df2", "faadfa50aed8dc10",
               "8674901070da4aa4", "5a3fa4041a95cde7", "cda16b11da1b9287", "dd649ddafe673d42",
               "ad749f2d7bc4c3db"],
    "postgresql": ["50bd06fbf49fac9a", "b9e24cd445c2503f", "9c8eb94de2ae3df2", "faadfa50aed8dc10",
                   "c075d9743fa79de6", "a045681dbad3b122", "cda16b11da1b9287", "1f7a8257897c7067",
                   "ad749f2d7bc4c3db"],
}


@pytest.mark.parametrize("cls", [storage.SqliteStorage, storage.PostgresStorage])
def test_shipped_migrations_are_never_edited(cls):
    made = [hashlib.sha256(json.dumps(m).encode()).hexdigest()[:16] for m in schema.migrations(cls.column_types)]
    assert made[:len(SHIPPED[cls.dialect])] == SHIPPED[cls.dialect]


def test_every_column_type_is_named_so_each_backend_says_it_in_its_own_words():
    bare = [s for m in schema.MIGRATIONS for s in m if re.search(r"(?<!\$)\b(INTEGER|REAL|BIGINT|SERIAL)\b", s)]
    assert bare == []
    assert schema.migrations(schema.SQLITE_TYPES)[0][0].count("REAL NOT NULL") == 1
    assert "DOUBLE PRECISION" in schema.migrations(schema.POSTGRES_TYPES)[0][0]


def test_each_sqlite_connection_has_the_cloud_s_page_cache_and_log_size(tmp_path):
    """docs/deployment.md: 16 MiB of page cache, a checkpoint every 10,000 pages of log, the log
    cut back to 64 MiB (SQLite's defaults re-read and re-copied the pages a drain wrote)."""
    st = storage.open_storage(tmp_path, None)
    st.prepare()
    for d in (st.connect(), st.acquire()):
        assert d.conn.execute("PRAGMA cache_size").fetchone()[0] == -16384
        assert d.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 10000
        assert d.conn.execute("PRAGMA journal_size_limit").fetchone()[0] == 64 * 1024 * 1024
        assert d.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
