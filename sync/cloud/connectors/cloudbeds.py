"""Cloudbeds PMS connector: reservations in; folio charges and housekeeping status out.

Contract:
- Every call carries the API key in `x-api-key` (the `api_key` security scheme both
  published specs declare); v2.0 calls also carry `x-property-id`.
- Reservations come from v1.3 `GET /getReservations` with `includeAllRooms=true` (for the
  room name), paged by `pageNumber`/`pageSize` (at most 100) until `total` is reached.
  `confirmation` and `pms_id` are both Cloudbeds' `reservationID`: it is the number
  Cloudbeds prints on its confirmations, unique in the property, and the id every write
  takes. `thirdPartyIdentifier` (an OTA's number) is neither unique nor always present,
  so it is not used.
- An offer taken is posted as a v2.0 folio check (`POST /folio/v1/checks`). The
  `Idempotency-Key` (and the check's `checkId`) is derived from the caller's `reference`
  only, and the body holds nothing time-dependent, so a retry after a lost answer sends the
  same key and the same body and Cloudbeds replays the first posting. A 409
  `IDEMPOTENCY_KEY_REUSED` (same key, other body) is permanent. No lookup is needed before
  resending, so there is no `find_item`.
- Housekeeping status is v1.3 `POST /postHousekeepingStatus` (form-encoded).
- Failures raise `PmsError`; the connector never sleeps or retries: the caller's outbox
  decides when. 429/503 carry Retry-After (seconds or an HTTP date, read against the
  injected clock); timeouts, lost connections, other 5xx and 401 (an API key rotated or revoked: the hotel
  fixes the link, and nothing waiting is lost) are retryable; other 4xx, and
  a v1.3 answer `success: false`, are permanent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from decimal import Decimal
from email.utils import parsedate_to_datetime

import requests

from sync.cloud.connectors.errors import PmsError

V1 = "/api/v1.3"
PAGE_SIZE = 100  # getReservations: "Max = 100"
TIMEOUT = 15.0

# Cloudbeds reservation status -> the kiosk's reservation status.
STATUS_MAP = {
    "not_confirmed": "Confirmed",
    "confirmed": "Confirmed",
    "checked_in": "InHouse",
    "checked_out": "CheckedOut",
    "canceled": "Canceled",
    "no_show": "Canceled",
}

# The kiosk's room status -> postHousekeepingStatus form fields.  Cloudbeds has no
# housekeeping value for out of order / out of service: those are room blocks.
ROOM_STATUS_FIELDS = {
    "Clean": {"roomCondition": "clean", "vacantPickup": "false"},
    "Dirty": {"roomCondition": "dirty", "vacantPickup": "false"},
    "Inspected": {"roomCondition": "inspected", "vacantPickup": "false"},
    "Pickup": {"roomCondition": "dirty", "vacantPickup": "true"},
}

# ISO 4217 minor-unit exponents that are not 2 (v2.0 money is in minor units).
_EXPONENT = {"JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "VND": 0, "XOF": 0, "XAF": 0, "PYG": 0,
             "UGX": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3, "IQD": 3, "LYD": 3}


def idempotency_key(property_id: str, reference: str) -> str:
    """The key (and checkId) for a posting: stable for a reference, letters/digits/'-' only."""
    digest = hashlib.sha256(f"{property_id}:{reference}".encode()).hexdigest()[:40]
    return f"kiosk-{digest}"


def minor_units(amount, currency: str) -> str:
    """`amount` in major units (e.g. Decimal('12.50')) as a string of minor units ('1250')."""
    scaled = Decimal(str(amount)).scaleb(_EXPONENT.get(currency.upper(), 2))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} {currency} has more decimals than the currency")
    return str(int(scaled))


class CloudbedsConnector:
    """One property's Cloudbeds API, over a plain `requests.Session`."""

    def __init__(self, base_url: str, property_id: str, credentials: dict, clock,
                 session: requests.Session | None = None, timeout: float = TIMEOUT):
        self.base_url = base_url.rstrip("/")
        self.property_id = str(property_id)
        self.clock = clock
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers["x-api-key"] = credentials["api_key"]

    # -- transport ---------------------------------------------------------------------------
    def _retry_after(self, value: str | None) -> float | None:
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - self.clock.now())
        except (TypeError, ValueError):
            return None

    def _call(self, method: str, path: str, what: str, **kw) -> dict:
        try:
            resp = self.session.request(method, self.base_url + path, timeout=self.timeout, **kw)
        except requests.RequestException as exc:  # timeout, refused, reset: no answer
            raise PmsError(f"{what}: {exc.__class__.__name__}: {exc}", permanent=False) from exc
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        status = resp.status_code
        if status >= 400:
            detail = body.get("message") or resp.reason
            code = body.get("code")
            text = f"{what}: HTTP {status}" + (f" {code}" if code else "") + f": {detail}"
            if status in (429, 503):
                raise PmsError(text, status, self._retry_after(resp.headers.get("Retry-After")), permanent=False)
            permanent = 400 <= status < 500 and status not in (401, 408)  # a key rotated: fix it, lose nothing
            raise PmsError(text, status, permanent=permanent)
        if body.get("success") is False:
            raise PmsError(f"{what}: {body.get('message') or 'success: false'}", status, permanent=True)
        if not body:
            raise PmsError(f"{what}: HTTP {status} without a JSON answer", status, permanent=False)
        return body

    # -- reservations ------------------------------------------------------------------------
    def read_reservations(self, page_size: int = PAGE_SIZE, **filters) -> Iterator[dict]:
        """Every reservation (optionally filtered with getReservations' own parameters, e.g.
        ``status="checked_in"``) in the kiosk's columns, page by page."""
        page_size = min(page_size, PAGE_SIZE)
        number, seen = 1, 0
        while True:
            params = {"propertyID": self.property_id, "includeAllRooms": "true",
                      "pageNumber": number, "pageSize": page_size, **filters}
            body = self._call("GET", f"{V1}/getReservations", "getReservations", params=params)
            rows = body.get("data") or []
            for row in rows:
                yield self.map_reservation(row)
            seen += len(rows)
            if not rows or seen >= int(body.get("total") or 0):
                return
            number += 1

    @staticmethod
    def map_reservation(row: dict) -> dict:
        rooms = [r for r in row.get("rooms") or [] if r.get("roomStatus") != "cancelled"]
        names = [r["roomName"] for r in rooms if r.get("roomName")]
        return {
            "confirmation": row["reservationID"],
            "guest_name": row.get("guestName") or None,
            "room_number": names[0] if names else None,
            "arrival": row.get("startDate"),
            "departure": row.get("endDate"),
            "status": STATUS_MAP.get(row.get("status"), "Confirmed"),
            "pms_id": row["reservationID"],
        }

    #: the actions of the cloud's PMS outbox it sends (sync/cloud/pms_outbox.py); all of them
    #: are safe to send again (the folio check by its Idempotency-Key, the status as a state).
    #: Cloudbeds' public API has no service requests, so guest requests stay in the cloud.
    ACTIONS = frozenset({"charge", "room_status"})
    IDEMPOTENT = frozenset({"charge", "room_status"})

    @classmethod
    def from_link(cls, url: str, pms_hotel: str, credentials: dict, clock=None, session=None):
        return cls(url, pms_hotel, credentials, clock, session=session)

    def send(self, action: str, data: dict, reference: str) -> str | None:
        if action == "charge":
            out = self.post_item(data["pmsId"], amount=data["amount"], currency=data["currency"],
                                 name=data["description"], reference=reference)
            return out.get("check_id") or reference
        if action == "room_status":
            self.set_room_status(data["room"], data["status"])
            return data["room"]
        raise PmsError(f"Cloudbeds connector cannot send {action!r}", permanent=True)

    def find(self, action: str, data: dict, reference: str) -> str | None:
        return None  # every action is idempotent: sent again, never looked up

    # -- folio -------------------------------------------------------------------------------
    def post_item(self, reservation_id: str, *, amount, currency: str, name: str, reference: str,
                  sku: str = "KIOSK-OFFER") -> dict:
        """Charge an offer to the reservation's default folio, exactly once per `reference`.
        Returns ``{"check_id", "check_number", "replayed"}``."""
        key = idempotency_key(self.property_id, reference)
        body = {
            "checkId": key,
            "reservationId": str(reservation_id),
            "items": [{
                "itemType": "PRODUCT",
                "itemName": name,
                "itemQuantity": 1,
                "itemAmount": {"amount": minor_units(amount, currency), "currencyCode": currency.upper()},
                "itemNote": f"kiosk {reference}",
                "details": {"itemSku": sku},
            }],
        }
        headers = {"x-property-id": self.property_id, "Idempotency-Key": key}
        answer = self._call("POST", "/folio/v1/checks", "createCheck", json=body, headers=headers)
        data = answer.get("data") or {}
        return {"check_id": data.get("checkId"), "check_number": data.get("checkNumber"),
                "replayed": bool(data.get("notice"))}

    # -- housekeeping ------------------------------------------------------------------------
    def set_room_status(self, room_id: str, status: str, *, comments: str | None = None) -> dict:
        """Set a room's housekeeping status: Clean, Dirty, Inspected or Pickup."""
        fields = ROOM_STATUS_FIELDS.get(status)
        if fields is None:
            raise PmsError(f"postHousekeepingStatus: Cloudbeds has no housekeeping status {status!r}",
                           permanent=True)
        form = {"propertyID": self.property_id, "roomID": str(room_id), **fields}
        if comments is not None:
            form["roomComments"] = comments
        answer = self._call("POST", f"{V1}/postHousekeepingStatus", "postHousekeepingStatus", data=form)
        return answer.get("data") or {}
