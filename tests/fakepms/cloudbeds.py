"""A fake Cloudbeds PMS that holds every request to Cloudbeds' published OpenAPI 3 specs.

The specs (``pms-v1.3-openapi.yaml``, ``pms-v2.0-openapi.yaml``) are loaded at start and
each request is checked before it is served: the path and method exist, the security
header is there, required parameters and headers are present and of the declared type,
no undeclared query parameter is sent, and the body (JSON or form, as the operation's
``requestBody`` says) validates against its schema (``components/schemas`` with
``$ref``; OpenAPI's ``nullable`` is turned into JSON Schema).  A request that does not
validate is answered 400 and recorded in ``violations``; tests assert that list is empty.
Every answer the fake gives with a declared status is checked against the operation's
response schema, and a mismatch recorded in ``response_violations`` (the fake's own bug).

Served: v1.3 ``getReservations`` (paged) and ``postHousekeepingStatus``; v2.0 ``POST /folio/v1/checks`` with ``Idempotency-Key``
(same key and body -> the first answer again, with ``notice``; same key, other body ->
409 ``IDEMPOTENCY_KEY_REUSED``).  Other operations validate and answer 501.

Faults on demand: ``fail_next(n, status=503, retry_after=2)``, ``lose_answer_next()``
(the effect is applied, the answer replaced by 504), and ``down = True`` (the listening
socket is closed: connection refused, until ``down = False`` opens it on the same port).
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

import jsonschema_rs
import yaml
from flask import Flask, Response, request
from werkzeug.serving import WSGIRequestHandler, make_server

SPEC_DIR = Path(os.environ.get("CLOUDBEDS_SPEC_DIR", Path(__file__).resolve().parents[3] / "shared" / "pms" / "cloudbeds"))
V1_PREFIX = "/api/v1.3"
METHODS = ("get", "post", "put", "patch", "delete")
FAULT_STATUSES = {429, 502, 503, 504}


def _jsonschema(node):
    """OpenAPI 3.0 schema -> JSON Schema (draft 4): ``nullable: true`` becomes anyOf null."""
    if isinstance(node, list):
        return [_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _jsonschema(v) for k, v in node.items() if k not in ("nullable", "example", "discriminator")}
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def _load(path: Path) -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open(encoding="utf-8") as f:
        return yaml.load(f, Loader=loader)  # noqa: S506 - a safe loader


class Spec:
    """One OpenAPI document: its operations by route, and validators built on demand."""

    def __init__(self, path: Path, prefix: str):
        self.doc = _load(path)
        self.prefix = prefix
        self.components = _jsonschema(self.doc.get("components", {}))
        self.routes = []  # (regex, template, {method: op})
        for template, item in self.doc["paths"].items():
            rx = re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$")
            self.routes.append((rx, template, item))
        self._validators: dict[int, jsonschema_rs.Validator] = {}

    def resolve(self, node: dict) -> dict:
        while isinstance(node, dict) and "$ref" in node:
            *_, kind, name = node["$ref"].split("/")
            node = self.doc["components"][kind][name]
        return node

    def errors(self, schema: dict, value) -> list[str]:
        key = id(schema)
        if key not in self._validators:
            root = {"allOf": [_jsonschema(schema)], "components": self.components}
            self._validators[key] = jsonschema_rs.Draft4Validator(root, validate_formats=True)
        return [f"{'/'.join(map(str, e.instance_path)) or 'value'}: {e.message}"
                for e in self._validators[key].iter_errors(value)]


def _coerce(text: str, schema: dict):
    """A query, header or form value (text) as the type its schema declares, if it parses."""
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
    except ValueError:
        return text
    if kind == "boolean":
        return {"true": True, "false": False, "1": True, "0": False}.get(text.lower(), text)
    return text


class _QuietHandler(WSGIRequestHandler):
    def log(self, *args) -> None:  # no access log in test output
        pass


class CloudbedsFake:
    """The fake server.  ``start()`` returns the base URL; state is plain attributes."""

    def __init__(self, *, api_key: str = "test-key", property_id: str = "4242", spec_dir: Path = SPEC_DIR):
        self.api_key = api_key
        self.property_id = str(property_id)
        self.specs = {"1.3": Spec(spec_dir / "pms-v1.3-openapi.yaml", V1_PREFIX),
                      "2.0": Spec(spec_dir / "pms-v2.0-openapi.yaml", "")}
        self.violations: list[str] = []
        self.response_violations: list[str] = []
        self.calls: list[tuple[str, str]] = []  # (method, spec path) of every validated request
        self.reservations: list[dict] = []
        self.folio_items: list[dict] = []
        self.room_status: dict[str, dict] = {}
        self.idempotency: dict[str, tuple[str, int, dict]] = {}  # key -> (body hash, status, answer)
        self._faults: list[tuple[int, float | None]] = []
        self._lose = 0
        self._lock = threading.RLock()
        self._server = None
        self._thread = None
        self._port = 0
        self._down = False
        self.app = self._make_app()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> str:
        self._server = make_server("127.0.0.1", self._port, self.app, threaded=True,
                                   request_handler=_QuietHandler)
        self._port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def down(self) -> bool:
        return self._down

    @down.setter
    def down(self, value: bool) -> None:
        if value and not self._down:
            self.stop()
        elif not value and self._down:
            self.start()
        self._down = bool(value)

    # -- seeding and faults ----------------------------------------------------------------
    def add_reservation(self, reservation_id: str, *, guest_name: str, start: str, end: str,
                        status: str = "confirmed", room_id: str | None = None, room_name: str | None = None,
                        third_party_id: str = "") -> dict:
        row = {"reservationID": reservation_id, "guestName": guest_name, "startDate": start, "endDate": end,
               "status": status, "roomID": room_id, "roomName": room_name, "thirdPartyIdentifier": third_party_id}
        with self._lock:
            self.reservations.append(row)
        return row

    def add_room(self, room_id: str, condition: str = "dirty") -> None:
        with self._lock:
            self.room_status[room_id] = {"roomCondition": condition, "doNotDisturb": False, "roomComments": ""}

    def reset(self) -> None:
        """Forget all state, faults and recorded violations (between tests)."""
        with self._lock:
            for kept in (self.violations, self.response_violations, self.calls, self.reservations,
                         self.folio_items, self._faults):
                kept.clear()
            self.room_status.clear()
            self.idempotency.clear()
            self._lose = 0

    def fail_next(self, n: int = 1, status: int = 503, retry_after: float | None = 2) -> None:
        with self._lock:
            self._faults.extend([(status, retry_after)] * n)

    def lose_answer_next(self) -> None:
        with self._lock:
            self._lose += 1

    # -- the app -----------------------------------------------------------------------------
    def _make_app(self) -> Flask:
        app = Flask("fake-cloudbeds")

        @app.route("/", defaults={"path": ""}, methods=[m.upper() for m in METHODS])
        @app.route("/<path:path>", methods=[m.upper() for m in METHODS])
        def serve(path):
            return self._serve("/" + path)

        return app

    def _json(self, status: int, body: dict, headers: dict | None = None) -> Response:
        return Response(json.dumps(body), status=status, headers=headers or {}, mimetype="application/json")

    def _violation(self, text: str) -> Response:
        with self._lock:
            self.violations.append(f"{request.method} {request.path}: {text}")
        return self._json(400, {"success": False, "message": text, "code": "INVALID_REQUEST"})

    def _route(self, path: str):
        version = "1.3" if path.startswith(V1_PREFIX + "/") else "2.0"
        spec = self.specs[version]
        local = path[len(spec.prefix):]
        for rx, template, item in spec.routes:
            match = rx.match(local)
            if match:
                return spec, template, item, match.groupdict()
        return spec, None, None, {}

    def _serve(self, path: str) -> Response:
        spec, template, item, path_params = self._route(path)
        if template is None:
            return self._violation("no such path in the spec")
        method = request.method.lower()
        op = item.get(method)
        if op is None:
            return self._violation(f"method {request.method} not in the spec for {template}")
        problems = self._check_request(spec, item, op, path_params) or self._check_limits(template)
        if problems:
            return self._violation("; ".join(problems))
        if op.get("security") and not (request.headers.get("x-api-key") or "").strip():
            return self._violation("no x-api-key header (security scheme api_key)")
        if request.headers.get("x-api-key") != self.api_key:
            return self._json(401, {"success": False, "message": "invalid API key"})
        with self._lock:
            self.calls.append((request.method, template))
            if self._faults:
                status, retry_after = self._faults.pop(0)
                headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else {}
                return self._json(status, {"success": False, "message": "injected fault"}, headers)
            handler = getattr(self, "_op_" + re.sub(r"\W", "_", f"{method}{template}"), None)
            if handler is None:
                return self._json(501, {"success": False, "message": f"fake does not serve {template}"})
            status, body = handler(path_params)
            self._check_response(spec, op, template, status, body)
            if self._lose:
                self._lose -= 1
                return self._json(504, {"message": "gateway timeout (answer lost)"})
            return self._json(status, body)

    def _check_request(self, spec: Spec, item: dict, op: dict, path_params: dict) -> list[str]:
        problems = []
        declared = {}
        for p in [*item.get("parameters", []), *op.get("parameters", [])]:
            p = spec.resolve(p)
            declared[(p["in"], p["name"].lower() if p["in"] == "header" else p["name"])] = p
        for (where, name), p in declared.items():
            if where == "query":
                raw = request.args.get(name)
            elif where == "header":
                raw = request.headers.get(name)
            elif where == "path":
                raw = path_params.get(name)
            else:
                continue
            if raw is None or (where == "header" and not raw.strip()):
                if p.get("required"):
                    problems.append(f"required {where} parameter {p['name']} missing")
                continue
            schema = spec.resolve(p.get("schema", {}))
            problems += [f"{where} {p['name']}: {e}" for e in spec.errors(schema, _coerce(raw, schema))]
        for name in request.args:
            if ("query", name) not in declared:
                problems.append(f"query parameter {name} not in the spec")
        body = op.get("requestBody")
        has_body = bool(request.get_data())
        if body is None:
            if has_body:
                problems.append("a body where the operation takes none")
            return problems
        body = spec.resolve(body)
        content = body.get("content", {})
        mimetype = request.mimetype
        if not has_body and not request.form:
            if body.get("required"):
                problems.append("required request body missing")
            return problems
        if mimetype not in content:
            return [*problems, f"content type {mimetype!r} not one of {sorted(content)}"]
        schema = spec.resolve(content[mimetype].get("schema", {}))
        if mimetype == "application/json":
            try:
                value = json.loads(request.get_data())
            except ValueError:
                return [*problems, "body is not JSON"]
        else:
            props = schema.get("properties", {})
            value = {k: _coerce(v, spec.resolve(props.get(k, {}))) for k, v in request.form.items()}
            problems += [f"form field {k} not in the schema" for k in value if props and k not in props]
        return problems + [f"body {e}" for e in spec.errors(schema, value)]

    def _check_limits(self, template: str) -> list[str]:
        """Limits the spec states in prose: getReservations' "Max = 100" page size."""
        if template == "/getReservations":
            size = int(request.args.get("pageSize", 100))
            number = int(request.args.get("pageNumber", 1))
            if not 1 <= size <= 100 or number < 1:
                return [f"pageSize {size} / pageNumber {number} out of range (pageSize max 100)"]
        return []

    def _check_response(self, spec: Spec, op: dict, template: str, status: int, body: dict) -> None:
        responses = op.get("responses", {})
        answer = responses.get(status, responses.get(str(status)))
        if answer is None:
            if status not in FAULT_STATUSES:
                self.response_violations.append(f"{template}: status {status} not declared")
            return
        schema = spec.resolve(answer).get("content", {}).get("application/json", {}).get("schema")
        if schema is not None:
            self.response_violations += [f"{template} {status}: {e}" for e in spec.errors(schema, body)]

    # -- operations (called under the lock) --------------------------------------------------
    def _op_get_getReservations(self, _params):
        size = int(request.args.get("pageSize", 100))
        number = int(request.args.get("pageNumber", 1))
        wanted = request.args.get("status")
        rows = [r for r in self.reservations if wanted in (None, r["status"])]
        page = rows[(number - 1) * size: number * size]
        all_rooms = request.args.get("includeAllRooms") == "true"
        data = [self._reservation_view(r, all_rooms) for r in page]
        return 200, {"success": True, "data": data, "count": len(data), "total": len(rows)}

    def _reservation_view(self, r: dict, all_rooms: bool) -> dict:
        view = {"propertyID": self.property_id, "reservationID": r["reservationID"], "status": r["status"],
                "guestName": r["guestName"], "startDate": r["startDate"], "endDate": r["endDate"],
                "thirdPartyIdentifier": r["thirdPartyIdentifier"], "adults": "1", "children": "0",
                "balance": sum(i["amount"] for i in self.folio_items if i["reservationId"] == r["reservationID"]) / 100}
        if all_rooms:
            room = {"roomTypeID": "1", "roomTypeName": "Standard", "subReservationID": r["reservationID"] + "-1",
                    "roomStatus": {"checked_in": "in_house", "checked_out": "checked_out",
                                   "canceled": "cancelled"}.get(r["status"], "not_checked_in"),
                    "roomName": r["roomName"]}
            if r["roomID"] is not None:
                room["roomID"] = r["roomID"]
            view["rooms"] = [room]
        return view

    def _op_post_postHousekeepingStatus(self, _params):
        room_id = request.form.get("roomID")
        if room_id not in self.room_status:
            return 200, {"success": False, "message": f"room {room_id} not found"}
        state = self.room_status[room_id]
        if "roomCondition" in request.form:
            state["roomCondition"] = request.form["roomCondition"]
        else:  # "if no optional parameters are sent, will switch from current room condition"
            state["roomCondition"] = "clean" if state["roomCondition"] == "dirty" else "dirty"
        for flag in ("doNotDisturb", "refusedService", "vacantPickup"):
            if flag in request.form:
                state[flag] = request.form[flag] in ("true", "1")
        if "roomComments" in request.form:
            state["roomComments"] = request.form["roomComments"]
        data = {"roomID": room_id, "date": "2026-01-01", **{k: v for k, v in state.items()
                                                             if k in ("roomCondition", "roomComments", "doNotDisturb",
                                                                      "refusedService", "vacantPickup")}}
        return 200, {"success": True, "data": data}

    def _op_post_folio_v1_checks(self, _params):
        key = request.headers["Idempotency-Key"]
        body = request.get_json()
        digest = json.dumps(body, sort_keys=True)
        if key in self.idempotency:
            first_digest, status, answer = self.idempotency[key]
            if first_digest != digest:
                return 409, {"message": "Idempotency-Key reused with a different payload",
                             "code": "IDEMPOTENCY_KEY_REUSED"}
            if status == 201:
                answer = {"data": {**answer["data"], "notice": "Duplicate request; original response returned."}}
            return status, answer
        target = body.get("reservationId")
        if target is None or not any(r["reservationID"] == target for r in self.reservations):
            status, answer = 404, {"message": f"reservation {target} not found", "code": "FOLIO_NOT_FOUND"}
        else:
            check_id = body.get("checkId") or f"CHK-{len(self.idempotency) + 1}"
            number = body.get("checkNumber") or f"cb-{len(self.folio_items) + 1}"
            for line in body.get("items", []):
                self.folio_items.append({"reservationId": target, "checkId": check_id, "name": line["itemName"],
                                         "amount": int(line["itemAmount"]["amount"]),
                                         "currency": line["itemAmount"]["currencyCode"],
                                         "sku": line["details"]["itemSku"], "idempotencyKey": key})
            status, answer = 201, {"data": {"checkNumber": number, "checkId": check_id}}
        self.idempotency[key] = (digest, status, answer)
        return status, answer
