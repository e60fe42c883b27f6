"""The cloud's SQLite file, for callers that want a connection and no storage object
(tests, scripts, the in-memory transport).

The schema is sync/cloud/schema.py; how each backend opens, migrates and locks is
sync/cloud/storage.py.  This module only imports them (never the other way round).
"""

from __future__ import annotations

from pathlib import Path

import sqlite_utils

from .storage import FILENAME, SqliteStorage

__all__ = ["FILENAME", "connect", "migrate", "open_data_dir"]


def connect(path: str | Path) -> sqlite_utils.Database:
    """Open (creating and migrating if needed) the cloud's SQLite database file at ``path``."""
    st = SqliteStorage(Path(path).parent)
    st.path = Path(path)
    return st.connect(migrate=True)


def open_data_dir(data_dir: str | Path) -> sqlite_utils.Database:
    """``DATA_DIR/cloud.db``; the directory is created if missing.  The directory is kept at
    0700 and the database at 0600 (it holds the signing keys and the hotels' data), the
    same modes as the kiosk's; SQLite gives its -wal and -shm files the database's mode."""
    st = SqliteStorage(data_dir)
    st.prepare()
    return st.connect()


def migrate(db: sqlite_utils.Database) -> int:
    """Apply pending cloud migrations, each in its own transaction; returns how many."""
    return SqliteStorage.migrate_connection(db)
