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
scans       scan attempts only (``audit_log`` ``scan`` and ``security.rate_limited``),
            with the refusal's ``reason`` (``malformed``: no kiosk code at all)
workOrders  ``work_orders`` opened in the window, as they are now
offers      offers guests took (``offer_acceptances``), with the guest's name and
            room from the reservation and the offer's name
==========  =====================================================================

Without ``kinds`` an export has the first five (``KINDS``), as it always had; the others
(``MORE_KINDS``) are there when asked for.

**Readable CSV** (``columns=readable``, CSV only): the header is column names a person
reads ("Time (UTC)", "Room", "Guest", "Request type", ...) in English or German
(``lang``), times are ``YYYY-MM-DD HH:MM:SS`` (UTC, which a spreadsheet reads as a
date-time), the file starts with a UTF-8 byte order mark (so a spreadsheet shows
umlauts right), and an export of one kind has no ``kind`` column; of several, the first
column ("Record") names each row's kind.  The default header (``columns=keys``) stays
the internal keys: clients read them.

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

from . import guest_keys
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
#: kinds an export has only when asked for (``KINDS`` is what an export without ``kinds`` has, as it always had)
MORE_KINDS: dict[str, Kind] = {
    "scans": Kind(
        ("at", "id", "outcome", "code", "reason", "repeats", "client", "jti", "actor", "sessionId"),
        (f"SELECT {_ts('at')}, id, outcome, code, json_extract(details, '$.reason'), repeats, client, jti, actor,"
         " session_id FROM audit_log WHERE hotel_id = :hotel AND event IN ('scan', 'security.rate_limited')"
         " AND at >= :start AND at < :end ORDER BY at, id",)),
    "workOrders": Kind(
        ("at", "id", "roomNumber", "type", "description", "priority", "status", "assignee", "notes", "closedAt",
         "updatedAt"),
        (f"SELECT {_ts('opened_at')}, work_order_id, room_number, type, description, priority, status, assignee,"
         f" notes, {_ts('closed_at')}, {_ts('updated_at')} FROM work_orders WHERE hotel_id = :hotel"
         " AND opened_at >= :start AND opened_at < :end ORDER BY opened_at, work_order_id",)),
    "offers": Kind(
        ("at", "id", "reservation", "guest", "roomNumber", "offerId", "offer", "price", "currency", "sessionId"),
        (f"SELECT {_ts('a.accepted_at')}, a.confirmation || ':' || a.offer_id, a.confirmation, r.guest_name,"
         " r.room_number, a.offer_id, o.name, a.price, a.currency, a.session_id FROM offer_acceptances a"
         " LEFT JOIN reservations r ON r.hotel_id = a.hotel_id AND r.confirmation = a.confirmation"
         " LEFT JOIN offers o ON o.hotel_id = a.hotel_id AND o.offer_id = a.offer_id"
         " WHERE a.hotel_id = :hotel AND a.accepted_at >= :start AND a.accepted_at < :end"
         " ORDER BY a.accepted_at, a.confirmation, a.offer_id",)),
}
DEFAULT_KINDS = tuple(KINDS)
ALL_KINDS: dict[str, Kind] = KINDS | MORE_KINDS
COLUMN_STYLES = ("keys", "readable")
LANGS = ("en", "de")

# --- readable names: per column key (en, de), a kind may name a shared key its own way -----------
LABELS: dict[str, tuple[str, str]] = {
    "kind": ("Record", "Datensatz"),
    "at": ("Time (UTC)", "Zeit (UTC)"),
    "id": ("ID", "ID"),
    "event": ("Event", "Ereignis"),
    "outcome": ("Outcome", "Ergebnis"),
    "actor": ("By", "Von"),
    "sessionId": ("Session", "Sitzung"),
    "jti": ("Code ID", "Code-ID"),
    "client": ("Device", "Gerät"),
    "code": ("Reason code", "Grund-Code"),
    "repeats": ("Times", "Anzahl"),
    "details": ("Details", "Details"),
    "userId": ("User ID", "Benutzer-ID"),
    "role": ("Role", "Rolle"),
    "name": ("Name", "Name"),
    "scanMethod": ("Scanned with", "Gescannt mit"),
    "expiresAt": ("Expires (UTC)", "Läuft ab (UTC)"),
    "endedAt": ("Ended (UTC)", "Beendet (UTC)"),
    "endReason": ("End reason", "Grund für das Ende"),
    "modelId": ("Model", "Modell"),
    "durationMs": ("Duration (ms)", "Dauer (ms)"),
    "status": ("Status", "Status"),
    "error": ("Error", "Fehler"),
    "actions": ("Actions", "Aktionen"),
    "entityType": ("Item type", "Art des Vorgangs"),
    "entityId": ("Item", "Vorgang"),
    "field": ("Field", "Feld"),
    "old": ("Old value", "Alter Wert"),
    "new": ("New value", "Neuer Wert"),
    "hlc": ("Change stamp", "Änderungsstempel"),
    "syncState": ("Sync state", "Sync-Status"),
    "type": ("Type", "Art"),
    "title": ("Title", "Titel"),
    "description": ("Description", "Beschreibung"),
    "roomNumber": ("Room", "Zimmer"),
    "priority": ("Priority", "Priorität"),
    "queue": ("Team", "Team"),
    "mergedInto": ("Merged into", "Zusammengeführt mit"),
    "reason": ("Reason", "Grund"),
    "assignee": ("Assigned to", "Zugewiesen an"),
    "notes": ("Notes", "Notizen"),
    "closedAt": ("Closed (UTC)", "Erledigt (UTC)"),
    "updatedAt": ("Last change (UTC)", "Letzte Änderung (UTC)"),
    "reservation": ("Reservation", "Reservierung"),
    "guest": ("Guest", "Gast"),
    "offerId": ("Offer ID", "Angebots-ID"),
    "offer": ("Offer", "Angebot"),
    "price": ("Price", "Preis"),
    "currency": ("Currency", "Währung"),
}
KIND_LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "tickets": {"type": ("Request type", "Art der Anfrage"), "actor": ("Guest or staff", "Gast oder Personal"),
                "id": ("Request", "Anfrage")},
    "sessions": {"at": ("Signed in (UTC)", "Angemeldet (UTC)")},
    "workOrders": {"at": ("Opened (UTC)", "Eröffnet (UTC)"), "type": ("Work order type", "Art des Auftrags"),
                   "id": ("Work order", "Auftrag")},
    "offers": {"id": ("Offer taken", "Angenommenes Angebot")},
    "scans": {"outcome": ("Result", "Ergebnis")},
}
KIND_NAMES: dict[str, tuple[str, str]] = {
    "audit": ("Audit log", "Prüfprotokoll"), "sessions": ("Session", "Sitzung"),
    "modelRuns": ("Model run", "Modelllauf"), "pmsChanges": ("PMS change", "PMS-Änderung"),
    "tickets": ("Request", "Anfrage"), "scans": ("Scan", "Scan"), "workOrders": ("Work order", "Arbeitsauftrag"),
    "offers": ("Offer taken", "Angenommenes Angebot"),
}
#: columns holding times (RFC 3339), written as ``YYYY-MM-DD HH:MM:SS`` in a readable CSV
TIMES = frozenset({"at", "expiresAt", "endedAt", "closedAt", "updatedAt"})


