"""The cloud's own database, ``cloud.db`` in its data dir.

Opened like the kiosk's store (:func:`kiosk.store.connect`: WAL,
``synchronous=FULL``, busy timeout, ``BEGIN IMMEDIATE`` transactions) but with
the cloud's migrations, tracked by ``PRAGMA user_version`` the same way.
Never edit a shipped migration: append a new one.
"""

from __future__ import annotations

import os
from pathlib import Path

import sqlite_utils

from kiosk import store

FILENAME = "cloud.db"

MIGRATIONS: list[list[str]] = [
    # 1: devices, per-entry and per-push idempotency, work orders, tickets, event log
    [
        """CREATE TABLE devices (
            device_id TEXT PRIMARY KEY,
            hotels TEXT NOT NULL,
            credential_hash TEXT NOT NULL UNIQUE,
            created_at REAL NOT NULL,
            revoked_at REAL
        )""",
        """CREATE TABLE applied_entries (
            key TEXT PRIMARY KEY,
            device_id TEXT NOT NULL,
            hotel_id TEXT,
            kind TEXT,
            entity_type TEXT,
            entity_id TEXT,
            hlc TEXT,
            result TEXT NOT NULL,
            applied_at REAL NOT NULL
        )""",
        """CREATE TABLE push_requests (
            device_id TEXT NOT NULL,
            idempotency_key TEXT NOT NULL,
            response TEXT NOT NULL,
            at REAL NOT NULL,
            PRIMARY KEY (device_id, idempotency_key)
        )""",
        """CREATE TABLE work_orders (
            hotel_id TEXT NOT NULL,
            work_order_id TEXT NOT NULL,
            asset_id TEXT,
            room_number TEXT,
            type TEXT NOT NULL,
            description TEXT,
            status TEXT NOT NULL,
            assignee TEXT,
            priority TEXT,
            notes TEXT,
            opened_at TEXT,
            closed_at TEXT,
            created_payload TEXT NOT NULL,
            version INTEGER NOT NULL DEFAULT 1,
            updated_at REAL NOT NULL,
            updated_hlc TEXT NOT NULL,
            PRIMARY KEY (hotel_id, work_order_id)
        )""",
        """CREATE TABLE work_order_history (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            hotel_id TEXT NOT NULL,
            work_order_id TEXT NOT NULL,
            field TEXT NOT NULL,
            old TEXT,
            new TEXT,
            by TEXT,
            at TEXT,
            hlc TEXT NOT NULL,
            entry_key TEXT NOT NULL,
            FOREIGN KEY (hotel_id, work_order_id) REFERENCES work_orders(hotel_id, work_order_id)
        )""",
        "CREATE INDEX wo_history ON work_order_history(hotel_id, work_order_id, id)",
        """CREATE TABLE tickets (
            hotel_id TEXT NOT NULL,
            ticket_id TEXT NOT NULL,
            type TEXT NOT NULL,
            title TEXT NOT NULL,
            description TEXT,
            room_number TEXT,
            priority TEXT,
            queue TEXT,
            status TEXT,
            fingerprint TEXT,
            created_at TEXT,
            created_by TEXT,
            payload TEXT NOT NULL,
            received_at REAL NOT NULL,
            PRIMARY KEY (hotel_id, ticket_id)
        )""",
        """CREATE TABLE events (
            key TEXT PRIMARY KEY,
            hotel_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            entity_type TEXT NOT NULL,
            entity_id TEXT NOT NULL,
            payload TEXT NOT NULL,
            hlc TEXT NOT NULL,
            received_at REAL NOT NULL
        )""",
        "CREATE INDEX events_entity ON events(hotel_id, entity_type, entity_id)",
    ],
    # 2: sync down (pull) and conflicts: the change log, reference data, trust keys,
    # revocations, consumptions, conflict and security-event records, the cloud's HLC
    [
        """CREATE TABLE changes (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            hotel_id TEXT NOT NULL,
            entity_type TEXT NOT NULL,
            entity_id TEXT NOT NULL,
            op TEXT NOT NULL CHECK (op IN ('upsert', 'delete')),
            data TEXT,
            hlc TEXT NOT NULL,
            at REAL NOT NULL
        )""",
        "CREATE INDEX changes_hotel ON changes(hotel_id, seq)",
        """CREATE TABLE ref_data (
            hotel_id TEXT NOT NULL,
            entity_type TEXT NOT NULL,
            entity_id TEXT NOT NULL,
            data TEXT NOT NULL,
            hlc TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (hotel_id, entity_type, entity_id)
        )""",
        """CREATE TABLE trust_keys (
            kid TEXT PRIMARY KEY,
            data TEXT NOT NULL,
            private_pem TEXT,
            status TEXT NOT NULL CHECK (status IN ('active', 'retired')),
            added_at REAL NOT NULL,
            retired_at REAL
        )""",
        """CREATE TABLE revocations (
            jti TEXT PRIMARY KEY,
            hotel_id TEXT NOT NULL,
            revoked_at REAL NOT NULL,
            hlc TEXT NOT NULL,
            source TEXT NOT NULL
        )""",
        """CREATE TABLE consumptions (
            jti TEXT NOT NULL,
            hotel_id TEXT NOT NULL,
            kiosk_id TEXT NOT NULL,
            session_id TEXT,
            consumed_at REAL NOT NULL,
            hlc TEXT NOT NULL,
            PRIMARY KEY (jti, kiosk_id)
        )""",
        """CREATE TABLE conflicts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            hotel_id TEXT NOT NULL,
            entity_type TEXT NOT NULL,
            entity_id TEXT NOT NULL,
            field TEXT,
            rule TEXT NOT NULL,
            outcome TEXT NOT NULL,
            incoming TEXT NOT NULL,
            current TEXT NOT NULL,
            device_id TEXT,
            entry_key TEXT,
            detected_at REAL NOT NULL
        )""",
        "CREATE INDEX conflicts_hotel ON conflicts(hotel_id, id)",
        """CREATE TABLE security_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            hotel_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            details TEXT NOT NULL,
            detected_at REAL NOT NULL
        )""",
        """CREATE TABLE hlc_state (
            node TEXT PRIMARY KEY,
            wall_ms INTEGER NOT NULL,
            counter INTEGER NOT NULL
        )""",
        "ALTER TABLE work_orders ADD COLUMN field_hlc TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE work_orders ADD COLUMN judged_hlc TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE tickets ADD COLUMN merged_into TEXT",
        "ALTER TABLE tickets ADD COLUMN hlc TEXT",
    ],
    # 3: what a push said, so an Idempotency-Key reused for a different body is refused
    [
        "ALTER TABLE push_requests ADD COLUMN body_sha256 TEXT",
    ],
    # 4: a ticket's lifecycle from the kiosks (ticket.updated): its assignee and the stamp
    # of its last status change (the later stamp wins)
    [
        "ALTER TABLE tickets ADD COLUMN assignee TEXT",
        "ALTER TABLE tickets ADD COLUMN status_hlc TEXT NOT NULL DEFAULT ''",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: str | Path) -> sqlite_utils.Database:
    """Open (creating and migrating if needed) the cloud database file at ``path``."""
    db = store.connect(path, migrate=False)
    migrate(db)
    return db


def open_data_dir(data_dir: str | Path) -> sqlite_utils.Database:
    """``DATA_DIR/cloud.db``; the directory is created if missing.  The directory is kept at
    0700 and the database at 0600 (it holds the signing keys and the hotels' data), the
    same modes as the kiosk's; SQLite gives its -wal and -shm files the database's mode."""
    root = Path(data_dir)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    root.chmod(0o700)
    path = root / FILENAME
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    path.chmod(0o600)
    for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if extra.exists():
            extra.chmod(0o600)
    return connect(path)


def migrate(db: sqlite_utils.Database) -> int:
    """Apply pending cloud migrations, each in its own transaction; returns how many."""
    return store.run_migrations(db, MIGRATIONS)
