"""Schema migrations for the kiosk's local SQLite store.

Each entry is applied once, in order, in its own transaction, and bumps
``PRAGMA user_version``.  Never edit a shipped migration: append a new one.
Every table that holds property data carries ``hotel_id``.
"""

#: the table of guests' data keys (kiosk/guest_keys.py); the cloud's key file has the same
#: (sync/cloud/guest_vault.py)
GUEST_KEYS = """CREATE TABLE guest_keys (
            kid TEXT PRIMARY KEY,
            hotel_id TEXT NOT NULL,
            subject TEXT NOT NULL,
            key BLOB NOT NULL,
            created_at REAL NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS REAL)),
            UNIQUE (hotel_id, subject)
        )"""

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
            -- rowid, not AUTOINCREMENT: ids only order entries (a purged id may come
            -- back as max+1, still after every live row) and each enqueue writes one
            -- page less (no sqlite_sequence update); see bench/sync.py
            id INTEGER PRIMARY KEY,
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
    # 3: property data (a PMS export, see docs/property-data.md), model runs, room photos
    [
        """CREATE TABLE rooms (
            hotel_id TEXT NOT NULL,
            room_number TEXT NOT NULL,
            room_type TEXT NOT NULL,
            floor INTEGER NOT NULL,
            status TEXT NOT NULL CHECK (status IN
                ('Dirty','Pickup','Clean','Inspected','OutOfOrder','OutOfService')),
            occupied INTEGER NOT NULL DEFAULT 0 CHECK (occupied IN (0, 1)),
            updated_at REAL,
            PRIMARY KEY (hotel_id, room_number)
        )""",
        """CREATE TABLE rate_plans (
            hotel_id TEXT NOT NULL,
            code TEXT NOT NULL,
            room_type TEXT NOT NULL,
            nightly_rate REAL NOT NULL,
            tax_rate REAL NOT NULL,
            PRIMARY KEY (hotel_id, code, room_type)
        )""",
        """CREATE TABLE reservations (
            hotel_id TEXT NOT NULL,
            confirmation TEXT NOT NULL,
            guest_name TEXT NOT NULL DEFAULT '',
            room_number TEXT,
            room_type TEXT,
            arrival TEXT NOT NULL,
            departure TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN
                ('Confirmed','InHouse','CheckedOut','Canceled','NoShow')),
            adults INTEGER NOT NULL DEFAULT 1,
            children INTEGER NOT NULL DEFAULT 0,
            rate_plan TEXT,
            nightly_rate REAL,
            currency TEXT NOT NULL DEFAULT 'EUR',
            language TEXT NOT NULL DEFAULT 'en',
            vip INTEGER NOT NULL DEFAULT 0,
            segment TEXT,
            booked_on TEXT,
            canceled_on TEXT,
            email TEXT,
            phone TEXT,
            PRIMARY KEY (hotel_id, confirmation)
        )""",
        "CREATE INDEX reservations_stay ON reservations(hotel_id, arrival, departure)",
        "CREATE INDEX reservations_room ON reservations(hotel_id, room_number)",
        """CREATE TABLE charges (
            hotel_id TEXT NOT NULL,
            charge_id TEXT NOT NULL,
            confirmation TEXT NOT NULL,
            posted_at TEXT NOT NULL,
            code TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            amount REAL NOT NULL,
            quantity REAL NOT NULL DEFAULT 1,
            PRIMARY KEY (hotel_id, charge_id)
        )""",
        "CREATE INDEX charges_res ON charges(hotel_id, confirmation, posted_at)",
        """CREATE TABLE staff (
            hotel_id TEXT NOT NULL,
            staff_id TEXT NOT NULL,
            name TEXT NOT NULL,
            role TEXT NOT NULL,
            skills TEXT NOT NULL DEFAULT '',
            shift_start TEXT,
            shift_end TEXT,
            max_credits REAL,
            PRIMARY KEY (hotel_id, staff_id)
        )""",
        """CREATE TABLE tasks (
            hotel_id TEXT NOT NULL,
            task_id TEXT NOT NULL,
            type TEXT NOT NULL,
            room_number TEXT,
            priority TEXT NOT NULL DEFAULT 'normal',
            required_skill TEXT,
            created_at TEXT NOT NULL,
            due_at TEXT,
            status TEXT NOT NULL DEFAULT 'open',
            assignee TEXT,
            description TEXT NOT NULL DEFAULT '',
            source TEXT,
            PRIMARY KEY (hotel_id, task_id)
        )""",
        "CREATE INDEX tasks_open ON tasks(hotel_id, status, due_at)",
        """CREATE TABLE assets (
            hotel_id TEXT NOT NULL,
            asset_id TEXT NOT NULL,
            type TEXT NOT NULL,
            room_number TEXT,
            installed_on TEXT,
            PRIMARY KEY (hotel_id, asset_id)
        )""",
        """CREATE TABLE offers (
            hotel_id TEXT NOT NULL,
            offer_id TEXT NOT NULL,
            name TEXT NOT NULL,
            type TEXT NOT NULL CHECK (type IN ('upgrade','addon')),
            price REAL NOT NULL,
            margin REAL NOT NULL,
            room_type_from TEXT,
            room_type_to TEXT,
            inventory INTEGER,
            PRIMARY KEY (hotel_id, offer_id)
        )""",
        """CREATE TABLE offer_history (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            hotel_id TEXT NOT NULL,
            confirmation TEXT NOT NULL,
            offer_id TEXT NOT NULL,
            shown_at TEXT NOT NULL,
            accepted INTEGER NOT NULL CHECK (accepted IN (0, 1))
        )""",
        "CREATE INDEX offer_history_offer ON offer_history(hotel_id, offer_id)",
        """CREATE TABLE faq (
            hotel_id TEXT NOT NULL,
            faq_id TEXT NOT NULL,
            language TEXT NOT NULL DEFAULT 'en',
            question TEXT NOT NULL,
            answer TEXT NOT NULL,
            PRIMARY KEY (hotel_id, faq_id, language)
        )""",
        """CREATE TABLE room_photos (
            hotel_id TEXT NOT NULL,
            room_number TEXT NOT NULL,
            path TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (hotel_id, room_number)
        )""",
        """CREATE TABLE ai_interactions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            hotel_id TEXT NOT NULL,
            model_id TEXT NOT NULL,
            session_id TEXT,
            actor TEXT,
            started_at REAL NOT NULL,
            duration_ms REAL NOT NULL,
            status TEXT NOT NULL,
            error TEXT,
            actions INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX ai_interactions_hotel ON ai_interactions(hotel_id, started_at)",
    ],
    # 4: sync down and conflicts (docs/conflicts.md): per-field HLCs, merged tickets,
    # tokens revoked or consumed elsewhere, trust keys from the cloud, conflict and
    # security-event records
    [
        "ALTER TABLE work_orders ADD COLUMN field_hlc TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE tickets ADD COLUMN merged_into TEXT",
        """CREATE TABLE remote_revocations (
            jti TEXT PRIMARY KEY,
            hotel_id TEXT NOT NULL,
            revoked_at REAL NOT NULL,
            hlc TEXT NOT NULL
        )""",
        """CREATE TABLE remote_consumptions (
            jti TEXT NOT NULL,
            hotel_id TEXT NOT NULL,
            kiosk_id TEXT NOT NULL,
            session_id TEXT,
            consumed_at REAL NOT NULL,
            one_time INTEGER NOT NULL,
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
            local_version TEXT,
            remote_version TEXT,
            source TEXT NOT NULL,
            detected_at REAL NOT NULL,
            key TEXT UNIQUE
        )""",
        "CREATE INDEX conflicts_hotel ON conflicts(hotel_id, detected_at)",
        """CREATE TABLE security_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            hotel_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            details TEXT NOT NULL,
            detected_at REAL NOT NULL,
            key TEXT UNIQUE
        )""",
        "CREATE INDEX security_events_hotel ON security_events(hotel_id, detected_at)",
    ],
    # 5: indexes for the admin API's analytics, export and session timeline
    # (kiosk/analytics.py, kiosk/export.py, kiosk/timeline.py; bench/admin.py): scan
    # counts per outcome over a time range read one covering range each; the two
    # indexes that became prefixes of wider ones are dropped
    [
        "CREATE INDEX audit_scans ON audit_log(hotel_id, event, outcome, at, code)",
        "CREATE INDEX audit_session ON audit_log(session_id) WHERE session_id IS NOT NULL",
        "CREATE INDEX sessions_window ON sessions(hotel_id, created_at, role)",
        "DROP INDEX sessions_hotel",
        "CREATE INDEX sessions_open ON sessions(hotel_id, expires_at) WHERE ended_at IS NULL",
        "CREATE INDEX ai_interactions_window ON ai_interactions(hotel_id, started_at, model_id, status, duration_ms)",
        "DROP INDEX ai_interactions_hotel",
        "CREATE INDEX ai_interactions_session ON ai_interactions(session_id) WHERE session_id IS NOT NULL",
        "CREATE INDEX outbox_hotel_kind ON outbox(hotel_id, kind, created_at)",
        "CREATE INDEX wo_history_at ON work_order_history(hotel_id, at)",
        "CREATE INDEX tickets_created ON tickets(hotel_id, created_at)",
    ],
    # 6: the staff work queue and the guest's side of it (kiosk/queue.py, kiosk/guest.py):
    # a ticket lifecycle (received -> accepted/assigned -> in_progress -> done) with an
    # assignee, the stamp of its last status change (last writer wins on pull) and the
    # session that asked; per-field history of tickets and tasks; offers a guest took
    # (one per reservation and offer)
    [
        "ALTER TABLE tickets ADD COLUMN assignee TEXT",
        "ALTER TABLE tickets ADD COLUMN updated_at REAL",
        "ALTER TABLE tickets ADD COLUMN status_hlc TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE tickets ADD COLUMN session_id TEXT",
        "UPDATE tickets SET status = 'received' WHERE status = 'open'",
        "CREATE INDEX tickets_requester ON tickets(hotel_id, created_by, created_at)",
        "ALTER TABLE tasks ADD COLUMN updated_at REAL",
        """CREATE TABLE item_history (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            hotel_id TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('ticket', 'task')),
            item_id TEXT NOT NULL,
            field TEXT NOT NULL,
            old TEXT,
            new TEXT,
            by TEXT NOT NULL,
            at REAL NOT NULL,
            hlc TEXT NOT NULL
        )""",
        "CREATE INDEX item_history_item ON item_history(hotel_id, kind, item_id, id)",
        """CREATE TABLE offer_acceptances (
            hotel_id TEXT NOT NULL,
            confirmation TEXT NOT NULL,
            offer_id TEXT NOT NULL,
            price REAL NOT NULL,
            currency TEXT NOT NULL,
            accepted_at REAL NOT NULL,
            session_id TEXT,
            outbox_key TEXT NOT NULL,
            PRIMARY KEY (hotel_id, confirmation, offer_id)
        )""",
    ],
    # 7: identical refused scans within a minute share one audit row (kiosk/audit.py
    # Refusals): how many it stands for
    [
        "ALTER TABLE audit_log ADD COLUMN repeats INTEGER NOT NULL DEFAULT 1",
    ],
    # 8: the analytics' scan counts sum ``repeats``: keep their index covering
    [
        "DROP INDEX audit_scans",
        "CREATE INDEX audit_scans ON audit_log(hotel_id, event, outcome, at, code, repeats)",
    ],
    # 9: how a guest's request came in (typed, spoken, or a question the FAQ could not
    # answer), so the staff queue can say so; NULL for tickets made by staff or the API
    [
        "ALTER TABLE tickets ADD COLUMN channel TEXT",
    ],
    # 10: every action a hotel model took, once per what it is about (kiosk/models/actions.py):
    # a rerun, a scheduled run after a manual one, or the same model at another kiosk of the
    # hotel arrives at the same key and does not act again
    [
        """CREATE TABLE model_actions (
            hotel_id TEXT NOT NULL,
            action_key TEXT NOT NULL,
            model_id TEXT NOT NULL,
            type TEXT NOT NULL,
            subject TEXT NOT NULL,
            created_at REAL NOT NULL,
            result TEXT,
            PRIMARY KEY (hotel_id, action_key)
        )""",
    ],
    # 11: the manager's figures (kiosk/analytics.py): offers taken in a window, read from a
    # covering index instead of every acceptance the hotel ever had
    [
        "CREATE INDEX offer_acceptances_at ON offer_acceptances(hotel_id, accepted_at, price, currency)",
    ],
    # 12: offers in the guest's language (kiosk/guest.py): a description, and German texts
    # next to the default language's (NULL: the guest reads the default's, marked as such)
    [
        "ALTER TABLE offers ADD COLUMN description TEXT",
        "ALTER TABLE offers ADD COLUMN name_de TEXT",
        "ALTER TABLE offers ADD COLUMN description_de TEXT",
    ],
    # 13: the audit log as a hash chain (kiosk/audit.py, docs/audit-log.md): each row written
    # from now on has its place in the chain (``seq``), the hash of the row before it and its
    # own; rows written before stay as they are (NULL) and the chain starts after them.  The
    # checkpoints this kiosk signed of its chain and queued for the cloud (``audit.checkpoint``,
    # under ``hotel_id``, the first hotel it serves: the chain is the kiosk's, all hotels')
    [
        "ALTER TABLE audit_log ADD COLUMN seq INTEGER",
        "ALTER TABLE audit_log ADD COLUMN prev_hash TEXT",
        "ALTER TABLE audit_log ADD COLUMN row_hash TEXT",
        "CREATE UNIQUE INDEX audit_chain ON audit_log(seq) WHERE seq IS NOT NULL",
        """CREATE TABLE audit_checkpoints (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            hotel_id TEXT NOT NULL,
            length INTEGER NOT NULL,
            head_hash TEXT NOT NULL,
            prev_length INTEGER NOT NULL,
            prev_hash TEXT NOT NULL,
            at REAL NOT NULL,
            body TEXT NOT NULL,
            signature TEXT NOT NULL,
            outbox_key TEXT NOT NULL
        )""",
    ],
    # 14: a key per guest (kiosk/guest_keys.py, docs/privacy.md): personal fields are sealed under
    # their guest's key; the keys live here, in a backup only wrapped under the hotel's backup
    # key (held upstream), and an erasure deletes one.  The row ('', '') is the blind index's
    # key (a request's content terms); a row (hotel, '') is that hotel's backup key
    [
        GUEST_KEYS,
        # a restored backup's guest keys, wrapped under the hotel's backup key (its upstream
        # holds it): unwrapped by the agent once it has the key, erased guests' left out
        """CREATE TABLE guest_keys_wrapped (
            kid TEXT PRIMARY KEY,
            hotel_id TEXT NOT NULL,
            subject TEXT NOT NULL,
            wrapped BLOB NOT NULL,
            hotel_kid TEXT NOT NULL
        )""",
    ],
]

SCHEMA_VERSION = len(MIGRATIONS)
