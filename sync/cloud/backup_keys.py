"""Each hotel's backup key: what a kiosk wraps its guests' keys with in a backup (docs/privacy.md).

A kiosk keeps every guest's personal fields sealed under that guest's own key
(kiosk/guest_keys.py), and a ``kiosk backup`` must not hold those keys in a form the backup
alone can open.  So the backup holds them *wrapped* (AES-256-GCM) under the hotel's backup key,
which lives here, at the kiosk's upstream (the chain's cloud, or the property hub the kiosk is
linked to), and only in memory and the live database at the kiosk (never in a backup).  A
kiosk restored from a backup asks for the key again (``POST /sync/v1/backup-key``) and, with
it, the hotel's erasures: it unwraps every guest's key but those of guests erased since, so
an old backup cannot bring an erased guest back.

One key per hotel (``hotel_backup_keys``), made on first ask; this module is the table's one
writer.  The table is in the guest-key vault (``guest-keys.db``, sync/cloud/guest_vault.py),
never in the cloud's database: a backup of the database together with a kiosk's backup would
otherwise open every guest key the kiosk's backup holds, an erased guest's too.  A key an
earlier version kept in the database is moved to the vault on first ask.
"""

from __future__ import annotations

import base64
import os

from . import guest_vault, storage


def key(db, hotel_id: str, now: float) -> tuple[str, bytes]:
    """The hotel's backup key (id, 32 bytes), made on first ask; two workers asking at once
    get the same one."""
    vault = guest_vault.of(db)
    if vault is not None:
        return _in_vault(db, vault.keys(), hotel_id, now)
    row = db.execute("SELECT kid, key FROM hotel_backup_keys WHERE hotel_id = ?", [hotel_id]).fetchone()
    if row is None:
        with storage.transaction(db):
            db.execute("INSERT INTO hotel_backup_keys (hotel_id, kid, key, created_at) VALUES (?, ?, ?, ?)"
                       " ON CONFLICT (hotel_id) DO NOTHING",
                       [hotel_id, os.urandom(8).hex(), base64.b64encode(os.urandom(32)).decode(), now])
        row = db.execute("SELECT kid, key FROM hotel_backup_keys WHERE hotel_id = ?", [hotel_id]).fetchone()
    return row[0], base64.b64decode(row[1])


def _in_vault(db, keys, hotel_id: str, now: float) -> tuple[str, bytes]:
    read = "SELECT kid, key FROM hotel_backup_keys WHERE hotel_id = ?"
    row = keys.conn.execute(read, [hotel_id]).fetchone()
    if row is None:
        old = db.execute(read, [hotel_id]).fetchone()  # an earlier version kept it in the database
        made = tuple(old) if old else (os.urandom(8).hex(), base64.b64encode(os.urandom(32)).decode())
        with keys.transaction() as conn:
            conn.execute("INSERT INTO hotel_backup_keys (hotel_id, kid, key, created_at) VALUES (?, ?, ?, ?)"
                         " ON CONFLICT (hotel_id) DO NOTHING", [hotel_id, *made, now])
        row = keys.conn.execute(read, [hotel_id]).fetchone()
        if old:
            with storage.secure_delete(db), storage.transaction(db):
                db.execute("DELETE FROM hotel_backup_keys WHERE hotel_id = ?", [hotel_id])
            storage.checkpoint(db)  # no copy of it left in the write-ahead log
    return row[0], base64.b64decode(row[1])


def answer(db, hotel_id: str, now: float) -> dict:
    """What ``POST /sync/v1/backup-key`` answers: the key, and every guest of the hotel erased
    here (whose keys a restored kiosk must not unwrap)."""
    kid, raw = key(db, hotel_id, now)
    erased = [r[0] for r in db.execute("SELECT confirmation FROM guest_erasures WHERE hotel_id = ?"
                                       " ORDER BY confirmation", [hotel_id]).fetchall()]
    return {"hotelId": hotel_id, "kid": kid, "key": base64.b64encode(raw).decode(), "erased": erased}