def header(kinds: list[str]) -> list[str]:
    """``kind``, then the union of the kinds' columns in order of first appearance."""
    cols = ["kind"]
    for k in kinds:
        cols += [c for c in ALL_KINDS[k].columns if c not in cols]
    return cols


def readable_header(kinds: list[str], lang: str = "en") -> list[str]:
    """The names a person reads for :func:`header` (without ``kind`` for one kind): a kind's own
    name for a column when it is the only kind, else the shared one."""
    i = LANGS.index(lang)
    own = KIND_LABELS.get(kinds[0], {}) if len(kinds) == 1 else {}
    cols = header(kinds)[1:] if len(kinds) == 1 else header(kinds)
    return [(own.get(c) or LABELS[c])[i] for c in cols]


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
        for sql in ALL_KINDS[name].queries:
            cur = conn.execute(sql, params)
            try:
                while rows := cur.fetchmany(CHUNK):
                    yield name, rows
            finally:
                cur.close()


def _readable_time(value):
    """``2026-05-28T20:26:40.000Z`` as ``2026-05-28 20:26:40`` (a spreadsheet reads it as a date-time)."""
    return value[:10] + " " + value[11:19] if value.__class__ is str and len(value) >= 19 else value


def _readable_csv(chunks, kinds: list[str], lang: str) -> Iterator[str]:
    """The readable CSV: names a person reads, plain times, no ``kind`` column for one kind."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\r\n")
    out.writerow(readable_header(kinds, lang))
    buf.seek(0)
    head = "\ufeff" + buf.getvalue()  # the byte order mark: spreadsheets then read UTF-8
    buf.seek(0)
    buf.truncate()
    yield head
    cols = header(kinds)
    i = LANGS.index(lang)
    one = len(kinds) == 1
    for name, rows in chunks:
        columns = ALL_KINDS[name].columns
        slots = [cols.index(c) for c in columns]
        times = [j for j, c in enumerate(columns) if c in TIMES]
        for row in rows:
            row = list(row)
            for j in times:
                row[j] = _readable_time(row[j])
            if one:
                out.writerow(map(neutralise, row))
                continue
            line = [None] * len(cols)
            line[0] = KIND_NAMES[name][i]
            for slot, value in zip(slots, row, strict=True):
                line[slot] = neutralise(value)
            out.writerow(line)
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()


def _csv(chunks, cols: list[str]) -> Iterator[str]:
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\r\n")
    out.writerow(cols)
    for name, rows in chunks:
        # the kind's columns are a run of the header, after ``kind`` and the columns of kinds before it
        # that it shares (at, id, ...): place each value by its column, leave the others empty
        slots = [cols.index(c) for c in ALL_KINDS[name].columns]
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
    columns = ALL_KINDS[name].columns
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


def stream(connect: Callable, hotel_id: str, w: Window, kinds: list[str], fmt: str, *, columns: str = "keys",
           lang: str = "en") -> Iterator[str]:
    """The export as text chunks.  ``connect()`` opens a connection this generator owns and closes.
    ``columns="readable"`` (CSV only): the readable CSV in ``lang`` (the module docstring)."""
    conn = connect()
    try:
        conn.execute("BEGIN")  # one snapshot for every kind
        chunks = _chunks(conn, hotel_id, w, kinds)
        if fmt == "csv" and columns == "readable":
            yield from _readable_csv(chunks, kinds, lang if lang in LANGS else "en")
        elif fmt == "csv":
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
    """A read-only connection of the export's own (autocommit, so ``BEGIN`` starts the snapshot);
    guests' sealed names and words read as the screens show them (kiosk/guest_keys.py)."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=5,
                           factory=guest_keys.Connection)
    conn.row_factory = guest_keys.row_factory
    conn.execute("PRAGMA query_only = ON")
    return conn
