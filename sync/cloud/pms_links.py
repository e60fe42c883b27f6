"""Hotels linked to their PMS: the link, its credentials, the lease, and the PMS's reservation ids.

* A link names the PMS kind (a module of :mod:`.connectors`), its URL, the hotel's id in
  the PMS and the transaction code charges are posted with.  The vendor's secrets are
  never in the database, on a command line or in a log: they are a JSON file in the
  cloud's data directory (``pms/<hotel>.json``, 0600, written atomically), checked for
  the fields the kind needs when the link is made.  Several cloud machines on one
  PostgreSQL each need that file (docs/pms.md).
* The lease: one connector per hotel runs at a time, however many workers or machines
  serve the cloud.  :func:`take_lease` is one conditional UPDATE (the lease is free,
  expired, or already this owner's), atomic on both backends.
* ``pms_reservations`` keeps the PMS's own id of each reservation it sent (what every
  write to the PMS names) and its status as the PMS last said it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from kiosk.errors import NotFound, ValidationError
from kiosk.files import make_dirs, write_private

from . import connectors, leases, storage

_HOTEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
LEASE_SECONDS = 120.0


@dataclass(frozen=True)
class Link:
    hotel_id: str
    kind: str
    url: str
    pms_hotel: str
    charge_code: str
    maintenance_code: str
    linked_at: float
    last_read_at: float | None
    last_read_count: int | None
    last_error: str | None
    last_error_at: float | None
    lease_owner: str | None
    lease_until: float


_COLUMNS = ("hotel_id", "kind", "url", "pms_hotel", "charge_code", "maintenance_code", "linked_at", "last_read_at",
            "last_read_count", "last_error", "last_error_at", "lease_owner", "lease_until")


def credentials_path(data_dir: str | Path, hotel_id: str) -> Path:
    if not _HOTEL.match(hotel_id or ""):
        raise ValidationError(f"not a hotel id: {hotel_id!r}", {"field": "hotel"})
    return Path(data_dir) / "pms" / f"{hotel_id}.json"


def read_credentials(path: str | Path, kind: str) -> dict:
    """The vendor's secrets from a JSON file, checked for the fields ``kind`` needs
    (VALIDATION_ERROR naming the missing ones, never their values)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationError(f"no credentials file {path}", {"field": "credentials"}) from None
    except (OSError, ValueError) as e:
        raise ValidationError(f"the credentials file {path} is not JSON: {type(e).__name__}",
                              {"field": "credentials"}) from None
    if not isinstance(data, dict):
        raise ValidationError("the credentials file must hold a JSON object", {"field": "credentials"})
    missing = [f for f in connectors.CREDENTIALS[kind] if not isinstance(data.get(f), str) or not data[f]]
    if missing:
        raise ValidationError(f"the credentials file lacks {', '.join(missing)} for {connectors.NAMES[kind]}",
                              {"field": "credentials", "missing": missing})
    return {f: data[f] for f in connectors.CREDENTIALS[kind]}


def link(db, data_dir: str | Path, hotel_id: str, *, kind: str, url: str, pms_hotel: str, credentials: dict,
         charge_code: str, now: float, maintenance_code: str = "KIOSK") -> Link:
    """Link (or re-link) a hotel: the secrets to their file first, then the row."""
    if kind not in connectors.KINDS:
        raise ValidationError(f"unknown PMS kind {kind!r}", {"field": "kind", "allowed": sorted(connectors.KINDS)})
    if not re.match(r"^https?://[^\s]+$", url or ""):
        raise ValidationError("the PMS URL must be http(s)://…", {"field": "url"})
    if not pms_hotel or len(pms_hotel) > 64:
        raise ValidationError("the hotel's id in the PMS is required (at most 64 characters)",
                              {"field": "pms_hotel"})
    for field, code in (("charge_code", charge_code), ("maintenance_code", maintenance_code)):
        if not code or len(code) > 20:
            raise ValidationError(f"{field}: 1-20 characters (a code set up in the PMS)", {"field": field})
    path = credentials_path(data_dir, hotel_id)
    make_dirs(path.parent)
    write_private(path, json.dumps(credentials, sort_keys=True).encode())
    db.execute("INSERT INTO pms_links (hotel_id, kind, url, pms_hotel, charge_code, maintenance_code, linked_at,"
               " lease_until) VALUES (?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT (hotel_id) DO UPDATE SET"
               " kind = excluded.kind, url = excluded.url, pms_hotel = excluded.pms_hotel,"
               " charge_code = excluded.charge_code, maintenance_code = excluded.maintenance_code,"
               " linked_at = excluded.linked_at, last_error = NULL, last_error_at = NULL",
               [hotel_id, kind, url.rstrip("/"), pms_hotel, charge_code, maintenance_code, now])
    return get(db, hotel_id)


