"""Every mistake an operator can make at a command line gets one clear line and leaves nothing behind.

Each bad input runs the real console script (``kiosk``, ``kiosk-agent``, ``kiosk-cloud``)
and checks the exact code, that the answer is one line ``error: CODE: message (hint)``
with a non-zero exit and no traceback, and that nothing was written.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from procs import clean_env, kiosk

from kiosk import store
from kiosk.cliutil import as_kiosk_error, one_line
from kiosk.errors import HINTS, HTTP_STATUS, KioskError

BIN_DIR = Path(sys.executable).parent
LINE = re.compile(r"^error: ([A-Z_]+): (.+) \((.+)\)$")


def run(prog: str, *args: str, env: dict | None = None, cwd: Path | None = None,
        timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN_DIR / prog), *args], capture_output=True, text=True, env=clean_env(env),
                          cwd=cwd, timeout=timeout)


def refused(p: subprocess.CompletedProcess, code: str, status: int = 1) -> str:
    """The one line of a refusal with ``code``; returns its message."""
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert p.returncode == status, (p.returncode, p.stdout, p.stderr)
    assert len(lines) == 1, p.stderr
    m = LINE.match(lines[0])
    assert m, lines[0]
    assert m.group(1) == code, lines[0]
    return m.group(2)


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "kiosk"
    p = kiosk("--data-dir", str(d), "init")
    assert p.returncode == 0, p.stderr
    return d


@pytest.fixture
def busy_port():
    """A port another process (this one) listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


# --- the error line itself ------------------------------------------------------------------------


def test_every_code_has_a_hint():
    assert set(HTTP_STATUS) <= set(HINTS)
    assert all(HINTS[code].strip() for code in HTTP_STATUS)


def test_one_line_leaves_out_a_hint_the_message_already_says():
    err = KioskError("no such thing\nreally", {}, code="NOT_FOUND", hint="list what exists")
    assert one_line(err) == "error: NOT_FOUND: no such thing really (list what exists)"
    err = KioskError("list what exists", {}, code="NOT_FOUND", hint="list what exists")
    assert one_line(err) == "error: NOT_FOUND: list what exists"


def test_a_usage_mistake_is_one_line_with_exit_status_2(data_dir):
    p = kiosk("--data-dir", str(data_dir), "token", "create", "--hotel", "demo")
    assert "--role" in refused(p, "VALIDATION_ERROR", status=2)
    assert "kiosk token create --help" in p.stderr
    p = run("kiosk-agent", "--data-dir", str(data_dir), "no-such-command")
    refused(p, "VALIDATION_ERROR", status=2)
    p = run("kiosk-cloud", "device", "add")
    refused(p, "VALIDATION_ERROR", status=2)


def test_an_unexpected_failure_is_one_line_and_kiosk_debug_shows_the_traceback(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    p = kiosk("--data-dir", str(blocker / "kiosk"), "init")
    refused(p, "INTERNAL_ERROR")
    p = kiosk("--data-dir", str(blocker / "kiosk"), "init", env={"KIOSK_DEBUG": "1"})
    assert p.returncode == 1 and "Traceback" in p.stderr


# --- servers --------------------------------------------------------------------------------------


def test_kiosk_serve_on_a_port_in_use_says_so_and_starts_nothing(data_dir, busy_port):
    before = tree(data_dir)
    p = kiosk("--data-dir", str(data_dir), "serve", "--port", str(busy_port), timeout=180)
    msg = refused(p, "ADDRESS_IN_USE")
    assert f"127.0.0.1:{busy_port}" in msg and "--port" in p.stderr
    assert "serving" not in p.stdout
    assert tree(data_dir) == before  # no log written: nothing claimed to serve


def test_kiosk_cloud_serve_on_a_port_in_use_says_so(tmp_path, busy_port):
    p = run("kiosk-cloud", "serve", "--data-dir", str(tmp_path / "cloud"), "--port", str(busy_port))
    assert f"127.0.0.1:{busy_port}" in refused(p, "ADDRESS_IN_USE")
    assert "serving" not in p.stdout


def test_kiosk_serve_before_init_creates_nothing(tmp_path):
    p = kiosk("--data-dir", str(tmp_path / "k"), "serve")
    refused(p, "NOT_INITIALISED")
    assert not (tmp_path / "k").exists()
    p = run("kiosk", "serve", cwd=tmp_path)  # the default data dir, var/kiosk, under the working directory
    refused(p, "NOT_INITIALISED")
    assert tree(tmp_path) == set()


# --- tokens ---------------------------------------------------------------------------------------


def listed(d: Path) -> list[dict]:
    p = kiosk("--data-dir", str(d), "token", "list", "--json")
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines()]


