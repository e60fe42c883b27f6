"""Sync down with real processes on 127.0.0.1: three kiosks (server + agent each) and the
reference cloud.  Partitions are made by stopping and starting the cloud or a kiosk's
agent; wrong clocks with faketime.  The rules themselves, and many seeded random runs,
are in tests/test_conflicts.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness import LIBFAKETIME, Cloud, Kiosk, wait_for

from kiosk import config as config_mod
from kiosk import workorders
from kiosk.instance import Instance

WO_FIELDS = ("status", "assignee", "priority", "notes", "description")

# every test here runs against the cloud on SQLite and on PostgreSQL (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("cloud_backend")


def local(k: Kiosk) -> Instance:
    cfg = config_mod.load(None, env={}, overrides={"data_dir": str(k.dir),
                                                   "property": {"hotels": ["demo"], "kiosk_id": k.name}})
    return Instance(cfg)


def wo_state(k: Kiosk, wo_id: str) -> dict | None:
    rows = list(local(k).db().query("SELECT * FROM work_orders WHERE hotel_id = 'demo' AND work_order_id = ?",
                                    [wo_id]))
    return {f: rows[0][f] for f in WO_FIELDS} if rows else None


def cloud_wo(cloud: Cloud, wo_id: str) -> dict | None:
    for w in cloud.list("work-orders", "demo"):
        if w["workOrderId"] == wo_id:
            return {f: w[f] for f in WO_FIELDS}
    return None


def admin(k: Kiosk, endpoint: str) -> dict:
    r = k.session("admin").get(f"{k.url}/api/admin", params={"endpoint": endpoint}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def update(session, k: Kiosk, wo_id: str, **changes):
    r = session.post(f"{k.url}/api/pms/update", json={"workOrderId": wo_id, "changes": changes}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def site(tmp_path):
    made: list = []

    def _site(n=3, offsets=None):
        # kiosks two hours off: within the cloud's accepted skew for this test (default 1 h)
        cloud = Cloud(tmp_path).start(env={"KIOSK_CLOUD_MAX_CLOCK_SKEW": "3h"} if offsets else None)
        kiosks = []
        for i in range(n):
            k = Kiosk(tmp_path, f"k{i}", clock_offset=(offsets or {}).get(i))
            k.link(cloud.url, cloud.device(k.name, "demo"))
            k.serve()
            k.start_agent()
            kiosks.append(k)
        made.append((cloud, kiosks))
        return cloud, kiosks

    yield _site
    for cloud, kiosks in made:
        for k in kiosks:
            k.stop_all()
        cloud.stop()


def converged(cloud, kiosks, wo_id):
    want = cloud_wo(cloud, wo_id)
    return want is not None and all(wo_state(k, wo_id) == want for k in kiosks) and \
        all(k.status()["pending"] == 0 for k in kiosks)


def test_work_order_edited_at_two_kiosks_while_the_cloud_is_down_converges_with_conflict_on_both(site):
    cloud, (k0, k1, k2) = site()
    workorders.create(local(k0).db(), hotel_id="demo", work_order_id="WO-7", by="seed", now=1.0, node="k0")
    wait_for(lambda: all(wo_state(k, "WO-7") for k in (k1, k2)), timeout=30, what="WO-7 to reach every kiosk")
    s1, s2 = k1.session("staff"), k2.session("staff")
    cloud.stop()  # the partition: nobody reaches the cloud
    update(s1, k1, "WO-7", status="in_progress", notes="k1: valve replaced")
    update(s2, k2, "WO-7", assignee="ben", notes="k2: waiting for parts")  # later stamp on notes
    assert wo_state(k1, "WO-7")["notes"] != wo_state(k2, "WO-7")["notes"]
    cloud.start()
    wait_for(lambda: converged(cloud, (k0, k1, k2), "WO-7"), timeout=60, what="the three kiosks to converge")
    final = cloud_wo(cloud, "WO-7")
    assert (final["status"], final["assignee"], final["notes"]) == ("in_progress", "ben", "k2: waiting for parts")
    # the conflict is recorded on both sides: in the cloud and at the kiosks
    cloud_conflicts = json.loads(cloud.cli("conflicts", "--hotel", "demo", "--json").stdout)
    assert [(c["entityId"], c["field"], c["rule"]) for c in cloud_conflicts] == [("WO-7", "notes", "field-lww")]
    for k in (k1, k2):
        seen = wait_for(lambda k=k: admin(k, "conflicts")["conflicts"], timeout=30, what=f"{k.name}'s conflict")
        assert [(c["entityId"], c["field"], c["rule"]) for c in seen] == [("WO-7", "notes", "field-lww")]


def test_one_time_token_used_at_two_partitioned_kiosks_is_flagged_as_a_replay(site):
    cloud, (k0, k1, k2) = site()
    cloud.cli("key", "create", "--hotel", "demo")
    wait_for(lambda: all("cloud" in (k.dir / "keys" / "trust.json").read_text() for k in (k0, k1, k2)),
             timeout=30, what="the cloud key to reach every kiosk")
    token = cloud.cli("token", "create", "--role", "guest", "--hotel", "demo").stdout.strip()
    k0.agent.stop()
    k1.agent.stop()
    cloud.stop()  # k0 and k1 are cut off from the cloud (and each other): no claim can be made
    first = k0.scan(token)
    second = k1.scan(token)
    assert (first.status_code, second.status_code) == (200, 200)  # neither could know
    cloud.start()
    k0.start_agent()
    k1.start_agent()
    for k in (k0, k1):
        events = wait_for(lambda k=k: admin(k, "security")["securityEvents"], timeout=30,
                          what=f"the replay to be flagged at {k.name}")
        assert [e["kind"] for e in events] == ["TOKEN_REPLAY"]
    ended = events[0]["details"]["ended"]
    loser = {"k0": (k0, first), "k1": (k1, second)}[ended["kioskId"]]
    keeper = k1 if loser[0] is k0 else k0
    jwt = (loser[1].json()["sessionJWT"], (second if keeper is k1 else first).json()["sessionJWT"])
    r = __import__("requests").get(f"{loser[0].url}/api/session", headers={"Authorization": f"Bearer {jwt[0]}"})
    assert r.status_code == 401  # the later session was ended
    r = __import__("requests").get(f"{keeper.url}/api/session", headers={"Authorization": f"Bearer {jwt[1]}"})
    assert r.status_code == 200  # the earliest keeps its session
    wait_for(lambda: k2.scan(token).status_code == 409, timeout=30, what="k2 to know the token is used")


def test_a_revocation_in_the_cloud_stops_the_token_at_every_kiosk_after_their_pull(site):
    cloud, kiosks = site()
    cloud.cli("key", "create", "--hotel", "demo")
    # scanned only once the key is there: a code refused three times in a minute (say, for a key
    # the kiosk has not pulled yet) is refused at once for the rest of the minute (RATE_LIMITED)
    wait_for(lambda: all("cloud" in (k.dir / "keys" / "trust.json").read_text() for k in kiosks),
             timeout=30, what="the cloud key to reach every kiosk")
    token = cloud.cli("token", "create", "--role", "staff", "--hotel", "demo", "--reusable").stdout.strip()
    assert [k.scan(token).status_code for k in kiosks] == [200] * len(kiosks)
    jti = json.loads(__import__("base64").urlsafe_b64decode(token.split(".")[1] + "=="))["jti"]
    cloud.cli("token", "revoke", jti, "--hotel", "demo")
    for k in kiosks:
        # (a refused Response is falsy, so the condition's value is the pair, not the response)
        refused = wait_for(lambda k=k: (r := k.scan(token)).status_code != 200 and (r.status_code, r.json()),
                           timeout=30, what=f"{k.name} to refuse the token")
        assert (refused[0], refused[1]["error"]["code"]) == (401, "TOKEN_REVOKED")


@pytest.mark.skipif(not Path(LIBFAKETIME).exists(), reason="libfaketime is not installed (scripts/setup.sh --test does)")
def test_kiosks_two_hours_behind_and_ahead_still_order_changes_correctly(site):
    cloud, (ahead, behind) = site(2, offsets={0: "+2h", 1: "-2h"})
    workorders.create(local(ahead).db(), hotel_id="demo", work_order_id="WO-9", by="seed", now=1.0, node="k0")
    update(ahead.session("staff"), ahead, "WO-9", notes="ahead: asked for a ladder")
    wait_for(lambda: (wo_state(behind, "WO-9") or {}).get("notes") == "ahead: asked for a ladder", timeout=30,
             what="the note to reach the kiosk whose clock is 4 h earlier")
    # written after reading it, on a clock 4 h earlier: still ordered after it
    update(behind.session("staff"), behind, "WO-9", notes="behind: ladder delivered")
    wait_for(lambda: converged(cloud, (ahead, behind), "WO-9"), timeout=60, what="convergence")
    assert cloud_wo(cloud, "WO-9")["notes"] == "behind: ladder delivered"
    assert json.loads(cloud.cli("conflicts", "--hotel", "demo", "--json").stdout) == []  # causally ordered: no conflict
