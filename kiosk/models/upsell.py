"""upsell-engine: the three offers most worth showing a guest, with reasons.

Eligible: in stock (inventory > 0 or unlimited); add-ons always; an upgrade only from
the booked room type and only if a room of the target type is free on EVERY night of
the stay (rooms of that type minus reservations of that type overlapping the night).
Ranked by expected margin = acceptance probability × margin, the probability learned
from offer history per segment with Beta smoothing towards the offer's overall rate
(prior weight ``K``), so a segment with few showings borrows from the rest.
"""

from __future__ import annotations

from datetime import date, timedelta

from pydantic import BaseModel, ConfigDict

from ..errors import NotFound
from ..validation import parse
from .base import Context, ModelSpec, Result, own_confirmation

K = 10.0
PRIOR = (1.0, 9.0)  # a 10 % acceptance rate before any history


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    confirmation: str | None = None
    userId: str | None = None  # the seed's name for the guest (= confirmation)


def free_every_night(db, hotel: str, room_type: str, arrival: str, departure: str) -> bool:
    total = db.execute("SELECT count(*) FROM rooms WHERE hotel_id = ? AND room_type = ? AND status NOT IN"
                       " ('OutOfOrder', 'OutOfService')", [hotel, room_type]).fetchone()[0]
    d, end = date.fromisoformat(arrival), date.fromisoformat(departure)
    while d < end:
        n = d.isoformat()
        taken = db.execute("SELECT count(*) FROM reservations WHERE hotel_id = ? AND room_type = ? AND arrival <= ?"
                           " AND departure > ? AND status IN ('Confirmed', 'InHouse')", [hotel, room_type, n, n]
                           ).fetchone()[0]
        if taken >= total:
            return False
        d += timedelta(days=1)
    return True


def run(ctx: Context, payload: dict) -> Result:
    p = parse(Payload, payload)
    conf = own_confirmation(ctx, p.confirmation or p.userId)
    rows = list(ctx.db.query("SELECT * FROM reservations WHERE hotel_id = ? AND confirmation = ?",
                             [ctx.hotel_id, conf]))
    if not rows:
        raise NotFound(f"no reservation {conf!r}", {"confirmation": conf})
    r = rows[0]
    hist: dict[tuple, list[int]] = {}
    for offer_id, segment, shown, accepted in ctx.db.execute(
            "SELECT h.offer_id, coalesce(res.segment, ''), count(*), sum(h.accepted) FROM offer_history h"
            " LEFT JOIN reservations res ON res.hotel_id = h.hotel_id AND res.confirmation = h.confirmation"
            " WHERE h.hotel_id = ? GROUP BY h.offer_id, coalesce(res.segment, '')", [ctx.hotel_id]):
        hist[(offer_id, segment)] = [shown, accepted]
    ranked = []
    for o in ctx.db.query("SELECT * FROM offers WHERE hotel_id = ? AND (inventory IS NULL OR inventory > 0)",
                          [ctx.hotel_id]):
        if o["type"] == "upgrade":
            if o["room_type_from"] != r["room_type"] or not o["room_type_to"]:
                continue
            if not free_every_night(ctx.db, ctx.hotel_id, o["room_type_to"], r["arrival"], r["departure"]):
                continue
        shown_all = sum(v[0] for (oid, _), v in hist.items() if oid == o["offer_id"])
        acc_all = sum(v[1] for (oid, _), v in hist.items() if oid == o["offer_id"])
        base = (acc_all + PRIOR[0]) / (shown_all + PRIOR[0] + PRIOR[1])
        shown, accepted = hist.get((o["offer_id"], r["segment"] or ""), [0, 0])
        prob = (accepted + K * base) / (shown + K)
        ranked.append({"offerId": o["offer_id"], "name": o["name"], "type": o["type"], "price": o["price"],
                       "probability": round(prob, 4), "expectedMargin": round(prob * o["margin"], 2),
                       "reason": f"{accepted}/{shown} accepted in segment {r['segment'] or '-'}, "
                                 f"{acc_all}/{shown_all} overall; margin {o['margin']:.2f}"
                                 + ("; a room is free every night" if o["type"] == "upgrade" else "")})
    ranked.sort(key=lambda x: (-x["expectedMargin"], x["offerId"]))
    return Result(confidence=0.8 if hist else 0.3, outputs={"confirmation": conf, "offers": ranked[:3]})


SPEC = ModelSpec(id="upsell-engine", run=run, roles=frozenset({"guest", "staff", "admin"}),
                 reads=("reservations", "offers", "offer_history", "rooms"), timeout_seconds=15.0,
                 description="Top three eligible offers by smoothed acceptance probability x margin")
