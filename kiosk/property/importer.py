"""Property data from a PMS export: a folder of CSV files, imported all or nothing.

Each file present replaces that hotel's rows of its table, in ONE transaction for the
whole folder: a bad cell anywhere stops the import with an error naming the file, the
line and the column, and nothing is written.  Unknown columns are ignored; empty
cells are NULL (or the column's default).  docs/property-data.md lists the columns (a
test keeps it equal to :data:`SPECS`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from .. import store
from ..errors import ValidationError
from . import tables as property_tables

ROOM_STATUSES = ("Dirty", "Pickup", "Clean", "Inspected", "OutOfOrder", "OutOfService")
RES_STATUSES = ("Confirmed", "InHouse", "CheckedOut", "Canceled", "NoShow")


def _int(v: str) -> int:
    return int(v)


def _float(v: str) -> float:
    f = float(v)
    if f != f or f in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    return f


def _bool01(v: str) -> int:
    if v not in ("0", "1"):
        raise ValueError("must be 0 or 1")
    return int(v)


def _date(v: str) -> str:
    return date.fromisoformat(v).isoformat()


def _ts(v: str) -> str:
    return datetime.fromisoformat(v.replace("Z", "+00:00")).isoformat()


def _hhmm(v: str) -> str:
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", v):
        raise ValueError("must be HH:MM")
    return v


def _enum(*allowed: str) -> Callable[[str], str]:
    def check(v: str) -> str:
        if v not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return v
    return check


def _text(v: str) -> str:
    if len(v) > 2000:
        raise ValueError("longer than 2000 characters")
    return v


@dataclass(frozen=True)
class Col:
    name: str
    parse: Callable[[str], Any] = _text
    required: bool = False
    to: str | None = None  # the table column, when it differs
    default: Any = None  # an empty cell's value, when it is not NULL (or the table's default)


def C(name, parse=_text, required=False, to=None, default=None):  # noqa: N802 - reads like a table below
    return Col(name, parse, required, to, default)


#: file stem -> (table, key columns, columns)
SPECS: dict[str, tuple[str, tuple[str, ...], tuple[Col, ...]]] = {
    "rooms": ("rooms", ("room_number",), (
        C("room_number", required=True), C("room_type", required=True), C("floor", _int, True),
        C("status", _enum(*ROOM_STATUSES), True), C("occupied", _bool01))),
    "rate_plans": ("rate_plans", ("code", "room_type"), (
        C("code", required=True), C("room_type", required=True), C("nightly_rate", _float, True),
        C("tax_rate", _float, True))),
    "reservations": ("reservations", ("confirmation",), (
        C("confirmation", required=True), C("guest_name"), C("room_number"), C("arrival", _date, True),
        C("departure", _date, True), C("status", _enum(*RES_STATUSES), True), C("adults", _int),
        C("children", _int), C("rate_plan"), C("nightly_rate", _float), C("currency"), C("language"),
        C("vip", _bool01), C("segment"), C("room_type"), C("booked_on", _date), C("canceled_on", _date),
        C("email"), C("phone"))),
    "charges": ("charges", ("charge_id",), (
        C("charge_id", required=True), C("confirmation", required=True), C("posted_at", _ts, True),
        C("code", required=True), C("description"), C("amount", _float, True), C("quantity", _float))),
    "staff": ("staff", ("staff_id",), (
        C("staff_id", required=True), C("name", required=True), C("role", required=True), C("skills"),
        C("shift_start", _hhmm), C("shift_end", _hhmm), C("max_credits", _float))),
    "tasks": ("tasks", ("task_id",), (
        C("task_id", required=True), C("type", required=True), C("room_number"), C("priority"),
        C("required_skill"), C("created_at", _ts, True), C("due_at", _ts), C("status"), C("assignee"),
        C("description"))),
    "assets": ("assets", ("asset_id",), (
        C("asset_id", required=True), C("type", required=True), C("room_number"), C("installed_on", _date))),
    "work_orders": ("work_orders", ("work_order_id",), (
        C("work_order_id", required=True), C("asset_id"), C("room_number"), C("opened_at", _ts, True),
        C("closed_at", _ts), C("type", _enum("failure", "preventive")), C("description"),
        C("status", _enum("open", "assigned", "in_progress", "on_hold", "done", "reopened", "cancelled"), True),
        C("assignee"), C("priority", _enum("low", "normal", "high", "urgent")), C("notes"))),
    "offers": ("offers", ("offer_id",), (
        C("offer_id", required=True), C("name", required=True), C("type", _enum("upgrade", "addon"), True),
        C("price", _float, True), C("margin", _float, True), C("room_type_from"), C("room_type_to"),
        C("inventory", _int), C("description"), C("name_de"), C("description_de"))),
    "offer_history": ("offer_history", (), (
        C("confirmation", required=True), C("offer_id", required=True), C("shown_at", _ts, True),
        C("accepted", _bool01, True))),
    "faq": ("faq", ("faq_id", "language"), (
        C("faq_id", required=True), C("language", default="en"), C("question", required=True), C("answer", required=True))),
}


def _bad(file: str, line: int, column: str, problem: str) -> ValidationError:
    return ValidationError(f"{file} line {line}, column {column!r}: {problem}",
                           {"file": file, "line": line, "column": column, "problem": problem})


def parse_file(path: Path) -> list[dict]:
    """The rows of one export file, typed and checked (column names as in the table)."""
    stem = path.stem
    table, keys, cols = SPECS[stem]
    raw_bytes = path.read_bytes()
    try:
        text = raw_bytes.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw_bytes[:e.start].count(b"\n") + 1
        raise _bad(path.name, line, "", f"byte {raw_bytes[e.start]:#04x} is not UTF-8; save the export as UTF-8"
                                         " (CSV UTF-8 in a spreadsheet)") from None
    with io.StringIO(text, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        for c in cols:
            if c.required and c.name not in header:
                raise _bad(path.name, 1, c.name, "missing column")
        rows, seen = [], {}
        for line, raw in enumerate(reader, start=2):
            row = {}
            for c in cols:
                value = (raw.get(c.name) or "").strip()
                if not value:
                    if c.required:
                        raise _bad(path.name, line, c.name, "required")
                    if c.default is not None:  # e.g. the FAQ's language, part of its key
                        row[c.to or c.name] = c.default
                    continue
                try:
                    row[c.to or c.name] = c.parse(value)
                except ValueError as e:
                    raise _bad(path.name, line, c.name, f"{value[:40]!r}: {e}") from None
            if keys:
                key = tuple(row[k] for k in keys)
                if key in seen:
                    raise _bad(path.name, line, keys[0], f"duplicate of line {seen[key]}")
                seen[key] = line
            rows.append(row)
    return rows


def parse_dir(folder: str | Path) -> dict[str, list[dict]]:
    """Every known export file in ``folder``, parsed; other files are ignored."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValidationError(f"no such folder: {folder}", {"folder": str(folder)})
    return {stem: parse_file(folder / f"{stem}.csv") for stem in SPECS if (folder / f"{stem}.csv").exists()}


