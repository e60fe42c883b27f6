"""A fake OPERA Cloud (OHIP) that checks every request against the published Swagger specs.

Contract:
- Routes come from ../shared/pms/opera-cloud/*.json (oauth, rsv, csh, fof, hsk): an
  unknown path or method, a missing required header or parameter, a parameter of the wrong
  type or format, or a JSON body that does not validate against the operation's schema is
  answered 400 and recorded in `fake.violations`. Tests assert that list stays empty.
- Answers it builds are checked against the operation's response schema; mismatches land in
  `fake.response_violations` (a bug in the fake, not in the client).
- State: reservations (`add_reservation`), charges per reservation, service requests, room
  statuses, room maintenances (`maintenances`: id -> {"id", "room", "code", "remarks",
  "resolved", "resolved_by", "created"}), tokens with expiry by the injected clock.
- Room maintenances (hsk): the create answers no id (`status` body), so it is found again
  by its remarks; the search answers 204 with no body when nothing matches and, unless
  `roomMaintenanceStatus` says otherwise (`All`, `Resolved`), lists only unresolved ones;
  resolving an unknown id answers 404, resolving a resolved one 400 (`already resolved`);
  remarks sent with a resolve replace the maintenance's remarks. `resolveInfo` carries
  only `resolveUser`: `resolveDate` is `format: date` with `maxLength: 8`, so no value fits.
- Faults: `fail_next(n, status, retry_after)`, `lose_answer_next()` (apply the write, answer
  504), `expire_tokens()`, `down = True` (every call answers 503).
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import re
import threading
from pathlib import Path

from flask import Flask, Response, request
from werkzeug.serving import make_server

SPEC_DIR = Path(__file__).resolve().parents[3] / "shared" / "pms" / "opera-cloud"  # ../shared beside the repo
SPEC_FILES = ("oauth", "rsv", "csh", "fof", "hsk")


# ---- a validator for the JSON-Schema subset these Swagger 2.0 specs use -----------------

class SchemaValidator:
    def __init__(self, spec: dict):
        self.defs = spec.get("definitions", {})

    def errors(self, value, schema: dict, path: str = "$") -> list[str]:
        out: list[str] = []
        self._check(value, schema, path, out)
        return out

    def _check(self, v, s, path, out):
        if "$ref" in s:
            s = self.defs[s["$ref"].rsplit("/", 1)[-1]]
        for sub in s.get("allOf", []):
            self._check(v, sub, path, out)
        t = s.get("type")
        if t is None and "properties" in s:
            t = "object"
        if t and not _type_ok(v, t):
            out.append(f"{path}: expected {t}, got {type(v).__name__}")
            return
        if "enum" in s and v not in s["enum"]:
            out.append(f"{path}: {v!r} not in enum")
        if isinstance(v, str):
            _string_checks(v, s, path, out)
        if isinstance(v, int | float) and not isinstance(v, bool):
            if "minimum" in s and v < s["minimum"]:
                out.append(f"{path}: below minimum")
            if "maximum" in s and v > s["maximum"]:
                out.append(f"{path}: above maximum")
        if isinstance(v, list):
            if "maxItems" in s and len(v) > s["maxItems"]:
                out.append(f"{path}: more than {s['maxItems']} items")
            if "minItems" in s and len(v) < s["minItems"]:
                out.append(f"{path}: fewer than {s['minItems']} items")
            if "items" in s:
                for i, item in enumerate(v):
                    self._check(item, s["items"], f"{path}[{i}]", out)
        if isinstance(v, dict):
            for name in s.get("required", []):
                if name not in v:
                    out.append(f"{path}: missing required {name}")
            props = s.get("properties", {})
            for k, item in v.items():
                if k in props:
                    self._check(item, props[k], f"{path}.{k}", out)
                elif s.get("additionalProperties") is False:
                    out.append(f"{path}: unexpected property {k}")


def _type_ok(v, t) -> bool:
    return {
        "object": lambda: isinstance(v, dict),
        "array": lambda: isinstance(v, list),
        "string": lambda: isinstance(v, str),
        "boolean": lambda: isinstance(v, bool),
        "integer": lambda: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda: isinstance(v, int | float) and not isinstance(v, bool),
    }.get(t, lambda: True)()


def _string_checks(v: str, s: dict, path: str, out: list[str]) -> None:
    if "maxLength" in s and len(v) > s["maxLength"]:
        out.append(f"{path}: longer than maxLength {s['maxLength']}")
    if "minLength" in s and len(v) < s["minLength"]:
        out.append(f"{path}: shorter than minLength {s['minLength']}")
    if "pattern" in s and not re.search(s["pattern"], v):
        out.append(f"{path}: does not match {s['pattern']}")
    fmt = s.get("format")
    if fmt == "date":
        try:
            dt.date.fromisoformat(v)
            ok = len(v) == 10
        except ValueError:
            ok = False
        if not ok:
            out.append(f"{path}: {v!r} is not a date (YYYY-MM-DD)")
    elif fmt == "date-time":
        try:
            dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            out.append(f"{path}: {v!r} is not a date-time")


def _coerce(raw: str, p: dict, name: str, out: list[str]):
    """A query/header/path/form value as the parameter's declared type."""
    t = p.get("type", "string")
    try:
        if t == "integer":
            return int(raw)
        if t == "number":
            return float(raw)
        if t == "boolean":
            if raw not in ("true", "false"):
                raise ValueError(raw)
            return raw == "true"
    except ValueError:
        out.append(f"{name}: {raw!r} is not {t}")
        return None
    return raw


