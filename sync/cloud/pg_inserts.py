"""PostgreSQL: the rows of an insert written by ONE statement instead of one execution a row.

The owner of a table writes its insert for one row, ``INSERT`` ``INTO`` *table* ``(cols) VALUES
(?, …)`` and perhaps ``ON CONFLICT …`` (``PgDatabase.executemany`` in sync/cloud/storage.py
then writes all the rows it is given), or ``RETURNING …`` too (:func:`.storage.insert_rows`).
Two forms, the first that can say the same as row by row is used:

* :func:`json_rows` — ONE parameter: the rows as a JSON array of arrays, each value read by
  the server as its column's type (``(r->>i)::type`` over ``jsonb_array_elements``).  The
  statement's text is the same for 1 row or 500, so each connection prepares it once and
  plans it once; a text per row count was prepared only after five runs of that count (and
  pushes come in every size: bench/README.md measures the server's CPU per entry).  Only
  where every column is ``text``, ``bigint`` or ``double precision`` and every value of its
  kind: a str (without NUL, which PostgreSQL's text cannot hold), an int, a finite float
  (not -0.0, which jsonb's numbers do not have) or an int; anything else (a bool, bytes,
  NaN, another column type) goes the second way, where psycopg and the server decide as
  they always did.
* :func:`multi_row` — ``VALUES ($1, …), ($n, …)``, the values flattened, at most
  :data:`MULTI_ROW_PARAMS` a statement (:func:`values_rows`: the same in ``?`` placeholders,
  one statement, for SQLite too).

Neither when the statement has a parameter outside its row, or when an ``ON CONFLICT (key) DO
UPDATE`` would meet one key twice in a statement (PostgreSQL refuses a row updated twice by
one command; row by row it is not); nor, for an ``executemany``, with ``RETURNING``.
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
#: the column types whose values go as JSON, and the Python types each of them takes
_TAKES: dict[str, set[type]] = {"text": {str}, "bigint": {int}, "double precision": {int, float}}


def numbered(sql: str) -> str:
    """Each ``?`` of ``sql`` as ``$1``, ``$2``… in order."""
    n = itertools.count(1)
    return _PLACEHOLDER.sub(lambda _m: f"${next(n)}", sql)


def _insert(sql: str, rows: list[list], fewest: int, returning: bool = False) -> re.Match | None:
    """The parts of an insert either form can write for ``rows`` (at least ``fewest``), or None."""
    m = _INSERT.fullmatch(sql.strip())
    if m is None or len(rows) < fewest:
        return None
    head, cols, group, tail = m.group(1), m.group(3), m.group(4), m.group(5)
    width = group.count("?")
    if width == 0 or ("RETURNING" in tail.upper() and not returning) or "?" in head or "?" in tail \
            or "$" in sql or any(len(r) != width for r in rows):
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


def values_rows(sql: str, rows: list[list]) -> tuple[str, list]:
    """``rows`` as ONE multi-row statement in ``?`` placeholders (``RETURNING`` allowed) and
    its flattened parameters."""
    m = _INSERT.fullmatch(sql.strip())
    if m is None:
        raise ValueError("not an insert of one row of values: " + sql[:80])
    return m.group(1) + ", ".join([m.group(4)] * len(rows)) + m.group(5), [v for r in rows for v in r]


@functools.lru_cache(maxsize=256)
def _values(group: str, n: int) -> str:
    """``n`` copies of the row ``group`` (``(?, ?, …)``) with ``$1…`` numbered on: the same
    statements come back push after push, so each text is built once."""
    return numbered(", ".join([group] * n))


def json_rows(sql: str, rows: list[list], column_types: Callable[[str], dict[str, str]], *,
              returning: bool = False) -> tuple[str, list] | None:
    """``rows`` as ONE statement with ONE parameter (their JSON, ``$1``), or None when a value
    or a column is not of a kind this form reads as row by row would.  ``column_types(table)``:
    each column's type as PostgreSQL names it (``format_type``).  One row too: the statement's
    text is the same for any number of rows, so a connection prepares and plans it once."""
    m = _insert(sql, rows, 1, returning)
    if m is None:
        return None
    group = m.group(4)
    cols = tuple(c.strip() for c in m.group(3).split(","))
    if [p.strip() for p in group[1:-1].split(",")] != ["?"] * len(cols):
        return None  # only plain values, one for each named column
    doc = as_json(cols, rows, column_types(m.group(2)))
    return None if doc is None else (_statement(m.group(1), doc[1], m.group(5)), [doc[0]])


def as_json(cols: tuple[str, ...], rows: list[list], types: dict[str, str]) -> tuple[str, tuple[str, ...]] | None:
    """(``rows`` as a JSON array of arrays, each column's type), or None when a column is not
    of a type :data:`_TAKES` names or a value is not of its column's kind."""
    kinds = tuple(types.get(c, "") for c in cols)
    if not all(k in _TAKES for k in kinds) or not _fits(rows, kinds):
        return None
    try:
        doc = orjson.dumps(rows).decode()
    except TypeError:  # an int beyond 64 bits, a lone surrogate
        return None
    if "\\u0000" in doc and any(type(v) is str and "\x00" in v for r in rows for v in r):
        return None  # NUL, which PostgreSQL's text cannot hold (looked for only where it may be)
    return doc, kinds


def _fits(rows: list[list], kinds: tuple[str, ...]) -> bool:
    """Every value None or of a Python type its column's kind takes; every float :func:`_plain`."""
    for values, kind in zip(zip(*rows, strict=True), kinds, strict=True):
        present = set(map(type, values)) - {type(None)}
        if not present <= _TAKES[kind]:
            return False
        if float in present and not all(map(_plain, (v for v in values if type(v) is float))):
            return False
    return True


def _plain(v: float) -> bool:
    """Finite and not -0.0 (JSON has no NaN or infinity, and jsonb's numbers no negative zero)."""
    return math.isfinite(v) and (v != 0 or math.copysign(1.0, v) > 0)


@functools.lru_cache(maxsize=256)
def _statement(head: str, kinds: tuple[str, ...], tail: str) -> str:
    """The insert whose ``head`` is ``… (cols) VALUES``, its rows each row of the JSON array
    ``$1`` with each value read as its column's type, then ``tail``."""
    picked = ", ".join(f"(r->>{i})::{kind}" for i, kind in enumerate(kinds))
    return f"{head[:-len('VALUES ')]}SELECT {picked} FROM jsonb_array_elements($1::jsonb) r{tail}"
