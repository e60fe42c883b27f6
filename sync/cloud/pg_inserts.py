"""PostgreSQL: the rows of an ``executemany`` of ``INSERT INTO t (cols) VALUES (?, …)`` written
by ONE statement, instead of one execution per row.

Two forms, the first that can say the same as row by row is used (``PgDatabase.executemany``
in sync/cloud/storage.py):

* :func:`json_rows` — ONE parameter: the rows as a JSON array of objects, which the server
  turns into rows of the table's own type (``json_populate_recordset``), so each value is
  read by its column's type.  psycopg adapts every parameter it is given one by one (about
  1.7 µs each); a push of 100 tickets writes about 3,500 values, and as JSON they are one
  string orjson writes in microseconds (bench/README.md: 24 against 1.4 µs of the client's
  CPU per row of 14 columns, the server's the same).  Only where every value is of its
  column's kind: text for ``text`` (without NUL, which PostgreSQL's text cannot hold), an
  int for ``bigint``, a finite float or an int for ``double precision``; anything else (a
  bool, bytes, NaN, another column type) goes the second way, where psycopg and the server
  decide as they always did.
* :func:`multi_row` — ``VALUES ($1, …), ($n, …)``, the values flattened, at most
  :data:`MULTI_ROW_PARAMS` a statement.

Neither when the statement has ``RETURNING`` or a parameter outside its row, or when an
``ON CONFLICT (key) DO UPDATE`` would meet one key twice in a statement (PostgreSQL refuses
a row updated twice by one command; row by row it is not).
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Callable

import orjson

#: parameters a multi-row INSERT carries at most (PostgreSQL's limit is 65,535 per statement)
MULTI_ROW_PARAMS = 20000
_INSERT = re.compile(r"(INSERT INTO (\w+) \(([^()]*)\) VALUES )(\([^()]*\))(.*)", re.S)
_DO_UPDATE = re.compile(r"ON CONFLICT \(([^()]*)\) DO UPDATE", re.I)
_PLACEHOLDER = re.compile(r"\?")
_NAME = re.compile(r"[a-z_][a-z0-9_]*")
#: the column types whose values go as JSON, and the Python types each of them takes
_TAKES: dict[str, tuple[type, ...]] = {"text": (str,), "bigint": (int,), "double precision": (int, float)}


def numbered(sql: str) -> str:
    """Each ``?`` of ``sql`` as ``$1``, ``$2``… in order."""
    n = itertools.count(1)
    return _PLACEHOLDER.sub(lambda _m: f"${next(n)}", sql)


def _insert(sql: str, rows: list[list], fewest: int) -> re.Match | None:
    """The parts of an insert either form can write for ``rows`` (at least ``fewest``), or None."""
    m = _INSERT.fullmatch(sql.strip())
    if m is None or len(rows) < fewest:
        return None
    head, cols, group, tail = m.group(1), m.group(3), m.group(4), m.group(5)
    width = group.count("?")
    if width == 0 or "RETURNING" in tail.upper() or "?" in head or "?" in tail or "$" in sql \
            or any(len(r) != width for r in rows):
        return None
    conflict = _DO_UPDATE.search(tail)
    if conflict is not None:
        names = [c.strip() for c in cols.split(",")]
        try:
            where = [names.index(c.strip()) for c in conflict.group(1).split(",")]
        except ValueError:
            return None
        if len({tuple(r[i] for i in where) for r in rows}) != len(rows):
            return None
    return m


def multi_row(sql: str, rows: list[list]) -> list[tuple[str, list]] | None:
    """``rows`` as multi-row statements in PostgreSQL's own placeholders (``$1``…) with their
    flattened parameters; None when this form cannot say what row by row would (or for one
    row: nothing to gain)."""
    m = _insert(sql, rows, 2)
    if m is None:
        return None
    head, group, tail = m.group(1), m.group(4), m.group(5)
    per = max(1, MULTI_ROW_PARAMS // group.count("?"))
    out = []
    for i in range(0, len(rows), per):
        chunk = rows[i:i + per]
        out.append((head + _values(group, len(chunk)) + tail, [v for r in chunk for v in r]))
    return out


@functools.lru_cache(maxsize=256)
def _values(group: str, n: int) -> str:
    """``n`` copies of the row ``group`` (``(?, ?, …)``) with ``$1…`` numbered on: the same
    statements come back push after push, so each text is built once."""
    return numbered(", ".join([group] * n))


def json_rows(sql: str, rows: list[list], column_types: Callable[[str], dict[str, str]]) -> tuple[str, list] | None:
    """``rows`` as ONE statement with ONE parameter (their JSON), or None when a value or a
    column is not of a kind this form reads as row by row would.  ``column_types(table)``:
    each column's type as PostgreSQL names it (``format_type``).  One row too: the statement's
    text is the same for any number of rows, so a connection prepares and plans it once."""
    m = _insert(sql, rows, 1)
    if m is None:
        return None
    table, group, tail = m.group(2), m.group(4), m.group(5)
    cols = [c.strip() for c in m.group(3).split(",")]
    if [p.strip() for p in group[1:-1].split(",")] != ["?"] * len(cols):
        return None  # only plain values, one for each named column
    doc = as_json(cols, rows, column_types(table))
    return None if doc is None else (statement(table, tuple(cols), tail, "$1"), [doc])


def as_json(cols: list[str], rows: list[list], types: dict[str, str]) -> str | None:
    """``rows`` (values in the order of ``cols``) as a JSON array of objects, or None when a
    column is not of a kind :data:`_TAKES` names or a value is not of its column's kind."""
    takes = [_TAKES.get(types.get(c, "")) for c in cols]
    if None in takes or not all(map(_NAME.fullmatch, cols)) or not _fits(rows, takes):
        return None
    try:
        return orjson.dumps([dict(zip(cols, r, strict=True)) for r in rows]).decode()
    except TypeError:  # an int beyond 64 bits, a lone surrogate
        return None


def _fits(rows: list[list], takes: list) -> bool:
    for r in rows:
        for v, kinds in zip(r, takes, strict=True):
            if v is None:
                continue
            t = type(v)
            if t not in kinds or (t is str and "\x00" in v) or (t is float and not math.isfinite(v)):
                return False
    return True


@functools.lru_cache(maxsize=256)
def statement(table: str, cols: tuple[str, ...], tail: str, param: str) -> str:
    """``INSERT INTO table (cols) SELECT … FROM json_populate_recordset(NULL::table, param)`` and
    ``tail`` (``ON CONFLICT …``, ``RETURNING …``): each value read as its column's type."""
    return (f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join('r.' + c for c in cols)}"
            f" FROM json_populate_recordset(NULL::{table}, {param}::json) r{tail}")
