"""Databases and logs are their user's only (0600), whatever umask a program starts with.

Under the usual umask 022 SQLite makes a new database 0644 and Python's log handler a
new log 0644; the 0700 data directory and the systemd unit's UMask=0077 hid that, but a
kiosk started by hand or a library user got files other local users could read.  Here:
the three programs under umask 022 (kiosk init + serve, the cloud), the library calls
(store.connect, the cloud's database, logs.configure with its rotation) and files an
older version left readable, all ending at 0600 — the database's -wal and -shm too.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from harness import Cloud, Kiosk, wait_for

from kiosk import logs, store


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def modes(root: Path, *names: str) -> dict[str, str]:
    return {n: oct(mode(root / n)) for n in names}


@pytest.fixture
def umask022():
    """The usual login umask for this test and every process it starts."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def current_umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


# --- the programs -----------------------------------------------------------------------------

def test_a_kiosk_started_under_umask_022_keeps_its_database_and_log_to_its_user(tmp_path, umask022):
    k = Kiosk(tmp_path, "lobby")  # kiosk init
    assert modes(k.dir, "kiosk.db") == {"kiosk.db": "0o600"}
    k.serve()
    try:
        assert k.scan(k.token("staff")).status_code == 200  # a write through the server's connection
        names = ("kiosk.db", "kiosk.db-wal", "kiosk.db-shm", "logs/kiosk.jsonl")
        wait_for(lambda: all((k.dir / n).exists() for n in names), what="the WAL, shm and log files")
        assert modes(k.dir, *names) == dict.fromkeys(names, "0o600")
    finally:
        k.stop_all()


def test_a_cloud_started_under_umask_022_keeps_its_database_and_log_to_its_user(tmp_path, umask022):
    cloud = Cloud(tmp_path)
    if cloud.database:
        pytest.skip("the cloud keeps its data in PostgreSQL here")
    cloud.start()
    try:
        cloud.device("k1", "demo")  # a write while the server holds the database open
        names = ("cloud.db", "cloud.db-wal", "cloud.db-shm", "logs/kiosk.jsonl")
        wait_for(lambda: all((cloud.dir / n).exists() for n in names), what="the WAL, shm and log files")
        assert modes(cloud.dir, *names) == dict.fromkeys(names, "0o600")
    finally:
        cloud.stop()


@pytest.mark.parametrize("program", ["kiosk.cli", "agent.cli", "sync.cloud.cli"])
def test_each_program_runs_its_commands_under_umask_077_and_gives_the_callers_back(program, umask022):
    import importlib

    main = importlib.import_module(program).main
    seen = []

    @main.command("probe-umask")
    def probe():
        seen.append(current_umask())

    try:
        r = CliRunner().invoke(main, ["probe-umask"], catch_exceptions=False)
    finally:
        main.commands.pop("probe-umask")
    assert r.exit_code == 0, r.output
    assert seen == [0o077]
    assert current_umask() == 0o022  # an in-process run (a test, a script) gets its own back
    assert isinstance(main, click.Group)


# --- the library ----------------------------------------------------------------------------------

def test_store_connect_creates_the_database_0600_and_sqlite_gives_wal_and_shm_its_mode(tmp_path, umask022):
    db = store.connect(tmp_path / "k.db")
    with store.transaction(db):
        db.execute("INSERT INTO hlc_state (node, wall_ms, counter) VALUES ('k1', 1, 0)")
    names = ("k.db", "k.db-wal", "k.db-shm")
    assert modes(tmp_path, *names) == dict.fromkeys(names, "0o600")
    db.conn.close()


