"""room-status: is the guest's room ready; and does a photo of the room match its reference.

Readiness comes from housekeeping state: ready when the room is Clean or Inspected
and nobody else occupies it; otherwise the reason.  The inspection compares a photo
(``image``, base64 PNG/JPEG) with the room's reference photo (``kiosk room reference``):
align it (ORB features and a RANSAC homography; identity if too few matches),
flatten the lighting (each image divided by its own heavy blur, so a brighter or
darker photo is not a difference), take the absolute difference, threshold, clean it
up (morphological opening and closing) and keep the connected regions bigger than
``MIN_AREA`` of the frame.  Regions mean attention: a CREATE_TASK for housekeeping.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..errors import NotFound, ValidationError
from ..media import image_size
from ..validation import parse
from .base import Action, Context, ModelSpec, Result, own_room

WIDTH = 640
MIN_AREA = 0.003
THRESHOLD = 0.25


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    roomNumber: str | None = Field(None, min_length=1, max_length=10)  # a guest's own room if left out
    image: str | None = Field(None, max_length=20_000_000)


def image_bytes(data: str) -> bytes:
    """The photo's bytes, refused unless a PNG or JPEG within the pixel bounds (read from its
    header: nothing is decoded before this check)."""
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("image is not base64", {"field": "image"}) from None
    image_size(raw)
    return raw


def decode_image(raw: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ValidationError("image is not a PNG or JPEG picture", {"field": "image"})
    return img


def _norm(gray: np.ndarray) -> np.ndarray:
    small = cv2.resize(gray, (WIDTH, max(1, round(gray.shape[0] * WIDTH / gray.shape[1]))), interpolation=cv2.INTER_AREA)
    f = small.astype(np.float32) + 1.0
    return f / cv2.GaussianBlur(f, (0, 0), 25)


def align(ref: np.ndarray, img: np.ndarray) -> tuple[np.ndarray, dict]:
    orb = cv2.ORB_create(2000)
    k1, d1 = orb.detectAndCompute(ref, None)
    k2, d2 = orb.detectAndCompute(img, None)
    if d1 is None or d2 is None or len(k1) < 10 or len(k2) < 10:
        return cv2.resize(img, (ref.shape[1], ref.shape[0])), {"method": "none", "matches": 0}
    matches = sorted(cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(d2, d1), key=lambda m: m.distance)[:300]
    if len(matches) < 12:
        return cv2.resize(img, (ref.shape[1], ref.shape[0])), {"method": "none", "matches": len(matches)}
    src = np.float32([k2[m.queryIdx].pt for m in matches]).reshape(-1, 1, 2)
    dst = np.float32([k1[m.trainIdx].pt for m in matches]).reshape(-1, 1, 2)
    h, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 4.0)
    if h is None:
        return cv2.resize(img, (ref.shape[1], ref.shape[0])), {"method": "none", "matches": len(matches)}
    return cv2.warpPerspective(img, h, (ref.shape[1], ref.shape[0]), borderMode=cv2.BORDER_REPLICATE), \
        {"method": "orb-homography", "matches": len(matches), "inliers": int(inliers.sum())}


def inspect(ref_gray: np.ndarray, photo_gray: np.ndarray) -> tuple[list[dict], dict]:
    scale = ref_gray.shape[1] / WIDTH
    ref_small = cv2.resize(ref_gray, (WIDTH, max(1, round(ref_gray.shape[0] / scale))), interpolation=cv2.INTER_AREA)
    photo_small = cv2.resize(photo_gray, (WIDTH, max(1, round(photo_gray.shape[0] * WIDTH / photo_gray.shape[1]))),
                             interpolation=cv2.INTER_AREA)
    aligned, how = align(ref_small, photo_small)
    diff = np.abs(_norm(ref_small) - _norm(aligned))
    mask = (diff > THRESHOLD).astype(np.uint8)
    margin = 8  # warping edges are not differences
    mask[:margin], mask[-margin:], mask[:, :margin], mask[:, -margin:] = 0, 0, 0, 0
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    mask = cv2.morphologyEx(cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel), cv2.MORPH_CLOSE, kernel, iterations=2)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    min_area = MIN_AREA * mask.size
    regions = [{"x": int(x * scale), "y": int(y * scale), "w": int(w * scale), "h": int(h * scale),
                "area": int(a * scale * scale)}
               for x, y, w, h, a in stats[1:n] if a >= min_area]
    regions.sort(key=lambda r: -r["area"])
    return regions, how


def set_reference(db, hotel: str, room: str, path: Path, now: float) -> None:
    """Record a room's reference photo (the one writer of ``room_photos``); its own transaction."""
    from .. import store

    with store.transaction(db):
        db.execute("INSERT INTO room_photos (hotel_id, room_number, path, updated_at) VALUES (?, ?, ?, ?)"
                   " ON CONFLICT(hotel_id, room_number) DO UPDATE SET path = excluded.path,"
                   " updated_at = excluded.updated_at", [hotel, room, str(path), now])


