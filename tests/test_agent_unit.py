"""Agent pieces: sd_notify over a real socket, housekeeping, the link file."""

import os
import socket
import stat

import pytest

from agent import housekeeping, link, sdnotify
from kiosk.errors import KioskError


def test_sd_notify_sends_datagrams_to_notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind(path)
        srv.settimeout(2)
        assert sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": path})
        assert sdnotify.notify("WATCHDOG=1", env={"NOTIFY_SOCKET": path})
        assert [srv.recv(64), srv.recv(64)] == [b"READY=1", b"WATCHDOG=1"]
    assert not sdnotify.notify("READY=1", env={})
    assert not sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})


def test_watchdog_interval():
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "10000000"}) == 5.0
    assert sdnotify.watchdog_interval({}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}) is None


def test_link_file_is_private_and_validated(tmp_path):
    info = link.save(tmp_path, cloud="http://127.0.0.1:9000/", device_id="k1", credential="c")
    assert info == {"url": "http://127.0.0.1:9000", "deviceId": "k1"}
    assert stat.S_IMODE(os.stat(link.path(tmp_path)).st_mode) == 0o600
    assert link.load(tmp_path)["credential"] == "c"
    for bad in ("ftp://x", "http://cloud.example.com", "not a url"):
        with pytest.raises(KioskError) as e:
            link.save(tmp_path, cloud=bad, device_id="k1", credential="c")
        assert e.value.code == "VALIDATION_ERROR"
    with pytest.raises(KioskError) as e:
        link.load(tmp_path / "other")
    assert e.value.code == "NOT_INITIALISED"


def test_housekeeping_expires_sessions_once_and_queues_them(client, login, instance, clock):
    login("guest")
    login("staff")
    db = instance.db()
    assert housekeeping.expire_sessions(db, now=clock.now(), node="k") == 0
    clock.advance(3601)
    assert housekeeping.expire_sessions(db, now=clock.now(), node="k") == 2
    assert housekeeping.expire_sessions(db, now=clock.now(), node="k") == 0
    kinds = [k for (k,) in db.execute("SELECT kind FROM outbox WHERE kind = 'session.ended'")]
    assert kinds == ["session.ended", "session.ended"]


def test_housekeeping_purges_only_old_unused_tokens_and_old_deliveries(instance, issue, login, clock):
    issue("guest", ttl=60)          # unused: purged once 30 days past expiry
    login("guest", ttl=60)          # used: kept (it backs a session)
    db = instance.db()
    clock.advance(31 * 86400)
    assert housekeeping.purge_expired_tokens(db, now=clock.now()) == 1
    assert db.execute("SELECT count(*) FROM qr_tokens").fetchone()[0] == 1
    db.execute("UPDATE outbox SET state = 'delivered', delivered_at = ?", [clock.now() - 8 * 86400])
    n = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
    assert housekeeping.purge_delivered(db, now=clock.now(), retention_days=7) == n


def test_a_scheduled_model_runs_for_every_hotel_and_its_actions_are_queued(instance, clock):
    from datetime import UTC, datetime

    from agent.runner import Agent
    from kiosk.property import demo

    demo.seed(instance.db(), "demo", datetime.fromtimestamp(clock.now(), UTC).date())
    agent = Agent(instance, transport=None, device_id="kiosk-test")
    results = agent.model_job("billing-detection")
    assert [r["status"] for r in results] == ["success", "success"]  # demo and harbor
    demo_run = results[0]
    assert len(demo_run["actionsTriggered"]) == 3  # the three planted anomalies, held for approval
    db = instance.db()
    assert db.execute("SELECT count(*) FROM tasks WHERE type = 'approval'").fetchone()[0] == 3
    assert db.execute("SELECT actor, count(*) FROM ai_interactions GROUP BY actor").fetchall() == [("agent", 2)]


def test_the_schedule_refuses_an_unknown_model(instance):
    import pytest

    from agent.runner import Agent
    from kiosk.errors import ConfigError

    instance.config = instance.config.model_copy(update={"agent": instance.config.agent.model_copy(
        update={"scheduled_models": ["03:00 fortune-telling"]})})
    with pytest.raises(ConfigError):
        Agent(instance, transport=None, device_id="kiosk-test").run()
