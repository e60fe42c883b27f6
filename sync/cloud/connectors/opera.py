"""Oracle OPERA Cloud (OHIP) connector: reservations in; charges, service requests, room
statuses and room maintenances out.

Contract:
- One OAuth token (password grant, `POST /oauth/v1/tokens`) is shared by all calls; it is
  renewed shortly before `expires_in` runs out (by the injected clock) and once more when
  OPERA answers 401.
- Every call carries `Authorization: Bearer`, `x-app-key` and `x-hotelid`.
- OPERA takes no idempotency key. A write whose answer was lost is looked up before it is
  sent again: charges by `postingReference` (`find_charge`), service requests by a
  `[ref:...]` tag in their comment (`find_service_request`), room maintenances by a
  `[ref:...]` tag in their remarks (`find_maintenance`; OPERA answers their create with no
  id, so `post_maintenance` finds its id the same way).
- Resolving a maintenance is safe to send twice: when OPERA refuses a resolve (400/409/422)
  the maintenance is looked up, and one already resolved counts as done.
- Failures raise `PmsError`; the connector itself never sleeps or retries (except the one
  token renewal on 401): the caller's outbox decides when to try again.
- Bodies follow the published Swagger specs. Fields typed `format: date` with
  `maxLength: 8` (e.g. `incomeAuditDate`, a maintenance's `resolveDate`) can hold no valid
  value, so they are never sent nor relied on: a maintenance is resolved when OPERA lists
  `resolveInfo` for it. Its remarks hold at most 2,000 characters: a long remark is cut,
  never the `[ref:...]` tag.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import quote

import requests

from sync.cloud.connectors.errors import PmsError

PAGE_SIZE = 200
TOKEN_MARGIN = 60  # seconds before expiry at which the token is renewed

# OPERA reservationStatus (pMS_ResStatusType) -> the kiosk's reservation status.
STATUS_MAP = {
    "Reserved": "Confirmed",
    "Requested": "Confirmed",
    "Waitlisted": "Confirmed",
    "DueIn": "Confirmed",
    "InHouse": "InHouse",
    "DueOut": "InHouse",
    "Walkin": "InHouse",
    "PendingCheckout": "InHouse",
    "CheckedOut": "CheckedOut",
    "Cancelled": "Canceled",
    "NoShow": "Canceled",
}

SERVICE_REQUEST_STATUSES = ("Open", "PendingFollowUp", "Closed", "DoNotDisturb", "MakeUpRoom")
ROOM_STATUSES = ("Clean", "Dirty", "Pickup", "Inspected", "OutOfOrder", "OutOfService")
REMARKS_MAX = 2000  # roomMaintenanceRequestType / roomMaintenanceChangeType .remarks maxLength


class _WallClock:
    def now(self) -> float:
        return time.time()


def _text(value) -> str | None:
    if value is None:
        return None
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _ref_tag(reference: str) -> str:
    return f"[ref:{reference}]"


def _with_tag(text: str | None, reference: str, limit: int = REMARKS_MAX) -> str:
    """`text` and the reference's tag within `limit` characters: the text is cut, not the tag."""
    tag = _ref_tag(reference)
    text = (text or "").strip()[:max(0, limit - len(tag) - 1)].rstrip()
    return f"{text} {tag}".strip()


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP-date: rare from OPERA; the caller's backoff applies