def move_references(db, old: Path, new: Path) -> None:
    """Photos recorded inside the old data directory are inside the new one (a restore elsewhere)."""
    from .. import store

    with store.transaction(db):
        for hotel, room, path in db.execute("SELECT hotel_id, room_number, path FROM room_photos").fetchall():
            p = Path(path)
            if p.is_relative_to(old):
                db.execute("UPDATE room_photos SET path = ? WHERE hotel_id = ? AND room_number = ?",
                           [str(new / p.relative_to(old)), hotel, room])


def reference_path(data_dir: str, hotel: str, room: str) -> Path:
    """Where a room's reference photo lives: always inside ``DATA_DIR/rooms``."""
    base = (Path(data_dir) / "rooms").resolve()
    path = (base / hotel / f"{room}.png").resolve()
    if not path.is_relative_to(base) or path.parent.parent != base:
        raise ValidationError("hotel and room must be plain names", {"hotel": hotel, "roomNumber": room})
    return path


def run(ctx: Context, payload: dict) -> Result:
    p = parse(Payload, payload)
    raw = image_bytes(p.image) if p.image is not None else None
    room = own_room(ctx, p.roomNumber)
    if room is None:
        if ctx.role == "guest":
            raise NotFound("no room is assigned to your stay yet", {"roomNumber": None})
        raise ValidationError("give roomNumber", {"fields": [{"field": "roomNumber", "problem": "Field required"}]})
    p = p.model_copy(update={"roomNumber": room})
    row = ctx.db.execute("SELECT status, occupied FROM rooms WHERE hotel_id = ? AND room_number = ?",
                         [ctx.hotel_id, p.roomNumber]).fetchone()
    if row is None:
        raise NotFound(f"no room {p.roomNumber!r}", {"roomNumber": p.roomNumber})
    status, occupied = row
    ready = status in ("Clean", "Inspected") and not occupied
    reason = None if ready else ("occupied" if occupied else f"housekeeping status {status}")
    outputs = {"roomNumber": p.roomNumber, "ready": ready, "status": status, "reason": reason}
    actions = []
    if p.image is not None:
        photo = decode_image(raw)
        ref_row = ctx.db.execute("SELECT path FROM room_photos WHERE hotel_id = ? AND room_number = ?",
                                 [ctx.hotel_id, p.roomNumber]).fetchone()
        ref = cv2.imread(ref_row[0], cv2.IMREAD_GRAYSCALE) if ref_row else None
        if ref is None:
            raise NotFound(f"room {p.roomNumber} has no reference photo; set one with `kiosk room reference`",
                           {"roomNumber": p.roomNumber})
        regions, how = inspect(ref, photo)
        outputs |= {"needsAttention": bool(regions), "regions": regions, "alignment": how}
        if regions and ctx.role in ("staff", "admin", None):
            actions.append(Action("CREATE_TASK", {"type": "inspection", "roomNumber": p.roomNumber, "priority": "high",
                                                  "requiredSkill": "cleaning",
                                                  "description": f"{len(regions)} area(s) differ from the reference"}))
    return Result(confidence=0.9 if p.image is None else 0.75, outputs=outputs, actions=actions)


SPEC = ModelSpec(id="room-status", run=run, roles=frozenset({"guest", "staff", "admin"}),
                 reads=("rooms", "room_photos"), timeout_seconds=20.0,
                 description="Room readiness; a photo inspected against the room's reference photo")
