"""The hotel-booking-demand dataset (Antonio, de Almeida & Nunes 2019; ../shared/data) as
reservations: the booking history forecasting and upsell learn from.

Each row of the named hotel becomes a reservation: a stable synthetic confirmation
(``HB-<hotel initials>-<row>``), ``room_type`` = reserved_room_type, arrival from the
arrival_date_* columns, departure = arrival + weekend + week nights, ``booked_on`` =
arrival − lead_time, status CheckedOut / Canceled / NoShow from reservation_status
(with ``canceled_on`` = reservation_status_date for cancellations), ``nightly_rate`` =
adr, ``segment`` = market_segment.  Rows with no nights are skipped (day use).
"""

from __future__ import annotations

import csv
import gzip
from datetime import date, timedelta
from pathlib import Path

from .. import store
from ..errors import ValidationError
from . import tables as property_tables

MONTHS = {m: i for i, m in enumerate(["January", "February", "March", "April", "May", "June", "July", "August",
                                      "September", "October", "November", "December"], start=1)}
STATUS = {"Check-Out": "CheckedOut", "Canceled": "Canceled", "No-Show": "NoShow"}


def _open(path: Path):
    return gzip.open(path, "rt", newline="", encoding="utf-8") if path.suffix == ".gz" else \
        path.open(newline="", encoding="utf-8")


def rows(path: str | Path, hotel_name: str):
    """Reservation dicts (without hotel_id) for the rows of ``hotel_name``."""
    path = Path(path)
    if not path.exists():
        raise ValidationError(f"no such file: {path}", {"file": str(path)})
    prefix = "HB-" + "".join(w[0] for w in hotel_name.split()).upper()
    found = False
    with _open(path) as f:
        for line, r in enumerate(csv.DictReader(f), start=2):
            if r.get("hotel") != hotel_name:
                continue
            found = True
            try:
                arrival = date(int(r["arrival_date_year"]), MONTHS[r["arrival_date_month"]],
                               int(r["arrival_date_day_of_month"]))
                nights = int(r["stays_in_weekend_nights"]) + int(r["stays_in_week_nights"])
                status = STATUS[r["reservation_status"]]
                children = int(float(r["children"])) if r["children"] not in ("", "NA") else 0
                row = {"confirmation": f"{prefix}-{line}", "guest_name": "", "room_type": r["reserved_room_type"],
                       "arrival": arrival.isoformat(), "departure": (arrival + timedelta(days=nights)).isoformat(),
                       "status": status, "adults": int(r["adults"]), "children": children,
                       "nightly_rate": float(r["adr"]), "segment": r["market_segment"],
                       "booked_on": (arrival - timedelta(days=int(r["lead_time"]))).isoformat(),
                       "canceled_on": r["reservation_status_date"] if status == "Canceled" else None,
                       "currency": "EUR", "language": "en"}
            except (KeyError, ValueError) as e:
                raise ValidationError(f"{path.name} line {line}: {e}", {"file": path.name, "line": line}) from None
            if nights > 0:
                yield row
    if not found:
        raise ValidationError(f"no rows for hotel {hotel_name!r} in {path.name}", {"hotel": hotel_name})


def import_bookings(db, path, hotel_id: str, hotel_name: str, progress=None, batch: int = 5000) -> int:
    """Replace the hotel's HB-* reservations with the dataset's rows for ``hotel_name``; one transaction."""
    data = list(rows(path, hotel_name))
    with store.transaction(db):
        property_tables.clear(db, hotel_id, "reservations", column="confirmation", prefix="HB-")
        for i in range(0, len(data), batch):
            chunk = data[i:i + batch]
            property_tables.insert_many(db, hotel_id, "reservations", chunk)
            if progress:
                progress(len(chunk))
    return len(data)
