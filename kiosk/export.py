"""Export one hotel's logs for a time window as CSV, a JSON array or NDJSON, streamed.

Kinds (each ordered by time, then id; kinds in the order asked):

==========  =====================================================================
audit       ``audit_log``: every scan attempt, security event and admin action
            (``repeats``: identical refused scans within a minute share one row)
sessions    ``sessions`` opened in the window
modelRuns   ``ai_interactions``: every model run (status SUCCESS/ERROR/TIMEOUT/INVALID)
pmsChanges  field-level work-order changes (``work_order_history``, id ``wo:<n>``),
            then PMS updates the models queued (outbox ``pms.update``, id ``pms:<n>``,
            ``new`` = the changes as JSON, ``syncState`` = the outbox state)
tickets     ``tickets`` created in the window
==========  =====================================================================

**CSV** is one table a spreadsheet can filter: the first column is ``kind``, then
``at`` and ``id``, then the union of the requested kinds' other columns in a fixed
order (a row leaves the columns of other kinds empty).  Times are RFC 3339 UTC.
Cells that start with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return — after any
leading whitespace, control or invisible characters (a NUL, a zero-width space, a BOM),
which a spreadsheet may drop — get a leading ``'`` so a spreadsheet shows them as text
instead of running them as a formula (OWASP "CSV injection").  **JSON** is one array of objects, **NDJSON** one
object per line; each object has ``kind`` and that kind's own fields only.

Rows are read from a connection of the export's own in one read transaction (a
consistent snapshot), ``CHUNK`` rows at a time, and each chunk is encoded and
yielded before the next is read, so memory stays flat whatever the row count
(bench/admin.py).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sqlite3
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .analytics import Window

log = logging.getLogger("kiosk.export")

CHUNK = 2000
FORMATS = {"csv": ("text/csv; charset=utf-8", "csv"), "json": ("application/json", "json"),
           "ndjson": ("application/x-ndjson", "ndjson")}
DANGEROUS = frozenset("=+-@\t\r")
#: what a spreadsheet may skip before a formula: control, format (zero-width, BOM) and separator characters
INVISIBLE = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def _ts(col: str) -> str:
    """SQL for ``col`` (seconds since the epoch) as RFC 3339 UTC, exactly as :func:`kiosk.clock.iso`."""
    return (f"strftime('%Y-%m-%dT%H:%M:%S', CAST({col} AS INTEGER), 'unixepoch')"
            f" || printf('.%03dZ', CAST({col} * 1000 AS INTEGER) % 1000)")


@dataclass(frozen=True)
class Kind:
    columns: tuple[str, ...]  # the first two are always at, id
    queries: tuple[str, ...]  # each selects the columns in order; parameters :hotel, :start, :end


KINDS: dict[str, Kind] = {
    "audit": Kind(
        ("at", "id", "event", "outcome", "actor", "sessionId", "jti", "client", "code", "repeats", "details"),
        (f"SELECT {_ts('at')}, id, event, outcome, actor, session_id, jti, client, code, repeats, details FROM audit_log"
         " WHERE hotel_id = :hotel AND at >= :start AND at < :end ORDER BY at, id",)),
    "sessions": Kind(
        ("at", "id", "userId", "role", "name", "scanMethod", "client", "expiresAt", "endedAt", "endReason"),
        (f"SELECT {_ts('created_at')}, id, user_id, role, display_name, scan_method, client, {_ts('expires_at')},"
         f" {_ts('ended_at')}, end_reason FROM sessions WHERE hotel_id = :hotel AND created_at >= :start"
         " AND created_at < :end ORDER BY created_at, id",)),
    "modelRuns": Kind(
        ("at", "id", "modelId", "sessionId", "actor", "durationMs", "status", "error", "actions"),
        (f"SELECT {_ts('started_at')}, id, model_id, session_id, actor, duration_ms, status, error, actions"
         " FROM ai_interactions WHERE hotel_id = :hotel AND started_at >= :start AND started_at < :end"
         " ORDER BY started_at, id",)),
    "pmsChanges": Kind(
        ("at", "id", "entityType", "entityId", "field", "old", "new", "actor", "hlc", "syncState"),
        (f"SELECT {_ts('at')}, 'wo:' || id, 'work_order', work_order_id, field, old, new, by, hlc, NULL"
         " FROM work_order_history WHERE hotel_id = :hotel AND at >= :start AND at < :end ORDER BY at, id",
         f"SELECT {_ts('created_at')}, 'pms:' || id, 'pms', entity_id, NULL, NULL, json_extract(payload, '$.changes'),"
         " json_extract(payload, '$.approvedBy'), hlc, state FROM outbox WHERE hotel_id = :hotel"
         " AND kind = 'pms.update' AND created_at >= :start AND created_at < :end ORDER BY created_at, id")),
    "tickets": Kind(
        ("at", "id", "type", "title", "description", "roomNumber", "priority", "queue", "status", "actor",
         "sessionId", "mergedInto"),
        (f"SELECT {_ts('created_at')}, ticket_id, type, title, description, room_number, priority, queue, status,"
         " created_by, session_id, merged_into FROM tickets WHERE hotel_id = :hotel AND created_at >= :start"
         " AND created_at < :end ORDER BY created_at, ticket_id",)),
}


def header(kinds: list[str]) -> list[str]:
    """``kind``, then the union of the kinds' columns in order of first appearance."""
    cols = ["kind"]
    for k in kinds:
        cols += [c for c in KINDS[k].columns if c not in cols]
    return cols


