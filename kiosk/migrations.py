"""Schema migrations for the kiosk's local SQLite store.

Each entry is applied once, in order, in its own transaction, and bumps
``PRAGMA user_version``.  Never edit a shipped migration: append a new one.
Every table that holds property data carries ``hotel_id``.
"""

MIGRATIONS: list[list[str]] = [
    # 1: tokens, sessions, workflows, audit, outbox, hybrid logical clock
    [
        """CREATE TABLE qr_tokens (
            jti TEXT PRIMARY KEY,
            hotel_id TEXT NOT NULL,
            kid TEXT NOT NULL,
            subject TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('guest','staff','admin')),
            display_name TEXT,
            reusable INTEGER NOT NULL DEFAULT 0,
            issued_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            issued_by TEXT,
            revoked_at REAL,
            revoked_by TEXT
        )""",
        "CREATE INDEX qr_tokens_hotel ON qr_tokens(hotel_id, expires_at)",
        """CREATE TABLE consumed_tokens (
            jti TEXT PRIMARY KEY,
            hotel_id TEXT NOT NULL,
            consumed_at REAL NOT NULL,
            kiosk_id TEXT NOT NULL,
            session_id TEXT NOT NULL REFERENCES sessions(id),
            hlc TEXT NOT NULL
        )""",
        """CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            hotel_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            role TEXT NOT NULL,
            display_name TEXT,
            jti TEXT NOT NULL,
            scan_method TEXT NOT NULL,
            client TEXT,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            last_seen_at REAL NOT NULL,
            ended_at REAL,
            end_reason TEXT
        )""",
        "CREATE INDEX sessions_hotel ON sessions(hotel_id, created_at)",
        "CREATE INDEX sessions_jti ON sessions(jti)",
        """CREATE TABLE workflow_state (
            id TEXT PRIMARY KEY,
            hotel_id TEXT NOT NULL,
            session_id TEXT NOT NULL REFERENCES sessions(id),
            workflow TEXT NOT NULL,
            state TEXT NOT NULL,
            models TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        "CREATE INDEX workflow_session ON workflow_state(session_id)",
        """CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            hotel_id TEXT NOT NULL,
            at REAL NOT NULL,
            event TEXT NOT NULL,
            outcome TEXT NOT NULL,
            actor TEXT,
            session_id TEXT,
            jti TEXT,
            client TEXT,
            code TEXT,
            details TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE INDEX audit_hotel_at ON audit_log(hotel_id, at)",
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            idempotency_key TEXT NOT NULL UNIQUE,
            hotel_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            entity_type TEXT NOT NULL,
            entity_id TEXT NOT NULL,
            payload TEXT NOT NULL,
            hlc TEXT NOT NULL,
            created_at REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','delivered','dead','dropped')),
            last_error TEXT,
            delivered_at REAL
        )""",
        "CREATE INDEX outbox_pending ON outbox(state, id)",
        "CREATE INDEX outbox_entity ON outbox(entity_type, entity_id, id)",
        """CREATE TABLE hlc_state (
            node TEXT PRIMARY KEY,
            wall_ms INTEGER NOT NULL,
            counter INTEGER NOT NULL
        )""",
    ],
    # 2: work orders with field history, tickets, sync bookkeeping
    [
        """CREATE TABLE work_orders (
            hotel_id TEXT NOT NULL,
            work_order_id TEXT NOT NULL,
            asset_id TEXT,
            room_number TEXT,
            type TEXT NOT NULL DEFAULT 'failure',
            description TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL,
            assignee TEXT,
            priority TEXT NOT NULL DEFAULT 'normal',
            notes TEXT NOT NULL DEFAULT '',
            opened_at REAL NOT NULL,
            closed_at REAL,
            updated_at REAL NOT NULL,
            version INTEGER NOT NULL DEFAULT 1,
            PRIMARY KEY (hotel_id, work_order_id)
        )""",
        """CREATE TABLE work_order_history (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            hotel_id TEXT NOT NULL,
            work_order_id TEXT NOT NULL,
            field TEXT NOT NULL,
            old TEXT,
            new TEXT,
            by TEXT NOT NULL,
            at REAL NOT NULL,
            hlc TEXT NOT NULL,
            FOREIGN KEY (hotel_id, work_order_id) REFERENCES work_orders(hotel_id, work_order_id)
        )""",
        "CREATE INDEX wo_history ON work_order_history(hotel_id, work_order_id, id)",
        """CREATE TABLE tickets (
            hotel_id TEXT NOT NULL,
            ticket_id TEXT NOT NULL,
            type TEXT NOT NULL,
            title TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            room_number TEXT,
            priority TEXT NOT NULL,
            queue TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'open',
            fingerprint TEXT NOT NULL,
            terms TEXT NOT NULL,
            created_at REAL NOT NULL,
            created_by TEXT NOT NULL,
            PRIMARY KEY (hotel_id, ticket_id)
        )""",
        "CREATE INDEX tickets_dup ON tickets(hotel_id, room_number, type, created_at)",
        """CREATE TABLE sync_state (
            key TEXT PRIMARY KEY,
            value TEXT
        )""",
    ],
]

SCHEMA_VERSION = len(MIGRATIONS)
