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


EASY = Degrade(module_px=6)
MEDIUM = Degrade(module_px=4, angle=12, tilt=0.08, blur=1.0, noise=6, light=0.2)
HARD = Degrade(module_px=3.5, angle=25, tilt=0.15, blur=1.3, noise=12, light=0.4)
INVERTED = Degrade(module_px=5, angle=8, tilt=0.05, blur=0.8, noise=5, invert=True)


def qr_gray(text: str) -> np.ndarray:
    """The code as a grayscale image, one pixel per module, with its quiet zone."""
    buf = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buf, kind="png", scale=1, border=4)
    return cv2.imdecode(np.frombuffer(buf.getvalue(), np.uint8), cv2.IMREAD_GRAYSCALE)


def frame(text: str | None, size: tuple[int, int] = (1280, 720), d: Degrade = EASY,
          rng: np.random.Generator | None = None) -> np.ndarray:
    """A BGR frame of ``size`` (w, h) showing ``text`` as a QR code (or no code if None)."""
    rng = rng or np.random.default_rng(0)
    w, h = size
    bg = 200 if not d.invert else 40
    img = np.full((h, w), bg, np.float32)
    if text is not None:
        code = qr_gray(text)
        if d.invert:
            code = 255 - code
        side = int(code.shape[0] * d.module_px)
        side = min(side, int(min(w, h) * 0.9))
        code = cv2.resize(code, (side, side), interpolation=cv2.INTER_NEAREST).astype(np.float32)
        cx, cy = w / 2 + rng.uniform(-0.1, 0.1) * w, h / 2 + rng.uniform(-0.1, 0.1) * h
        src = np.float32([[0, 0], [side, 0], [side, side], [0, side]])
        jitter = d.tilt * side
        dst = np.float32([[-side / 2, -side / 2], [side / 2, -side / 2], [side / 2, side / 2], [-side / 2, side / 2]])
        dst += rng.uniform(-jitter, jitter, size=(4, 2)).astype(np.float32)
        a = np.deg2rad(d.angle)
        rot = np.float32([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        dst = dst @ rot.T + np.float32([cx, cy])
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
        img = img + rng.normal(0, d.noise, img.shape).astype(np.float32)
    gray = np.clip(img, 0, 255).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def video(path, frames: list[np.ndarray], fps: float = 15.0) -> None:
    """Write ``frames`` as an MJPG AVI (readable by OpenCV everywhere, no codec downloads)."""
    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    if not out.isOpened():
        raise RuntimeError(f"cannot write {path}")
    for f in frames:
        out.write(f)
    out.release()
