"""No guest and no pile of open screens can starve the kiosk (kiosk.admission).

* the gates themselves: a bound in total and per session, refusals counted, a place
  given back once however often a stream's end is reported;
* in the app: a session's second model run while its first (or a streamed batch) is in
  flight is ``429 BUSY`` with ``Retry-After``, and so is a feed past the session's or the
  kiosk's bound; a closed feed gives its place back;
* against a real ``kiosk serve`` with real model workers: sixteen 30-second recordings
  from one guest and 64 staff feeds at once (bench/capacity.py's scenario): two recordings
  run, the rest are refused at once, 32 feeds are admitted, and ``/healthz``, another
  guest's home and the staff listing keep answering, each far faster than the
  recordings that run (a ratio measured in the same run, not a wall-clock bound).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from kiosk.admission import Gate
from kiosk.errors import Busy

REPO = Path(__file__).resolve().parents[1]


def bench_capacity():
    spec = importlib.util.spec_from_file_location("bench_capacity", REPO / "bench" / "capacity.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_capacity"] = mod
    spec.loader.exec_module(mod)
    return mod


# --- the gate ------------------------------------------------------------------------------------

def test_a_gate_bounds_each_key_and_the_total_and_says_which():
    g = Gate("model_runs", total=3, per_key=2, retry_after=2)
    g.enter("a")
    g.enter("a")
    with pytest.raises(Busy) as e:
        g.enter("a")
    assert e.value.details == {"scope": "model_runs_per_session", "retryAfter": 2}
    g.enter("b")
    with pytest.raises(Busy) as e:
        g.enter("c")
    assert e.value.details["scope"] == "model_runs" and e.value.http_status == 429
    assert (g.in_flight, g.refused) == (3, 2)
    g.leave("a")
    g.enter("c")  # a place came back
    assert g.in_flight == 3


def test_a_place_is_given_back_once_however_often_its_end_is_reported():
    g = Gate("streams", total=1, per_key=1, retry_after=15)
    g.enter("s")
    release = g.release_once("s")
    release()
    release()  # the generator's finally and the response's close both report the end
    assert g.in_flight == 0
    g.enter("t")
    with pytest.raises(Busy):
        g.enter("u")  # a second release did not make room it does not have


def test_held_gives_the_place_back_when_the_work_fails():
    g = Gate("model_runs", total=1, per_key=1, retry_after=2)
    with pytest.raises(RuntimeError), g.held("a"):
        raise RuntimeError("the model failed")
    with g.held("b"):
        assert g.in_flight == 1
    assert g.in_flight == 0


# --- in the app ----------------------------------------------------------------------------------

def _busy(r, scope):
    body = r.get_json()
    assert r.status_code == 429, body
    assert body["error"]["code"] == "BUSY" and body["error"]["details"]["scope"] == scope
    assert r.headers["Retry-After"] == str(body["error"]["details"]["retryAfter"])


def test_a_sessions_feeds_past_its_bound_are_busy_and_a_closed_feed_gives_its_place_back(client, login, app):
    staff = login("staff")
    per = app.config["KIOSK_INSTANCE"].config.capacity.streams_per_session
    feeds = [client.get("/api/staff/events", headers=staff, buffered=False) for _ in range(per)]
    assert [f.status_code for f in feeds] == [200] * per
    _busy(client.get("/api/staff/events", headers=staff, buffered=False), "streams_per_session")
    other = login("staff")  # another staff member is not held up by this one's tabs
    mine = client.get("/api/staff/events", headers=other, buffered=False)
    assert mine.status_code == 200
    feeds[0].close()
    again = client.get("/api/staff/events", headers=staff, buffered=False)
    assert again.status_code == 200
    for f in [*feeds[1:], again, mine]:
        f.close()
    assert app.config["KIOSK_CAPACITY"].streams.in_flight == 0


def test_the_kiosks_feeds_past_the_total_are_busy(tmp_path, clock):
    from kiosk import config as config_mod
    from kiosk import tokens
    from kiosk.instance import Instance
    from kiosk.web import create_app

    cfg = config_mod.load(None, env={}, overrides={"data_dir": str(tmp_path / "k"),
                                                   "capacity": {"streams": 3, "streams_per_session": 2}})
    inst = Instance(cfg, clock=clock)
    inst.init()
    app = create_app(instance=inst)
    c = app.test_client()

    def staff():
        tok, _ = tokens.issue(inst.db(), inst.load_keys(), hotel_id="demo", role="staff", now=clock.now(),
                              ttl_seconds=3600, issuer="demo", node="k")
        return {"Authorization": "Bearer " + c.post("/api/qr/scan", json={"qrToken": tok, "hotelId": "demo"})
                .get_json()["sessionJWT"]}

    a, b = staff(), staff()
    open_ = [c.get("/api/staff/events", headers=h, buffered=False) for h in (a, a, b)]
    assert [f.status_code for f in open_] == [200, 200, 200]
    _busy(c.get("/api/staff/events", headers=b, buffered=False), "streams")
    for f in open_:
        f.close()


def test_a_sessions_model_runs_past_its_bound_wait_for_its_streamed_batches(client, login, app):
    staff = login("staff")
    sid = client.get("/api/session", headers=staff).get_json()["sessionId"]
    per = app.config["KIOSK_INSTANCE"].config.capacity.model_runs_per_session
    body = {"sessionId": sid, "modelIds": ["night-audit", "billing-detection"], "requestPayload": {}}
    batches = [client.post("/api/ai/trigger?stream=1", headers=staff, json=body, buffered=False) for _ in range(per)]
    assert all(b.status_code == 200 and b.mimetype == "text/event-stream" for b in batches)
    _busy(client.post("/api/ai/trigger", headers=staff, json={"sessionId": sid, "modelId": "night-audit"}),
          "model_runs_per_session")
    # (the test client's streamed answers keep their request contexts: ended last one first)
    assert b"event: done" in b"".join(batches[-1].response)  # a batch ends ...
    batches[-1].close()
    again = client.post("/api/ai/trigger", headers=staff, json={"sessionId": sid, "modelId": "night-audit"})
    assert again.status_code == 200, again.get_json()  # ... and its place is free again
    for b in reversed(batches[:-1]):
        b.close()
    assert app.config["KIOSK_CAPACITY"].models.in_flight == 0


# --- a real kiosk under a flood ------------------------------------------------------------------

def test_one_guests_recordings_and_64_staff_feeds_do_not_starve_the_kiosk(tmp_path):
    cap = bench_capacity()
    figures = cap.scenario(tmp_path, voice=16, streams=64, seconds=30)
    print("capacity:", figures)
    # two recordings at a time per session: those run, the other fourteen are refused at once
    assert figures["voiceOther"] == [] and figures["voiceAdmitted"] >= 1
    assert figures["voiceBusy"] >= 12 and figures["voiceAdmitted"] + figures["voiceBusy"] == 16
    # the kiosk's 32 feeds are admitted, the rest told to come back (the screens then poll)
    assert (figures["streamsAdmitted"], figures["streamsBusy"]) == (32, 32)
    # everyone else is answered all along, every answer far faster than the recording that ran
    assert figures["probeErrors"] == []
    run_ms = 1000 * figures["voiceRunS"]
    for probe in ("healthz", "guestHome", "staffListing"):
        assert figures[probe]["n"] >= 30
        assert figures[probe]["p99"] < run_ms / 5, (probe, figures)
    assert figures["busyAnswerMsMax"] < run_ms / 2  # a refusal never waits for the model
    # feeds whose clients left gave their places back before any keep-alive could have failed
    assert figures["freedAfterS"] is not None and figures["freedAfterS"] < 12


# --- request bodies ------------------------------------------------------------------------------

def _send_chunked_until_answered(url: str, path: str, limit_mb: int = 64) -> tuple[int, int]:
    """POST a chunked body of up to ``limit_mb`` MiB to ``path``, stopping as soon as the
    server answers; returns (status, bytes sent before the answer)."""
    import select
    import socket

    host, port = url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=120)
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
              "Transfer-Encoding: chunked\r\n\r\n".encode())
    chunk = b"%x\r\n" % 65536 + b"x" * 65536 + b"\r\n"
    sent = 0
    try:
        while sent < limit_mb * 1024 * 1024:
            if select.select([s], [], [], 0)[0]:
                break  # the server answered (or closed) before the body was done
            s.sendall(chunk)
            sent += 65536
        else:
            s.sendall(b"0\r\n\r\n")
    except OSError:  # the server closed the connection on a body it will not take
        pass
    head = b""
    try:
        while b"\r\n" not in head:
            part = s.recv(4096)
            if not part:
                break
            head += part
    except OSError:
        pass
    s.close()
    return (int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0), sent


def test_a_body_past_the_largest_limit_is_refused_as_it_arrives_not_spooled(tmp_path):
    """waitress spooled up to 1 GiB (its default) to temp files before the app's 413."""
    from harness import Kiosk

    k = Kiosk(tmp_path, "big").serve()
    try:
        status, sent = _send_chunked_until_answered(k.url, "/api/qr/scan")
        assert status == 413
        limit = 4 * 1024 * 1024  # server.max_media_body_bytes: the largest body any route takes
        assert sent <= 4 * limit, f"{sent / 2**20:.0f} MiB went in before the refusal"
    finally:
        k.stop_all()
