"""night-audit: the end-of-day checks of a business date, on the folio data.

Findings (``type``, ``confirmation``, ``chargeIds``, ``amount``, ``severity``,
``confidence``, ``detail``):

* DUPLICATE_CHARGE — the same reservation, code and amount posted again within
  ``DUP_WINDOW`` of the posting before it on the date, and not reversed by a matching
  negative charge; one finding per duplicate posting (``chargeIds``: the first of the
  run, the duplicate).  A legitimate charge of the same code and amount hours apart is a
  run of its own and hides nothing;
* MISSING_ROOM_CHARGE — a night in house with no ROOM charge;
* RATE_MISMATCH — the ROOM charge differs from the reservation's (or its rate plan's) rate;
* TAX_MISMATCH — the TAX posted for the night differs from room charge × the plan's tax rate;
* OPEN_BALANCE — checked out on the date with charges and payments not summing to zero;
* NO_SHOW_CANDIDATE — due to arrive on the date, still only Confirmed.

Exports that leave out the optional reservation columns (docs/property-data.md) are
audited too (:func:`terms`): the room type comes from the room when the reservation
has none; without a rate plan code, the plans of the room type (or all the hotel's)
are the candidates — a rate they agree on is expected, and a room charge that matches
none of them is a RATE_MISMATCH; the tax rate is the matched plan's, or the rate all
candidates share, or any candidate's that the posted tax fits.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from pydantic import BaseModel, ConfigDict

from ..validation import parse
from .base import Context, ModelSpec, Result

CENT = 0.01
DUP_WINDOW = timedelta(minutes=30)


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    businessDate: date | None = None


def _finding(type_, confirmation, charge_ids, amount, severity, confidence, detail):
    return {"type": type_, "confirmation": confirmation, "chargeIds": charge_ids, "amount": round(amount, 2),
            "severity": severity, "confidence": confidence, "detail": detail}


def duplicates(cs: list[dict]) -> list[tuple[dict, dict]]:
    """(first of its run, duplicate) for every posting repeated within ``DUP_WINDOW`` of the one
    before it (same code and amount), less those a matching negative charge reversed."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for c in cs:
        groups[(c["code"], round(c["amount"], 2))].append(c)
    out = []
    for (code, amount), same in groups.items():
        if len(same) < 2 or amount <= 0:
            continue
        same = sorted(same, key=lambda c: (c["posted_at"], c["charge_id"]))
        dups, first, prev = [], same[0], datetime.fromisoformat(same[0]["posted_at"])
        for c in same[1:]:
            t = datetime.fromisoformat(c["posted_at"])
            if t - prev <= DUP_WINDOW:
                dups.append((first, c))
            else:
                first = c  # hours apart: a charge of its own, the start of a new run
            prev = t
        reversals = len(groups.get((code, -amount), []))
        out += dups[reversals:]
    return out


@dataclass
class Terms:
    """What a reservation's night should cost: the expected room rate (None: unknown) and the
    tax rates a correct posting may have used (empty: unknown)."""

    rate: float | None
    taxes: tuple[float, ...]
    confidence: float  # of a mismatch against these terms


def terms(r: dict, room_type: str | None, plans: list[dict], room_amount: float | None,
          folio_rates: list[float]) -> Terms:
    """The terms of a reservation from whatever columns its export has (see the module doc)."""
    cands = [p for p in plans if (not r.get("rate_plan") or p["code"] == r["rate_plan"])
             and (not room_type or p["room_type"] == room_type)]
    rates = sorted({round(p["nightly_rate"], 2) for p in cands})
    exact = r.get("rate_plan") and room_type
    if r.get("nightly_rate") is not None:
        rate, conf = float(r["nightly_rate"]), 0.85
    elif len(rates) == 1:
        rate, conf = rates[0], 0.85 if exact else 0.8
    elif room_amount is not None and any(abs(room_amount - x) <= CENT for x in rates):
        rate, conf = room_amount, 0.8  # one of the candidate plans' rates: consistent
    elif rates:
        # matches none of the plans it could be on: expect what the stay's other nights were
        # charged if that is a plan rate, else the nearest plan rate
        usual = Counter(round(x, 2) for x in folio_rates if any(abs(x - y) <= CENT for y in rates)).most_common(1)
        rate = usual[0][0] if usual else min(rates, key=lambda x: abs(x - (room_amount or 0.0)))
        conf = 0.7
    else:
        rate, conf = None, 0.85
    matched = [p for p in cands if rate is not None and abs(p["nightly_rate"] - rate) <= CENT] or cands
    taxes = tuple(sorted({round(p["tax_rate"], 6) for p in matched}))
    return Terms(rate, taxes, conf)