class OperaConnector:
    """A client for one OPERA property (`pms_hotel_id`)."""

    #: the actions of the cloud's PMS outbox it sends (sync/cloud/pms_outbox.py), and those
    #: the PMS itself makes safe to send twice (a PUT of a state); the others are looked up
    #: with :meth:`find` before they are sent again after an answer that never came
    ACTIONS = frozenset({"charge", "service_request", "service_request_status", "room_status",
                         "maintenance", "maintenance_resolve"})
    IDEMPOTENT = frozenset({"service_request_status", "room_status", "maintenance_resolve"})

    def __init__(self, base_url: str, pms_hotel_id: str, credentials: dict,
                 clock=None, session: requests.Session | None = None,
                 timeout: float | tuple[float, float] = (5.0, 30.0)):
        self.base_url = base_url.rstrip("/")
        self.hotel_id = pms_hotel_id
        self.app_key = credentials["app_key"]
        self._client = (credentials["client_id"], credentials["client_secret"])
        self._user = (credentials["username"], credentials["password"])
        self.clock = clock or _WallClock()
        self.session = session or requests.Session()
        self.timeout = timeout
        self._token: str | None = None
        self._token_expires = 0.0

    @classmethod
    def from_link(cls, url: str, pms_hotel: str, credentials: dict, clock=None, session=None):
        return cls(url, pms_hotel, credentials, clock=clock, session=session)

    # ---- the outbox's actions ----------------------------------------------------------

    def send(self, action: str, data: dict, reference: str) -> str | None:
        """Send one action of the cloud's PMS outbox; returns OPERA's id of what it made."""
        if action == "charge":
            out = self.post_charge(data["pmsId"], amount=data["amount"], currency=data["currency"],
                                   code=data["code"], description=data["description"], reference=reference)
            return _text(out.get("transaction_no")) or reference
        if action == "service_request":
            return self.post_service_request(room=data["room"], code=data["code"], comment=data["comment"],
                                             reference=reference, reservation_pms_id=data.get("pmsId"),
                                             priority=data.get("priority")) or reference
        if action == "service_request_status":
            self.update_service_request(data["pmsRef"], data["status"])
            return data["pmsRef"]
        if action == "room_status":
            self.set_room_status(data["room"], data["status"])
            return data["room"]
        if action == "maintenance":
            return self.post_maintenance(data["room"], data["code"], data.get("remark") or "",
                                         reference) or reference
        if action == "maintenance_resolve":
            return self._resolve_ref(data["pmsRef"], data.get("remark"), data.get("room"))
        raise PmsError(f"OPERA connector cannot send {action!r}", None, None, True)

    def find(self, action: str, data: dict, reference: str) -> str | None:
        """What an earlier send of this action made, if it reached OPERA (its id), else None."""
        if action == "charge":
            found = self.find_charge(data["pmsId"], reference)
            return (_text(found.get("transaction_no")) or reference) if found else None
        if action == "service_request":
            found = self.find_service_request(reference, room=data["room"])
            return (found.get("id") or reference) if found else None
        if action == "maintenance":
            found = self.find_maintenance(reference, data.get("room"))
            return (found.get("id") or reference) if found else None
        return None

    # ---- transport -------------------------------------------------------------------

    def _send(self, method: str, url: str, **kw) -> requests.Response:
        try:
            return self.session.request(method, url, timeout=self.timeout, **kw)
        except requests.Timeout as e:
            raise PmsError(f"OPERA timed out: {method} {url}", None, None, False) from e
        except requests.RequestException as e:
            raise PmsError(f"OPERA unreachable: {method} {url}: {e}", None, None, False) from e

    @staticmethod
    def _error(resp: requests.Response, what: str) -> PmsError:
        detail = ""
        try:
            body = resp.json()
            detail = body.get("detail") or body.get("title") or ""
        except ValueError:
            detail = resp.text[:200]
        return PmsError(f"OPERA {what}: HTTP {resp.status_code} {detail}".strip(),
                        resp.status_code, _parse_retry_after(resp.headers.get("Retry-After")))

    def _fetch_token(self) -> None:
        resp = self._send(
            "POST", f"{self.base_url}/oauth/v1/tokens",
            data={"grant_type": "password", "username": self._user[0],
                  "password": self._user[1]},
            auth=self._client,
            headers={"x-app-key": self.app_key, "Accept": "application/json"},
        )
        if resp.status_code != 200:  # a refused login is the hotel's to fix: nothing waiting goes dead
            err = self._error(resp, "token")
            err.permanent = False
            raise err
        body = resp.json()
        self._token = body["access_token"]
        self._token_expires = self.clock.now() + float(body.get("expires_in") or 3600)

    def _bearer(self) -> str:
        if self._token is None or self.clock.now() >= self._token_expires - TOKEN_MARGIN:
            self._fetch_token()
        return self._token

    def _call(self, method: str, path: str, *, params=None, json=None,
              expect=(200, 201, 204)) -> dict:
        url = f"{self.base_url}{path}"
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self._bearer()}",
                       "x-app-key": self.app_key, "x-hotelid": self.hotel_id,
                       "Accept": "application/json"}
            resp = self._send(method, url, params=params, json=json, headers=headers)
            if resp.status_code == 401 and attempt == 1:
                self._token = None  # revoked or expired early: renew once
                continue
            break
        if resp.status_code not in expect:
            raise self._error(resp, f"{method} {path}")
        if resp.status_code == 204 or not resp.content:
            return {}
        return resp.json()

    # ---- reservations ----------------------------------------------------------------

    def read_reservations(self, page_size: int = PAGE_SIZE, **filters) -> Iterator[dict]:
        """Every reservation of the hotel, page by page, in the kiosk's columns."""
        offset = 0
        while True:
            params = {"limit": page_size, "offset": offset, **filters}
            body = self._call("GET", f"/rsv/v1/hotels/{self.hotel_id}/reservations",
                              params=params)
            page = body.get("reservations") or {}
            infos = page.get("reservationInfo") or []
            for info in infos:
                yield self.map_reservation(info)
            if not page.get("hasMore") or not infos:
                return
            offset += len(infos)

    @staticmethod
    def map_reservation(info: dict) -> dict:
        ids = {i.get("type"): i.get("id") for i in info.get("reservationIdList") or []}
        guest = info.get("reservationGuest") or {}
        stay = info.get("roomStay") or {}
        name = guest.get("fullName") or " ".join(
            p for p in (guest.get("givenName"), guest.get("surname")) if p)
        row = {
            "confirmation": ids.get("Confirmation"),
            "pms_id": ids.get("Reservation"),
            "guest_name": name,
            "room_number": stay.get("roomId"),
            "arrival": stay.get("arrivalDate"),
            "departure": stay.get("departureDate"),
            "status": STATUS_MAP.get(info.get("reservationStatus"), "Confirmed"),
        }
        if guest.get("language"):
            row["language"] = guest["language"]
        return row

    # ---- charges ---------------------------------------------------------------------

    def post_charge(self, reservation_pms_id: str, *, amount, currency: str, code: str,
                    description: str, reference: str) -> dict:
        """Post one charge to the reservation's folio; `reference` identifies it later."""
        body = {"criteria": {
            "hotelId": self.hotel_id,
            "reservationId": {"id": str(reservation_pms_id), "type": "Reservation"},
            "charges": [{
                "transactionCode": code,
                "price": {"amount": float(amount), "currencyCode": currency},
                "postingQuantity": 1,
                "postingReference": reference,
                "postingRemark": description,
            }],
        }}
        out = self._call(
            "POST", f"/csh/v1/hotels/{self.hotel_id}/reservations/{reservation_pms_id}/charges",
            json=body, expect=(200, 201))
        postings = out.get("postings") or []
        return self._charge_row(postings[0]) if postings else {"reference": reference}

    def find_charge(self, reservation_pms_id: str, reference: str) -> dict | None:
        """The posting carrying `reference` on the reservation's folio, or None."""
        out = self._call(
            "GET", f"/csh/v1/hotels/{self.hotel_id}/reservations/{reservation_pms_id}/folios",
            params={"fetchInstructions": ["Postings"]})
        info = out.get("reservationFolioInformation") or {}
        for window in info.get("folioWindows") or []:
            for folio in window.get("folios") or []:
                for posting in folio.get("postings") or []:
                    if posting.get("reference") == reference:
                        return self._charge_row(posting)
        return None

    @staticmethod
    def _charge_row(posting: dict) -> dict:
        price = posting.get("price") or posting.get("postedAmount") or {}
        return {"transaction_no": posting.get("transactionNo"),
                "reference": posting.get("reference"),
                "code": posting.get("transactionCode"),
                "amount": price.get("amount"), "currency": price.get("currencyCode")}

    # ---- service requests ------------------------------------------------------------

    def post_service_request(self, *, room: str, code: str, comment: str, reference: str,
                             reservation_pms_id: str | None = None,
                             department: str | None = None,
                             priority: str | None = None) -> str | None:
        """Open a service request; returns its OPERA id (looked up by reference)."""
        sr = {"hotelId": self.hotel_id, "code": code, "status": "Open", "room": room,
              "comment": f"{comment} {_ref_tag(reference)}".strip()}
        if reservation_pms_id:
            sr["reservationIdList"] = [{"id": str(reservation_pms_id), "type": "Reservation"}]
        if department:
            sr["department"] = {"code": department}
        if priority:
            sr["priority"] = priority
        self._call("POST", f"/fof/v1/hotels/{self.hotel_id}/serviceRequests",
                   json={"serviceRequestsDetails": [sr]}, expect=(200, 201))
        found = self.find_service_request(reference, room=room)
        return found["id"] if found else None

    def find_service_request(self, reference: str, *, room: str | None = None,
                             statuses=SERVICE_REQUEST_STATUSES) -> dict | None:
        """The service request tagged with `reference`, or None."""
        params: dict = {"status": list(statuses)}  # repeated ?status=..&status=..
        if room:
            params["room"] = room
        out = self._call("GET", f"/fof/v1/hotels/{self.hotel_id}/serviceRequests",
                         params=params)
        tag = _ref_tag(reference)
        for sr in out.get("serviceRequestsDetails") or []:
            if tag in (sr.get("comment") or ""):
                return {"id": (sr.get("serviceRequestId") or {}).get("id"),
                        "status": sr.get("status"), "room": sr.get("room"),
                        "code": sr.get("code"), "comment": sr.get("comment")}
        return None

    def update_service_request(self, service_request_id: str, status: str) -> None:
        if status not in SERVICE_REQUEST_STATUSES:
            raise PmsError(f"unknown service request status {status!r}", None, None, True)
        sr = {"serviceRequestId": {"id": str(service_request_id), "type": "ServiceRequest"},
              "hotelId": self.hotel_id, "status": status}
        self._call("PUT", f"/fof/v1/hotels/{self.hotel_id}/serviceRequests",
                   json={"serviceRequestsDetails": [sr]})

    # ---- housekeeping ----------------------------------------------------------------

    def set_room_status(self, room: str, status: str) -> None:
        if status not in ROOM_STATUSES:
            raise PmsError(f"unknown room status {status!r}", None, None, True)
        self._call("PUT", f"/hsk/v1/hotels/{self.hotel_id}/rooms/status",
                   json={"roomList": [{"roomId": room}], "housekeepingRoomStatus": status})

    # ---- room maintenances -----------------------------------------------------------

    def post_maintenance(self, room: str, code: str, remark: str | None,
                         reference: str) -> str | None:
        """Open a maintenance (a work order for a fault) on `room` with OPERA's maintenance
        `code`; returns its OPERA id, looked up by the reference tagged onto its remarks
        (OPERA's answer carries no id), or None if the lookup did not find it."""
        criteria = {"hotelId": self.hotel_id, "maintenanceCode": code, "roomIds": [room],
                    "remarks": _with_tag(remark, reference)}
        self._call("POST", f"/hsk/v1/hotels/{self.hotel_id}/rooms/maintenanceCodes/"
                           f"{quote(str(code), safe='')}",
                   json={"criteria": criteria}, expect=(200, 201))
        found = self.find_maintenance(reference, room)
        return found["id"] if found else None

    def find_maintenance(self, reference: str, room: str | None = None) -> dict | None:
        """The maintenance (resolved or not) tagged with `reference`, or None."""
        params = {"roomMaintenanceStatus": "All"}
        if room:
            params["roomId"] = room
        tag = _ref_tag(reference)
        for m in self._maintenances(params):
            if tag in (m.get("remarks") or ""):
                return self._maintenance_row(m)
        return None

    def get_maintenance(self, maintenance_id: str) -> dict | None:
        """The maintenance with OPERA's id `maintenance_id` (resolved or not), or None."""
        for m in self._maintenances({"roomMaintenanceStatus": "All",
                                     "maintenanceId": str(maintenance_id)}):
            row = self._maintenance_row(m)
            if row["id"] == str(maintenance_id):
                return row
        return None

    def resolve_maintenance(self, maintenance_id: str, remark: str | None = None) -> None:
        """Resolve a maintenance; one already resolved is left as it is (no error). A
        `remark` is added to its remarks, which keep their `[ref:...]` tag."""
        mid = str(maintenance_id)
        criteria: dict = {"hotelId": self.hotel_id,
                          "maintenanceId": {"id": mid, "type": "Maintenance"}}
        if remark:  # the resolve's remarks replace the maintenance's: carry the old ones on
            current = self.get_maintenance(mid)
            if current is not None and current["resolved"]:
                return
            old = (current or {}).get("remarks") or ""
            room_left = REMARKS_MAX - len(old) - 1 if old else REMARKS_MAX
            if room_left > 0:
                criteria["remarks"] = f"{old} {remark.strip()[:room_left]}".strip()
            if current is not None and current.get("room"):
                criteria["roomId"] = current["room"]
        try:
            self._call("PUT", f"/hsk/v1/hotels/{self.hotel_id}/maintenances/"
                              f"{quote(mid, safe='')}/resolve",
                       json={"criteria": criteria})
        except PmsError as e:
            if e.status not in (400, 409, 422):
                raise
            current = self.get_maintenance(mid)  # resolved already (a retry, a lost answer)?
            if current is None or not current["resolved"]:
                raise e from None

    def _resolve_ref(self, pms_ref: str, remark: str | None, room: str | None) -> str:
        """Resolve the maintenance the outbox knows as `pms_ref`: OPERA's id, or the
        reference itself when its id was never found after the create (then looked up by
        its tag now)."""
        try:
            self.resolve_maintenance(pms_ref, remark)
            return pms_ref
        except PmsError as e:
            if e.status != 404:
                raise
            found = self.find_maintenance(pms_ref, room)
            if found is None or not found.get("id") or found["id"] == pms_ref:
                raise e from None
        self.resolve_maintenance(found["id"], remark)
        return found["id"]

    def _maintenances(self, params: dict) -> list[dict]:
        # 204 (none found) comes back from _call as {}
        out = self._call("GET", f"/hsk/v1/hotels/{self.hotel_id}/rooms/maintenances",
                         params=params, expect=(200, 204))
        return (out.get("roomMaintenance") or {}).get("roomMaintenance") or []

    @staticmethod
    def _maintenance_row(m: dict) -> dict:
        return {"id": _text((m.get("maintenanceId") or {}).get("id")),
                "room": (m.get("roomInfo") or {}).get("roomId"),
                "code": m.get("maintenanceCode"), "remarks": m.get("remarks"),
                "resolved": bool(m.get("resolveInfo"))}