def test_token_create_with_a_png_that_cannot_be_written_creates_no_token(data_dir, tmp_path):
    p = kiosk("--data-dir", str(data_dir), "token", "create", "--role", "guest", "--hotel", "demo",
              "--png", "/nonexistent/dir/x.png")
    msg = refused(p, "VALIDATION_ERROR")
    assert "/nonexistent/dir/x.png" in msg and "--png" in msg and "no token was created" in p.stderr
    assert p.stdout == ""
    assert listed(data_dir) == []
    db = sqlite3.connect(data_dir / "kiosk.db")
    assert db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0  # nothing queued for the cloud
    assert db.execute("SELECT count(*) FROM audit_log WHERE event = 'token.created'").fetchone()[0] == 0


def test_token_create_writes_both_pictures_or_neither(data_dir, tmp_path):
    png = tmp_path / "card.png"
    p = kiosk("--data-dir", str(data_dir), "token", "create", "--role", "staff", "--hotel", "demo",
              "--png", str(png), "--svg", str(tmp_path / "missing" / "card.svg"))
    assert "--svg" in refused(p, "VALIDATION_ERROR")
    assert not png.exists() and sorted(os.listdir(tmp_path)) == ["kiosk"]  # the PNG written first is gone too
    assert listed(data_dir) == []
    p = kiosk("--data-dir", str(data_dir), "token", "create", "--role", "staff", "--hotel", "demo",
              "--png", str(png), "--svg", str(tmp_path / "card.svg"))
    assert p.returncode == 0, p.stderr
    assert png.read_bytes()[:4] == b"\x89PNG" and "<svg" in (tmp_path / "card.svg").read_text()
    assert [t["status"] for t in listed(data_dir)] == ["active"]


# --- the agent ------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [("status", "--json"), ("status",), ("sync", "--once"), ("run",),
                                  ("dead", "list"), ("link", "--cloud", "http://127.0.0.1:9", "--device-id", "k",
                                                     "--credential", "c")])
def test_agent_commands_before_init_say_not_initialised_and_write_nothing(tmp_path, args):
    p = run("kiosk-agent", *args, cwd=tmp_path, timeout=120)  # no --data-dir: var/kiosk under the cwd
    assert "var/kiosk" in refused(p, "NOT_INITIALISED")
    assert tree(tmp_path) == set()


def test_agent_run_unlinked_says_so_before_writing_a_log(data_dir):
    before = tree(data_dir)
    p = run("kiosk-agent", "--data-dir", str(data_dir), "run")
    assert "kiosk-agent link" in refused(p, "NOT_INITIALISED")
    assert tree(data_dir) == before


# --- the camera -----------------------------------------------------------------------------------


def test_camera_check_without_a_camera_fails(data_dir, tmp_path):
    p = kiosk("--data-dir", str(data_dir), "camera", "check", "--seconds", "0.2")
    assert "folder" in refused(p, "CAMERA_UNAVAILABLE")
    p = kiosk("--data-dir", str(data_dir), "camera", "check", "--seconds", "0.5",
              env={"KIOSK__CAMERA__SOURCE": "v4l2", "KIOSK__CAMERA__URI": "/dev/video-none"})
    refused(p, "CAMERA_UNAVAILABLE")
    p = kiosk("--data-dir", str(data_dir), "camera", "check", "--seconds", "0.2",
              env={"KIOSK__CAMERA__SOURCE": "file", "KIOSK__CAMERA__URI": str(tmp_path / "none.mp4")})
    assert "video file" in refused(p, "CAMERA_UNAVAILABLE")
    (data_dir / "camera").mkdir()
    p = kiosk("--data-dir", str(data_dir), "camera", "check", "--seconds", "0.3")
    assert p.returncode == 0, p.stderr  # an empty folder is a camera that sees an empty lobby
    assert json.loads(p.stdout)["resolution"] == "1280x720"


# --- models ---------------------------------------------------------------------------------------

