"""The central office's read side: what the cloud holds for a hotel."""

from __future__ import annotations

from flask import Blueprint, g, jsonify

from .. import changelog, tickets, workorders
from .common import hotel

bp = Blueprint("hotels", __name__, url_prefix="/v1/hotels/<hotel_id>")

#: path, the answer's key, and what lists it
LISTINGS = (("tickets", "tickets", tickets.list_for_hotel),
            ("work-orders", "workOrders", workorders.list_for_hotel),
            ("conflicts", "conflicts", changelog.conflicts_for_hotel),
            ("security-events", "securityEvents", changelog.security_events_for_hotel))


def _listing(key: str, lister):
    def read(hotel_id: str):
        hotel(hotel_id)
        return jsonify({key: lister(g.db, hotel_id)})
    return read


for _suffix, _key, _lister in LISTINGS:
    bp.add_url_rule(f"/{_suffix}", f"hotel_{_key}", _listing(_key, _lister), methods=["GET"])
