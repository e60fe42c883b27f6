"""The scan loop: frame sources, the newest-frame slot, stable reads, and real scans
through the scan service from a real video file."""

from __future__ import annotations

import json
import os
import threading
import time

import cv2
import numpy as np
from click.testing import CliRunner

from kiosk.camera import synth
from kiosk.camera.decoders import Chain
from kiosk.camera.loop import LatestFrame, Scanner
from kiosk.camera.sources import ImageFolderSource, StreamSource, VideoFileSource
from kiosk.camera.stable import StableReads
from kiosk.events import Bus
from kiosk.scan import ScanService


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_stable_reads_need_two_sightings_then_cool_down():
    clock = Clock()
    s = StableReads(reads=2, window_ms=500, cooldown_seconds=5, clock=clock)
    assert s.offer(["A"]) == []
    clock.t += 0.1
    assert s.offer(["A"]) == ["A"]           # two consecutive frames: one scan
    for _ in range(20):                      # still held up: nothing more
        clock.t += 0.1
        assert s.offer(["A"]) == []
    clock.t += 5.0
    assert s.offer(["A"]) == []              # after the cooldown it needs two sightings again
    clock.t += 0.1
    assert s.offer(["A"]) == ["A"]


def test_sightings_too_far_apart_do_not_count():
    clock = Clock()
    s = StableReads(reads=3, window_ms=300, cooldown_seconds=1, clock=clock)
    for _ in range(5):
        assert s.offer(["B"]) == []
        clock.t += 0.2                       # 3 reads never fall within 300 ms
    s2 = StableReads(reads=3, window_ms=300, cooldown_seconds=1, clock=clock)
    assert [s2.offer(["C"]) for _ in range(3)] == [[], [], ["C"]]


def test_the_frame_slot_keeps_only_the_newest_frame():
    slot = LatestFrame()
    for i in range(10):
        slot.put(np.full((2, 2), i, np.uint8))
    seq, frame = slot.get(0, timeout=0.1)
    assert seq == 10 and frame[0, 0] == 9            # the nine older ones were dropped, not queued
    assert slot.get(seq, timeout=0.05) == (10, None)  # nothing newer


def token_video(tmp_path, token: str, fps=5.0, before=10, during=12, after=10):
    frames = ([synth.frame(None, (640, 480), synth.EASY, np.random.default_rng(i)) for i in range(before)]
              + [synth.frame(token, (640, 480), synth.MEDIUM, np.random.default_rng(100 + i)) for i in range(during)]
              + [synth.frame(None, (640, 480), synth.EASY, np.random.default_rng(200 + i)) for i in range(after)])
    path = tmp_path / "lobby.avi"
    synth.video(path, frames, fps)
    return path


def run_until(scanner: Scanner, pred, timeout=180.0):
    """Run the scanner until ``pred()`` holds (a generous deadline: a loaded machine decodes slowly)."""
    scanner.start()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not pred():
            time.sleep(0.05)
    finally:
        scanner.stop()


def test_a_token_held_up_in_a_video_opens_exactly_one_session(tmp_path, instance, keys, issue):
    token = issue("guest", name="Ada", reusable=True)  # reusable: only the stable-read rule stops repeats
    path = token_video(tmp_path, token)
    source = VideoFileSource(path)
    bus = Bus()
    feed = bus.subscribe()
    # the video plays at 5 fps (the code is up for 2.4 s) and two sightings may lie up to a minute
    # apart: the decoder thread, which takes only the newest frame, sees the code twice even on a
    # loaded machine; the 30 s cooldown is what must keep it to one session
    scanner = Scanner(source, Chain(), StableReads(2, 60_000, 30), scan_service=ScanService(instance, keys),
                      instance=instance, bus=bus, default_hotel="demo")
    run_until(scanner, lambda: source.ended and scanner.latest.seq == scanner.stats.frames)
    db = instance.db()
    event = feed.get_nowait()
    assert feed.empty() and scanner.stats.frames == 32 and scanner.stats.scans == 1
    # the camera checks the code and opens nothing: the session opens when a screen takes the scan
    # (POST /screen/claim: tests/test_lobby_visits.py), with the scan as the camera made it
    assert event["ok"] and event["pending"]["user"]["name"] == "Ada" and "sessionJWT" not in event["pending"]
    assert db.execute("SELECT count(*) FROM sessions").fetchone()[0] == 0
    ScanService(instance, keys).scan(db, event["pending"]["scan"], client="camera")
    assert db.execute("SELECT count(*), min(scan_method) FROM sessions").fetchone() == (1, "camera")