def test_store_connect_takes_other_users_off_files_an_older_version_left_readable(tmp_path, umask022):
    store.connect(tmp_path / "k.db").conn.close()
    for n in ("k.db", "k.db-wal", "k.db-shm"):
        (tmp_path / n).touch()
        (tmp_path / n).chmod(0o644)
    (tmp_path / "k.db").chmod(0o640)
    store.connect(tmp_path / "k.db").conn.close()
    assert mode(tmp_path / "k.db") == 0o600
    for n in ("k.db-wal", "k.db-shm"):  # SQLite removes them on the last close; if not, they were fixed
        assert not (tmp_path / n).exists() or mode(tmp_path / n) == 0o600


def test_the_clouds_database_opened_as_a_library_is_0600(tmp_path, umask022):
    from sync.cloud import db as cloud_db

    d = cloud_db.connect(tmp_path / "c.db")
    d.execute("CREATE TABLE t (x)")
    names = ("c.db", "c.db-wal", "c.db-shm")
    assert modes(tmp_path, *names) == dict.fromkeys(names, "0o600")
    d.conn.close()


@pytest.fixture
def root_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_logs_are_0600_from_the_first_line_and_after_every_rotation(tmp_path, umask022, root_logging):
    d = tmp_path / "logs"
    d.mkdir(mode=0o700)
    (d / "kiosk.jsonl.2").write_text("{}\n")  # an older version's rotated log
    (d / "kiosk.jsonl.2").chmod(0o644)
    logs.configure("INFO", d)
    handler = next(h for h in logging.getLogger().handlers if isinstance(h, logging.handlers.RotatingFileHandler))
    logging.getLogger("t").info("guest in room 101")
    handler.doRollover()
    logging.getLogger("t").info("guest in room 102")
    handler.flush()
    names = ("kiosk.jsonl", "kiosk.jsonl.1", "kiosk.jsonl.3")  # the rotation moved .2 on to .3
    assert modes(d, *names) == dict.fromkeys(names, "0o600")
    assert (d / "kiosk.jsonl.3").read_text() == "{}\n"
    assert "room 102" in (d / "kiosk.jsonl").read_text() and "room 101" in (d / "kiosk.jsonl.1").read_text()


def test_an_existing_readable_log_is_made_private_when_opened(tmp_path, umask022, root_logging):
    d = tmp_path / "logs"
    d.mkdir(mode=0o700)
    (d / "kiosk.jsonl").write_text('{"old": 1}\n')
    (d / "kiosk.jsonl").chmod(0o644)
    logs.configure("INFO", d)
    logging.getLogger("t").warning("appended")
    for h in logging.getLogger().handlers:
        h.flush()
    assert mode(d / "kiosk.jsonl") == 0o600
    lines = (d / "kiosk.jsonl").read_text().splitlines()
    assert lines[0] == '{"old": 1}' and "appended" in lines[-1]


def test_opening_another_connection_keeps_the_locks_of_the_open_ones(tmp_path):
    """Making the database private must not open and close it: closing any descriptor of a
    file drops every POSIX lock the process holds on it, SQLite's too.  While one connection
    of a server held the write lock, the server opening another connection let a second
    process (`kiosk token create`) take the lock as well: the server's next read was
    `disk I/O error`."""
    import sqlite3
    import subprocess
    import sys

    from kiosk import store

    path = tmp_path / "kiosk.db"
    store.connect(path).conn.close()  # made and migrated
    first = sqlite3.connect(path, isolation_level=None, timeout=0.05)
    first.execute("BEGIN IMMEDIATE")  # the write lock, held
    first.execute("CREATE TABLE t (x)")
    store.connect(path, busy_timeout_ms=50, migrate=False, serialize_writers=False)  # used to drop it
    other = subprocess.run([sys.executable, "-c", (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0.05)\n"
        "try:\n    c.execute('BEGIN IMMEDIATE')\nexcept sqlite3.OperationalError as e:\n    print(e)\n"
        "else:\n    print('took the lock')\n"), str(path)], capture_output=True, text=True, timeout=60)
    assert other.stdout.strip() == "database is locked", other.stdout + other.stderr
    first.execute("COMMIT")