def test_model_run_says_the_expected_form_and_accepts_the_apis_wrapper(data_dir):
    p = kiosk("--data-dir", str(data_dir), "model", "run", "night-audit", "--hotel", "demo",
              "--payload", '{"businessDate": "yesterday"}', timeout=300)
    msg = refused(p, "VALIDATION_ERROR")
    assert "businessDate" in msg and "YYYY-MM-DD" in msg
    p = kiosk("--data-dir", str(data_dir), "model", "run", "night-audit", "--hotel", "demo",
              "--payload", '{"payload": {}}', timeout=300)
    assert "known fields: businessDate" in refused(p, "VALIDATION_ERROR")
    p = kiosk("--data-dir", str(data_dir), "model", "run", "night-audit", "--hotel", "demo",
              "--payload", "{businessDate: 1}")
    assert "not JSON" in refused(p, "VALIDATION_ERROR")
    p = kiosk("--data-dir", str(data_dir), "model", "run", "night-audit", "--hotel", "demo",
              "--payload", '{"requestPayload": {"businessDate": "2026-05-27"}}', timeout=300)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["status"] == "success"


# --- storage --------------------------------------------------------------------------------------


def test_a_full_disk_is_storage_full_and_changes_nothing(tmp_path):
    db = store.connect(tmp_path / "full.db", migrate=False)
    db.execute("CREATE TABLE t (x TEXT)")
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages + 1}")  # SQLite's SQLITE_FULL, as from a full disk
    with pytest.raises(KioskError) as e:
        with store.transaction(db):
            for _ in range(100):
                db.execute("INSERT INTO t VALUES (?)", ["x" * 2000])
    assert e.value.code == "STORAGE_FULL" and e.value.http_status == 507
    assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    assert as_kiosk_error(OSError(28, "No space left on device", "/x")).code == "STORAGE_FULL"
    assert as_kiosk_error(sqlite3.OperationalError("database or disk is full")).code == "STORAGE_FULL"


def test_a_database_from_a_newer_version_is_refused_untouched(data_dir):
    db = sqlite3.connect(data_dir / "kiosk.db")
    db.execute("PRAGMA user_version = 999")
    db.close()
    p = kiosk("--data-dir", str(data_dir), "token", "list")
    assert "999" in refused(p, "SCHEMA_TOO_NEW")
    assert sqlite3.connect(data_dir / "kiosk.db").execute("PRAGMA user_version").fetchone()[0] == 999


# --- the demo script --------------------------------------------------------------------------


def test_the_demo_run_a_second_time_says_the_port_is_taken_and_writes_nothing(tmp_path, busy_port):
    repo = Path(__file__).resolve().parents[1]
    demo = tmp_path / "demo"
    p = subprocess.run(["bash", str(repo / "scripts" / "run-demo.sh")], capture_output=True, text=True,
                       timeout=120, env=clean_env({"DEMO_DIR": str(demo), "PORT": str(busy_port),
                                                   "CLOUD_PORT": str(busy_port)}))
    assert f"127.0.0.1:{busy_port}" in refused(p, "ADDRESS_IN_USE")
    assert "kiosk on" not in p.stdout and not demo.exists()


def test_a_long_running_process_sets_the_collector_aside_for_start_up_and_still_collects_cycles():
    import gc
    import weakref

    from kiosk import cliutil

    before = gc.get_threshold()
    try:
        cliutil.tune_gc()
        assert gc.get_threshold() == cliutil.GC_THRESHOLDS and gc.get_freeze_count() > 0

        class Node:
            pass

        cycle = Node()
        cycle.me = cycle
        gone = weakref.ref(cycle)
        del cycle
        kept = [[] for _ in range(cliutil.GC_THRESHOLDS[0] * 2)]  # young objects: a collection runs
        assert gone() is None and len(kept) == cliutil.GC_THRESHOLDS[0] * 2
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_json_nested_to_the_limit_is_read_and_one_deeper_is_refused():
    from kiosk.validation import MAX_JSON_DEPTH, loads_bounded

    def nested(depth):
        return "[" * (depth - 1) + '{"a": "b"}' + "]" * (depth - 1)

    assert loads_bounded(nested(MAX_JSON_DEPTH)) is not None
    with pytest.raises(ValueError, match="nested deeper"):
        loads_bounded(nested(MAX_JSON_DEPTH + 1))
