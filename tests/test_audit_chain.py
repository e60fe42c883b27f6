"""The audit log as a hash chain (kiosk/audit.py) and its signed checkpoints, checked by the
cloud (sync/cloud/audit_chain.py): rows chain; a row edited with plain sqlite3 makes
`kiosk audit verify` fail naming it; checkpoints go up and are accepted; a rewritten or
truncated history and a bad signature are refused, with a security event
(docs/audit-log.md)."""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner
from procs import kiosk
from replicas import HOTEL, Cloud, Site

from kiosk import audit, store
from kiosk.clock import FakeClock
from kiosk.migrations import MIGRATIONS
from kiosk.trust import b64u, key_id, new_signing_key, raw_public
from sync.cloud import audit_chain
from sync.cloud.apply import apply_push
from sync.cloud.cli import main as cloud_main
from sync.cloud.devices import Device


def write_rows(db, n: int, at: float, hotel: str = HOTEL, start: int = 0) -> None:
    for i in range(start, start + n):
        audit.record(db, hotel_id=hotel, event="ticket.created", outcome="success", at=at + i, actor=f"staff-{i}",
                     session_id=f"s-{i}", details={"ticketId": f"T-{i}", "note": "caf\u00e9"})


def chain(db) -> list[tuple]:
    return db.execute("SELECT id, seq, prev_hash, row_hash FROM audit_log ORDER BY id").fetchall()


def rehash(path, from_seq: int = 1) -> None:
    """What someone who knows the chain does after editing rows: recompute every hash from
    ``from_seq`` on, with plain sqlite3 (the kiosk's own row_hash, nothing else)."""
    conn = sqlite3.connect(path)
    prev = conn.execute("SELECT prev_hash FROM audit_log WHERE seq = ?", [from_seq]).fetchone()[0]
    rows = conn.execute("SELECT id, seq, hotel_id, at, event, outcome, actor, session_id, jti, client, code, details"
                        " FROM audit_log WHERE seq >= ? ORDER BY seq", [from_seq]).fetchall()
    for r in rows:
        h = audit.row_hash(prev, r[1], *r[2:])
        conn.execute("UPDATE audit_log SET prev_hash = ?, row_hash = ? WHERE id = ?", [prev, h, r[0]])
        prev = h
    conn.commit()
    conn.close()


# --- the chain ------------------------------------------------------------------------------------

def test_rows_chain_after_the_rows_from_before_and_repeats_stay_outside(tmp_path):
    path = tmp_path / "k.db"
    db = store.connect(path, migrate=False)
    chained = next(i for i, m in enumerate(MIGRATIONS) if any("audit_chain" in stmt for stmt in m))
    store.run_migrations(db, MIGRATIONS[:chained])  # a kiosk as the version before the chain left it
    for i in range(3):
        db.execute("INSERT INTO audit_log (hotel_id, at, event, outcome, details) VALUES (?, ?, 'scan', 'success',"
                   " '{}')", [HOTEL, 1000.0 + i])
    db.conn.close()
    db = store.connect(path)  # opening it migrates: the old rows stay, outside the chain
    write_rows(db, 4, 2000.0)
    refusals = audit.Refusals()
    for _ in range(3):  # one row, repeats 3
        refusals.record(db, hotel_id=HOTEL, event="scan", at=3000.0, client="camera", code="INVALID_TOKEN")
    rows = chain(db)
    assert [r[1] for r in rows] == [None, None, None, 1, 2, 3, 4, 5]
    assert rows[3][2] == audit.genesis_hash(3, rows[2][0])  # the chain starts after the 3 old rows
    assert all(rows[i][2] == rows[i - 1][3] for i in range(4, 8))
    assert db.execute("SELECT repeats FROM audit_log WHERE seq = 5").fetchone()[0] == 3
    r = audit.verify(db)
    assert r["ok"] and (r["rows"], r["preChain"], r["length"], r["headHash"]) == (8, 3, 5, rows[-1][3])

    db.execute("DELETE FROM audit_log WHERE id = ?", [rows[1][0]])  # an old row removed: the start moves
    r = audit.verify(db)
    assert not r["ok"] and r["firstBadRow"] == rows[3][0]


