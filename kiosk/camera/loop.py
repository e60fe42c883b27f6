"""The scan loop: capture on one thread, decode on another, scans to the scan service.

The capture thread only ever keeps the newest frame (a one-slot holder), so a slow
decode drops frames instead of building a backlog.  The decode thread runs the
decoder chain on the newest frame, turns stable reads into scans (one hold-up, one
scan), has the scan service check them and publishes the outcome on the event bus for the
lobby screen.  Nothing a frame, a decoder or a scan does can stop either thread.

A camera scan consumes nothing: :meth:`ScanService.check` verifies the code (signature,
hotel, revocation, prior use) and the event carries it as ``pending``; the one-time code is
consumed and the session opened (one transaction, kiosk/scan.py) only when a lobby that
shows it redeems the scan's claim (``POST /screen/claim``).  A code nobody takes stays usable.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import KioskError
from .decoders import Chain
from .stable import StableReads

log = logging.getLogger("kiosk.camera")


class LatestFrame:
    """A one-slot holder: ``put`` replaces, ``get`` waits for a frame newer than the last one taken."""

    def __init__(self):
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._seq = 0

    def put(self, frame: np.ndarray) -> None:
        with self._cond:
            self._frame, self._seq = frame, self._seq + 1
            self._cond.notify_all()

    def get(self, after: int, timeout: float) -> tuple[int, np.ndarray | None]:
        with self._cond:
            self._cond.wait_for(lambda: self._seq > after, timeout=timeout)
            return self._seq, self._frame if self._seq > after else None

    @property
    def seq(self) -> int:
        return self._seq


@dataclass
class Stats:
    frames: int = 0
    decoded: int = 0
    reads: int = 0
    scans: int = 0
    decode_errors: int = 0
    dropped: int = 0
    started: float = field(default_factory=time.monotonic)


def token_hotel(text: str) -> str | None:
    """The hotel a token claims (unverified; the scan service verifies)."""
    try:
        part = text.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))).get("hid")
    except Exception:  # not a token at all: the scan service will say so
        return None


class Scanner:
    def __init__(self, source, chain: Chain, stable: StableReads, *, on_scan=None, scan_service=None,
                 instance=None, bus=None, default_hotel: str | None = None):
        self.source, self.chain, self.stable = source, chain, stable
        self.scan_service, self.instance, self.bus, self.on_scan = scan_service, instance, bus, on_scan
        self.default_hotel = default_hotel
        self.latest = LatestFrame()
        self.stats = Stats()
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self._jpeg: tuple[int, bytes] | None = None

    # --- threads --------------------------------------------------------------------------
    def start(self) -> Scanner:
        for target, name in ((self._capture, "camera-capture"), (self._decode, "camera-decode")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout)
        self.source.close()

    def _capture(self) -> None:
        while not self.stop_event.is_set():
            try:
                frame = self.source.read()
            except Exception:  # a source must not kill the loop either
                log.exception("camera source failed")
                frame = None
            if frame is None:
                self.stop_event.wait(0.05)
                continue
            if self.latest.seq and self.latest.seq > self.stats.decoded + self.stats.dropped + 1:
                self.stats.dropped += 1
            self.stats.frames += 1
            self.latest.put(frame)

    def _decode(self) -> None:
        seen = 0
        while not self.stop_event.is_set():
            seq, frame = self.latest.get(seen, timeout=0.2)
            if frame is None:
                continue
            seen = seq
            self.process(frame)

    # --- one frame ------------------------------------------------------------------------
    def process(self, frame: np.ndarray) -> list[dict]:
        """Decode one frame and scan what became stable; returns the scan events."""
        self.stats.decoded += 1
        result = self.chain.decode(frame)
        if result.errors:
            self.stats.decode_errors += 1
        self.stats.reads += bool(result.texts)
        events = []
        for text in self.stable.offer(result.texts):
            events.append(self.scan(text))
        return events

    def scan(self, text: str) -> dict:
        self.stats.scans += 1
        body = {"qrToken": text, "hotelId": token_hotel(text) or self.default_hotel, "scanMethod": "camera"}
        try:
            if self.scan_service is None:
                event = {"type": "scan", "ok": True, "text": text}
            else:
                who = self.scan_service.check(self.instance.db(), body, client="camera")
                event = {"type": "scan", "ok": True, "pending": {**who, "scan": body}}
        except KioskError as e:
            event = {"type": "scan", "ok": False, "code": e.code}
        except Exception:  # never let a scan kill the loop
            log.exception("camera scan failed")
            event = {"type": "scan", "ok": False, "code": "INTERNAL_ERROR"}
        if self.bus is not None:
            self.bus.publish(event)
        if self.on_scan is not None:
            self.on_scan(event)
        return event

    # --- preview --------------------------------------------------------------------------
    def latest_jpeg(self) -> bytes | None:
        import cv2

        seq = self.latest.seq
        if self._jpeg and self._jpeg[0] == seq:
            return self._jpeg[1]
        _, frame = self.latest.get(seq - 1, timeout=0)
        if frame is None:
            return None
        small = cv2.resize(frame, (640, int(640 * frame.shape[0] / frame.shape[1])))
        ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 70])
        if not ok:
            return None
        self._jpeg = (seq, buf.tobytes())
        return self._jpeg[1]

    def jpeg_frames(self, fps: float = 10.0):
        while not self.stop_event.is_set():
            jpeg = self.latest_jpeg()
            if jpeg:
                yield jpeg
            time.sleep(1.0 / fps)


def from_config(cfg, *, instance=None, scan_service=None, bus=None) -> Scanner:
    from . import sources

    c = cfg.camera
    return Scanner(sources.from_config(c), Chain(tuple(c.decoders), budget_ms=c.frame_budget_ms),
                   StableReads(c.stable_reads, c.stable_window_ms, c.cooldown_seconds),
                   instance=instance, scan_service=scan_service, bus=bus,
                   default_hotel=cfg.property.hotels[0] if cfg.property.hotels else None)
