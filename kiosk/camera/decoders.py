"""QR decoders behind one interface, and the chain that tries them in order.

Three decoders, all reading QR codes only from a grayscale frame:

* ``zxing`` — zxing-cpp, reads inverted (light-on-dark) codes itself;
* ``pyzbar`` — ZBar through pyzbar (needs the libzbar0 system package); inverted
  codes are read by trying the inverted frame when the frame gives nothing;
* ``opencv`` — OpenCV's ``QRCodeDetector``; likewise for inverted codes.

A decoder that raises, or is missing, never stops the caller: :class:`Chain`
records the error and goes on with the next decoder.  A chain has a time budget
per frame: once it is spent, the remaining decoders are skipped for that frame
(a decode already running is not interrupted: CPython cannot stop it safely;
the budget bounds how many run).  The default chain is chosen by measurement
(bench/decode.py; docs/decoders.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger("kiosk.camera")

NAMES = ("zxing", "pyzbar", "opencv")
DEFAULT_CHAIN = ("zxing", "pyzbar")


def to_gray(frame: np.ndarray) -> np.ndarray:
    import cv2

    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    raise ValueError(f"not an image: shape {frame.shape}")


CENTRE = 0.7  # the full-resolution pass looks at the middle 70 % of the frame: the lobby's target box
#: the full-resolution local-average pass looks at one region per frame, in turn: the centre
#: (the target box) every other frame, and the four corners' regions between.  Neighbouring
#: regions overlap by more than a small code is wide (20 % of 1280 px, 30 % of 720 px = 216 px;
#: a version-12 code at 3 px a module is 195), so every code lies wholly inside one of them.
CORNERS = ((0.0, 0.0, 0.6, 0.65), (0.4, 0.0, 1.0, 0.65), (0.0, 0.35, 0.6, 1.0), (0.4, 0.35, 1.0, 1.0))
_C = (1 - CENTRE) / 2
SWEEP = tuple(r for corner in CORNERS for r in ((_C, _C, 1 - _C, 1 - _C), corner))
TRACK_FRAMES = 15  # where a symbol was located, the next frames look first (half a second at 30 fps)


def _zxing() -> Callable[[np.ndarray], list[str]]:
    """Passes, cheapest first, stopping at the first that reads:

    1. the whole frame at <= 640 px wide (about 0.2 ms when there is no code; most codes at
       kiosk distance read here, inverted ones too);
    2. where a symbol was located in the last ``TRACK_FRAMES`` frames, at full resolution
       (a code held up stays about where it was: once found, it is read on every frame);
    3. the whole frame at full resolution with a fixed threshold (about 0.3 ms: small codes
       anywhere in the frame, in fair light);
    4. one region of the frame at full resolution with the local-average binarizer (uneven
       light), in turn from ``SWEEP``: the centre (where the lobby's target box asks the guest
       to hold the code) every other frame, the four corners' regions between, so a small
       code anywhere is looked at this way at least every eighth frame (about 4 times while
       a code is held up for a second), and once read it is tracked (pass 2).

    Passes 2-4 are what issue 11 added for small codes anywhere in the frame; together
    they cost about what the centre pass alone cost every frame before (bench/decode.py).

    A symbol found but not decoded is reported with its region, so that a gated chain gives
    the next decoder a chance on just that crop.  State (the turn, the tracked region) is per
    decoder: one per scan loop."""
    import cv2
    import zxingcpp

    fmt = zxingcpp.BarcodeFormat.QRCode
    fixed = zxingcpp.Binarizer.FixedThreshold
    state = {"turn": 0, "track": None, "ttl": 0}

    def read(img, invert: bool, scale: float = 1.0, dx: int = 0, dy: int = 0, binarizer=None):
        kw = {"binarizer": binarizer} if binarizer is not None else {}
        found = zxingcpp.read_barcodes(img, formats=fmt, try_rotate=False, try_downscale=False,
                                       try_invert=invert, return_errors=True, **kw)
        texts = [r.text for r in found if r.valid and r.text]
        region = None
        for r in found:
            p = r.position
            xs = [pt.x for pt in (p.top_left, p.top_right, p.bottom_left, p.bottom_right)]
            ys = [pt.y for pt in (p.top_left, p.top_right, p.bottom_left, p.bottom_right)]
            region = (int(min(xs) * scale) + dx, int(min(ys) * scale) + dy,
                      int(max(xs) * scale) + dx, int(max(ys) * scale) + dy)
        return texts, region

    def passes(gray: np.ndarray):
        h, w = gray.shape
        if w <= 640:
            yield read(gray, True)
            return
        small = cv2.resize(gray, (640, max(1, round(h * 640 / w))), interpolation=cv2.INTER_AREA)
        yield read(small, True, scale=w / 640)
        if state["ttl"] > 0:
            x0, y0, x1, y1 = crop_box(gray.shape, state["track"], pad=0.5)
            yield read(gray[y0:y1, x0:x1], True, dx=x0, dy=y0)
        yield read(gray, False, binarizer=fixed)
        fx0, fy0, fx1, fy1 = SWEEP[state["turn"] % len(SWEEP)]
        state["turn"] += 1
        x0, y0, x1, y1 = int(w * fx0), int(h * fy0), int(w * fx1), int(h * fy1)
        yield read(gray[y0:y1, x0:x1], False, dx=x0, dy=y0)

    def decode(gray: np.ndarray):
        state["ttl"] -= 1
        located = None
        for texts, region in passes(gray):
            located = region or located
            if located is not None:
                state["track"], state["ttl"] = located, TRACK_FRAMES
            if texts:
                return texts, True, located
        return [], located is not None, located
    return decode


def _pyzbar() -> Callable[[np.ndarray], list[str]]:
    from pyzbar import pyzbar

    symbols = [pyzbar.ZBarSymbol.QRCODE]

    def once(gray: np.ndarray) -> list[str]:
        return [s.data.decode("utf-8", "replace") for s in pyzbar.decode(gray, symbols=symbols)]

    def decode(gray: np.ndarray) -> list[str]:
        return once(gray) or once(255 - gray)
    return decode


def _opencv() -> Callable[[np.ndarray], list[str]]:
    import cv2

    detector = cv2.QRCodeDetector()

    def once(gray: np.ndarray) -> list[str]:
        ok, texts, _, _ = detector.detectAndDecodeMulti(gray)
        return [t for t in texts if t] if ok else []

    def decode(gray: np.ndarray) -> list[str]:
        return once(gray) or once(255 - gray)
    return decode


FACTORIES = {"zxing": _zxing, "pyzbar": _pyzbar, "opencv": _opencv}


def make(name: str) -> Callable[[np.ndarray], list[str]]:
    if name not in FACTORIES:
        raise ValueError(f"unknown decoder {name!r}; known: {', '.join(NAMES)}")
    return FACTORIES[name]()


@dataclass
class Result:
    texts: list[str]
    decoder: str | None
    ms: float
    errors: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def crop_box(shape: tuple[int, ...], area: tuple[int, int, int, int], pad: float = 0.35) -> tuple[int, int, int, int]:
    """``area`` grown by ``pad`` of its size on each side (a quiet zone and some slack), in the frame."""
    h, w = shape[:2]
    x0, y0, x1, y1 = area
    px, py = int((x1 - x0) * pad) + 8, int((y1 - y0) * pad) + 8
    return max(0, x0 - px), max(0, y0 - py), min(w, x1 + px), min(h, y1 + py)


class Chain:
    """Try decoders in order until one reads something, within ``budget_ms`` per frame.

    With ``gate`` (the default), decoders after the first run only when an earlier one
    located a symbol it could not read: a frame with no code (most frames in a lobby)
    costs only the first decoder.
    """

    def __init__(self, names: tuple[str, ...] | list[str] = DEFAULT_CHAIN, budget_ms: float = 60.0,
                 decoders: dict[str, Callable[[np.ndarray], list[str]]] | None = None, gate: bool = True):
        self.names = tuple(names)
        self.budget_ms = budget_ms
        self.gate = gate
        self.decoders: dict[str, Callable] = {}
        self.unavailable: dict[str, str] = {}
        for name in self.names:
            if decoders and name in decoders:
                self.decoders[name] = decoders[name]
                continue
            try:
                self.decoders[name] = make(name)
            except Exception as e:  # e.g. libzbar0 missing: the chain goes on without it
                self.unavailable[name] = f"{type(e).__name__}: {e}"
                log.warning("decoder unavailable", extra={"decoder": name, "error": str(e)})

    def decode(self, frame: np.ndarray) -> Result:
        start = time.perf_counter()
        errors: dict[str, str] = dict(self.unavailable)
        skipped: list[str] = []
        try:
            gray = to_gray(frame)
        except Exception as e:  # a corrupt frame is a frame with nothing on it
            return Result([], None, (time.perf_counter() - start) * 1000, {"frame": str(e)})
        tried = 0
        located = False
        region = None
        for name in self.names:
            if name not in self.decoders:
                continue
            if tried and ((self.gate and not located) or (time.perf_counter() - start) * 1000 > self.budget_ms):
                skipped.append(name)
                continue
            tried += 1
            try:
                out = self.decoders[name](gray)
            except Exception as e:  # one decoder's failure never stops the chain
                errors[name] = f"{type(e).__name__}: {e}"[:200]
                located = True  # it could not tell: the next decoder gets its chance
                continue
            if not isinstance(out, tuple):
                out = (out, bool(out), None)
            texts, found, area = out if len(out) == 3 else (*out, None)
            if area is not None and region is None:
                region = crop_box(gray.shape, area)
                gray = gray[region[1]:region[3], region[0]:region[2]]  # later decoders see the crop
            located = located or found
            if texts:
                return Result(sorted(set(texts)), name, (time.perf_counter() - start) * 1000, errors, skipped)
        return Result([], None, (time.perf_counter() - start) * 1000, errors, skipped)