def run(ctx: Context, payload: dict) -> Result:
    p = parse(Payload, payload)
    day = p.businessDate or (ctx.today() - timedelta(days=1))
    d = day.isoformat()
    db, hotel = ctx.db, ctx.hotel_id
    res = {r["confirmation"]: r for r in db.query(
        "SELECT * FROM reservations WHERE hotel_id = ? AND arrival <= ? AND departure >= ?", [hotel, d, d])}
    plans = list(db.query("SELECT * FROM rate_plans WHERE hotel_id = ?", [hotel]))
    room_types = dict(db.execute("SELECT room_number, room_type FROM rooms WHERE hotel_id = ?", [hotel]).fetchall())
    charges = list(db.query("SELECT * FROM charges WHERE hotel_id = ? AND substr(posted_at, 1, 10) = ?"
                            " ORDER BY posted_at, charge_id", [hotel, d]))
    by_res: dict[str, list[dict]] = defaultdict(list)
    for c in charges:
        by_res[c["confirmation"]].append(c)
    findings: list[dict] = []

    for conf, cs in by_res.items():
        for first, dup in duplicates(cs):
            findings.append(_finding("DUPLICATE_CHARGE", conf, [first["charge_id"], dup["charge_id"]], dup["amount"],
                                     "high", 0.95, f"{dup['code']} {dup['amount']:.2f} posted again at "
                                                   f"{dup['posted_at'][11:16]} (first at {first['posted_at'][11:16]})"))

    def stay_terms(r: dict, room_amount: float | None) -> Terms:
        room_type = r.get("room_type") or room_types.get(r.get("room_number"))
        folio = [x for x, in db.execute("SELECT amount FROM charges WHERE hotel_id = ? AND confirmation = ? AND"
                                        " code = 'ROOM' AND amount > 0", [hotel, r["confirmation"]])] \
            if r.get("nightly_rate") is None else []
        return terms(r, room_type, plans, room_amount, folio)

    # the night of `day`: in house (arrived on or before, leaving after)
    for conf, r in res.items():
        if not (r["arrival"] <= d < r["departure"]) or r["status"] not in ("InHouse", "CheckedOut"):
            continue
        rooms = [c for c in by_res.get(conf, []) if c["code"] == "ROOM" and c["amount"] > 0]
        reversed_room = [c for c in by_res.get(conf, []) if c["code"] == "ROOM" and c["amount"] < 0]
        if len(rooms) - len(reversed_room) <= 0:
            expected = stay_terms(r, None).rate
            findings.append(_finding("MISSING_ROOM_CHARGE", conf, [], expected or 0.0, "high", 0.9,
                                     f"in house on {d} with no room charge"))
            continue
        room = rooms[0]
        t = stay_terms(r, room["amount"])
        if t.rate is not None and abs(room["amount"] - t.rate) > CENT:
            findings.append(_finding("RATE_MISMATCH", conf, [room["charge_id"]], room["amount"] - t.rate, "medium",
                                     t.confidence, f"room charged {room['amount']:.2f}, rate {t.rate:.2f}"))
        if t.taxes:
            taxes = [c for c in by_res.get(conf, []) if c["code"] == "TAX"]
            posted = sum(c["amount"] for c in taxes)
            dues = [round(room["amount"] * x, 2) for x in t.taxes]
            if all(abs(posted - due) > CENT for due in dues):
                due, rate = min(zip(dues, t.taxes, strict=True), key=lambda x: abs(posted - x[0]))
                findings.append(_finding("TAX_MISMATCH", conf, [c["charge_id"] for c in taxes], posted - due, "low",
                                         0.8, f"tax posted {posted:.2f}, due {due:.2f} at {rate:.2%}"))

    # checked out on the day with a balance
    for r in db.query("SELECT confirmation FROM reservations WHERE hotel_id = ? AND status = 'CheckedOut'"
                      " AND departure = ?", [hotel, d]):
        bal = db.execute("SELECT coalesce(sum(amount), 0), group_concat(charge_id) FROM charges WHERE hotel_id = ?"
                         " AND confirmation = ?", [hotel, r["confirmation"]]).fetchone()
        if abs(bal[0]) > CENT:
            findings.append(_finding("OPEN_BALANCE", r["confirmation"], [], bal[0], "high", 0.9,
                                     f"checked out with {bal[0]:.2f} open"))

    # due to arrive, never checked in
    for r in db.query("SELECT * FROM reservations WHERE hotel_id = ? AND arrival = ? AND status = 'Confirmed'",
                      [hotel, d]):
        findings.append(_finding("NO_SHOW_CANDIDATE", r["confirmation"], [], stay_terms(r, None).rate or 0.0, "medium",
                                 0.7, f"due on {d}, not checked in"))

    findings.sort(key=lambda f: ({"high": 0, "medium": 1, "low": 2}[f["severity"]], f["type"], f["confirmation"]))
    confidence = min((f["confidence"] for f in findings), default=1.0)
    return Result(confidence=confidence, findings=findings)


SPEC = ModelSpec(id="night-audit", run=run, roles=frozenset({"staff", "admin"}),
                 reads=("reservations", "charges", "rate_plans", "rooms"), timeout_seconds=20.0,
                 description="End-of-day checks of a business date: duplicates, missing room charges, "
                             "rate and tax mismatches, open balances, no-show candidates")
