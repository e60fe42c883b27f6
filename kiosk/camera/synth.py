"""Camera-like frames of a QR code, made reproducibly: for the tests, bench/decode.py and
demo videos.  A code is rendered with segno (as printed by ``kiosk token create``), placed
on a frame of the given size and degraded the way a lobby camera degrades it: scale,
rotation, perspective, blur, sensor noise, uneven light, and inversion (a phone in dark
mode shows light modules on a dark background)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
import segno


@dataclass(frozen=True)
class Degrade:
    module_px: float = 6.0      # size of one QR module on the frame
    angle: float = 0.0          # degrees, in-plane
    tilt: float = 0.0           # 0..0.3: perspective (fraction of the side moved)
    blur: float = 0.0           # Gaussian sigma in pixels
    noise: float = 0.0          # std of Gaussian noise, 0..255
    light: float = 0.0          # 0..1: strength of a lighting gradient across the frame
    invert: bool = False
    anywhere: bool = False      # placed anywhere in the frame (else within ±10 % of the centre)
    scene: bool = False         # a cluttered background (furniture, people, signs) instead of a plain wall
    jpeg: int = 0               # JPEG quality 1..100 (a webcam's MJPG stream); 0: none


EASY = Degrade(module_px=6)
MEDIUM = Degrade(module_px=4, angle=12, tilt=0.08, blur=1.0, noise=6, light=0.2)
HARD = Degrade(module_px=3.5, angle=25, tilt=0.15, blur=1.3, noise=12, light=0.4)
INVERTED = Degrade(module_px=5, angle=8, tilt=0.05, blur=0.8, noise=5, invert=True)
# a phone at arm's length or a badge seen from a step back: a version-12 token about 130 px
# wide (2.2 px per module) anywhere in the frame, not where the target box asks for it
SMALL = Degrade(module_px=2.2, angle=6, tilt=0.04, blur=0.6, noise=4, light=0.15, anywhere=True, jpeg=85)
LOBBY = Degrade(noise=6, light=0.2, scene=True)  # what the camera sees between guests


def qr_gray(text: str) -> np.ndarray:
    """The code as a grayscale image, one pixel per module, with its quiet zone."""
    buf = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buf, kind="png", scale=1, border=4)
    return cv2.imdecode(np.frombuffer(buf.getvalue(), np.uint8), cv2.IMREAD_GRAYSCALE)


def clutter(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A lobby-like background: boxes and bars of many greys with hard edges, a few lines of
    text-like strokes and a shaded wall, so an empty frame gives a decoder edges to chew on
    (a plain wall lets a binarizer give up at once, which flatters its cost)."""
    w, h = size
    img = np.tile(np.linspace(150, 210, w).astype(np.uint8)[None, :], (h, 1))
    for _ in range(int(rng.integers(25, 40))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(20, w // 3)), y0 + int(rng.integers(20, h // 2))
        cv2.rectangle(img, (x0, y0), (x1, y1), int(rng.integers(20, 240)), -1)
    for _ in range(int(rng.integers(6, 12))):
        x, y = int(rng.integers(0, w - 200)), int(rng.integers(20, h))
        cv2.putText(img, "HOTEL LOBBY 24h" if rng.random() < 0.5 else "Reception - Check-in",
                    (x, y), cv2.FONT_HERSHEY_SIMPLEX, float(rng.uniform(0.5, 1.6)), int(rng.integers(0, 80)), 2)
    for _ in range(int(rng.integers(5, 10))):
        p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.line(img, p0, p1, int(rng.integers(0, 255)), int(rng.integers(1, 5)))
    return cv2.GaussianBlur(img.astype(np.float32), (0, 0), 0.8)


def frame(text: str | None, size: tuple[int, int] = (1280, 720), d: Degrade = EASY,
          rng: np.random.Generator | None = None, shift: tuple[float, float] = (0.0, 0.0),
          noise_rng: np.random.Generator | None = None, at: tuple[float, float] | None = None) -> np.ndarray:
    """A BGR frame of ``size`` (w, h) showing ``text`` as a QR code (or no code if None);
    ``at`` puts the code's centre there (pixels), ``shift`` moves it by pixels and ``noise_rng``
    draws the sensor noise (see :func:`holdup`)."""
    rng = rng or np.random.default_rng(0)
    w, h = size
    bg = 200 if not d.invert else 40
    img = clutter((w, h), rng) if d.scene else np.full((h, w), bg, np.float32)
    if text is not None:
        code = qr_gray(text)
        if d.invert:
            code = 255 - code
        side = int(code.shape[0] * d.module_px)
        side = min(side, int(min(w, h) * 0.9))
        code = cv2.resize(code, (side, side), interpolation=cv2.INTER_NEAREST).astype(np.float32)
        if d.anywhere:
            half = side * 0.6 + 4
            cx, cy = rng.uniform(half, max(half, w - half)), rng.uniform(half, max(half, h - half))
        else:
            cx, cy = w / 2 + rng.uniform(-0.1, 0.1) * w, h / 2 + rng.uniform(-0.1, 0.1) * h
        if at is not None:
            cx, cy = at
        src = np.float32([[0, 0], [side, 0], [side, side], [0, side]])
        jitter = d.tilt * side
        dst = np.float32([[-side / 2, -side / 2], [side / 2, -side / 2], [side / 2, side / 2], [-side / 2, side / 2]])
        dst += rng.uniform(-jitter, jitter, size=(4, 2)).astype(np.float32)
        a = np.deg2rad(d.angle)
        rot = np.float32([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        dst = dst @ rot.T + np.float32([cx + shift[0], cy + shift[1]])
        m = cv2.getPerspectiveTransform(src, dst)
        mask = cv2.warpPerspective(np.ones_like(code), m, (w, h))
        warped = cv2.warpPerspective(code, m, (w, h))
        img = img * (1 - mask) + warped * mask
    if d.light:
        grad = np.linspace(1 - d.light, 1, w, dtype=np.float32)[None, :]
        img = img * grad
    if d.blur:
        img = cv2.GaussianBlur(img, (0, 0), d.blur)
    if d.noise:
        img = img + (noise_rng or rng).normal(0, d.noise, img.shape).astype(np.float32)
    gray = np.clip(img, 0, 255).astype(np.uint8)
    if d.jpeg:
        gray = cv2.imdecode(cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, d.jpeg])[1], cv2.IMREAD_GRAYSCALE)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def holdup(text: str, size: tuple[int, int] = (1280, 720), d: Degrade = EASY, seed: int = 0,
           frames: int = 15, tremor_px: float = 1.5, at: tuple[float, float] | None = None) -> list[np.ndarray]:
    """A code held up to the camera for ``frames`` frames (15 at 30 fps: half a second):
    the same placement, a hand's tremor of about ``tremor_px`` per frame, fresh sensor noise."""
    walk = np.random.default_rng(seed + 1_000_003)
    pos = np.zeros(2)
    out = []
    for _ in range(frames):
        out.append(frame(text, size, d, np.random.default_rng(seed), shift=(float(pos[0]), float(pos[1])),
                         noise_rng=walk, at=at))
        pos += walk.normal(0, tremor_px, 2)
    return out


def video(path, frames: list[np.ndarray], fps: float = 15.0) -> None:
    """Write ``frames`` as an MJPG AVI (readable by OpenCV everywhere, no codec downloads)."""
    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    if not out.isOpened():
        raise RuntimeError(f"cannot write {path}")
    for f in frames:
        out.write(f)
    out.release()
