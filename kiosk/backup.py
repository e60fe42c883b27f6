"""Backup and restore of a kiosk's data directory, undelivered outbox included.

A backup is a folder that holds everything needed to bring the kiosk back, here or on
new hardware (docs/operations.md)::

    backup.json   what it holds: kiosk id, hotels, schema version, the outbox's pending
                  and dead entries, and every file with its SHA-256
    kiosk.db      a consistent copy made with SQLite's online backup (the kiosk and its
                  agent may keep running)
    keys/         signing key, trust list, session secret, the cloud link (0600)
    rooms/ …      reference photos and the other files of the data directory

The guests' keys are in it only wrapped under each hotel's backup key, which the kiosk's
upstream holds and the backup does not (kiosk/guest_keys.py): the copy's ``guest_keys`` rows
are deleted and zeroed before it is written, so the personal fields in a backup cannot be
read from the backup alone.  A restore takes the keys from the data directory it replaces
(``--keys-from``: a guest erased since has none, and stays erased); without it the agent
asks the upstream for the backup key and the hotel's erasures and unwraps every key but the
erased guests' (sync/key_escrow.py).  A backup with keys it could not wrap (a kiosk never
linked) makes the restored kiosk pull its hotels' data again.

Logs, the demo's camera folder and SQLite's -wal/-shm files are left out.  Both sides
are all or nothing: the backup is written to ``DEST.partial`` and renamed when
complete; a restore checks every checksum, copies into a folder next to the target
and renames it into place, so a failed restore leaves no half a kiosk.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from pathlib import Path

from . import guest_keys, store, sync_status
from .clock import iso
from .errors import ValidationError

FORMAT = 1
MANIFEST = "backup.json"
SKIP = {"logs", "camera", "kiosk.db", "kiosk.db-wal", "kiosk.db-shm", "kiosk.db-journal", MANIFEST}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_tree(root: Path) -> None:
    for d, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(Path(d) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _empty_or_missing(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def _files(root: Path) -> list[Path]:
    """The data directory's files worth keeping, relative to it, in a stable order."""
    out = []
    for d, dirs, files in os.walk(root):
        rel = Path(d).relative_to(root)
        if rel == Path("."):
            dirs[:] = [x for x in dirs if x not in SKIP]
        dirs.sort()
        for name in sorted(files):
            if rel == Path(".") and name in SKIP or name.endswith((".tmp", ".partial")):
                continue
            out.append(rel / name)
    return out


def _outbox(db) -> dict:
    pending, dead = db.execute("SELECT count(*) FILTER (WHERE state = 'pending'),"
                               " count(*) FILTER (WHERE state = 'dead') FROM outbox").fetchone()
    return {"pending": pending, "dead": dead}


