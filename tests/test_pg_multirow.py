"""PostgreSQL's ``executemany`` of an ``INSERT … VALUES`` as one multi-row statement
(sync/cloud/storage.py ``multi_row``): the same rows and the same conflicts as row by row, and
row by row whenever one statement could not say the same."""

from __future__ import annotations

import pytest

from sync.cloud import storage
from sync.cloud.pg_inserts import MULTI_ROW_PARAMS, multi_row

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
