"""Crash safety of the scan path: a real ``kiosk serve`` killed with SIGKILL mid-load.

One data dir per test.  Each cycle fires scans of fresh one-time tokens (and a
few reusable ones) from 4 client threads, SIGKILLs the server after a short
random delay while requests are in flight, then opens the database with plain
``sqlite3`` and checks that every scan either committed completely (consumed
token + session + workflow + success audit + both outbox rows) or not at all,
that no one-time token has two sessions, and that every scan the client saw
succeed (HTTP 200) is in the database.  The server is then restarted on the
same directory: a token consumed before the kill is refused with
TOKEN_ALREADY_USED, a token whose request died in flight is refused exactly
when the database says it was consumed, and a fresh token still works.
"""

from __future__ import annotations

import json
import queue
import random
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from procs import Server, kiosk

from kiosk import config as config_mod
from kiosk import tokens
from kiosk.instance import Instance

SEED = 20241124
CLIENTS = 4
POOL = 300  # fresh tokens available at the start of each cycle
REUSABLE_EVERY = 20  # every 20th token issued is reusable


@dataclass
class Tok:
    token: str
    jti: str
    reusable: bool
    acked: list[str] = field(default_factory=list)  # session ids of 200 responses
    in_flight: bool = False  # a request for it died with the server
    scanned: bool = False  # sent at least once


class Lab:
    """One data dir, its tokens, and the server processes started on it."""

    def __init__(self, root: Path, seed: int):
        self.root = root
        self.dir = root / "kiosk"
        self.rng = random.Random(seed)
        self.seed = seed
        p = kiosk("--data-dir", str(self.dir), "init")
        assert p.returncode == 0, p.stderr
        self.inst = Instance(config_mod.load(None, env={}, overrides={"data_dir": str(self.dir)}))
        self.keys = self.inst.load_keys()
        self.tokens: list[Tok] = []
        self.server: Server | None = None
        self.servers: list[Server] = []
        self.issued = 0

    # -- tokens ---------------------------------------------------------------------------------

    def top_up(self, n: int = POOL) -> None:
        fresh = sum(1 for t in self.tokens if not t.scanned)
        if fresh >= n:
            return
        db = self.inst.connect()
        try:
            cfg = self.inst.config.property
            for _ in range(n - fresh):
                self.issued += 1
                reusable = self.issued % REUSABLE_EVERY == 0
                tok, row = tokens.issue(db, self.keys, hotel_id="demo", role="guest", now=time.time(),
                                        ttl_seconds=3600, reusable=reusable, issuer=cfg.issuer,
                                        node=cfg.kiosk_id)
                self.tokens.append(Tok(tok, row["jti"], reusable))
        finally:
            db.conn.close()

    def fresh(self) -> list[Tok]:
        return [t for t in self.tokens if not t.scanned]

    # -- server ---------------------------------------------------------------------------------

    def start(self) -> Server:
        # a high failure budget: the post-restart checks make refused scans on purpose
        s = Server(self.dir, self.root / "server.log", env={"KIOSK__SCAN__MAX_FAILURES": "1000"})
        self.servers.append(s)
        self.server = s.start()
        return s

    def kill_all(self) -> None:
        for s in self.servers:
            s.kill()

    def scan(self, t: Tok, session: requests.Session | None = None) -> requests.Response:
        t.scanned = True
        r = (session or requests).post(self.server.url + "/api/qr/scan",
                                       json={"qrToken": t.token, "hotelId": "demo"}, timeout=5)
        if r.status_code == 200:
            t.acked.append(r.json()["sessionId"])
        return r

    # -- one crash ------------------------------------------------------------------------------

    def burst_and_kill(self) -> dict:
        """Scan fresh tokens from CLIENTS threads; SIGKILL the server while they are in flight."""
        work: queue.Queue[Tok] = queue.Queue()
        for t in self.fresh():
            work.put(t)
        statuses: list[tuple[str, int, str]] = []
        errors: list[tuple[str, str]] = []
        started = threading.Event()

        def client() -> None:
            with requests.Session() as http:
                while True:
                    try:
                        t = work.get_nowait()
                    except queue.Empty:
                        return
                    try:
                        r = self.scan(t, http)
                    except requests.RequestException as e:
                        t.in_flight = True
                        errors.append((t.jti, type(e).__name__))
                        return
                    statuses.append((t.jti, r.status_code, r.text[:300]))
                    started.set()

        threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
        for th in threads:
            th.start()
        assert started.wait(180), "no scan answered before the kill"  # a generous deadline: a loaded box
        time.sleep(self.rng.uniform(0.02, 0.35))
        self.server.kill()
        for th in threads:
            th.join(60)
            assert not th.is_alive(), "a client thread hung"
        return {"statuses": statuses, "errors": errors, "left": work.qsize()}


# --- the invariants -------------------------------------------------------------------------------


def rows(db: sqlite3.Connection, sql: str, *params) -> list[tuple]:
    return db.execute(sql, params).fetchall()


