"""night-audit: the end-of-day checks of a business date, on the folio data.

Findings (``type``, ``confirmation``, ``chargeIds``, ``amount``, ``severity``,
``confidence``, ``detail``):

* DUPLICATE_CHARGE — the same reservation, code and amount posted twice within
  ``DUP_WINDOW`` minutes on the date, and not reversed by a matching negative charge;
* MISSING_ROOM_CHARGE — a night in house with no ROOM charge;
* RATE_MISMATCH — the ROOM charge differs from the reservation's (or its rate plan's) rate;
* TAX_MISMATCH — the TAX posted for the night differs from room charge × the plan's tax rate;
* OPEN_BALANCE — checked out on the date with charges and payments not summing to zero;
* NO_SHOW_CANDIDATE — due to arrive on the date, still only Confirmed.
"""

from __future__ import annotations

from collections import defaultdict
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


def run(ctx: Context, payload: dict) -> Result:
    p = parse(Payload, payload)
    day = p.businessDate or (ctx.today() - timedelta(days=1))
    d = day.isoformat()
    db, hotel = ctx.db, ctx.hotel_id
    res = {r["confirmation"]: r for r in db.query(
        "SELECT * FROM reservations WHERE hotel_id = ? AND arrival <= ? AND departure >= ?", [hotel, d, d])}
    plans = {(r["code"], r["room_type"]): r for r in db.query("SELECT * FROM rate_plans WHERE hotel_id = ?", [hotel])}
    charges = list(db.query("SELECT * FROM charges WHERE hotel_id = ? AND substr(posted_at, 1, 10) = ?"
                            " ORDER BY posted_at, charge_id", [hotel, d]))
    by_res: dict[str, list[dict]] = defaultdict(list)
    for c in charges:
        by_res[c["confirmation"]].append(c)
    findings: list[dict] = []

    # duplicates: same reservation, code and amount, close in time, not reversed
    for conf, cs in by_res.items():
        groups: dict[tuple, list[dict]] = defaultdict(list)
        for c in cs:
            groups[(c["code"], round(c["amount"], 2))].append(c)
        for (code, amount), same in groups.items():
            if len(same) < 2 or amount <= 0:
                continue
            reversals = len(groups.get((code, -amount), []))
            extra = len(same) - 1 - reversals
            times = [datetime.fromisoformat(c["posted_at"]) for c in same]
            close = max(times) - min(times) <= DUP_WINDOW
            if extra > 0 and close:
                findings.append(_finding("DUPLICATE_CHARGE", conf, [c["charge_id"] for c in same], amount * extra,
                                         "high", 0.95, f"{len(same)} × {code} {amount:.2f}"
                                         + (f", {reversals} reversed" if reversals else "")))

    # the night of `day`: in house (arrived on or before, leaving after)
    for conf, r in res.items():
        if not (r["arrival"] <= d < r["departure"]) or r["status"] not in ("InHouse", "CheckedOut"):
            continue
        rooms = [c for c in by_res.get(conf, []) if c["code"] == "ROOM" and c["amount"] > 0]
        reversed_room = [c for c in by_res.get(conf, []) if c["code"] == "ROOM" and c["amount"] < 0]
        if len(rooms) - len(reversed_room) <= 0:
            plan = plans.get((r["rate_plan"], r["room_type"]))
            expected = r["nightly_rate"] or (plan["nightly_rate"] if plan else 0.0)
            findings.append(_finding("MISSING_ROOM_CHARGE", conf, [], expected, "high", 0.9,
                                     f"in house on {d} with no room charge"))
            continue
        room = rooms[0]
        plan = plans.get((r["rate_plan"], r["room_type"]))
        expected = r["nightly_rate"] if r["nightly_rate"] is not None else (plan["nightly_rate"] if plan else None)
        if expected is not None and abs(room["amount"] - expected) > CENT:
            findings.append(_finding("RATE_MISMATCH", conf, [room["charge_id"]], room["amount"] - expected, "medium",
                                     0.85, f"room charged {room['amount']:.2f}, rate {expected:.2f}"))
        if plan is not None:
            taxes = [c for c in by_res.get(conf, []) if c["code"] == "TAX"]
            posted = sum(c["amount"] for c in taxes)
            due = round(room["amount"] * plan["tax_rate"], 2)
            if abs(posted - due) > CENT:
                findings.append(_finding("TAX_MISMATCH", conf, [c["charge_id"] for c in taxes], posted - due, "low",
                                         0.8, f"tax posted {posted:.2f}, due {due:.2f} at {plan['tax_rate']:.2%}"))

    # checked out on the day with a balance
    for r in db.query("SELECT confirmation FROM reservations WHERE hotel_id = ? AND status = 'CheckedOut'"
                      " AND departure = ?", [hotel, d]):
        bal = db.execute("SELECT coalesce(sum(amount), 0), group_concat(charge_id) FROM charges WHERE hotel_id = ?"
                         " AND confirmation = ?", [hotel, r["confirmation"]]).fetchone()
        if abs(bal[0]) > CENT:
            findings.append(_finding("OPEN_BALANCE", r["confirmation"], [], bal[0], "high", 0.9,
                                     f"checked out with {bal[0]:.2f} open"))

    # due to arrive, never checked in
    for r in db.query("SELECT confirmation, nightly_rate FROM reservations WHERE hotel_id = ? AND arrival = ?"
                      " AND status = 'Confirmed'", [hotel, d]):
        findings.append(_finding("NO_SHOW_CANDIDATE", r["confirmation"], [], r["nightly_rate"] or 0.0, "medium", 0.7,
                                 f"due on {d}, not checked in"))

    findings.sort(key=lambda f: ({"high": 0, "medium": 1, "low": 2}[f["severity"]], f["type"], f["confirmation"]))
    confidence = min((f["confidence"] for f in findings), default=1.0)
    return Result(confidence=confidence, findings=findings)


SPEC = ModelSpec(id="night-audit", run=run, roles=frozenset({"staff", "admin"}),
                 reads=("reservations", "charges", "rate_plans"), timeout_seconds=20.0,
                 description="End-of-day checks of a business date: duplicates, missing room charges, "
                             "rate and tax mismatches, open balances, no-show candidates")