# ---- the spec's operations --------------------------------------------------------------

class Operation:
    def __init__(self, spec, method, base, path, op, path_params):
        self.spec, self.method, self.op = spec, method.upper(), op
        self.id = op.get("operationId")
        self.template = base + path
        self.regex = re.compile("^" + re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)",
                                              re.escape(self.template)) + "$")
        params = list(path_params) + list(op.get("parameters", []))
        self.params = [spec["parameters"][p["$ref"].rsplit("/", 1)[-1]] if "$ref" in p else p
                       for p in params]
        self.validator = SchemaValidator(spec)

    def check_request(self, req, path_args: dict) -> list[str]:
        errs: list[str] = []
        consumes = self.op.get("consumes") or self.spec.get("consumes") or []
        has_body = any(p["in"] in ("body", "formData") for p in self.params)
        mime = (req.mimetype or "").lower()
        if has_body and consumes and mime not in {c.split(";")[0].strip() for c in consumes}:
            errs.append(f"content-type {mime or 'none'} not in {consumes}")
        for p in self.params:
            where, name = p["in"], p["name"]
            if where == "body":
                try:
                    body = json.loads(req.get_data() or b"null")
                except ValueError:
                    errs.append("body: not JSON")
                    continue
                if body is None:
                    if p.get("required"):
                        errs.append("body: missing")
                    continue
                errs += self.validator.errors(body, p["schema"], "body")
                continue
            if where == "header":
                values = [req.headers[name]] if name in req.headers else []
            elif where == "query":
                values = req.args.getlist(name)
            elif where == "formData":
                values = req.form.getlist(name)
            else:  # path
                values = [path_args[name]]
            if not values:
                if p.get("required"):
                    errs.append(f"{where} {name}: required")
                continue
            if p.get("type") == "array":
                if p.get("collectionFormat", "csv") == "multi":
                    items = values
                else:
                    items = values[0].split(",")
                coerced = [_coerce(v, p.get("items", {}), name, errs) for v in items]
                errs += self.validator.errors(
                    coerced, {k: v for k, v in p.items() if k not in ("in", "name")}, name)
                continue
            if len(values) > 1:
                errs.append(f"{where} {name}: repeated but not an array")
            value = _coerce(values[0], p, name, errs)
            if value is not None:
                errs += self.validator.errors(
                    value, {k: v for k, v in p.items()
                            if k not in ("in", "name", "required", "description")}, name)
        return errs

    def response_schema(self, status: int):
        r = self.op.get("responses", {}).get(str(status))
        if r and "$ref" in r:
            r = self.spec["responses"][r["$ref"].rsplit("/", 1)[-1]]
        return (r or {}).get("schema")


