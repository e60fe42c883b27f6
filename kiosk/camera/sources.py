"""Where frames come from, behind one small interface.

``read() -> frame | None`` returns the next BGR frame, or None when there is none
right now (a camera unplugged, a stream down, an image folder with nothing new);
sources never raise from ``read`` for a lost device — they reopen with backoff on
later calls, so the capture thread just keeps calling.

* ``v4l2``: a camera through OpenCV (``/dev/video0`` or an index), asking for MJPG
  at the configured size and rate;
* ``file``: a video file, paced at its own frame rate, optionally looping;
* ``folder``: a folder of images, each new image shown for ``hold_seconds`` in
  name order (copy a QR code's PNG into it to "hold it up"), an empty dark scene
  between; images that were in the folder when the source started are ignored (a
  restart must not "hold up" yesterday's codes again and open sessions for nobody);
* ``stream``: a network stream URL (RTSP, HTTP MJPEG) through OpenCV.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("kiosk.camera")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class Source:
    kind = "source"

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def describe(self) -> dict:
        return {"kind": self.kind}


class _Capture(Source):
    """An OpenCV VideoCapture that reopens itself, with backoff, when it fails."""

    def __init__(self, uri, *, backoff_max: float = 5.0, clock=time.monotonic):
        self.uri, self.backoff_max, self.clock = uri, backoff_max, clock
        self.cap = None
        self.failures = 0
        self.next_try = 0.0
        self.reopened = 0

    def _open(self):
        import cv2

        return cv2.VideoCapture(self.uri)

    def read(self) -> np.ndarray | None:
        if self.cap is None:
            if self.clock() < self.next_try:
                return None
            self.cap = self._open()
            if self.cap is None or not self.cap.isOpened():
                self._lost("could not open")
                return None
            if self.failures:
                self.reopened += 1
                log.info("camera source reopened", extra={"uri": str(self.uri)})
        ok, frame = self.cap.read()
        if not ok or frame is None:
            self._lost("read failed")
            return None
        self.failures = 0
        return frame

    def _lost(self, why: str) -> None:
        if self.cap is not None:
            self.cap.release()
        self.cap = None
        self.failures += 1
        delay = min(self.backoff_max, 0.1 * 2 ** min(self.failures, 10))
        self.next_try = self.clock() + delay
        if self.failures in (1, 10) or self.failures % 100 == 0:
            log.warning("camera source lost", extra={"uri": str(self.uri), "why": why, "retryIn": delay})

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None

    def describe(self) -> dict:
        d = {"kind": self.kind, "uri": str(self.uri), "open": self.cap is not None, "reopened": self.reopened}
        if self.cap is not None:
            import cv2

            d |= {"width": int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                  "height": int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), "fps": self.cap.get(cv2.CAP_PROP_FPS)}
        return d


class V4L2Source(_Capture):
    kind = "v4l2"

    def __init__(self, device: str | int = "/dev/video0", width: int = 1280, height: int = 720, fps: int = 30,
                 **kw):
        super().__init__(device, **kw)
        self.width, self.height, self.fps = width, height, fps

    def _open(self):
        import cv2

        dev = int(self.uri) if str(self.uri).isdigit() else str(self.uri)
        cap = cv2.VideoCapture(dev, cv2.CAP_V4L2)
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        cap.set(cv2.CAP_PROP_FPS, self.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # we want the newest frame, not a queue of old ones
        return cap


class StreamSource(_Capture):
    kind = "stream"


class VideoFileSource(_Capture):
    """A video file played at its own frame rate (so a test sees camera-like timing)."""

    kind = "file"

    def __init__(self, path: str | Path, *, loop: bool = False, pace: bool = True, **kw):
        super().__init__(str(path), **kw)
        self.loop, self.pace = loop, pace
        self.period = 0.0
        self.due = 0.0
        self.ended = False

    def read(self) -> np.ndarray | None:
        if self.ended:
            return None
        if self.cap is None and Path(self.uri).exists():
            import cv2

            self.cap = cv2.VideoCapture(self.uri)
            fps = self.cap.get(cv2.CAP_PROP_FPS) or 30.0
            self.period = 1.0 / fps if self.pace else 0.0
            self.due = time.monotonic()
        if self.cap is None or not self.cap.isOpened():
            return None
        wait = self.due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        ok, frame = self.cap.read()
        self.due += self.period
        if not ok:
            if self.loop:
                self.cap.release()
                self.cap = None
                return None
            self.ended = True
            return None
        return frame


class ImageFolderSource(Source):
    """Each image that appears in ``folder`` after the start is shown for ``hold_seconds``,
    then empty frames (a dim, even scene: what a camera sees of an empty lobby, not a white
    box on the lobby's preview).  An image is known by name and modification time, so
    copying a file of the same name again shows it again."""

    kind = "folder"
    EMPTY = 48          # grey level of an empty frame
    SETTLE_SECONDS = 2  # an unreadable image younger than this may still be being copied

    def __init__(self, folder: str | Path, *, hold_seconds: float = 2.0, fps: float = 10.0,
                 size: tuple[int, int] = (1280, 720), loop: bool = False):
        self.folder, self.hold, self.period, self.loop = Path(folder), hold_seconds, 1.0 / fps, loop
        self.size = size
        self.seen: set[tuple[str, int]] = set()
        self.ignored: set[tuple[str, int]] = set(self._listing())  # there before we started
        if self.ignored:
            log.info("camera folder: ignoring images that were there before the start",
                     extra={"folder": str(self.folder), "files": len(self.ignored)})
        self.current: np.ndarray | None = None
        self.until = 0.0
        self.next_frame = time.monotonic()

    def _listing(self) -> list[tuple[str, int]]:
        """(name, mtime_ns) of the images in the folder, in name order."""
        out = []
        if not self.folder.is_dir():
            return out
        for p in self.folder.iterdir():
            if p.suffix.lower() in IMAGE_SUFFIXES:
                try:
                    out.append((p.name, p.stat().st_mtime_ns))
                except OSError:  # removed meanwhile
                    continue
        return sorted(out)

    def _next_image(self) -> np.ndarray | None:
        import cv2

        entries = [e for e in self._listing() if e not in self.ignored]
        if self.loop and entries and set(entries) <= self.seen:
            self.seen.clear()
        for entry in entries:
            if entry in self.seen:
                continue
            img = cv2.imread(str(self.folder / entry[0]), cv2.IMREAD_COLOR)
            if img is not None:
                self.seen.add(entry)
                return self._fit(img)
            if time.time() - entry[1] / 1e9 > self.SETTLE_SECONDS:
                self.seen.add(entry)
                log.warning("unreadable image in the camera folder", extra={"file": entry[0]})
        return None

    def _fit(self, img: np.ndarray) -> np.ndarray:
        """Place the image on a white canvas of the source's size, as a camera would see it."""
        import cv2

        w, h = self.size
        canvas = np.full((h, w, 3), 255, np.uint8)
        scale = min(w / img.shape[1], h / img.shape[0]) * 0.6  # as big as a code held up to the camera
        small = cv2.resize(img, (max(1, int(img.shape[1] * scale)), max(1, int(img.shape[0] * scale))),
                           interpolation=cv2.INTER_NEAREST)
        y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
        canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
        return canvas

    def read(self) -> np.ndarray | None:
        now = time.monotonic()
        if now < self.next_frame:
            time.sleep(self.next_frame - now)
        self.next_frame = max(self.next_frame + self.period, time.monotonic())
        if self.current is None or time.monotonic() > self.until:
            self.current = self._next_image()
            self.until = time.monotonic() + self.hold
            if self.current is None:
                w, h = self.size
                return np.full((h, w, 3), self.EMPTY, np.uint8)
        return self.current

    def describe(self) -> dict:
        return {"kind": self.kind, "uri": str(self.folder), "width": self.size[0], "height": self.size[1],
                "fps": 1.0 / self.period}


def from_config(cfg) -> Source:
    """The source a ``camera`` config section describes."""
    if cfg.source == "v4l2":
        return V4L2Source(cfg.uri or "/dev/video0", cfg.width, cfg.height, cfg.fps)
    if cfg.source == "file":
        return VideoFileSource(cfg.uri, loop=cfg.loop)
    if cfg.source == "folder":
        return ImageFolderSource(cfg.uri, hold_seconds=cfg.hold_seconds, fps=cfg.fps, size=(cfg.width, cfg.height),
                                 loop=cfg.loop)
    if cfg.source == "stream":
        return StreamSource(cfg.uri)
    raise ValueError(f"unknown camera source {cfg.source!r}")