def _epoch(iso_text: str | None) -> float | None:
    return None if iso_text is None else datetime.fromisoformat(iso_text).timestamp()


def import_dir(db, folder: str | Path, hotel_id: str, progress=None) -> dict[str, int]:
    """Parse everything first, then replace the hotel's rows of each table in one transaction."""
    data = parse_dir(folder)
    if "reservations" in data and "rooms" in data:
        rooms = {r["room_number"] for r in data["rooms"]}
        for i, r in enumerate(data["reservations"], start=2):
            if r.get("room_number") and r["room_number"] not in rooms:
                raise _bad("reservations.csv", i, "room_number", f"room {r['room_number']!r} is not in rooms.csv")
    counts = {}
    with store.transaction(db):
        for stem, rows in data.items():
            table = SPECS[stem][0]
            if table == "work_orders":
                for r in rows:
                    r["opened_at"], r["closed_at"] = _epoch(r["opened_at"]), _epoch(r.get("closed_at"))
                    r.setdefault("type", "failure")
                    r["updated_at"] = r["opened_at"]
            property_tables.clear(db, hotel_id, table)
            for i in range(0, len(rows), 500):
                property_tables.insert_many(db, hotel_id, table, rows[i:i + 500])
                if progress:
                    progress(len(rows[i:i + 500]))
            counts[stem] = len(rows)
    return counts
