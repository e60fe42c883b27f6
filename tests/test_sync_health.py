"""Sync trouble is shown as it is, and a new link is used at once (real processes).

* A cloud that refuses the kiosk's credential (401 after ``kiosk-cloud device add --rotate``)
  is recorded by the running agent and shown at once as "credential refused": the admin
  ``endpoint=sync`` answer says ``credential: refused`` and ``stale: true`` with the cloud's
  error, ``kiosk-agent status`` (human and --json) says so with what to do, and "last heard"
  does not move (it means a successful exchange, not any answer).  The old code kept
  ``stale: false`` and "not reachable".
* ``kiosk-cloud device add`` for a device that exists is refused (one line, exit 1) and the
  kiosk's credential keeps working; ``--rotate`` replaces it and says so.  The old code
  replaced it silently with exit 0.
* ``kiosk-agent link`` to a second cloud while ``kiosk-agent run`` runs: the same agent
  process talks to the new cloud (its fleet view sees the device) and the refusal clears.
  The old agent kept the old link until restarted.
* ``GET /healthz`` on the cloud answers without a credential, after a database round trip.
"""

from __future__ import annotations

import json

import requests
from harness import Cloud, Kiosk, run, wait_for


def _sync(admin, k) -> dict:
    r = admin.get(k.url + "/api/admin?endpoint=sync", timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def _seen_by(cloud: Cloud, device: str) -> bool:
    fleet = json.loads(cloud.cli("fleet", "--json").stdout)
    return any(d["deviceId"] == device and d["lastSeenAt"] for d in fleet["devices"])


def test_refused_credential_rotate_and_relink_to_a_second_cloud(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    a, b = Cloud(tmp_path / "a").start(), Cloud(tmp_path / "b").start()
    k = Kiosk(tmp_path, "k1")
    try:
        cred = a.device("k1", "demo")
        k.link(a.url, cred)
        k.serve()
        agent = k.start_agent()
        admin = k.session("admin")
        heard = wait_for(lambda: _sync(admin, k)["lastHeardAt"], timeout=120, what="the first pull")
        s = _sync(admin, k)
        assert s["credential"] == "ok" and s["stale"] is False and s["credentialError"] is None

        # adding the device again is refused: one line, exit 1, and the kiosk's credential still works
        again = run("kiosk-cloud", "device", "add", "k1", "--hotel", "demo", "--data-dir", str(a.dir), check=False)
        assert again.returncode == 1 and again.stdout == "", again
        assert again.stderr.count("\n") == 1 and again.stderr.startswith("error: VALIDATION_ERROR: "), again.stderr
        assert "--rotate" in again.stderr
        assert requests.get(a.url + "/sync/v1/health", headers={"Authorization": f"Bearer {cred}"},
                            timeout=30).status_code == 200

        # --rotate replaces it and says so: the running agent's credential is refused from now on
        rotated = run("kiosk-cloud", "device", "add", "k1", "--hotel", "demo", "--rotate", "--data-dir", str(a.dir))
        new_cred = rotated.stdout.strip()
        assert new_cred and new_cred != cred and "replaced the credential of k1" in rotated.stderr
        s = wait_for(lambda: (lambda s: s if s["credential"] == "refused" else None)(_sync(admin, k)),
                     timeout=120, what="the refusal in the admin sync status")
        assert s["stale"] is True and "401" in s["credentialError"] and "kiosk-agent link" in s["hint"]
        frozen = _sync(admin, k)["lastHeardAt"]
        assert frozen >= heard
        st = k.status()
        assert st["credential"] == "refused" and "401" in st["credentialError"] and st["cloudReachable"] is False
        human = k.cli("kiosk-agent", "status").stdout
        assert "CREDENTIAL REFUSED" in human and "kiosk-agent link" in human, human
        # "last heard" means a successful exchange: the refusals since do not move it
        wait_for(lambda: "401" in (k.status()["lastError"] or "") or _sync(admin, k)["credentialRefusedAt"],
                 timeout=60, what="more refusals")
        assert _sync(admin, k)["lastHeardAt"] == frozen

        # linked to a second cloud while the agent runs: the same process uses it, the refusal clears
        k.link(b.url, b.device("k1", "demo"))
        wait_for(lambda: _seen_by(b, "k1"), timeout=120, what="the agent at the second cloud")
        s = wait_for(lambda: (lambda s: s if s["credential"] == "ok" else None)(_sync(admin, k)),
                     timeout=120, what="the refusal to clear")
        assert s["stale"] is False and s["lastHeardAt"] > frozen and s["credentialError"] is None
        assert agent.p.poll() is None  # not restarted
        assert '"msg":"cloud link changed: using the new one"' in agent.log.read_text()
        assert k.status()["credential"] == "ok"
    finally:
        k.stop_all()
        a.stop()
        b.stop()


def test_cloud_healthz_needs_no_credential_and_logs_no_bad_credential(tmp_path):
    cloud = Cloud(tmp_path).start()
    try:
        r = requests.get(cloud.url + "/healthz", timeout=30)
        assert r.status_code == 200 and r.json() == {"success": True, "status": "ok"}
        assert "bad credential" not in (tmp_path / "cloud.log").read_text()
    finally:
        cloud.stop()


def test_an_unreachable_postgresql_is_one_line_within_10_s_and_healthz_says_503(tmp_path):
    """``kiosk-cloud serve`` against a PostgreSQL that does not answer stops with one line,
    ``DATABASE_UNAVAILABLE``, within 10 s and without the pool's retry warnings (the old code
    waited 30 s, logged 22 lines of pool errors and said INTERNAL_ERROR); a running cloud whose
    database goes away answers ``/healthz`` 503 in the documented shape."""
    import time

    import pgserver
    import pytest

    why = pgserver.available()
    if why:
        pytest.skip(why)
    pg = pgserver.PgServer().start()  # its own server: this test stops it
    cloud = Cloud(tmp_path, database=pg.url)
    try:
        cloud.start()
        r = requests.get(cloud.url + "/healthz", timeout=30)
        assert r.status_code == 200 and r.json() == {"success": True, "status": "ok"}
        pg.stop()
        (r,) = wait_for(lambda: (lambda r: (r,) if r.status_code == 503 else None)(
            requests.get(cloud.url + "/healthz", timeout=30)), timeout=60, what="healthz 503")
        body = r.json()
        assert body["success"] is False and body["status"] == "unavailable"
        assert body["error"]["code"] == "DATABASE_UNAVAILABLE" and pg.url.split("@")[1] in body["error"]["message"]
        assert requests.get(cloud.url + "/healthz", timeout=30).status_code == 503
        log = (tmp_path / "cloud.log").read_text()
        # one error line a minute at most, no pool warnings
        assert "error connecting in" not in log and "psycopg.pool" not in log, log[-3000:]
        assert 1 <= log.count('"msg":"database unavailable"') <= 2, log[-3000:]
    finally:
        cloud.stop()
        pg.stop()

    t0 = time.monotonic()
    p = run("kiosk-cloud", "serve", "--data-dir", str(tmp_path / "again"), "--port", "0",
            env={"KIOSK_CLOUD_DATABASE": pg.url}, check=False, timeout=60)
    took = time.monotonic() - t0
    print(f"one-line database error after {took:.2f} s")
    assert p.returncode == 1 and took < 10, (took, p)
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("error: DATABASE_UNAVAILABLE: cannot reach the"
                                                              " PostgreSQL database at 127.0.0.1:"), p.stderr
    logs = "".join(f.read_text() for f in (tmp_path / "again").rglob("*.log"))
    assert "psycopg.pool" not in p.stdout + p.stderr + logs