def neutralise(value):
    """A cell a spreadsheet will not run as a formula (only text can carry one).

    Spreadsheets drop or "trim" what comes before a formula's ``=``: a NUL, spaces (LibreOffice's
    "trim spaces"), a zero-width space or a BOM.  So the leading whitespace, control and invisible
    characters (Unicode categories Cc, Cf, Zs, Zl, Zp) are skipped before the cell is judged;
    if it then starts with ``= + - @`` (or is a tab or carriage return from the start), the
    cell gets a leading ``'``."""
    if value.__class__ is not str or not value:
        return value
    first = value[0]
    if first in DANGEROUS:
        return "'" + value
    if first.isalnum():  # the common case: letters or digits first, nothing to skip
        return value
    for ch in value:
        if ch in DANGEROUS:
            return "'" + value
        if not (ch.isspace() or unicodedata.category(ch) in INVISIBLE):
            return value
    return value


def filename(hotel_id: str, w: Window, fmt: str) -> str:
    return f"kiosk-export-{hotel_id}-{w.label_from}-{w.label_to}.{FORMATS[fmt][1]}"


def _chunks(conn, hotel_id: str, w: Window, kinds: list[str]) -> Iterator[tuple[str, list[tuple]]]:
    """(kind, up to CHUNK rows) in order; one cursor at a time, never more than a chunk in memory."""
    params = {"hotel": hotel_id, "start": w.start, "end": w.end}
    for name in kinds:
        for sql in KINDS[name].queries:
            cur = conn.execute(sql, params)
            try:
                while rows := cur.fetchmany(CHUNK):
                    yield name, rows
            finally:
                cur.close()


def _csv(chunks, cols: list[str]) -> Iterator[str]:
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\r\n")
    out.writerow(cols)
    for name, rows in chunks:
        # the kind's columns are a run of the header, after ``kind`` and the columns of kinds before it
        # that it shares (at, id, ...): place each value by its column, leave the others empty
        slots = [cols.index(c) for c in KINDS[name].columns]
        blank = [None] * len(cols)
        blank[0] = name
        if slots == list(range(1, len(slots) + 1)) and len(slots) + 1 == len(cols):  # one kind: no gaps
            out.writerows([name, *map(neutralise, row)] for row in rows)
        else:
            for row in rows:
                line = blank.copy()
                for slot, value in zip(slots, row, strict=True):
                    line[slot] = neutralise(value)
                out.writerow(line)
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    if buf.tell():  # the header alone, when there are no rows
        yield buf.getvalue()


def _dicts(name: str, rows: list[tuple]) -> Iterator[str]:
    columns = KINDS[name].columns
    for row in rows:
        yield json.dumps({"kind": name, **dict(zip(columns, row, strict=True))}, separators=(",", ":"))


def _json_array(chunks) -> Iterator[str]:
    yield "["
    sep = "\n"
    for name, rows in chunks:
        yield sep + ",\n".join(_dicts(name, rows))
        sep = ",\n"
    yield "\n]\n"


def _ndjson(chunks) -> Iterator[str]:
    for name, rows in chunks:
        yield "".join(line + "\n" for line in _dicts(name, rows))


def stream(connect: Callable, hotel_id: str, w: Window, kinds: list[str], fmt: str) -> Iterator[str]:
    """The export as text chunks.  ``connect()`` opens a connection this generator owns and closes."""
    conn = connect()
    try:
        conn.execute("BEGIN")  # one snapshot for every kind
        chunks = _chunks(conn, hotel_id, w, kinds)
        if fmt == "csv":
            yield from _csv(chunks, header(kinds))
        elif fmt == "json":
            yield from _json_array(chunks)
        else:
            yield from _ndjson(chunks)
    except Exception:  # the status line is gone: log it; the client sees a short file
        log.exception("export failed", extra={"hotelId": hotel_id})
        raise
    finally:
        if conn.in_transaction:
            conn.rollback()
        conn.close()


def reader(path) -> sqlite3.Connection:
    """A read-only connection of the export's own (autocommit, so ``BEGIN`` starts the snapshot)."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=5)
    conn.execute("PRAGMA query_only = ON")
    return conn
