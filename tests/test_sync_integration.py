"""Exactly-once delivery through outages and crashes, with real processes on 127.0.0.1.

kiosk (``kiosk serve``), agent (``kiosk-agent``) and reference cloud
(``kiosk-cloud serve``) run as separate processes; faults come from stopping
processes, SIGKILL, and a real fault-injecting HTTP proxy.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time

import pytest
from faultproxy import FaultProxy
from harness import Cloud, Kiosk, wait_for

from kiosk import config as config_mod
from kiosk import tickets, workorders
from kiosk.instance import Instance

#: agent runs killed with SIGKILL: a short run in CI, a long one with ``-m slow``
SIGKILL_CYCLES = int(os.environ.get("SIGKILL_CYCLES", "15"))
SIGKILL_LONG_CYCLES = int(os.environ.get("SIGKILL_LONG_CYCLES", "200"))

# every test here runs against the cloud on SQLite and on PostgreSQL (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("cloud_backend")


def local(k: Kiosk) -> Instance:
    return Instance(config_mod.load(None, env={k2: v for k2, v in k.env.items()}))


def fill_backlog(k: Kiosk, *, n_tickets: int, n_wo: int, hotel: str = "demo", prefix: str = "") -> None:
    """Tickets and work-order updates made through the library, fast, as the endpoints make them."""
    inst = local(k)
    db, now = inst.db(), time.time()
    for i in range(n_wo):
        wid = f"{prefix}WO-{i}"
        workorders.create(db, hotel_id=hotel, work_order_id=wid, by="pms", now=now, node=k.name, room_number=str(i))
        for status in ("assigned", "in_progress", "on_hold", "in_progress", "done"):
            workorders.update(db, {"workOrderId": wid, "changes": {"status": status, "notes": f"{wid} {status}"}},
                              hotel_id=hotel, by="s-1", now=now, node=k.name)
    for i in range(n_tickets):
        tickets.create(db, {"type": "maintenance", "title": f"fault {prefix}{i}", "roomNumber": f"{prefix}{i}"[:10]},
                       hotel_id=hotel, by="s-1", now=now, node=k.name, window=0)


def local_state(k: Kiosk, hotel: str = "demo") -> tuple[set, dict]:
    db = local(k).db()
    tix = {r[0] for r in db.execute("SELECT ticket_id FROM tickets WHERE hotel_id = ?", [hotel])}
    # the field changes made here (not the ones pulled back from the cloud, by = 'cloud')
    wos = {r[0]: (r[1], db.execute("SELECT count(*) FROM work_order_history WHERE hotel_id = ? AND work_order_id = ?"
                                   " AND by != 'cloud'", [hotel, r[0]]).fetchone()[0])
           for r in db.execute("SELECT work_order_id, status FROM work_orders WHERE hotel_id = ?", [hotel])}
    return tix, wos


def assert_cloud_matches(cloud: Cloud, k: Kiosk, hotel: str = "demo") -> None:
    tix, wos = local_state(k, hotel)
    cloud_tix = cloud.list("tickets", hotel)
    assert len(cloud_tix) == len(tix) and {t["ticketId"] for t in cloud_tix} == tix
    cloud_wos = {w["workOrderId"]: (w["status"], len(w["history"])) for w in cloud.list("work-orders", hotel)}
    assert cloud_wos == wos  # same final state, and every field change applied exactly once


@pytest.fixture
def env(tmp_path):
    made: list = []

    def make(*, hotels=("demo",), device_hotels=("demo",), agent_env=None, name="kiosk", start_cloud=True):
        cloud = Cloud(tmp_path)
        k = Kiosk(tmp_path, name, hotels=hotels, agent_env=agent_env)
        made.extend([cloud, k])
        cred = cloud.device(name, *device_hotels)
        if start_cloud:
            cloud.start()
        return cloud, k, cred

    yield make
    for m in made:
        (m.stop_all if isinstance(m, Kiosk) else m.stop)()


def test_cloud_down_then_back_every_action_arrives_exactly_once(env):
    cloud, k, cred = env(start_cloud=False)
    k.serve()
    k.link(cloud.url, cred)
    k.start_agent()
    inst = local(k)
    for i in range(50):
        workorders.create(inst.db(), hotel_id="demo", work_order_id=f"WO-{i}", by="pms", now=time.time(),
                          node=k.name)
    staff = k.session("staff")
    for i in range(300):
        r = staff.post(k.url + "/api/tickets/auto", timeout=60,
                       json={"type": "housekeeping", "title": f"towels {i}", "roomNumber": str(1000 + i)})
        assert r.status_code == 201, r.text
    for i in range(50):
        for status in ("assigned", "in_progress", "on_hold", "in_progress"):
            r = staff.post(k.url + "/api/pms/update", timeout=60,
                           json={"workOrderId": f"WO-{i}", "changes": {"status": status}})
            assert r.status_code == 200 and r.json()["syncStatus"] == "queued", r.text
    st = k.status()
    assert st["cloudReachable"] is False and st["pending"] >= 550 and st["oldestPendingAgeSeconds"] > 0
    cloud.start()
    wait_for(lambda: k.status()["pending"] == 0, timeout=90, what="the backlog to drain")
    assert_cloud_matches(cloud, k)
    st = k.status()
    assert st["dead"] == 0 and st["cloudReachable"] is True and st["lastSuccessfulPushAt"]


def pending(db) -> int:
    return db.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()[0]


def wait_until_due(db) -> None:
    """Wait until every pending entry's backoff has passed (however long the machine took to get here)."""
    due = db.execute("SELECT max(next_attempt_at) FROM outbox WHERE state = 'pending'").fetchone()[0] or 0
    wait_for(lambda: time.time() > due, timeout=120, interval=0.02, what="the backoff to pass")


