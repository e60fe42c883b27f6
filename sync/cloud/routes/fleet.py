"""Fleet health for the central office: a hotel's devices, or those of every hotel the
credential serves (sync/cloud/fleet.py)."""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request

from kiosk.errors import ValidationError

from .. import fleet
from .common import device, hotel, now

bp = Blueprint("fleet", __name__)


@bp.get("/v1/hotels/<hotel_id>/fleet")
def hotel_fleet(hotel_id: str):
    hotel(hotel_id)
    return jsonify(fleet.overview(g.db, [hotel_id], current_app.config["CLOUD_FLEET"], now()))


@bp.get("/v1/fleet")
def all_fleet():
    dev = device()
    return jsonify(fleet.overview(g.db, list(dev.hotels), current_app.config["CLOUD_FLEET"], now()))


@bp.post("/sync/v1/fleet/relayed")
def relayed_fleet():
    """A hub's report of the kiosks behind it (sync/cloud/relay.py): kept for the hotels it serves."""
    dev = device()
    body = request.get_json(silent=True)
    reported = body.get("devices") if isinstance(body, dict) else None
    if not isinstance(reported, list):
        raise ValidationError("a JSON object with a devices list is required", {"field": "devices"})
    return jsonify({"kept": fleet.relayed(g.db, dev.device_id, dev.hotels, reported, now())})
