"""The kiosks' sync protocol (docs/sync-protocol.md): push, pull, snapshot, health."""

from __future__ import annotations

import logging
import re
import time

from flask import Blueprint, current_app, g, jsonify, request

from kiosk.errors import KioskError, ValidationError

from .. import changelog, pushes, quota, retention, snapshot, validation
from .common import device, hotel, json_body, now, seen

log = logging.getLogger("kiosk.cloud")

bp = Blueprint("sync", __name__, url_prefix="/sync/v1")

_IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,200}")


@bp.post("/push")
def push():
    started = time.monotonic()
    dev = device()
    data = request.get_data(cache=False)
    device_id, entries = validation.push_body(json_body(data))
    if device_id != dev.device_id:
        raise KioskError(f"deviceId {ascii(device_id)[:80]} is not the device of this credential",
                         {"field": "deviceId"}, code="FORBIDDEN")
    key = request.headers.get("Idempotency-Key") or None
    if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
        raise ValidationError("Idempotency-Key must be 1-200 printable ASCII characters",
                              {"field": "Idempotency-Key"})
    quota.charge(g.db, current_app.config["CLOUD_QUOTA"], dev.device_id, len(entries), len(data), now())
    body, replayed = pushes.respond(g.db, dev, entries, now(), key, current_app.config["CLOUD_MAX_SKEW"])
    counts: dict[str, int] = {}
    for r in body["results"]:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    log.info("push", extra={"deviceId": dev.device_id, "entries": len(entries), "replayed": replayed,
                            "counts": counts, "ms": round((time.monotonic() - started) * 1000, 1)})
    seen(dev, "push")
    return jsonify(body)


@bp.get("/health")
def health():
    device()
    return jsonify({"status": "ok", "serverTime": now()})


@bp.get("/pull")
def pull():
    hotel_id = request.args.get("hotel", "")
    dev = hotel(hotel_id)
    after = validation.ascii_int(request.args.get("after"), "after", 0)
    limit = validation.ascii_int(request.args.get("limit"), "limit", 500)
    if limit < 1:
        raise ValidationError("after must be >= 0 and limit >= 1", {"fields": [{"field": "after"}]})
    body = changelog.page(g.db, hotel_id, after, limit)
    # 410 CURSOR_EXPIRED (re-sync from the snapshot) if changes after `after` were purged;
    # asked after the page, so a purge that commits in between is never passed over
    retention.check_cursor(g.db, hotel_id, after)
    body["serverTime"] = now()
    seen(dev, "pull")
    return jsonify(body)


@bp.get("/snapshot")
def snapshot_page():
    hotel_id = request.args.get("hotel", "")
    dev = hotel(hotel_id)
    limit = validation.ascii_int(request.args.get("limit"), "limit", 500)
    if limit < 1:
        raise ValidationError("limit must be >= 1", {"fields": [{"field": "limit"}]})
    body = snapshot.page(g.db, hotel_id, request.args.get("page") or None, limit, now())
    body["serverTime"] = now()
    seen(dev, "pull")
    return jsonify(body)
