"""Backup, restore, moving a kiosk to new hardware, and upgrading a data directory (docs/operations.md).

Real ``kiosk``, ``kiosk-agent`` and ``kiosk-cloud`` processes: a kiosk whose cloud is
down fills its outbox, is backed up, and is restored into another data directory (as
on a new machine); the restored kiosk's agent then delivers every entry exactly once.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from harness import Cloud, Kiosk, run

from kiosk import config as config_mod
from kiosk import store, tickets
from kiosk.instance import Instance
from kiosk.migrations import MIGRATIONS


def refused(p, code: str) -> str:
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    line = p.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {code}: "), line
    return line


def moved_env(k: Kiosk, data_dir: Path) -> dict:
    """The same kiosk's configuration with another data directory: the new machine."""
    return {**k.agent_env, "KIOSK_DATA_DIR": str(data_dir)}


@pytest.fixture
def site(tmp_path):
    cloud = Cloud(tmp_path)
    k = Kiosk(tmp_path, "lobby-1")
    k.link(cloud.url, cloud.device("lobby-1", "demo"))
    yield cloud, k
    k.stop_all()
    cloud.stop()


def test_a_kiosk_moved_to_new_hardware_delivers_its_whole_outbox_exactly_once(site, tmp_path):
    cloud, k = site
    inst = Instance(config_mod.load(None, env=dict(k.env)))
    for i in range(25):
        tickets.create(inst.db(), {"type": "maintenance", "title": f"fault {i}", "roomNumber": str(100 + i)},
                       hotel_id="demo", by="s-1", now=time.time(), node=k.name, window=0)
    k.token("guest", user="R-1", walk_in=True)
    photo = tmp_path / "room.png"
    cv2.imwrite(str(photo), np.full((60, 80, 3), 200, np.uint8))
    k.cli("kiosk", "room", "reference", "101", str(photo), "--hotel", "demo")
    pending = k.status()["pending"]
    assert pending == 26  # 25 tickets and a token: the cloud was never up, everything waits

    out = json.loads(k.cli("kiosk", "backup", str(tmp_path / "usb" / "lobby-1")).stdout)
    assert out["outbox"] == {"pending": pending, "dead": 0} and out["kioskId"] == "lobby-1"
    backup = tmp_path / "usb" / "lobby-1"
    assert not (backup / "logs").exists() and (backup / "keys" / "cloud.json").is_file()
    assert {p.stat().st_mode & 0o777 for p in backup.rglob("*") if p.is_file()} == {0o600}

    new = tmp_path / "new-machine" / "kiosk"
    env = moved_env(k, new)
    restored = json.loads(run("kiosk", "restore", str(backup), env=env).stdout)
    assert restored["outbox"] == {"pending": pending, "dead": 0}
    assert restored["schemaVersion"] == {"backup": len(MIGRATIONS), "now": len(MIGRATIONS)}
    db = sqlite3.connect(new / "kiosk.db")
    path = db.execute("SELECT path FROM room_photos").fetchone()[0]
    assert Path(path).is_relative_to(new.resolve()) and Path(path).is_file()  # the photo moved with it

    cloud.start()
    out = json.loads(run("kiosk-agent", "sync", "--once", env=env).stdout)
    assert out["error"] is None and out["applied"] == pending and out["rejected"] == 0
    assert len(cloud.list("tickets", "demo")) == 25
    # the old box, started again by mistake, applies nothing twice: the same idempotency keys
    # get the cloud's first answers again (replayed), and the cloud still holds each ticket once
    again = json.loads(k.cli("kiosk-agent", "sync", "--once").stdout)
    assert again["applied"] + again["duplicate"] == pending and again["rejected"] == 0
    assert len(cloud.list("tickets", "demo")) == 25
    tokens = run("kiosk", "token", "list", "--json", env=env).stdout.splitlines()
    assert [json.loads(t)["userId"] for t in tokens] == ["R-1"]