@pytest.mark.timeout(1800)  # agent starts: a minute on a loaded machine
def test_agent_sigkilled_at_random_moments_loses_nothing_and_applies_nothing_twice(env):
    sigkilled_at_random_moments(env, SIGKILL_CYCLES, seed=20261124)


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
def test_agent_sigkilled_at_random_moments_long_run(env):
    sigkilled_at_random_moments(env, SIGKILL_LONG_CYCLES, seed=int(os.environ.get("SIGKILL_SEED", "20261207")))


def sigkilled_at_random_moments(env, cycles: int, seed: int) -> None:
    cloud, k, cred = env(agent_env={"KIOSK__AGENT__BATCH_SIZE": "5"})
    k.link(cloud.url, cred)
    fill_backlog(k, n_tickets=600, n_wo=60)
    db = local(k).db()
    rng = random.Random(seed)
    delivered = []
    for cycle in range(cycles):
        if pending(db) < 100:  # keep work for every cycle, however many batches the last ones pushed
            fill_backlog(k, n_tickets=300, n_wo=0, prefix=f"c{cycle}-")
        before = pending(db)
        agent = k.start_agent()
        # Kill this run only after it delivered at least a batch (a slow start on a loaded machine
        # must not make a cycle that tests nothing), then at a random moment of what follows:
        # mid-push, between the cloud's answer and the ack's commit, between batches.
        wait_for(lambda b=before: pending(db) < b, timeout=180, interval=0.01, what="the agent to deliver a batch")
        time.sleep(rng.uniform(0, 0.05))
        assert agent.kill(signal.SIGKILL) == -signal.SIGKILL
        delivered.append(before - pending(db))
    assert len(delivered) == cycles and min(delivered) > 0  # every run delivered, then was killed
    out = json.loads(k.cli("kiosk-agent", "sync", "--once").stdout)
    assert out["error"] is None and out["rejected"] == 0
    st = k.status()
    assert (st["pending"], st["dead"]) == (0, 0)
    assert_cloud_matches(cloud, k)


def test_answer_lost_after_apply_is_recognised_on_retry(env):
    cloud, k, cred = env()
    fill_backlog(k, n_tickets=40, n_wo=5)
    n = k.status()["pending"]
    with FaultProxy(cloud.url) as proxy:
        k.link(proxy.url, cred)
        proxy.mode = "drop_after_forward"
        first = k.cli("kiosk-agent", "sync", "--once", check=False)
        assert first.returncode == 1
        assert len(cloud.list("tickets", "demo")) == 40  # the cloud did apply the batch
        assert k.status()["pending"] == n                # but the kiosk never heard
        proxy.mode = "pass"
        wait_until_due(db=local(k).db())
        out = json.loads(k.cli("kiosk-agent", "sync", "--once").stdout)
    # The retry carries the same Idempotency-Key, so the cloud replays its first
    # answer ("applied") instead of applying again; either way every entry is acked
    # and the cloud holds each action exactly once.
    assert out["applied"] + out["duplicate"] == n and out["rejected"] == 0
    assert k.status()["pending"] == 0
    assert_cloud_matches(cloud, k)


