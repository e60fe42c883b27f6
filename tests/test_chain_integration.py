"""The cloud at chain scale, with real processes on 127.0.0.1 (a cloud and kiosks with their
servers and agents), on SQLite and on a throwaway PostgreSQL server:

* PMS work orders imported with ``kiosk-cloud data import`` reach every kiosk, and a PMS change
  to an order a kiosk edited is a conflict on both sides;
* fleet health rides on the agents' requests, and a stopped agent is noticed by its silence;
* a token replay between two kiosks shows at the third kiosk too;
* a kiosk offline past the cloud's retention re-syncs by itself and keeps its outbox.

The rules themselves are tested in-process (tests/test_pms_work_orders.py, tests/test_fleet.py,
tests/test_resync.py).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import requests
from harness import LIBFAKETIME, Cloud, Kiosk, run, wait_for

from kiosk import config as config_mod
from kiosk import workorders
from kiosk.instance import Instance

WO_FIELDS = ("status", "assignee", "priority", "notes", "description")
WO_HEADER = "work_order_id,room_number,opened_at,type,description,status,priority,notes\n"


DEADLINE = 180  # seconds: a loaded 2-core machine (the harness's deadlines are at least this)

def local(k: Kiosk) -> Instance:
    cfg = config_mod.load(None, env={}, overrides={"data_dir": str(k.dir),
                                                   "property": {"hotels": ["demo"], "kiosk_id": k.name}})
    return Instance(cfg)


def wo_state(k: Kiosk, wo_id: str) -> dict | None:
    rows = list(local(k).db().query("SELECT * FROM work_orders WHERE hotel_id = 'demo' AND work_order_id = ?",
                                    [wo_id]))
    return {f: rows[0][f] for f in WO_FIELDS} if rows else None


def rooms(k: Kiosk) -> list[str]:
    return [r[0] for r in local(k).db().execute("SELECT room_number FROM rooms WHERE hotel_id = 'demo' ORDER BY 1")]


def admin(k: Kiosk, endpoint: str) -> dict:
    r = k.session("admin").get(f"{k.url}/api/admin", params={"endpoint": endpoint}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def export(tmp_path: Path, name: str, **files: str) -> Path:
    d = tmp_path / name
    d.mkdir()
    for stem, text in files.items():
        (d / f"{stem}.csv").write_text(text)
    return d


@pytest.fixture
def site(tmp_path, cloud_backend):
    made: list = []

    def _site(n: int, env: dict | None = None):
        # the fleet row rewritten on every report (default: at most every 30 s), so that a
        # two-second silence threshold means what it says here
        cloud = Cloud(tmp_path)
        cloud.env["KIOSK_CLOUD_FLEET_WRITE_EVERY"] = "0"  # for the server and the fleet command alike
        cloud.start(env=env)
        creds, kiosks = {}, []
        for i in range(n):
            k = Kiosk(tmp_path, f"k{i}")
            creds[k.name] = cloud.device(k.name, "demo")
            k.link(cloud.url, creds[k.name])
            k.serve()
            k.start_agent()
            kiosks.append(k)
        made.append((cloud, kiosks))
        return cloud, kiosks, creds

    yield _site
    for cloud, kiosks in made:
        for k in kiosks:
            k.stop_all()
        cloud.stop()


def test_pms_work_orders_fleet_health_and_the_hotel_wide_security_view(tmp_path, site):
    cloud, (k0, k1, k2), creds = site(3)
    # --- PMS work orders reach every kiosk; a PMS change over a kiosk's edit is a conflict on both sides
    row = "WO-P1,101,2026-11-24T08:00:00+00:00,failure,AC rattles,open,high,"
    out = json.loads(cloud.cli("data", "import", str(export(tmp_path, "e1", work_orders=WO_HEADER + row + "\n")),
                               "--hotel", "demo").stdout)
    assert out["work_orders"]["added"] == 1
    wait_for(lambda: all(wo_state(k, "WO-P1") for k in (k0, k1, k2)), timeout=DEADLINE, what="WO-P1 at every kiosk")
    r = k1.session("staff").post(f"{k1.url}/api/pms/update", json={"workOrderId": "WO-P1",
                                                                    "changes": {"notes": "k1: gasket"}}, timeout=60)
    assert r.status_code == 200, r.text
    wait_for(lambda: [w for w in cloud.list("work-orders", "demo") if w["notes"] == "k1: gasket"], timeout=DEADLINE,
             what="k1's edit in the cloud")
    out = json.loads(cloud.cli("data", "import", str(export(tmp_path, "e2", work_orders=WO_HEADER + row
                                                              + "PMS: vendor Tue\n")), "--hotel", "demo").stdout)
    assert out["work_orders"] == {"added": 0, "changed": 1, "removed": 0, "unchanged": 0, "conflicts": 1}
    wait_for(lambda: all((wo_state(k, "WO-P1") or {}).get("notes") == "PMS: vendor Tue" for k in (k0, k1, k2)),
             timeout=DEADLINE, what="the PMS's notes at every kiosk")
    for k in (k0, k1, k2):
        seen = wait_for(lambda k=k: admin(k, "conflicts")["conflicts"], timeout=DEADLINE, what=f"{k.name}'s conflict")
        assert [(c["entityId"], c["field"], c["rule"]) for c in seen] == [("WO-P1", "notes", "field-lww")]

    # --- fleet health: versions and backlogs from the agents' requests, a stopped agent goes silent
    def fleet(**flags) -> dict:
        args = [f"--fleet-{k.replace('_', '-')}={v}" for k, v in flags.items()]
        return {d["deviceId"]: d for d in json.loads(cloud.cli("fleet", "--hotel", "demo", "--json", *args).stdout)
                ["devices"]}
    # k1's report of its backlog comes with its next request: wait for one made after its push
    devs = wait_for(lambda: (d := fleet()) and all(d[k.name]["lastPullAt"] for k in (k0, k1, k2))
                    and d["k1"]["lastPushAt"] and d["k1"]["pending"] == 0 and d["k1"]["flags"] == [] and d,
                    timeout=DEADLINE, what="every agent to have pulled, k1 with nothing pending")
    assert {d["version"] for d in devs.values()} == {__import__("kiosk").__version__}
    assert abs(devs["k0"]["clockOffsetSeconds"]) < 60  # the same clock; a request held up on a busy box adds its wait
    body = requests.get(f"{cloud.url}/v1/hotels/demo/fleet", headers={"Authorization": f"Bearer {creds['k0']}"},
                        timeout=60).json()
    assert body["summary"]["devices"] == 3
    k2.agent.stop()
    # k2 stays silent once stopped; the others pull every 0.2 s (the harness), so with a threshold of
    # 10 s there comes a moment where they are heard from and k2 is not (however slow the box)
    wait_for(lambda: (d := fleet(silent_after="10s")) and "silent" in d["k2"]["flags"]
             and d["k0"]["flags"] == d["k1"]["flags"] == [], timeout=DEADLINE,
             what="k2 flagged silent while k0 and k1 are not")
    k2.start_agent()

    # --- a replay between k0 and k1 shows at k2 too
    cloud.cli("key", "create", "--hotel", "demo")
    wait_for(lambda: all("cloud" in (k.dir / "keys" / "trust.json").read_text() for k in (k0, k1, k2)),
             timeout=DEADLINE, what="the cloud key at every kiosk")
    token = cloud.cli("token", "create", "--role", "guest", "--hotel", "demo").stdout.strip()
    k0.agent.stop()
    k1.agent.stop()
    cloud.stop()  # a real partition: with the cloud reachable the second scan's claim is refused
    assert (k0.scan(token).status_code, k1.scan(token).status_code) == (200, 200)
    cloud.start()
    k0.start_agent()
    k1.start_agent()
    jti = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["jti"]
    for k in (k0, k1, k2):
        events = wait_for(lambda k=k: admin(k, "security")["securityEvents"], timeout=DEADLINE,
                          what=f"the replay at {k.name}")
        assert [(e["kind"], e["subject"]) for e in events] == [("TOKEN_REPLAY", jti)]


@pytest.mark.skipif(not Path(LIBFAKETIME).exists(), reason="libfaketime is not installed (scripts/setup.sh --test does)")
def test_a_kiosk_offline_past_the_retention_resyncs_by_itself_and_keeps_its_outbox(tmp_path, site):
    cloud, (k0, k1), creds = site(2)
    room = "room_number,room_type,floor,status\n{}\n"
    cloud.cli("data", "import", str(export(tmp_path, "r1", rooms=room.format("101,KING,1,Clean\n102,KING,1,Clean"))),
              "--hotel", "demo")
    workorders.create(local(k0).db(), hotel_id="demo", work_order_id="WO-7", by="seed", now=1.0, node="k0")
    wait_for(lambda: rooms(k1) == ["101", "102"] and wo_state(k1, "WO-7"), timeout=DEADLINE, what="k1 to fill itself")
    k1.agent.stop()  # k1 is cut off, with work of its own
    r = k1.session("staff").post(f"{k1.url}/api/pms/update", json={"workOrderId": "WO-7",
                                                                    "changes": {"notes": "k1: offline"}}, timeout=60)
    assert r.status_code == 200, r.text
    cloud.cli("data", "import", str(export(tmp_path, "r2", rooms=room.format("102,KING,1,Clean\n103,TWIN,1,Dirty"))),
              "--hotel", "demo")
    k0.session("staff").post(f"{k0.url}/api/pms/update", json={"workOrderId": "WO-7",
                                                                "changes": {"assignee": "ben"}}, timeout=60)
    wait_for(lambda: [w for w in cloud.list("work-orders", "demo") if w["assignee"] == "ben"], timeout=DEADLINE,
             what="k0's edit in the cloud")
    # two days later (for the purge only), with a one-day retention: the whole log goes
    later = ("env", f"LD_PRELOAD={LIBFAKETIME}", "FAKETIME=+2d", "FAKETIME_DONT_FAKE_MONOTONIC=1")
    purged = json.loads(run("kiosk-cloud", "purge", "--retention", "1d", "--data-dir", str(cloud.dir),
                            env=cloud.env, wrap=later).stdout)
    assert purged["changes"] > 0 and purged["hotels"]["demo"] == purged["changes"]
    r = requests.get(f"{cloud.url}/sync/v1/pull", params={"hotel": "demo", "after": 3},
                     headers={"Authorization": f"Bearer {creds['k1']}"}, timeout=60)
    assert (r.status_code, r.json()["error"]["code"]) == (410, "CURSOR_EXPIRED")
    k1.start_agent()

    def converged():
        want = {w["workOrderId"]: {f: w[f] for f in WO_FIELDS} for w in cloud.list("work-orders", "demo")}
        return (rooms(k1) == ["102", "103"] and wo_state(k1, "WO-7") == want["WO-7"]
                and want["WO-7"]["notes"] == "k1: offline" and k1.status()["pending"] == 0)
    wait_for(converged, timeout=DEADLINE, what="k1 to re-sync and deliver its outbox")
    assert "re-synced from a snapshot" in (tmp_path / "k1-agent.log").read_text()
    assert wo_state(k1, "WO-7")["assignee"] == "ben"
    out = json.loads(k0.cli("kiosk-agent", "resync").stdout)  # by hand, at once
    assert out["error"] is None and out["hotels"]["demo"]["pages"] >= 1 and out["hotels"]["demo"]["removed"] == 0
    assert rooms(k0) == ["102", "103"]
