"""A cloud run as a property hub: its link to the chain's cloud upstream.

``kiosk-cloud link --cloud URL --device-id ID --credential CRED`` makes this cloud a hub:
the hub's own identity at the chain cloud (``kiosk-cloud device add ID --hotel H`` there)
is written to ``DATA_DIR/upstream.json`` (0600, atomically; the credential is never in
the database or a log) and the link's row (``upstream_link``: URL, device, the relay's
lease and last results) tells the transaction that applies a kiosk's push that it must
be relayed.  ``link`` again replaces both; a running hub reads the file on every pass.
Without a link the cloud is the chain's cloud (or a single hotel's), as before.

``upstream_cursors`` keeps how far the hub has pulled each hotel's changes from the chain.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from kiosk.errors import NotFound, ValidationError
from kiosk.files import make_dirs, write_private

from . import leases

FILE = "upstream.json"
LEASE_SECONDS = 60.0
_DEVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


@dataclass(frozen=True)
class Link:
    url: str
    device_id: str
    linked_at: float
    lease_owner: str | None
    lease_until: float
    last_push_at: float | None
    last_pull_at: float | None
    last_error: str | None
    last_error_at: float | None


_COLUMNS = ("url", "device_id", "linked_at", "lease_owner", "lease_until", "last_push_at", "last_pull_at",
            "last_error", "last_error_at")


def path(data_dir: str | Path) -> Path:
    return Path(data_dir) / FILE


def link(db, data_dir: str | Path, *, url: str, device_id: str, credential: str, now: float) -> Link:
    """Link this cloud to the chain's cloud at ``url`` (the file first, then the row)."""
    if not re.match(r"^https?://[^\s]+$", url or ""):
        raise ValidationError("the chain cloud's URL must be http(s)://…", {"field": "cloud"})
    if not _DEVICE.match(device_id or ""):
        raise ValidationError("the hub's device id: letters, digits and . _ : - (at most 64)", {"field": "device_id"})
    if not credential or len(credential) > 200 or not credential.isprintable():
        raise ValidationError("the credential is 1-200 printable characters", {"field": "credential"})
    target = path(data_dir)
    make_dirs(target.parent)
    write_private(target, json.dumps({"url": url.rstrip("/"), "deviceId": device_id,
                                      "credential": credential}).encode())
    db.execute("INSERT INTO upstream_link (id, url, device_id, linked_at, lease_until) VALUES (1, ?, ?, ?, 0)"
               " ON CONFLICT (id) DO UPDATE SET url = excluded.url, device_id = excluded.device_id,"
               " linked_at = excluded.linked_at, last_error = NULL, last_error_at = NULL",
               [url.rstrip("/"), device_id, now])
    return get(db)


def unlink(db, data_dir: str | Path) -> None:
    if get(db) is None:
        raise NotFound("this cloud is not linked to a chain cloud", {})
    db.execute("DELETE FROM upstream_link WHERE id = 1")
    path(data_dir).unlink(missing_ok=True)


#: the link's row (none on a chain's cloud; one on a hub)
SELECT = f"SELECT {', '.join(_COLUMNS)} FROM upstream_link WHERE id = 1"


def get(db) -> Link | None:
    row = db.execute(SELECT).fetchone()
    return Link(*row) if row is not None else None


def read_file(data_dir: str | Path) -> dict | None:
    """The link file (url, deviceId, credential), or None when there is none or it is unreadable."""
    try:
        data = json.loads(path(data_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and all(isinstance(data.get(k), str) for k in
                                                  ("url", "deviceId", "credential")) else None


def take_lease(db, owner: str, now: float, seconds: float = LEASE_SECONDS) -> bool:
    """The relay's lease for ``owner`` until now + seconds, if nobody else holds it: free, run
    out, or held by a process of this host that is gone (``leases.gone``: a hub restarted after
    a kill or a power cut relays at once instead of waiting for its dead self's lease)."""
    dead = leases.holder_if_gone(db, "SELECT lease_owner FROM upstream_link WHERE id = 1", [])
    cur = db.execute("UPDATE upstream_link SET lease_owner = ?, lease_until = ? WHERE id = 1"
                     " AND (lease_owner IS NULL OR lease_owner = ? OR lease_owner = ? OR lease_until < ?)",
                     [owner, now + seconds, owner, dead, now])
    return cur.rowcount == 1


def release_lease(db, owner: str) -> None:
    db.execute("UPDATE upstream_link SET lease_owner = NULL, lease_until = 0 WHERE id = 1 AND lease_owner = ?",
               [owner])


def record(db, *, now: float, pushed: bool = False, pulled: bool = False, error: str | None = None) -> None:
    if error is not None:
        db.execute("UPDATE upstream_link SET last_error = ?, last_error_at = ? WHERE id = 1", [error[:1000], now])
        return
    sets = (["last_push_at = ?"] if pushed else []) + (["last_pull_at = ?"] if pulled else [])
    if sets:
        db.execute(f"UPDATE upstream_link SET {', '.join(sets)}, last_error = NULL, last_error_at = NULL"
                   " WHERE id = 1", [now] * len(sets))


def cursor(db, hotel_id: str) -> int:
    row = db.execute("SELECT after FROM upstream_cursors WHERE hotel_id = ?", [hotel_id]).fetchone()
    return int(row[0]) if row is not None else 0


def cursors(db) -> dict[str, int]:
    return {r[0]: int(r[1]) for r in db.execute("SELECT hotel_id, after FROM upstream_cursors ORDER BY hotel_id")}


def set_cursor(db, hotel_id: str, after: int, now: float) -> None:
    db.execute("INSERT INTO upstream_cursors (hotel_id, after, pulled_at) VALUES (?, ?, ?) ON CONFLICT (hotel_id)"
               " DO UPDATE SET after = excluded.after, pulled_at = excluded.pulled_at", [hotel_id, after, now])