def test_each_kind_of_change_names_its_row(tmp_path):
    db = store.connect(tmp_path / "k.db")
    write_rows(db, 6, 1000.0)
    ids = [r[0] for r in chain(db)]
    db.execute("UPDATE audit_log SET actor = 'someone-else' WHERE id = ?", [ids[1]])
    db.execute("DELETE FROM audit_log WHERE id = ?", [ids[3]])
    db.execute("INSERT INTO audit_log (hotel_id, at, event, outcome, details) VALUES (?, 1, 'scan', 'success', '{}')",
               [HOTEL])
    r = audit.verify(db)
    assert [p["id"] for p in r["problems"]] == [ids[1], ids[4], ids[-1] + 1]  # edited, after the gap, unchained
    assert r["firstBadRow"] == ids[1]
    assert "contents" in r["problems"][0]["reason"] and "outside the chain" in r["problems"][2]["reason"]


# --- kiosk audit verify: the real command -------------------------------------------------------

def test_kiosk_audit_verify_names_the_row_edited_with_sqlite3(tmp_path):
    from kiosk import config as config_mod
    from kiosk.instance import Instance

    d = tmp_path / "kiosk"
    assert kiosk("--data-dir", str(d), "init").returncode == 0
    inst = Instance(config_mod.load(None, env={}, overrides={"data_dir": str(d)}))
    db = inst.connect()
    write_rows(db, 5, 1000.0)
    audit.checkpoint(db, inst.load_keys().signing_key, kiosk_id="lobby-1", hotels=[HOTEL], now=2000.0)
    write_rows(db, 2, 3000.0, start=5)
    db.conn.close()
    ok = kiosk("--data-dir", str(d), "audit", "verify")
    assert ok.returncode == 0 and "ok:" in ok.stdout, ok.stdout + ok.stderr

    conn = sqlite3.connect(d / "kiosk.db")
    target = conn.execute("SELECT id FROM audit_log WHERE seq = 3").fetchone()[0]
    conn.execute("UPDATE audit_log SET details = ? WHERE id = ?", ['{"note":"nothing happened"}', target])
    conn.commit()
    conn.close()
    bad = kiosk("--data-dir", str(d), "audit", "verify")
    assert bad.returncode == 1 and f"row {target} " in bad.stdout and f"first row that does not fit is {target}" \
        in bad.stdout, bad.stdout + bad.stderr
    assert "Traceback" not in bad.stderr
    out = json.loads(kiosk("--data-dir", str(d), "audit", "verify", "--json").stdout)
    assert out["ok"] is False and out["firstBadRow"] == target

    rehash(d / "kiosk.db", 3)  # the chain recomputed after the edit: the rows fit, the checkpoint does not
    bad = kiosk("--data-dir", str(d), "audit", "verify", "--json")
    out = json.loads(bad.stdout)
    assert bad.returncode == 1 and out["problems"][0]["seq"] == 5 and "checkpoint" in out["problems"][0]["reason"]


# --- checkpoints and the cloud ------------------------------------------------------------------

@pytest.fixture
def cloud(tmp_path):
    return Cloud(tmp_path, FakeClock(1_780_000_000.0))


def make_checkpoint(site: Site, *, min_interval: float = 0.0) -> dict | None:
    return audit.checkpoint(site.db, site.inst.load_keys().signing_key, kiosk_id=site.name, hotels=[HOTEL],
                            now=site.clock.now(), min_interval=min_interval)


def outbox_of(site: Site) -> list[tuple]:
    return site.db.execute("SELECT state, last_error FROM outbox WHERE kind = 'audit.checkpoint' ORDER BY id"
                           ).fetchall()


def cloud_verify(tmp_path, *args: str):
    return CliRunner().invoke(cloud_main, ["audit", "verify", "--hotel", HOTEL, "--data-dir", str(tmp_path), *args])


def security_events(cloud: Cloud) -> list[tuple]:
    return cloud.db.execute("SELECT kind, subject FROM security_events ORDER BY id").fetchall()