def backup(inst, dest: str | Path) -> dict:
    """Write a complete backup of ``inst`` to the folder ``dest`` (which must not exist or be empty)."""
    inst.load_keys()  # NOT_INITIALISED: there is nothing to back up
    dest = Path(dest)
    if not _empty_or_missing(dest):
        raise ValidationError(f"{dest} is not empty; a backup goes into a new folder", {"field": "DEST"},
                              hint="name a folder that does not exist yet, e.g. one with today's date")
    if dest.resolve().is_relative_to(inst.root.resolve()):
        raise ValidationError(f"{dest} is inside the data directory {inst.root}", {"field": "DEST"},
                              hint="back up to another disk or folder")
    work = dest.with_name(dest.name + ".partial")
    if work.exists():
        shutil.rmtree(work)  # a backup that stopped half way: never a backup
    work.mkdir(parents=True, mode=0o700)
    try:
        src = inst.connect()
        copy = sqlite3.connect(work / "kiosk.db")
        try:
            src.conn.backup(copy)  # consistent while the kiosk keeps writing
            copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
            schema = copy.execute("PRAGMA user_version").fetchone()[0]
            outbox = _outbox(copy)
        finally:
            copy.close()
            src.conn.close()
        # the guests' keys only wrapped under each hotel's backup key, which the upstream holds
        keys = guest_keys.for_backup(str(work / "kiosk.db"))
        (work / "kiosk.db").chmod(0o600)
        files = {}
        for rel in _files(inst.root):
            target = work / rel
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copy2(inst.root / rel, target)
            target.chmod(0o600)
            files[str(rel)] = _sha256(target)
        files["kiosk.db"] = _sha256(work / "kiosk.db")
        manifest = {"format": FORMAT, "createdAt": iso(inst.clock.now()), "dataDir": str(inst.root.resolve()),
                    "kioskId": inst.config.property.kiosk_id, "hotels": list(inst.config.property.hotels),
                    "schemaVersion": schema, "outbox": outbox, "files": files, "guestKeys": keys}
        (work / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        (work / MANIFEST).chmod(0o600)
        _fsync_tree(work)
        if dest.exists():
            dest.rmdir()
        os.replace(work, dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return {"backup": str(dest), **{k: manifest[k] for k in ("kioskId", "hotels", "schemaVersion", "outbox")},
            "files": len(files)}


def read_manifest(src: Path) -> dict:
    try:
        manifest = json.loads((src / MANIFEST).read_text())
    except FileNotFoundError:
        raise ValidationError(f"{src} is not a kiosk backup (no {MANIFEST})", {"field": "BACKUP"},
                              hint="name the folder `kiosk backup` wrote") from None
    except ValueError:
        raise ValidationError(f"{src}/{MANIFEST} is damaged", {"field": "BACKUP"}) from None
    if manifest.get("format") != FORMAT:
        raise ValidationError(f"{src} is a backup in format {manifest.get('format')}; this version reads {FORMAT}",
                              {"field": "BACKUP"})
    return manifest


def restore(inst, src: str | Path, *, keys_from: str | Path | None = None) -> dict:
    """Restore the backup in ``src`` into ``inst``'s data directory, which must not hold a kiosk yet.

    ``keys_from``: the data directory the backup replaces (moved aside), whose guests' keys the
    restored store takes (the backup holds none); without it, the pull cursors are forgotten
    so the kiosk pulls its hotels' data again (personal fields the backup held read as erased).

    The kiosk id and hotels of this instance's configuration must be the backup's: the
    outbox's entries are stamped with that kiosk id and the cloud knows the device by it.
    """
    src, root = Path(src), inst.root
    manifest = read_manifest(src)
    if not _empty_or_missing(root):
        raise ValidationError(f"{root} is not empty; a backup is restored into a new data directory",
                              {"field": "--data-dir"}, hint="move the old data directory aside first")
    prop = inst.config.property
    if manifest["kioskId"] != prop.kiosk_id or sorted(manifest["hotels"]) != sorted(prop.hotels):
        raise ValidationError(f"the backup is of kiosk {manifest['kioskId']} ({', '.join(manifest['hotels'])});"
                              f" this configuration is kiosk {prop.kiosk_id} ({', '.join(prop.hotels)})",
                              {"field": "property.kiosk_id"},
                              hint="use the same configuration as the old machine (property.kiosk_id and"
                                   " property.hotels: /etc/hotel-kiosk or KIOSK__PROPERTY__…)")
    for rel, digest in manifest["files"].items():
        f = src / rel
        if not f.is_file() or _sha256(f) != digest:
            raise ValidationError(f"the backup is damaged: {rel} is missing or does not match its checksum",
                                  {"field": "BACKUP", "file": rel}, hint="restore from another backup")
    # Copied into a folder beside the target and renamed into place.  A target that exists
    # (empty: a systemd StateDirectory, perhaps a link into /var/lib/private, in a parent the
    # service may not write) gets the folder inside it, whose entries are then renamed into
    # it, keys/ last: until then the directory is not an initialised kiosk.
    inside = root.exists()
    work = root / ".restoring" if inside else root.with_name(root.name + ".restoring")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, mode=0o700)
    try:
        for rel in manifest["files"]:
            target = work / rel
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copy2(src / rel, target)
            target.chmod(0o600)
        old_db = Path(keys_from) / "kiosk.db" if keys_from else None
        if old_db is not None and not old_db.is_file():
            raise ValidationError(f"{keys_from} holds no kiosk.db to take the guests' keys from",
                                  {"field": "--keys-from"}, hint="name the data directory this backup replaces")
        keys = guest_keys.merge_live(str(work / "kiosk.db"), str(old_db)) if old_db else None
        left_out = (manifest.get("guestKeys") or {}).get("leftOut", 0)
        db = store.connect(work / "kiosk.db", migrate=False)
        try:
            _move_paths(db, Path(manifest["dataDir"]), root.resolve())
            if keys is None and left_out:
                with store.transaction(db):
                    sync_status.forget(db, "pull_cursor:")
        finally:
            db.conn.close()
        _fsync_tree(work)
        if inside:
            for entry in sorted(work.iterdir(), key=lambda e: e.name == "keys"):
                os.replace(entry, root / entry.name)
            work.rmdir()
            _fsync_tree(root)
        else:
            os.replace(work, root)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    db = inst.connect()  # migrations: a backup made by an older version is brought up to date here
    inst.load_keys()
    return {"dataDir": str(root), "kioskId": prop.kiosk_id, "hotels": list(prop.hotels),
            "schemaVersion": {"backup": manifest["schemaVersion"], "now": store.schema_version(db)},
            "outbox": _outbox(db), "backupCreatedAt": manifest["createdAt"],
            "guestKeys": {"takenOver": keys} if keys is not None else
            {"takenOver": 0, "wrapped": (manifest.get("guestKeys") or {}).get("wrapped", 0), "pullAgain": bool(left_out)}}


def _move_paths(db, old: Path, new: Path) -> None:
    """Rows that name a file inside the old data directory name it inside the new one."""
    from .models.room_status import move_references

    move_references(db, old, new)
