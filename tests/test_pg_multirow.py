"""PostgreSQL's ``executemany`` of an ``INSERT … VALUES`` as one statement
(sync/cloud/pg_inserts.py): its rows as one JSON parameter (``json_rows``) or as a multi-row
``VALUES`` (``multi_row``), the same rows and the same conflicts as row by row, and row by row
whenever one statement could not say the same."""

from __future__ import annotations

import pytest

from sync.cloud import pg_inserts, storage
from sync.cloud.pg_inserts import MULTI_ROW_PARAMS, json_rows, multi_row

SQL = "INSERT INTO t (a, b, c) VALUES (?, ?, 'x')"


def test_an_insert_becomes_one_statement_with_numbered_placeholders():
    [(text, params)] = multi_row(SQL, [[1, 2], [3, 4], [5, 6]])
    assert text == "INSERT INTO t (a, b, c) VALUES ($1, $2, 'x'), ($3, $4, 'x'), ($5, $6, 'x')"
    assert params == [1, 2, 3, 4, 5, 6]


def test_a_long_batch_is_cut_into_statements_within_the_parameter_limit():
    rows = [[i, i] for i in range(MULTI_ROW_PARAMS)]  # twice the limit's parameters
    out = multi_row(SQL, rows)
    assert len(out) == 2 and [len(p) for _t, p in out] == [MULTI_ROW_PARAMS, MULTI_ROW_PARAMS]
    assert out[1][0].count("$") == MULTI_ROW_PARAMS and out[1][1][:2] == [MULTI_ROW_PARAMS // 2] * 2


@pytest.mark.parametrize("sql, rows", [
    ("UPDATE t SET a = ? WHERE b = ?", [[1, 2], [3, 4]]),  # not an insert
    ("INSERT INTO t (a, b) VALUES (?, ?) RETURNING a", [[1, 2], [3, 4]]),
    ("INSERT INTO t (a, b) VALUES (?, coalesce(?, 0))", [[1, 2], [3, 4]]),  # a call inside the row
    ("INSERT INTO t (a, b) VALUES (?, ?) ON CONFLICT (a) DO UPDATE SET b = ?", [[1, 2, 3], [3, 4, 5]]),
    ("INSERT INTO t (a, b) VALUES (?, ?)", [[1, 2]]),  # one row: nothing to gain
    ("INSERT INTO t (a, b) VALUES (?, ?)", [[1, 2], [3]]),  # a row of another width
    # one key twice: PostgreSQL refuses a row updated twice by one command, row by row does not
    ("INSERT INTO t (a, b) VALUES (?, ?) ON CONFLICT (a) DO UPDATE SET b = excluded.b", [[1, 2], [1, 3]]),
])
def test_what_one_statement_could_not_say_goes_row_by_row(sql, rows):
    assert multi_row(sql, rows) is None


def test_distinct_keys_under_do_update_go_as_one_statement():
    out = multi_row("INSERT INTO t (a, b) VALUES (?, ?) ON CONFLICT (a) DO UPDATE SET b = excluded.b",
                    [[1, 2], [2, 3]])
    assert out is not None and out[0][0].endswith("ON CONFLICT (a) DO UPDATE SET b = excluded.b")


def test_on_postgresql_the_rows_and_conflicts_are_those_of_row_by_row(pg, tmp_path):
    st = storage.open_storage(tmp_path, pg.new_database("multirow"))
    st.prepare()
    db = st.connect()
    try:
        db.execute("CREATE TABLE t (a BIGINT PRIMARY KEY, b TEXT, n DOUBLE PRECISION)")
        with storage.transaction(db):
            db.conn.executemany("INSERT INTO t (a, b, n) VALUES (?, ?, ?) ON CONFLICT (a) DO NOTHING",
                                [(1, "one", 1.5), (2, None, None), (1, "again", 0.0), (3, "it's 100%", 3.0)])
            # a key twice under DO UPDATE: row by row, the later row wins as it always did
            db.conn.executemany("INSERT INTO t (a, b, n) VALUES (?, ?, ?) ON CONFLICT (a) DO UPDATE"
                                " SET b = excluded.b", [(4, "four", 4.0), (4, "FOUR", 4.0), (2, "two", 2.0)])
        assert db.execute("SELECT a, b, n FROM t ORDER BY a").fetchall() == [
            (1, "one", 1.5), (2, "two", None), (3, "it's 100%", 3.0), (4, "FOUR", 4.0)]
    finally:
        st.close()


TYPES = {"a": "bigint", "b": "text", "n": "double precision", "flag": "boolean"}


def test_an_insert_becomes_one_statement_with_its_rows_as_one_json_parameter():
    text, params = json_rows("INSERT INTO t (a, b, n) VALUES (?, ?, ?) ON CONFLICT (a) DO NOTHING",
                             [[1, "one", 1.5], [2, None, 2]], lambda table: TYPES)
    assert text == ("INSERT INTO t (a, b, n) SELECT (r->>0)::bigint, (r->>1)::text, (r->>2)::double precision"
                    " FROM jsonb_array_elements($1::jsonb) r ON CONFLICT (a) DO NOTHING")
    assert params == ['[[1,"one",1.5],[2,null,2]]']
    # one row, or 500: the same text
    assert json_rows("INSERT INTO t (a, b, n) VALUES (?, ?, ?) ON CONFLICT (a) DO NOTHING", [[3, "x", 0.0]],
                     lambda table: TYPES)[0] == text


@pytest.mark.parametrize("row", [
    [True, "x", 1.0],  # a bool is not an int here (PostgreSQL would refuse it either way)
    [1.0, "x", 1.0],  # a float for a bigint: row by row PostgreSQL rounds it; as JSON it would refuse
    [1, "x", float("nan")],  # JSON has no NaN (orjson would write null)
    [1, "x", float("inf")],
    [1, "x", -0.0],  # jsonb's numbers have no negative zero
    [1, "nul \x00 inside", 1.0],  # PostgreSQL's text cannot hold NUL
    [1, b"bytes", 1.0],
    [1, 5, 1.0],  # an int for a text column
    [2 ** 64, "x", 1.0],  # beyond 64 bits
    [1, "lone \udc80 surrogate", 1.0],
])
def test_a_value_not_of_its_columns_kind_goes_the_other_way(row):
    assert json_rows("INSERT INTO t (a, b, n) VALUES (?, ?, ?)", [[1, "ok", 1.0], row], lambda table: TYPES) is None


@pytest.mark.parametrize("sql", [
    "INSERT INTO t (a, flag) VALUES (?, ?)",  # a column of another type
    "INSERT INTO t (a, b) VALUES (?, lower(?))",  # not a plain value
    "INSERT INTO t (a, b) VALUES (?, ?) RETURNING a",
    "INSERT INTO t (a, z) VALUES (?, ?)",  # a column the table does not have
])
def test_what_json_rows_cannot_say_goes_the_other_way(sql):
    assert json_rows(sql, [[1, "x"], [2, "y"]], lambda table: TYPES) is None


TRICKY = [  # what JSON escapes, what a float or an int may be
    (1, 'quote " backslash \\ tab \t newline \n', 0.1),
    (2, "café 🍵 日本 \u2028 \x7f", 1e-07),
    (3, "a literal backslash-u: \\u0000", 1.7976931348623157e308),
    (4, None, 0.0),
    (2 ** 63 - 1, "", 5),
    (-(2 ** 63), "'; DROP TABLE t; --", None),
]


def test_on_postgresql_json_rows_store_exactly_what_row_by_row_stores(pg, tmp_path):
    st = storage.open_storage(tmp_path, pg.new_database("jsonrows"))
    st.prepare()
    db = st.connect()
    try:
        for table in ("t", "ref"):
            db.execute(f"CREATE TABLE {table} (a BIGINT PRIMARY KEY, b TEXT, n DOUBLE PRECISION)")
        with storage.transaction(db):
            sent = []
            real = pg_inserts.json_rows
            pg_inserts.json_rows = lambda *a: sent.append(real(*a)) or sent[-1]
            try:
                db.conn.executemany("INSERT INTO t (a, b, n) VALUES (?, ?, ?)", TRICKY)
            finally:
                pg_inserts.json_rows = real
            for row in TRICKY:
                db.execute("INSERT INTO ref (a, b, n) VALUES (?, ?, ?)", list(row))
        assert sent and sent[0] is not None  # the JSON way was taken
        got = db.execute("SELECT a, b, n, n::text FROM t ORDER BY a").fetchall()
        assert got == db.execute("SELECT a, b, n, n::text FROM ref ORDER BY a").fetchall()
        assert [r[:3] for r in got] == sorted(TRICKY, key=lambda r: r[0])
    finally:
        st.close()


def test_a_migration_forgets_the_column_types_read_before_it(pg, tmp_path):
    """Types are read once per process, database and table; a migration may add or change
    columns, so the ones read before it are read again."""
    storage._COLUMN_TYPES[("elsewhere", 1, "db", "t")] = {"a": "text"}
    st = storage.open_storage(tmp_path, pg.new_database("forget"))
    try:
        st.prepare()  # every migration runs on the new database
        assert ("elsewhere", 1, "db", "t") not in storage._COLUMN_TYPES
        db = st.connect()
        assert db.column_types("tickets")["received_at"] == "double precision"
        assert db.column_types("no_such_table") == {}
    finally:
        st.close()