def test_checkpoints_go_up_and_are_accepted_in_sequence(tmp_path, cloud):
    site = Site(tmp_path, "k-a", cloud)
    assert make_checkpoint(site) is None  # nothing chained yet
    write_rows(site.db, 3, site.clock.now())
    first = make_checkpoint(site)
    assert (first["length"], first["prevLength"], first["prevHash"]) == (3, 0, audit.hash_at(site.db, 0))
    assert make_checkpoint(site) is None  # nothing new
    write_rows(site.db, 2, site.clock.now(), start=3)
    assert make_checkpoint(site, min_interval=300) is None  # too soon
    site.tick(301)
    second = make_checkpoint(site, min_interval=300)
    assert (second["prevLength"], second["prevHash"]) == (3, first["headHash"])
    assert site.sync()["error"] is None
    assert outbox_of(site) == [("delivered", None), ("delivered", None)]
    stored = cloud.db.execute("SELECT kiosk_id, length, status FROM audit_checkpoints ORDER BY id").fetchall()
    assert stored == [("k-a", 3, "accepted"), ("k-a", 5, "accepted")]
    r = cloud_verify(tmp_path, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["ok"] and out["kiosks"][0]["length"] == 5 and out["kiosks"][0]["headHash"] == second["headHash"]
    # the kiosk's chain checked against the cloud's last checkpoint of it
    assert audit.verify(site.db, site.inst.load_keys().signing_key.public_key(), [(5, second["headHash"])])["ok"]
    assert security_events(cloud) == []


def test_a_history_rewritten_and_checkpointed_again_is_refused(tmp_path, cloud):
    site = Site(tmp_path, "k-a", cloud)
    write_rows(site.db, 5, site.clock.now())
    make_checkpoint(site)
    assert site.sync()["error"] is None
    # someone with the box edits row 2 and recomputes the chain after it, so that every row fits
    site.db.execute("UPDATE audit_log SET actor = 'nobody' WHERE seq = 2")
    rehash(site.inst.db_path, 2)
    assert audit.verify(site.db)["problems"][0]["seq"] == 5  # the kiosk's own checkpoint still says otherwise
    write_rows(site.db, 2, site.clock.now(), start=5)
    make_checkpoint(site)  # the kiosk signs what its chain now says: (5, another hash) as its previous
    site.sync()
    [(_, first), (state, error)] = outbox_of(site)
    assert state == "dead" and error.startswith("AUDIT_REWRITTEN"), error
    assert security_events(cloud) == [("AUDIT_REWRITTEN", "k-a")]
    assert [e["kind"] for e in site.security_events()] == ["AUDIT_REWRITTEN"]  # shown at the hotel's kiosks
    statuses = cloud.db.execute("SELECT length, status FROM audit_checkpoints ORDER BY id").fetchall()
    assert statuses == [(5, "accepted"), (7, "refused")]  # the refused one is kept as evidence

    write_rows(site.db, 1, site.clock.now(), start=7)
    make_checkpoint(site)  # the next one names the refused one: refused too, no second event
    site.sync()
    assert [s for s, _ in outbox_of(site)] == ["delivered", "dead", "dead"]
    assert security_events(cloud) == [("AUDIT_REWRITTEN", "k-a")]
    r = cloud_verify(tmp_path)
    assert r.exit_code == 1 and "k-a: FAILED" in r.output and "AUDIT_REWRITTEN" in r.output, r.output


def test_deleted_rows_and_a_forgotten_checkpoint_are_refused(tmp_path, cloud):
    site = Site(tmp_path, "k-a", cloud)
    write_rows(site.db, 6, site.clock.now())
    make_checkpoint(site)
    site.sync()
    site.db.execute("DELETE FROM audit_log WHERE seq > 3")  # the newest rows, gone
    make_checkpoint(site)  # (3 rows, naming (6, "")): shorter
    site.sync()
    assert outbox_of(site)[-1][0] == "dead" and outbox_of(site)[-1][1].startswith("AUDIT_REWRITTEN")

    other = Site(tmp_path, "k-b", cloud)  # the local checkpoints deleted too: it names the chain's start
    write_rows(other.db, 4, other.clock.now())
    make_checkpoint(other)
    other.sync()
    other.db.execute("DELETE FROM audit_checkpoints")
    write_rows(other.db, 1, other.clock.now(), start=4)
    assert make_checkpoint(other)["prevLength"] == 0
    other.sync()
    assert outbox_of(other)[-1][1].startswith("AUDIT_REWRITTEN")
    assert sorted(security_events(cloud)) == [("AUDIT_REWRITTEN", "k-a"), ("AUDIT_REWRITTEN", "k-b")]


DEVICE = Device("k-a", (HOTEL,))


def push(cloud: Cloud, entry: dict) -> dict:
    [result] = apply_push(cloud.db, DEVICE, [entry], cloud.clock.now())
    return result


def entry_of(site: Site) -> dict:
    """The newest checkpoint's outbox entry, as the pusher would send it."""
    r = site.db.execute("SELECT idempotency_key, hotel_id, kind, entity_type, entity_id, payload, hlc, created_at"
                        " FROM outbox WHERE kind = 'audit.checkpoint' ORDER BY id DESC LIMIT 1").fetchone()
    return {"key": r[0], "hotelId": r[1], "kind": r[2], "entityType": r[3], "entityId": r[4],
            "payload": json.loads(r[5]), "hlc": r[6], "createdAt": r[7]}


def test_a_bad_signature_or_another_key_is_refused(tmp_path, cloud):
    site = Site(tmp_path, "k-a", cloud)
    write_rows(site.db, 2, site.clock.now())
    make_checkpoint(site)
    good = entry_of(site)
    forged = json.loads(good["payload"]["checkpoint"]) | {"length": 200}
    bad = good | {"key": "forged-1", "payload": good["payload"] | {"checkpoint": json.dumps(forged)}}
    r = push(cloud, bad)
    assert r["status"] == "rejected" and r["reason"].startswith("AUDIT_SIGNATURE"), r
    assert security_events(cloud) == [("AUDIT_SIGNATURE", "k-a")]  # kept though the entry was rolled back
    assert push(cloud, good)["status"] == "applied"  # the first good one pins the kiosk's key

    impostor = new_signing_key()  # a well-signed checkpoint under another key than the pinned one
    pinned = json.loads(good["payload"]["checkpoint"])
    text, signature = audit.sign_checkpoint(impostor, pinned | {
        "length": 3, "prevLength": 2, "prevHash": pinned["headHash"], "kid": key_id(impostor.public_key()),
        "publicKey": b64u(raw_public(impostor.public_key()))})
    r = push(cloud, good | {"key": "impostor-1", "payload": {"checkpoint": text, "signature": signature}})
    assert r["status"] == "rejected" and "pinned" in r["reason"], r
    assert push(cloud, good | {"key": "junk", "payload": {"checkpoint": "{", "signature": "x"}})["reason"] \
        .startswith("INVALID_ENTRY")
    assert audit_chain.verify_hotel(cloud.db, HOTEL)["kiosks"][0]["refused"] == 2


def test_the_agent_job_checkpoints_the_chain(tmp_path, cloud):
    from agent.runner import Agent

    site = Site(tmp_path, "k-a", cloud)
    agent = Agent(site.inst, site.transport, device_id="k-a")
    agent.audit_checkpoint_job()
    assert outbox_of(site) == []  # nothing chained yet
    write_rows(site.db, 2, site.clock.now())
    agent.audit_checkpoint_job()
    write_rows(site.db, 2, site.clock.now(), start=2)
    agent.audit_checkpoint_job()  # within CHECKPOINT_INTERVAL_SECONDS of the first: none
    assert len(outbox_of(site)) == 1
    site.tick(audit.CHECKPOINT_INTERVAL_SECONDS + 1)
    agent.audit_checkpoint_job()
    assert len(outbox_of(site)) == 2
    assert site.sync()["error"] is None and [s for s, _ in outbox_of(site)] == ["delivered", "delivered"]