def unlink(db, data_dir: str | Path, hotel_id: str) -> None:
    """Forget the link and its secrets (the outbox's actions stay, for the record)."""
    if get(db, hotel_id) is None:
        raise NotFound(f"hotel {hotel_id!r} is not linked to a PMS", {"hotel": hotel_id})
    db.execute("DELETE FROM pms_links WHERE hotel_id = ?", [hotel_id])
    credentials_path(data_dir, hotel_id).unlink(missing_ok=True)


def get(db, hotel_id: str) -> Link | None:
    row = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM pms_links WHERE hotel_id = ?", [hotel_id]).fetchone()
    return Link(*row) if row is not None else None


def select_many(db, hotel_ids: list[str]) -> tuple[list[str], list]:
    """The links of ``hotel_ids``, asked for (one query a chunk): read them with
    :func:`fetched`, after whatever else is sent in between (inside a pipeline, one round trip)."""
    return hotel_ids, [db.execute(f"SELECT {', '.join(_COLUMNS)} FROM pms_links WHERE {cond}", params)
                       for cond, params in (storage.one_of(db, "hotel_id", chunk)
                                            for chunk in storage.chunks(hotel_ids))]


def fetched(asked: tuple[list[str], list]) -> dict[str, Link | None]:
    """Each hotel :func:`select_many` asked for: its link, or None."""
    hotel_ids, cursors = asked
    out: dict[str, Link | None] = dict.fromkeys(hotel_ids)
    for cur in cursors:
        for row in cur.fetchall():
            out[row[0]] = Link(*row)
    return out


def all_links(db) -> list[Link]:
    return [Link(*r) for r in db.execute(f"SELECT {', '.join(_COLUMNS)} FROM pms_links ORDER BY hotel_id")]


def credentials(data_dir: str | Path, link_: Link) -> dict:
    return read_credentials(credentials_path(data_dir, link_.hotel_id), link_.kind)


def take_lease(db, hotel_id: str, owner: str, now: float, seconds: float = LEASE_SECONDS) -> bool:
    """The hotel's connector lease for ``owner`` until now + seconds, if nobody else holds it
    (free, run out, or held by a process of this host that is gone: ``leases.gone``)."""
    dead = leases.holder_if_gone(db, "SELECT lease_owner FROM pms_links WHERE hotel_id = ?", [hotel_id])
    cur = db.execute("UPDATE pms_links SET lease_owner = ?, lease_until = ? WHERE hotel_id = ?"
                     " AND (lease_owner IS NULL OR lease_owner = ? OR lease_owner = ? OR lease_until < ?)",
                     [owner, now + seconds, hotel_id, owner, dead, now])
    return cur.rowcount == 1


def release_lease(db, hotel_id: str, owner: str) -> None:
    db.execute("UPDATE pms_links SET lease_owner = NULL, lease_until = 0 WHERE hotel_id = ? AND lease_owner = ?",
               [hotel_id, owner])


def record_read(db, hotel_id: str, count: int, now: float) -> None:
    db.execute("UPDATE pms_links SET last_read_at = ?, last_read_count = ?, last_error = NULL,"
               " last_error_at = NULL WHERE hotel_id = ?", [now, count, hotel_id])


def record_error(db, hotel_id: str, message: str, now: float) -> None:
    db.execute("UPDATE pms_links SET last_error = ?, last_error_at = ? WHERE hotel_id = ?",
               [message[:1000], now, hotel_id])


def remember_reservations(db, hotel_id: str, rows: list[dict]) -> None:
    """The PMS's id and status of each reservation it sent (inside the caller's transaction)."""
    for r in rows:
        if r.get("confirmation") and r.get("pms_id"):
            db.execute("INSERT INTO pms_reservations (hotel_id, confirmation, pms_id, status, room)"
                       " VALUES (?, ?, ?, ?, ?) ON CONFLICT (hotel_id, confirmation) DO UPDATE SET"
                       " pms_id = excluded.pms_id, status = excluded.status, room = excluded.room",
                       [hotel_id, str(r["confirmation"]), str(r["pms_id"]), r.get("status"), r.get("room_number")])


def in_house(db, hotel_id: str, room: str) -> str | None:
    """The PMS's id of the stay in ``room`` now (status InHouse), if exactly one."""
    rows = db.execute("SELECT pms_id FROM pms_reservations WHERE hotel_id = ? AND room = ? AND status = 'InHouse'",
                      [hotel_id, room]).fetchall()
    return rows[0][0] if len(rows) == 1 else None


def reservation(db, hotel_id: str, confirmation: str) -> tuple[str, str | None] | None:
    """(the PMS's id, its status) of a reservation the PMS sent, or None."""
    row = db.execute("SELECT pms_id, status FROM pms_reservations WHERE hotel_id = ? AND confirmation = ?",
                     [hotel_id, confirmation]).fetchone()
    return (row[0], row[1]) if row is not None else None