def check_store(path: Path, toks: list[Tok]) -> dict[str, str]:
    """Assert the invariants on a closed (crashed) store; returns {consumed jti: session id}."""
    db = sqlite3.connect(str(path))
    try:
        assert rows(db, "PRAGMA integrity_check") == [("ok",)]
        assert rows(db, "PRAGMA foreign_key_check") == []

        consumed = dict(rows(db, "SELECT jti, session_id FROM consumed_tokens"))
        # every consumed token has its session (same jti, same session id)
        assert rows(db, "SELECT c.jti FROM consumed_tokens c LEFT JOIN sessions s"
                        " ON s.id = c.session_id AND s.jti = c.jti WHERE s.id IS NULL") == []
        # at most one session per one-time token
        assert rows(db, "SELECT s.jti, count(*) FROM sessions s JOIN qr_tokens t ON t.jti = s.jti"
                        " WHERE t.reusable = 0 GROUP BY s.jti HAVING count(*) > 1") == []
        # every session of a one-time token has all of its effects
        one_time = rows(db, "SELECT s.id, s.jti FROM sessions s JOIN qr_tokens t ON t.jti = s.jti"
                            " WHERE t.reusable = 0")
        for sid, jti in one_time:
            assert consumed.get(jti) == sid, f"session {sid} of {jti}: consumed_tokens row missing or other session"
        all_sessions = rows(db, "SELECT id, jti FROM sessions")
        workflows = Counter(r[0] for r in rows(db, "SELECT session_id FROM workflow_state"))
        audits = Counter(rows(db, "SELECT session_id, jti FROM audit_log"
                                  " WHERE event = 'scan' AND outcome = 'success'"))
        opened = Counter((eid, json.loads(p)["jti"]) for eid, p in rows(
            db, "SELECT entity_id, payload FROM outbox WHERE kind = 'session.opened'"))
        used = Counter((eid, json.loads(p)["sessionId"]) for eid, p in rows(
            db, "SELECT entity_id, payload FROM outbox WHERE kind = 'token.used'"))
        for sid, jti in all_sessions:
            assert workflows[sid] == 1, f"session {sid}: {workflows[sid]} workflow_state rows"
            assert audits[(sid, jti)] == 1, f"session {sid}: {audits[(sid, jti)]} success audit rows"
            assert opened[(sid, jti)] == 1, f"session {sid}: {opened[(sid, jti)]} session.opened rows"
        for jti, sid in consumed.items():
            assert used[(jti, sid)] == 1, f"token {jti}: {used[(jti, sid)]} token.used rows"
        # and nothing without its scan: no orphan effect rows
        assert sum(workflows.values()) == len(all_sessions)
        assert sum(audits.values()) == len(all_sessions)
        assert sum(opened.values()) == len(all_sessions)
        assert sum(used.values()) == len(consumed)

        # acknowledged writes are never lost
        sessions = dict(all_sessions)
        for t in toks:
            for sid in t.acked:
                assert sessions.get(sid) == t.jti, f"acknowledged session {sid} of {t.jti} lost"
                if not t.reusable:
                    assert consumed.get(t.jti) == sid, f"acknowledged consumption of {t.jti} lost"
        return consumed
    finally:
        db.close()


# --- the test -------------------------------------------------------------------------------------


@pytest.fixture
def lab(request, tmp_path):
    lab = Lab(tmp_path, SEED + request.node.callspec.params["cycles"])  # seeded: kill delays
    request.addfinalizer(lab.kill_all)
    return lab


def run_cycles(lab: Lab, cycles: int) -> None:
    lab.top_up()  # tokens are issued only while no server is running
    lab.start()
    health = requests.get(lab.server.url + "/healthz", timeout=5)
    assert health.status_code == 200 and health.json() == {"success": True, "status": "ok",
                                                           "kioskId": "kiosk-1"}
    for cycle in range(cycles):
        where = f"seed {lab.seed}, cycle {cycle}"
        out = lab.burst_and_kill()
        assert not lab.server.alive()
        bad = [(jti, code, body) for jti, code, body in out["statuses"] if code != 200]
        assert bad == [], f"{where}: fresh tokens refused: {bad[:3]}"
        assert out["statuses"], f"{where}: no scan completed"
        assert out["errors"], f"{where}: the kill hit no request in flight"

        consumed = check_store(lab.dir / "kiosk.db", lab.tokens)

        lab.top_up()
        lab.start()
        # a token acknowledged before the kill is refused now; a fresh one still works
        used = next(t for t in reversed(lab.tokens) if t.acked and not t.reusable)
        r = lab.scan(used)
        assert r.status_code == 409, (where, r.text)
        assert r.json()["error"]["code"] == "TOKEN_ALREADY_USED"
        fresh = lab.rng.choice([t for t in lab.fresh() if not t.reusable])
        r = lab.scan(fresh)
        assert r.status_code == 200, (where, r.text)
        # a request that died with the server committed all or nothing: the retry agrees with the store
        for t in [t for t in lab.tokens if t.in_flight and not t.reusable]:
            t.in_flight = False
            r = lab.scan(t)
            if t.jti in consumed:
                assert r.status_code == 409 and r.json()["error"]["code"] == "TOKEN_ALREADY_USED", (where, r.text)
            else:
                assert r.status_code == 200, (where, t.jti, r.text)
    lab.server.kill()
    check_store(lab.dir / "kiosk.db", lab.tokens)


@pytest.mark.parametrize("cycles", [5])
def test_sigkill_during_scans_loses_nothing_acknowledged(lab, cycles):
    run_cycles(lab, cycles)
    assert sum(len(t.acked) for t in lab.tokens) > cycles * 2


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("cycles", [50])
def test_sigkill_soak(lab, cycles):
    run_cycles(lab, cycles)
