"""billing-detection: corrections for the night audit's findings, and outlier charges.

Each night-audit finding of the business date gets a proposed correction — reverse
the duplicate, post the missing room charge, correct the rate or the tax, chase the
open balance — as an UPDATE_PMS action that waits for staff approval.  Each correction
is proposed once for what it is about (:func:`subject`: the duplicate charge to reverse,
the folio's night, the charge to correct): running again, on a schedule after a manual
run, or at a second kiosk proposes nothing new (kiosk/models/actions.py).  Separately,
every charge of the date is scored against the hotel's history of its charge code
with a robust z-score (median and MAD, so a few wild values do not hide each other);
|z| above ``Z_LIMIT`` is an outlier finding.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import numpy as np
from pydantic import BaseModel, ConfigDict

from ..validation import parse
from . import night_audit
from .base import Action, Context, ModelSpec, Result

Z_LIMIT = 3.5
MIN_HISTORY = 20


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    businessDate: str | None = None


def correction(f: dict) -> dict:
    t, amount = f["type"], f["amount"]
    if t == "DUPLICATE_CHARGE":
        return {"entity": "charge", "id": f["chargeIds"][-1], "changes": {"reverse": True, "amount": -amount},
                "reason": "reverse the duplicate posting"}
    if t == "MISSING_ROOM_CHARGE":
        return {"entity": "folio", "id": f["confirmation"], "changes": {"post": "ROOM", "amount": amount},
                "reason": "post the missing room charge"}
    if t in ("RATE_MISMATCH", "TAX_MISMATCH"):
        return {"entity": "charge", "id": f["chargeIds"][0], "changes": {"adjust": -amount},
                "reason": "correct the rate" if t == "RATE_MISMATCH" else "correct the tax"}
    if t == "OPEN_BALANCE":
        return {"entity": "folio", "id": f["confirmation"], "changes": {"collect": amount},
                "reason": "collect the open balance (city ledger or card on file)"}
    return {"entity": "reservation", "id": f["confirmation"], "changes": {"status": "NoShow"},
            "reason": "mark as no-show (and charge per policy)"}


def subject(f: dict, day: str) -> str:
    """What a correction is about, from the data alone (the same at every kiosk, in every run)."""
    t, conf = f["type"], f["confirmation"]
    if t == "DUPLICATE_CHARGE":
        return f"reverse duplicate charge {f['chargeIds'][-1]}"  # one finding per duplicate posting
    if t == "RATE_MISMATCH":
        return f"correct the rate of charge {f['chargeIds'][0]}"
    if t == "OPEN_BALANCE":
        return f"collect the balance of folio {conf}"
    if t == "NO_SHOW_CANDIDATE":
        return f"no-show {conf}"
    return f"{t} folio {conf} night {day}"


def run(ctx: Context, payload: dict) -> Result:
    p = parse(Payload, payload)
    audit = night_audit.run(ctx, {"businessDate": p.businessDate} if p.businessDate else {})
    day = p.businessDate or (ctx.today() - timedelta(days=1)).isoformat()
    findings, actions = [], []
    for f in audit.findings:
        fix = correction(f)
        findings.append({**f, "correction": fix})
        actions.append(Action("UPDATE_PMS", {**fix, "requiresApproval": True, "finding": f["type"]},
                              subject=subject(f, day)))
    history: dict[str, list[float]] = defaultdict(list)
    for code, amount in ctx.db.execute("SELECT code, amount FROM charges WHERE hotel_id = ? AND amount > 0"
                                       " AND substr(posted_at, 1, 10) < ?", [ctx.hotel_id, day]):
        history[code].append(amount)
    for c in ctx.db.query("SELECT * FROM charges WHERE hotel_id = ? AND amount > 0 AND substr(posted_at, 1, 10) = ?",
                          [ctx.hotel_id, day]):
        values = np.array(history.get(c["code"], []))
        if len(values) < MIN_HISTORY:
            continue
        med = float(np.median(values))
        mad = float(np.median(np.abs(values - med))) or 1e-9
        z = 0.6745 * (c["amount"] - med) / mad
        if abs(z) > Z_LIMIT:
            findings.append({"type": "OUTLIER_CHARGE", "confirmation": c["confirmation"], "chargeIds": [c["charge_id"]],
                             "amount": c["amount"], "severity": "medium", "confidence": 0.7, "score": round(z, 2),
                             "detail": f"{c['code']} {c['amount']:.2f} against a median of {med:.2f}"})
    return Result(confidence=audit.confidence, findings=findings, actions=actions)


SPEC = ModelSpec(id="billing-detection", run=run, roles=frozenset({"staff", "admin"}),
                 reads=("reservations", "charges", "rate_plans", "rooms"), timeout_seconds=20.0,
                 description="Corrections for night-audit findings (awaiting approval) and outlier charges")