def test_500s_timeouts_and_slow_answers_back_off_then_deliver(env):
    cloud, k, cred = env(agent_env={"KIOSK__CLOUD__REQUEST_TIMEOUT_SECONDS": "0.5"})
    fill_backlog(k, n_tickets=10, n_wo=0)
    n = k.status()["pending"]
    db = local(k).db()
    with FaultProxy(cloud.url) as proxy:
        k.link(proxy.url, cred)
        proxy.mode = "error500"
        started = time.time()  # after every entry was made: their first due time is before this
        r = k.cli("kiosk-agent", "sync", "--once", check=False)
        assert r.returncode == 1 and "HTTP 500" in json.loads(r.stdout)["error"]
        attempts, next_at = db.execute("SELECT max(attempts), min(next_attempt_at) FROM outbox").fetchone()
        assert attempts == 1 and next_at > started  # rescheduled after the failed attempt: backing off
        assert k.status()["lastError"].startswith("HTTP 500")
        proxy.mode, proxy.delay = "hang", 60  # far past the agent's 0.5 s read timeout, however slow the box
        wait_until_due(db)
        r = k.cli("kiosk-agent", "sync", "--once", check=False)
        assert r.returncode == 1 and "Timeout" in json.loads(r.stdout)["error"]
        assert db.execute("SELECT max(attempts) FROM outbox").fetchone()[0] == 2
        proxy.mode, proxy.delay = "slow", 0.2
        wait_until_due(db)
        # slow but within the read timeout: give it one a loaded machine cannot miss
        out = json.loads(k.cli("kiosk-agent", "sync", "--once",
                               env={"KIOSK__CLOUD__REQUEST_TIMEOUT_SECONDS": "60"}).stdout)
    assert (out["applied"], out["duplicate"]) == (n, 0)  # no fault above let anything through
    assert k.status()["pending"] == 0
    assert_cloud_matches(cloud, k)


def test_one_failing_entity_waits_while_others_go_on(env):
    cloud, k, cred = env(agent_env={"KIOSK__AGENT__BATCH_SIZE": "1"})
    fill_backlog(k, n_tickets=0, n_wo=3)
    stuck = lambda body: "error500" if any(e["entityId"] == "WO-1" for e in body["entries"]) else None  # noqa: E731
    with FaultProxy(cloud.url) as proxy:
        k.link(proxy.url, cred)
        proxy.rule = stuck
        k.start_agent()
        db = local(k).db()
        wait_for(lambda: db.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()[0] == 6,
                 timeout=180, what="WO-0 and WO-2 to be delivered")
        pend = db.execute("SELECT DISTINCT entity_id FROM outbox WHERE state = 'pending'").fetchall()
        assert pend == [("WO-1",)]
        # WO-1 keeps being retried (with backoff) while the others went on
        wait_for(lambda: db.execute("SELECT max(attempts) FROM outbox WHERE entity_id = 'WO-1'").fetchone()[0] >= 2,
                 timeout=180, what="WO-1 to be retried")
        assert pending(db) == 6
        proxy.rule = None
        wait_for(lambda: k.status()["pending"] == 0, timeout=180, what="WO-1 to be delivered")
    assert_cloud_matches(cloud, k)


def test_permanent_rejection_lands_in_dead_letters_with_its_reason(env):
    cloud, k, cred = env(hotels=("demo", "harbor"), device_hotels=("demo",))
    k.link(cloud.url, cred)
    fill_backlog(k, n_tickets=3, n_wo=0, hotel="harbor", prefix="h")
    fill_backlog(k, n_tickets=5, n_wo=0, hotel="demo")
    out = json.loads(k.cli("kiosk-agent", "sync", "--once").stdout)
    assert (out["applied"], out["rejected"]) == (5, 3)
    dead = [json.loads(line) for line in k.cli("kiosk-agent", "dead", "list", "--json").stdout.splitlines()]
    assert len(dead) == 3 and all("FORBIDDEN_HOTEL" in d["last_error"] for d in dead)
    assert k.status()["dead"] == 3
    k.cli("kiosk-agent", "dead", "drop", str(dead[0]["id"]))
    k.cli("kiosk-agent", "dead", "retry", str(dead[1]["id"]))
    out = json.loads(k.cli("kiosk-agent", "sync", "--once").stdout)
    assert out["rejected"] == 1  # retried, and rejected again for the same reason
    assert k.status()["dead"] == 2
    assert len(cloud.list("tickets", "demo")) == 5


def test_agent_run_stops_cleanly_on_sigterm(env):
    cloud, k, cred = env()
    k.link(cloud.url, cred)
    fill_backlog(k, n_tickets=5, n_wo=0)
    agent = k.start_agent()
    wait_for(lambda: k.status()["pending"] == 0, timeout=180, what="delivery")
    assert agent.stop() == 0
    log = (k.dir.parent / f"{k.name}-agent.log").read_text()
    assert '"msg":"agent stopped"' in log