def load_operations() -> list[Operation]:
    ops = []
    for name in SPEC_FILES:
        spec = json.loads((SPEC_DIR / f"{name}.json").read_text())
        base = spec.get("basePath", "")
        for path, item in spec["paths"].items():
            shared = item.get("parameters", [])
            for method, op in item.items():
                if method != "parameters":
                    ops.append(Operation(spec, method, base, path, op, shared))
    ops.sort(key=lambda o: o.template.count("{"))  # literal segments win over {params}
    return ops


_OPERATIONS: list[Operation] | None = None


def operations() -> list[Operation]:
    global _OPERATIONS
    if _OPERATIONS is None:
        _OPERATIONS = load_operations()
    return _OPERATIONS


# ---- the fake ---------------------------------------------------------------------------

class FakeOpera:
    TOKEN_TTL = 3600
    MAX_LIMIT = 200

    def __init__(self, clock, *, client_id="kiosk-client", client_secret="s3cret",
                 username="kiosk", password="pw",
                 app_key="41ecd082-8997-4c69-af34-2f72b83645ff", hotel_id="HOTEL1"):
        self.clock = clock
        self.client = (client_id, client_secret)
        self.user = (username, password)
        self.app_key, self.hotel_id = app_key, hotel_id
        self.violations: list[str] = []
        self.response_violations: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self.tokens: dict[str, float] = {}
        self.tokens_issued = 0
        self.reservations: list[dict] = []
        self.charges: dict[str, list[dict]] = {}
        self.service_requests: dict[str, dict] = {}
        self.room_status: dict[str, str] = {}
        self.maintenances: dict[str, dict] = {}
        self.down = False
        self._fail: list[tuple[int, float | None]] = []
        self._lose = 0
        self._ids = itertools.count(1001)
        self._lock = threading.Lock()
        self.app = self._make_app()
        self._server = None

    # -- lifecycle
    def start(self) -> str:
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_port}"

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    # -- seeding and faults
    def add_reservation(self, *, pms_id, confirmation, given, surname, room, arrival,
                        departure, status="Reserved", language=None) -> None:
        guest = {"givenName": given, "surname": surname}
        if language:
            guest["language"] = language
        stay = {"arrivalDate": arrival, "departureDate": departure}
        if room:
            stay["roomId"] = room
        self.reservations.append({
            "reservationIdList": [{"id": str(pms_id), "type": "Reservation"},
                                  {"id": str(confirmation), "type": "Confirmation"}],
            "hotelId": self.hotel_id, "reservationStatus": status,
            "reservationGuest": guest, "roomStay": stay})

    def fail_next(self, n=1, status=503, retry_after=2) -> None:
        self._fail += [(status, retry_after)] * n

    def lose_answer_next(self) -> None:
        self._lose += 1

    def expire_tokens(self) -> None:
        for t in self.tokens:
            self.tokens[t] = self.clock.now() - 1

    # -- plumbing
    def _json(self, op, status, body, headers=None):
        schema = op.response_schema(status) if op else None
        if schema is not None:
            errs = op.validator.errors(body, schema, f"response {op.id} {status}")
            self.response_violations += errs
        return Response(json.dumps(body), status, headers or {},
                        content_type="application/json")

    def _problem(self, op, status, title, headers=None):
        return self._json(op, status, {"type": "about:blank", "title": title,
                                       "status": status, "detail": title}, headers)

    def _make_app(self) -> Flask:
        app = Flask("fake_opera")

        @app.route("/", defaults={"path": ""}, methods=["GET", "POST", "PUT", "DELETE"])
        @app.route("/<path:path>", methods=["GET", "POST", "PUT", "DELETE"])
        def any_route(path):
            with self._lock:
                return self._handle()
        return app

    def _handle(self):
        self.requests.append((request.method, request.path))
        if self.down:
            return Response("down", 503)
        op, args = None, {}
        for cand in operations():
            m = cand.regex.match(request.path)
            if m and cand.method == request.method:
                op, args = cand, m.groupdict()
                break
        if op is None:
            self.violations.append(f"{request.method} {request.path}: no such operation")
            return Response("no such operation", 400)
        errs = op.check_request(request, args)
        if errs:
            self.violations += [f"{op.id}: {e}" for e in errs]
            return self._problem(op, 400, "; ".join(errs))
        if op.template == "/oauth/v1/tokens":
            return self._token(op)
        if self._fail:  # injected faults hit API calls, not the token endpoint
            status, retry_after = self._fail.pop(0)
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            return self._problem(op, status, "injected failure", headers)
        if not self._authorised():
            return self._problem(op, 401, "invalid or expired token")
        if request.headers.get("x-app-key") != self.app_key:
            return self._problem(op, 401, "unknown application key")
        if args.get("hotelId") not in (None, self.hotel_id) or \
                request.headers.get("x-hotelid") != self.hotel_id:
            return self._problem(op, 403, "hotel not allowed")
        handler = getattr(self, f"_op_{op.id}", None)
        if handler is None:
            return self._problem(op, 405, f"{op.id} not faked")
        resp = handler(op, args)
        if self._lose and request.method in ("POST", "PUT"):
            self._lose -= 1
            return Response("gateway timeout", 504)
        return resp

    def _authorised(self) -> bool:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return False
        expires = self.tokens.get(auth[7:])
        return expires is not None and self.clock.now() < expires

    def _token(self, op):
        auth = request.headers.get("Authorization", "")
        try:
            user, _, pw = base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")
        except ValueError:
            user = pw = None
        if not auth.startswith("Basic ") or (user, pw) != self.client:
            return Response("bad client", 401)
        if request.headers.get("x-app-key") != self.app_key:
            return Response("bad app key", 401)
        if request.form.get("grant_type") != "password" or \
                (request.form.get("username"), request.form.get("password")) != self.user:
            return Response("bad user", 401)
        self.tokens_issued += 1
        token = f"tok-{self.tokens_issued}"
        self.tokens[token] = self.clock.now() + self.TOKEN_TTL
        return self._json(op, 200, {"access_token": token, "expires_in": self.TOKEN_TTL,
                                    "token_type": "Bearer"})

    # -- operations
    def _op_getHotelReservations(self, op, args):
        limit = min(int(request.args.get("limit", 20)), self.MAX_LIMIT)
        offset = int(request.args.get("offset", 0))
        page = self.reservations[offset:offset + limit]
        total = len(self.reservations)
        return self._json(op, 200, {"reservations": {
            "reservationInfo": page, "offset": offset, "limit": limit, "count": len(page),
            "totalResults": total, "hasMore": offset + len(page) < total}})

    def _find_res(self, pms_id):
        for r in self.reservations:
            if any(i["type"] == "Reservation" and i["id"] == pms_id
                   for i in r["reservationIdList"]):
                return r
        return None

    def _op_postBillingCharges(self, op, args):
        res_id = args["reservationId"]
        if self._find_res(res_id) is None:
            return self._problem(op, 404, "reservation not found")
        body = request.get_json()
        posted = []
        for c in body["criteria"].get("charges", []):
            if "price" not in c or "transactionCode" not in c:
                return self._problem(op, 400, "price and transactionCode are required")
            posting = {"transactionNo": float(next(self._ids)),
                       "transactionCode": c["transactionCode"],
                       "price": c["price"], "postedAmount": c["price"],
                       "quantity": float(c.get("postingQuantity", 1)),
                       "reference": c.get("postingReference", ""),
                       "remark": c.get("postingRemark", "")}
            self.charges.setdefault(res_id, []).append(posting)
            posted.append(posting)
        return self._json(op, 201, {"postings": posted})

    def _op_getFolio(self, op, args):
        res_id = args["reservationId"]
        if self._find_res(res_id) is None:
            return self._problem(op, 404, "reservation not found")
        postings = self.charges.get(res_id, [])
        return self._json(op, 200, {"reservationFolioInformation": {"folioWindows": [
            {"folioWindowNo": 1, "folios": [{"postings": postings}]}]}})

    def _op_postServiceRequests(self, op, args):
        for sr in request.get_json().get("serviceRequestsDetails", []):
            sid = str(next(self._ids))
            stored = {k: v for k, v in sr.items() if k != "serviceRequestId"}
            stored["serviceRequestId"] = {"id": sid, "type": "ServiceRequest"}
            stored.setdefault("status", "Open")
            self.service_requests[sid] = stored
        return self._json(op, 201, {})

    def _op_getServiceRequests(self, op, args):
        statuses = request.args.getlist("status")
        room = request.args.get("room")
        found = [sr for sr in self.service_requests.values()
                 if (not statuses or sr["status"] in statuses)
                 and (room is None or sr.get("room") == room)]
        return self._json(op, 200, {"serviceRequestsDetails": found})

    def _op_putServiceRequests(self, op, args):
        for sr in request.get_json().get("serviceRequestsDetails", []):
            sid = (sr.get("serviceRequestId") or {}).get("id")
            if sid not in self.service_requests:
                return self._problem(op, 404, f"service request {sid} not found")
            if "status" in sr:
                self.service_requests[sid]["status"] = sr["status"]
        return self._json(op, 200, {})

    def _op_putRoomRelatedStatus(self, op, args):
        body = request.get_json()
        status = body.get("housekeepingRoomStatus")
        for room in body.get("roomList", []):
            if status:
                self.room_status[room["roomId"]] = status
        return self._json(op, 200, {})

    # -- room maintenances (hsk)
    def _maintenance_body(self, m: dict) -> dict:
        """A stored maintenance as the spec's roomMaintenanceType."""
        out = {"maintenanceId": {"id": m["id"], "type": "Maintenance"},
               "maintenanceCode": m["code"], "roomInfo": {"roomId": m["room"]},
               "createDateTime": m["created"], "creatorId": self.user[0]}
        if m["remarks"]:
            out["remarks"] = m["remarks"]
        if m["resolved"]:  # no resolveDate: format date with maxLength 8 fits no date
            out["resolveInfo"] = {"resolveUser": m["resolved_by"]}
        return out

    def _op_postRoomMaintenance(self, op, args):
        crit = (request.get_json() or {}).get("criteria") or {}
        code = args["maintenanceCode"]
        if crit.get("maintenanceCode") not in (None, code):
            return self._problem(op, 400, "maintenanceCode differs from the path's")
        rooms = crit.get("roomIds") or []
        if not rooms:
            return self._problem(op, 400, "roomIds are required")
        created = dt.datetime.fromtimestamp(self.clock.now(), dt.UTC).isoformat()
        for room in rooms:
            mid = str(next(self._ids))
            self.maintenances[mid] = {"id": mid, "room": room, "code": code,
                                      "remarks": crit.get("remarks") or "", "resolved": False,
                                      "resolved_by": None, "created": created}
        return self._json(op, 201, {})

    def _op_getRoomMaintenance(self, op, args):
        room = request.args.get("roomId")
        mid = request.args.get("maintenanceId")
        codes = request.args.getlist("maintenanceCodes")
        status = request.args.get("roomMaintenanceStatus", "UnResolved")
        found = [m for m in self.maintenances.values()
                 if (room is None or m["room"] == room)
                 and (mid is None or m["id"] == mid)
                 and (not codes or m["code"] in codes)
                 and (status == "All" or m["resolved"] == (status == "Resolved"))]
        if not found:
            return Response("", 204)
        return self._json(op, 200, {"roomMaintenance": {
            "hotelId": self.hotel_id,
            "roomMaintenance": [self._maintenance_body(m) for m in found]}})

    def _op_resolveRoomMaintenance(self, op, args):
        mid = args["mainteananceId"]  # sic: the spec's spelling
        m = self.maintenances.get(mid)
        if m is None:
            return self._problem(op, 404, f"maintenance {mid} not found")
        crit = (request.get_json() or {}).get("criteria") or {}
        if (crit.get("maintenanceId") or {}).get("id") not in (None, mid):
            return self._problem(op, 400, "maintenanceId differs from the path's")
        if m["resolved"]:
            return self._problem(op, 400, f"maintenance {mid} already resolved")
        if crit.get("remarks"):
            m["remarks"] = crit["remarks"]
        m["resolved"], m["resolved_by"] = True, self.user[0]
        return self._json(op, 200, {})
