"""The cloud's schema (its migrations) and the SQLite file helpers.

The schema is written once, in SQLite's words; :mod:`.storage` runs it on SQLite
(``cloud.db`` in the data dir, opened like the kiosk's store: WAL, ``synchronous=FULL``,
busy timeout, ``BEGIN IMMEDIATE``; tracked by ``PRAGMA user_version``) or translates it
for PostgreSQL (tracked in ``schema_version``).  Never edit a shipped migration: append
a new one, using only TEXT, INTEGER, REAL and ``INTEGER PRIMARY KEY AUTOINCREMENT``.
"""

from __future__ import annotations

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
    # 5: chain scale (sync/cloud/storage.py): the change log numbered per hotel from a
    # counter row (on PostgreSQL its row lock makes commit order equal sequence order, so a
    # puller never skips a change that commits late); existing cursors stay valid (each
    # hotel's counter starts at its highest sequence number); indexes for every lookup
    # the apply path makes, so a push costs the same however much the cloud holds
    [
        """CREATE TABLE hotel_seq (
            hotel_id TEXT PRIMARY KEY,
            seq INTEGER NOT NULL
        )""",
        "INSERT INTO hotel_seq (hotel_id, seq) SELECT hotel_id, max(seq) FROM changes GROUP BY hotel_id",
        """CREATE TABLE change_log (
            hotel_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            entity_type TEXT NOT NULL,
            entity_id TEXT NOT NULL,
            op TEXT NOT NULL CHECK (op IN ('upsert', 'delete')),
            data TEXT,
            hlc TEXT NOT NULL,
            at REAL NOT NULL,
            PRIMARY KEY (hotel_id, seq)
        )""",
        "INSERT INTO change_log (hotel_id, seq, entity_type, entity_id, op, data, hlc, at)"
        " SELECT hotel_id, seq, entity_type, entity_id, op, data, hlc, at FROM changes",
        "DROP TABLE changes",
        "ALTER TABLE change_log RENAME TO changes",
        "CREATE INDEX tickets_fingerprint ON tickets(hotel_id, fingerprint)",
    ],
    # 6: work orders from the PMS (what its last export said of each, so a re-import
    # changes nothing and a change is judged against what the PMS saw); fleet health (the
    # latest report of each device); retention (how far each hotel's change log was
    # purged, so an older cursor gets CURSOR_EXPIRED; indexes for the purge and for the
    # paged snapshot); security events keyed like the kiosks key them
    [
        """CREATE TABLE pms_work_orders (
            hotel_id TEXT NOT NULL,
            work_order_id TEXT NOT NULL,
            data TEXT NOT NULL,
            hlc TEXT NOT NULL,
            imported_at REAL NOT NULL,
            PRIMARY KEY (hotel_id, work_order_id)
        )""",
        """CREATE TABLE device_health (
            device_id TEXT PRIMARY KEY,
            version TEXT,
            kiosk_clock REAL,
            clock_offset REAL,
            pending INTEGER,
            oldest_pending_age REAL,
            dead INTEGER,
            last_seen_at REAL NOT NULL,
            last_push_at REAL,
            last_pull_at REAL
        )""",
        """CREATE TABLE changelog_horizon (
            hotel_id TEXT PRIMARY KEY,
            purged_through INTEGER NOT NULL,
            purged_at REAL NOT NULL
        )""",
        "CREATE INDEX applied_entries_at ON applied_entries(applied_at)",
        "CREATE INDEX push_requests_at ON push_requests(at)",
        "CREATE INDEX revocations_hotel ON revocations(hotel_id, jti)",
        "CREATE INDEX consumptions_hotel ON consumptions(hotel_id, jti, kiosk_id)",
        "ALTER TABLE security_events ADD COLUMN event_key TEXT",
        "CREATE INDEX security_events_hotel ON security_events(hotel_id, id)",
    ],
    # 7: the cloud's clock kept per hotel (sync/cloud/changelog.py: clock), so pushes for
    # different hotels never queue for one clock row; each hotel's row starts where the
    # cloud-wide one was, so no stamp made after the upgrade sorts before one made or seen
    # before it
    [
        "INSERT INTO hlc_state (node, wall_ms, counter) SELECT 'cloud:' || h.hotel_id, s.wall_ms, s.counter"
        " FROM hotel_seq h, hlc_state s WHERE s.node = 'cloud'",
    ],
    # 8: entry keys scoped to their hotel (sync/cloud/apply.py): remembered per (hotel, key),
    # so a device of another hotel cannot pre-answer a hotel's keys.  Refusals that earlier
    # versions remembered for a hotel the pushing device did not serve (FORBIDDEN_HOTEL, and
    # any other refusal of such an entry) are dropped: the hotel's real entry applies when it
    # comes; so are refusals of entries that named no hotel (worked out again if repeated).
    # Per-device push quota: each device's current window (sync/cloud/quota.py)
    [
        """CREATE TABLE applied_entries_v8 (
            key TEXT NOT NULL,
            device_id TEXT NOT NULL,
            hotel_id TEXT NOT NULL,
            kind TEXT,
            entity_type TEXT,
            entity_id TEXT,
            hlc TEXT,
            result TEXT NOT NULL,
            applied_at REAL NOT NULL,
            PRIMARY KEY (hotel_id, key)
        )""",
        "INSERT INTO applied_entries_v8 (key, device_id, hotel_id, kind, entity_type, entity_id, hlc, result,"
        " applied_at) SELECT a.key, a.device_id, a.hotel_id, a.kind, a.entity_type, a.entity_id, a.hlc, a.result,"
        " a.applied_at FROM applied_entries a WHERE a.hotel_id IS NOT NULL AND (a.result LIKE '{\"status\": \"applied\"%'"
        " OR a.result LIKE '{\"status\":\"applied\"%'"
        " OR (a.result NOT LIKE '%FORBIDDEN_HOTEL:%' AND EXISTS (SELECT 1 FROM devices d WHERE"
        " d.device_id = a.device_id AND d.hotels LIKE '%\"' || a.hotel_id || '\"%')))",
        "DROP TABLE applied_entries",
        "ALTER TABLE applied_entries_v8 RENAME TO applied_entries",
        "CREATE INDEX applied_entries_at ON applied_entries(applied_at)",
        "CREATE INDEX applied_entries_key ON applied_entries(key)",
        """CREATE TABLE push_quota (
            device_id TEXT PRIMARY KEY,
            window_start REAL NOT NULL,
            entries INTEGER NOT NULL,
            bytes INTEGER NOT NULL
        )""",
    ],
    # 9: a staff member's reply to the guest who asked (ticket.updated with changes.reply):
    # the words, who, and the stamp of the latest reply (the later stamp wins, apart from status)
    [
        "ALTER TABLE tickets ADD COLUMN reply TEXT",
        "ALTER TABLE tickets ADD COLUMN reply_by TEXT",
        "ALTER TABLE tickets ADD COLUMN reply_hlc TEXT NOT NULL DEFAULT ''",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: str | Path) -> sqlite_utils.Database:
    """Open (creating and migrating if needed) the cloud's SQLite database file at ``path``."""
    from .storage import SqliteStorage

    st = SqliteStorage(Path(path).parent)
    st.path = Path(path)
    return st.connect(migrate=True)


def open_data_dir(data_dir: str | Path) -> sqlite_utils.Database:
    """``DATA_DIR/cloud.db``; the directory is created if missing.  The directory is kept at
    0700 and the database at 0600 (it holds the signing keys and the hotels' data), the
    same modes as the kiosk's; SQLite gives its -wal and -shm files the database's mode."""
    from .storage import SqliteStorage

    st = SqliteStorage(data_dir)
    st.prepare()
    return st.connect()


def migrate(db: sqlite_utils.Database) -> int:
    """Apply pending cloud migrations, each in its own transaction; returns how many."""
    return store.run_migrations(db, MIGRATIONS)
