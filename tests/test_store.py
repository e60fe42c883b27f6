"""The local store: pragmas, migrations, atomic transactions, the HLC and the outbox."""

import sqlite3

import pytest

from kiosk import hlc, outbox, store
from kiosk.migrations import SCHEMA_VERSION


@pytest.fixture
def db(tmp_path):
    return store.connect(tmp_path / "k.db")


def test_pragmas(db):
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 5000


def test_migrations_run_once(tmp_path):
    db = store.connect(tmp_path / "k.db")
    assert store.schema_version(db) == SCHEMA_VERSION
    assert {"qr_tokens", "consumed_tokens", "sessions", "workflow_state", "audit_log", "outbox",
            "hlc_state"} <= set(db.table_names())
    assert store.run_migrations(store.connect(tmp_path / "k.db", migrate=False)) == 0


def test_every_property_table_has_hotel_id(db):
    for name in db.table_names():
        if name in ("hlc_state", "sync_state", "sqlite_sequence"):
            continue
        assert "hotel_id" in db[name].columns_dict, name


def test_transaction_rolls_back_everything_on_error(db):
    with pytest.raises(RuntimeError):
        with store.transaction(db):
            outbox.enqueue(db, hotel_id="demo", kind="k", entity_type="e", entity_id="1",
                           payload={}, node="n", now=1.0)
            raise RuntimeError("boom")
    assert db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM hlc_state").fetchone()[0] == 0


def _enqueue(db, entity_id):
    outbox.enqueue(db, hotel_id="demo", kind="k", entity_type="e", entity_id=entity_id, payload={}, node="n",
                   now=1.0)


def _ids(db):
    return sorted(r[0] for r in db.execute("SELECT entity_id FROM outbox"))


def test_a_transaction_inside_another_joins_it():
    """An inner block is a savepoint of the outer one: nothing it wrote is visible to another
    connection before the outermost block commits, and then all of it is."""
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "k.db"
    db, other = store.connect(path), store.connect(path)
    with store.transaction(db):
        _enqueue(db, "outer")
        with store.transaction(db):
            _enqueue(db, "inner")
            with store.transaction(db):
                _enqueue(db, "innermost")
        assert _ids(other) == []  # not committed yet
        assert db.conn.in_transaction
    assert _ids(other) == ["inner", "innermost", "outer"]
    assert not db.conn.in_transaction


def test_an_inner_failure_rolls_back_only_the_inner_block_if_caught(db):
    with store.transaction(db):
        _enqueue(db, "kept")
        with pytest.raises(RuntimeError):
            with store.transaction(db):
                _enqueue(db, "undone")
                raise RuntimeError("boom")
        _enqueue(db, "after")
    assert _ids(db) == ["after", "kept"]


def test_an_inner_failure_not_caught_rolls_back_everything(db):
    with pytest.raises(RuntimeError):
        with store.transaction(db):
            _enqueue(db, "outer")
            with store.transaction(db):
                _enqueue(db, "inner")
                raise RuntimeError("boom")
    assert _ids(db) == []
    assert not db.conn.in_transaction
    with store.transaction(db):  # and the connection is usable again, savepoint names and all
        with store.transaction(db):
            _enqueue(db, "again")
    assert _ids(db) == ["again"]


def test_foreign_keys_enforced(db):
    with pytest.raises(sqlite3.IntegrityError):
        with store.transaction(db):
            db.execute("INSERT INTO consumed_tokens VALUES ('j', 'demo', 1.0, 'k', 'no-such-session', 'h')")


def test_busy_store_is_a_clear_error(tmp_path):
    a = store.connect(tmp_path / "k.db")
    b = store.connect(tmp_path / "k.db", busy_timeout_ms=50)
    a.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(Exception) as e:
            with store.transaction(b):
                pass
        assert getattr(e.value, "code", None) == "STORE_BUSY"
    finally:
        a.execute("ROLLBACK")


def test_hlc_is_monotonic_when_the_wall_clock_steps_back(tmp_path):
    db = store.connect(tmp_path / "k.db")
    stamps = []
    for now in [100.0, 100.0, 99.0, 50.0, 101.0]:
        with store.transaction(db):
            stamps.append(hlc.tick(db, "n", now))
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert [str(s) for s in stamps] == sorted(str(s) for s in stamps)  # string order = causal order
    # a restart (new connection) continues after the persisted stamp
    db2 = store.connect(tmp_path / "k.db")
    with store.transaction(db2):
        after = hlc.tick(db2, "n", 10.0)
    assert after > stamps[-1]
    assert hlc.Stamp.parse(str(after)) == after


def test_receiving_a_pages_latest_stamp_ends_where_receiving_each_does(tmp_path):
    """A pulled page moves the clock once, by its latest stamp (sync/pull.py): the same state
    as each stamp in turn, whatever their order, widths or unparseable ones among them."""
    stamps = ["000000000002000-00007-a", "000000000002000-00009-b", "junk", "", "000000000001999-99999-c",
              "2000-00008-d", "000000000002000-00009-a"]
    assert hlc.latest(stamps) == "000000000002000-00009-b"
    assert hlc.latest(["junk", None]) is None
    one, each = store.connect(tmp_path / "one.db"), store.connect(tmp_path / "each.db")
    with store.transaction(one), store.transaction(each):
        hlc.receive(one, "n", hlc.latest(stamps), 1.0)
        for s in stamps:
            hlc.receive(each, "n", s, 1.0)
    state = "SELECT wall_ms, counter FROM hlc_state WHERE node = 'n'"
    assert one.execute(state).fetchone() == each.execute(state).fetchone() == (2000, 9)


def test_outbox_enqueue_rows(db):
    with store.transaction(db):
        q1 = outbox.enqueue(db, hotel_id="demo", kind="token.used", entity_type="qr_token",
                            entity_id="j1", payload={"b": 2, "a": 1}, node="k1", now=5.0)
        q2 = outbox.enqueue(db, hotel_id="harbor", kind="token.used", entity_type="qr_token",
                            entity_id="j2", payload={}, node="k1", now=5.0)
    rows = outbox.pending(db, "demo")
    assert [r["idempotency_key"] for r in rows] == [q1.idempotency_key]
    assert rows[0]["state"] == "pending" and rows[0]["attempts"] == 0
    assert rows[0]["payload"] == '{"a":1,"b":2}'
    assert q1.hlc < q2.hlc
    with pytest.raises(sqlite3.IntegrityError):
        with store.transaction(db):
            outbox.enqueue(db, hotel_id="demo", kind="x", entity_type="e", entity_id="1", payload={},
                           node="k1", now=6.0, idempotency_key=q1.idempotency_key)