def test_restore_refuses_what_would_half_work_and_writes_nothing(site, tmp_path):
    cloud, k = site
    backup = tmp_path / "bk"
    k.cli("kiosk", "backup", str(backup))

    other_kiosk = {**moved_env(k, tmp_path / "a"), "KIOSK__PROPERTY__KIOSK_ID": "lobby-2"}
    assert "lobby-1" in refused(run("kiosk", "restore", str(backup), env=other_kiosk, check=False),
                                "VALIDATION_ERROR")
    assert not (tmp_path / "a").exists()

    assert "not empty" in refused(run("kiosk", "restore", str(backup), env=moved_env(k, k.dir), check=False),
                                  "VALIDATION_ERROR")

    damaged = tmp_path / "damaged"
    k.cli("kiosk", "backup", str(damaged))
    (damaged / "keys" / "issuer.pem").write_text("not a key")
    line = refused(run("kiosk", "restore", str(damaged), env=moved_env(k, tmp_path / "b"), check=False),
                   "VALIDATION_ERROR")
    assert "keys/issuer.pem" in line and "checksum" in line
    assert not (tmp_path / "b").exists() and not (tmp_path / "b.restoring").exists()

    assert "not a kiosk backup" in refused(run("kiosk", "restore", str(tmp_path), env=moved_env(k, tmp_path / "c"),
                                               check=False), "VALIDATION_ERROR")


def test_backup_refuses_a_folder_in_use_and_an_uninitialised_kiosk(site, tmp_path):
    cloud, k = site
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert "not empty" in refused(k.cli("kiosk", "backup", str(tmp_path / "full"), check=False), "VALIDATION_ERROR")
    assert "inside the data directory" in refused(k.cli("kiosk", "backup", str(k.dir / "bk"), check=False),
                                                  "VALIDATION_ERROR")
    p = run("kiosk", "backup", str(tmp_path / "nothing"), env={"KIOSK_DATA_DIR": str(tmp_path / "none")},
            check=False)
    refused(p, "NOT_INITIALISED")
    assert not (tmp_path / "nothing").exists() and not (tmp_path / "nothing.partial").exists()


def test_an_existing_data_dir_is_upgraded_in_place_and_keeps_its_data(tmp_path):
    d = tmp_path / "kiosk"
    run("kiosk", "init", env={"KIOSK_DATA_DIR": str(d)})
    (d / "kiosk.db").unlink()
    old = store.connect(d / "kiosk.db", migrate=False)
    store.run_migrations(old, MIGRATIONS[:1])  # the first release's schema
    old.execute("INSERT INTO qr_tokens (jti, hotel_id, kid, subject, role, issued_at, expires_at)"
                " VALUES ('old-1', 'demo', 'k', 'R-9', 'guest', ?, ?)", [time.time(), time.time() + 3600])
    old.conn.close()
    out = run("kiosk", "token", "list", "--json", env={"KIOSK_DATA_DIR": str(d)}).stdout
    assert [json.loads(line)["jti"] for line in out.splitlines()] == ["old-1"]
    assert sqlite3.connect(d / "kiosk.db").execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_restore_into_an_empty_state_directory_behind_a_link(site, tmp_path):
    """What systemd's StateDirectory= with DynamicUser= gives: /var/lib/hotel-kiosk, a link to an
    empty /var/lib/private/hotel-kiosk, in a parent the service may not write to."""
    cloud, k = site
    k.token("guest", user="R-7", walk_in=True)
    k.cli("kiosk", "backup", str(tmp_path / "bk"))
    private = tmp_path / "private" / "hotel-kiosk"
    private.mkdir(parents=True)
    link = tmp_path / "hotel-kiosk"
    link.symlink_to(private)
    run("kiosk", "restore", str(tmp_path / "bk"), env=moved_env(k, link))
    assert link.is_symlink() and sorted(p.name for p in private.iterdir()) == ["keys", "kiosk.db"]
    tokens = run("kiosk", "token", "list", "--json", env=moved_env(k, link)).stdout.splitlines()
    assert [json.loads(t)["userId"] for t in tokens] == ["R-7"]