def test_a_corrupt_frame_and_a_raising_decoder_leave_the_loop_running(tmp_path, instance, keys, issue):
    token = issue("guest", name="Bo")
    good = synth.frame(token, (640, 480), synth.EASY)

    class Flaky:
        kind = "test"

        def __init__(self):
            self.frames = [np.zeros((3, 3, 9), np.uint8), np.zeros((0, 0, 3), np.uint8)] + [good] * 6
            self.lock = threading.Lock()

        def read(self):
            time.sleep(0.02)
            with self.lock:  # then the good frame for as long as it takes to be seen twice
                return self.frames.pop(0) if self.frames else good

        def close(self):
            pass

    calls = {"n": 0}

    def explodes_twice(gray):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise RuntimeError("decoder crashed on this input")
        return []

    chain = Chain(("explodes", "zxing"), decoders={"explodes": explodes_twice})
    events = []
    scanner = Scanner(Flaky(), chain, StableReads(2, 60_000, 30), scan_service=ScanService(instance, keys),
                      instance=instance, on_scan=events.append, default_hotel="demo")
    run_until(scanner, lambda: events)
    assert [e["ok"] for e in events] == [True]
    assert scanner.stats.decode_errors >= 2 and all(t.is_alive() is False for t in scanner.threads)


def test_a_bad_token_is_published_with_its_code_and_the_loop_goes_on(tmp_path, instance, keys):
    frames = [synth.frame("not a kiosk token", (640, 480), synth.EASY)] * 20
    path = tmp_path / "bad.avi"
    synth.video(path, frames, 5)  # up for 4 s: seen twice however slowly frames are decoded
    events = []
    scanner = Scanner(VideoFileSource(path), Chain(), StableReads(2, 60_000, 30),
                      scan_service=ScanService(instance, keys), instance=instance, on_scan=events.append,
                      default_hotel="demo")
    run_until(scanner, lambda: events)
    assert events == [{"type": "scan", "ok": False, "code": "INVALID_TOKEN"}]


def test_a_lost_source_is_reopened_with_backoff(tmp_path):
    target = tmp_path / "camera.avi"
    clock = Clock()
    src = StreamSource(str(target), clock=clock)
    assert src.read() is None and src.failures == 1          # "unplugged": nothing there
    assert src.read() is None and src.failures == 1          # backing off: not even tried
    synth.video(target, [synth.frame(None, (320, 240))] * 3, 10)  # "plugged back in"
    clock.t += 10
    frame = src.read()
    assert frame is not None and frame.shape[:2] == (240, 320) and src.reopened == 1
    src.close()


def test_the_folder_source_shows_each_new_image_then_blank_frames(tmp_path):
    src = ImageFolderSource(tmp_path, hold_seconds=0.2, fps=50, size=(640, 480))
    blank = src.read()
    # an even, dim scene (the lobby's preview shows no white box while nobody holds a code up)
    assert blank.shape == (480, 640, 3) and blank.min() == blank.max() < 128
    cv2.imwrite(str(tmp_path / "guest.png"), cv2.cvtColor(synth.qr_gray("HELLO"), cv2.COLOR_GRAY2BGR))
    shown = src.read()
    assert shown.min() == 0 and Chain().decode(shown).texts == ["HELLO"]
    time.sleep(0.25)
    assert src.read().max() < 128  # shown once, for hold_seconds


def test_the_folder_source_ignores_images_that_were_there_before_it_started(tmp_path):
    qr = cv2.cvtColor(synth.qr_gray("OLD"), cv2.COLOR_GRAY2BGR)
    cv2.imwrite(str(tmp_path / "left-over.png"), qr)  # from before a restart
    src = ImageFolderSource(tmp_path, hold_seconds=0.05, fps=100, size=(640, 480))
    assert all(src.read().max() < 128 for _ in range(5))  # never held up again: no session for nobody
    cv2.imwrite(str(tmp_path / "new.png"), cv2.cvtColor(synth.qr_gray("NEW"), cv2.COLOR_GRAY2BGR))
    assert Chain().decode(src.read()).texts == ["NEW"]
    time.sleep(0.1)
    os.utime(tmp_path / "left-over.png", ns=(time.time_ns(), time.time_ns() + 10**9))  # copied again
    assert Chain().decode(src.read()).texts == ["OLD"]


def test_kiosk_camera_check_reports_the_source_and_its_rates(tmp_path):
    from kiosk.cli import main

    path = tmp_path / "cam.avi"
    synth.video(path, [synth.frame("CHECK", (640, 480), synth.EASY)] * 40, 20)
    env = {"KIOSK_DATA_DIR": str(tmp_path / "k"), "KIOSK__CAMERA__SOURCE": "file", "KIOSK__CAMERA__URI": str(path)}
    r = CliRunner(env=env).invoke(main, ["init"])
    assert r.exit_code == 0, r.output
    r = CliRunner(env=env).invoke(main, ["camera", "check", "--seconds", "1"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.splitlines()[-1])
    assert out["source"]["kind"] == "file" and out["resolution"] == "640x480"
    assert 0 < out["fps"] <= 25  # paced at the file's 20 fps, never faster (a loaded machine reads slower)
    assert out["framesWithCode"] >= 1 and out["decodesPerSecond"] > 0
