"""pms-linking: match local guest records to PMS reservations.

Exact keys first (confirmation number, then e-mail); then fuzzy: candidates whose
arrival is within a day of the record's, scored by name similarity (rapidfuzz, on
names with accents folded and word order ignored, so "Müller, Anna" meets "Anna
Muller") and date agreement.  A record is ``linked`` above ``LINK`` with a clear
margin over the runner-up, ``ambiguous`` when two candidates are that close, else
``unmatched``.
"""

from __future__ import annotations

import unicodedata
from datetime import date

from pydantic import BaseModel, ConfigDict, Field
from rapidfuzz import fuzz

from ..validation import parse
from .base import Context, ModelSpec, Result

LINK = 0.85
MARGIN = 0.05


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")
    guestName: str = Field(min_length=1, max_length=200)
    arrival: date
    departure: date | None = None
    roomNumber: str | None = None
    confirmation: str | None = None
    email: str | None = None


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    records: list[Record] = Field(min_length=1, max_length=5000)


def fold(name: str) -> str:
    text = unicodedata.normalize("NFKD", name.replace(",", " ")).encode("ascii", "ignore").decode()
    return " ".join(text.lower().split())


def name_score(a: str, b: str) -> float:
    a, b = fold(a), fold(b)
    return max(fuzz.token_sort_ratio(a, b), fuzz.WRatio(a, b)) / 100


def run(ctx: Context, payload: dict) -> Result:
    p = parse(Payload, payload)
    res = list(ctx.db.query("SELECT confirmation, guest_name, arrival, departure, email, room_number FROM reservations"
                            " WHERE hotel_id = ?", [ctx.hotel_id]))
    by_conf = {r["confirmation"]: r for r in res}
    by_email = {(r["email"] or "").lower(): r for r in res if r["email"]}
    by_day: dict[int, list[dict]] = {}
    for r in res:
        by_day.setdefault(date.fromisoformat(r["arrival"]).toordinal(), []).append(r)
    links = []
    for rec in p.records:
        record = rec.model_dump(mode="json")
        if rec.confirmation and rec.confirmation in by_conf:
            links.append({"record": record, "confirmation": rec.confirmation, "score": 1.0, "method": "confirmation",
                          "status": "linked"})
            continue
        if rec.email and rec.email.lower() in by_email:
            links.append({"record": record, "confirmation": by_email[rec.email.lower()]["confirmation"], "score": 1.0,
                          "method": "email", "status": "linked"})
            continue
        day = rec.arrival.toordinal()
        scored = []
        for cand in by_day.get(day - 1, []) + by_day.get(day, []) + by_day.get(day + 1, []):
            date_score = 1.0 if date.fromisoformat(cand["arrival"]) == rec.arrival else 0.8
            if rec.departure and cand["departure"] != rec.departure.isoformat():
                date_score -= 0.2
            if rec.roomNumber and cand["room_number"] == rec.roomNumber:
                date_score = min(1.0, date_score + 0.1)
            scored.append((0.75 * name_score(rec.guestName, cand["guest_name"] or "") + 0.25 * date_score,
                           cand["confirmation"]))
        scored.sort(reverse=True)
        if scored and scored[0][0] >= LINK and (len(scored) == 1 or scored[0][0] - scored[1][0] >= MARGIN):
            links.append({"record": record, "confirmation": scored[0][1], "score": round(scored[0][0], 3),
                          "method": "fuzzy", "status": "linked"})
        elif scored and scored[0][0] >= LINK:
            links.append({"record": record, "confirmation": None, "score": round(scored[0][0], 3), "method": "fuzzy",
                          "status": "ambiguous", "candidates": [{"confirmation": c, "score": round(s, 3)}
                                                                for s, c in scored[:3]]})
        else:
            links.append({"record": record, "confirmation": None, "score": round(scored[0][0], 3) if scored else 0.0,
                          "method": "fuzzy", "status": "unmatched"})
    linked = sum(x["status"] == "linked" for x in links)
    return Result(confidence=round(linked / len(links), 3), outputs={"links": links})


SPEC = ModelSpec(id="pms-linking", run=run, roles=frozenset({"staff", "admin"}), reads=("reservations",),
                 timeout_seconds=20.0, description="Link local guest records to PMS reservations (exact, then fuzzy)")
