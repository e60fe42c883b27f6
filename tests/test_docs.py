"""The docs are kept true by tests: CLI, error codes, API routes and shapes, config, token sizes.

* docs/cli.md documents every command, option, argument and choice of ``kiosk``, and its
  examples parse.
* docs/errors.md, the OpenAPI ``ErrorCode`` enum and ``kiosk.errors.HTTP_STATUS`` agree.
* docs/openapi.yaml has exactly the app's routes and methods, and the app's real
  responses (success and error) validate against the documented schemas.
* config.yaml is the embedded defaults, key for key.
* docs/tokens.md's measured sizes are what real tokens measure.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import segno
import yaml

from agent.cli import main as agent_main
from kiosk import config as config_mod
from kiosk import qr, store, workorders
from kiosk.cli import main
from kiosk.errors import HTTP_STATUS
from kiosk.web.rbac import policy_of
from sync.cloud.cli import main as cloud_main

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
HTTP_METHODS = {"get", "post", "put", "delete", "patch"}


@pytest.fixture(scope="module")
def spec() -> dict:
    return yaml.safe_load((DOCS / "openapi.yaml").read_text())


# --- CLI ----------------------------------------------------------------------------------

#: program -> (its click group, the doc that documents it)
PROGRAMS = {"kiosk": (main, "cli.md"), "kiosk-agent": (agent_main, "cli-agent.md"),
            "kiosk-cloud": (cloud_main, "cli-cloud.md")}


def walk(cmd: click.Command, path: tuple[str, ...] = ()):
    """(path, command) for the program and every command below it."""
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from walk(sub, (*path, name))


def cli_sections(prog: str = "kiosk") -> dict[tuple[str, ...], str]:
    """The program's doc split at headings that name a command: ``## `kiosk token create` ``."""
    sections: dict[tuple[str, ...], str] = {}
    current = None
    for line in (DOCS / PROGRAMS[prog][1]).read_text().splitlines():
        m = re.match(rf"^#{{1,6}} `{re.escape(prog)}((?: [a-z-]+)*)`", line)
        if m:
            current = tuple(m.group(1).split())
            assert current not in sections, f"two sections for {prog} {' '.join(current)}"
            sections[current] = ""
        elif line.startswith("#"):
            current = None
        elif current is not None:
            sections[current] += line + "\n"
    return sections


def all_commands():
    for prog, (group, _) in PROGRAMS.items():
        for path, cmd in walk(group):
            yield pytest.param(prog, path, cmd, id=" ".join((prog, *path)))


@pytest.mark.parametrize("prog", PROGRAMS)
def test_every_cli_command_has_a_section_and_every_section_a_command(prog):
    commands = {path for path, _ in walk(PROGRAMS[prog][0])}
    assert set(cli_sections(prog)) == commands


@pytest.mark.parametrize("prog, path, cmd", list(all_commands()))
def test_every_option_argument_and_choice_is_documented(prog, path, cmd):
    text = cli_sections(prog)[path]
    where = " ".join((prog, *path))
    for param in cmd.params:
        if isinstance(param, click.Option):
            for opt in param.opts + param.secondary_opts:
                assert f"`{opt}" in text, f"{where}: {opt} is not documented"
            if param.envvar:
                assert param.envvar in text, f"{param.envvar} is not documented"
        else:
            assert param.name.upper() in text, f"{where}: argument {param.name.upper()} is not documented"
        if isinstance(param.type, click.Choice):
            for choice in param.type.choices:
                assert choice in text, f"{where} {param.name}: choice {choice} is not documented"
    if cmd.params:  # the help option exists everywhere; documented once, globally
        assert "`--help`" in cli_sections(prog)[()]


@pytest.mark.parametrize("prog", PROGRAMS)
def test_documented_options_exist(prog):
    """The other direction: no option in a section's table that the command lacks."""
    commands = dict(walk(PROGRAMS[prog][0]))
    for path, text in cli_sections(prog).items():
        known = {o for p in commands[path].params for o in getattr(p, "opts", [])} | {"--help"}
        documented = set(re.findall(r"^\| `(--[a-z-]+)", text, re.M))
        assert documented <= known, f"{prog} {' '.join(path)}: {documented - known}"


def cli_examples(prog: str = "kiosk") -> list[list[str]]:
    out = []
    for block in re.findall(r"```sh\n(.*?)```", (DOCS / PROGRAMS[prog][1]).read_text(), re.S):
        for line in block.splitlines():
            argv = shlex.split(line, comments=True)
            while argv and re.match(r"^[A-Z_]+=", argv[0]):
                argv.pop(0)  # VAR=value kiosk ...
            if argv and argv[0] == prog:
                out.append(argv[1:])
    return out


def parse_cli(argv: list[str], prog: str = "kiosk") -> tuple[str, ...]:
    """Parse like click would, without running anything; returns the leaf command's path."""
    cmd, parent, name, path = PROGRAMS[prog][0], None, prog, ()
    while True:
        ctx = cmd.make_context(name, list(argv), parent=parent)
        if not isinstance(cmd, click.Group):
            return path
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        name, cmd, argv = cmd.resolve_command(ctx, rest)
        path = (*path, name)
        parent = ctx


@pytest.mark.parametrize("prog", PROGRAMS)
def test_cli_examples_parse_and_every_command_has_one(prog):
    leaves = set()
    for argv in cli_examples(prog):
        try:
            leaves.add(parse_cli(argv, prog))
        except click.ClickException as e:
            pytest.fail(f"{prog} {shlex.join(argv)}: {e.format_message()}")
    commands = {path for path, cmd in walk(PROGRAMS[prog][0]) if not isinstance(cmd, click.Group)}
    assert commands - leaves == set(), "commands without an example"


def test_a_wrong_example_would_be_caught():
    with pytest.raises(click.ClickException):
        parse_cli(["token", "create", "--hotel", "demo"])  # --role missing
    with pytest.raises(click.ClickException):
        parse_cli(["token", "list", "--status", "gone"])
    with pytest.raises(click.ClickException):
        parse_cli(["link", "--cloud", "http://x"], "kiosk-agent")  # --device-id missing


# --- error codes ----------------------------------------------------------------------------

def error_table() -> dict[str, int]:
    rows = re.findall(r"^\| `([A-Z_]+)` \| (\d{3}) \|", (DOCS / "errors.md").read_text(), re.M)
    table = dict(rows)
    assert len(table) == len(rows), "a code has two rows in docs/errors.md"
    return {code: int(status) for code, status in table.items()}


def test_errors_md_has_one_row_per_code_with_its_status():
    assert error_table() == HTTP_STATUS


def test_openapi_error_code_enum_is_http_status(spec):
    enum = spec["components"]["schemas"]["ErrorCode"]["enum"]
    assert len(enum) == len(set(enum))
    assert set(enum) == set(HTTP_STATUS)


def resolve(spec: dict, node: dict) -> dict:
    while "$ref" in node:
        target = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in HTTP_METHODS:
                yield path, method, op


def test_documented_error_responses_carry_codes_of_their_status(spec):
    seen = set()
    for path, method, op in operations(spec):
        for status, resp in op["responses"].items():
            resp = resolve(spec, resp)
            if int(status) < 400:
                assert "x-error-codes" not in resp
                continue
            codes = resp.get("x-error-codes")
            assert codes, f"{method.upper()} {path} {status}: no x-error-codes"
            for code in codes:
                assert HTTP_STATUS[code] == int(status), f"{method.upper()} {path}: {code} is not {status}"
            seen |= set(codes)
    # STORAGE_FULL can answer any write (info.description); SCHEMA_TOO_NEW stops a program
    # before it serves; ADDRESS_IN_USE and CAMERA_UNAVAILABLE are the command line's
    seen |= {"STORAGE_FULL", "SCHEMA_TOO_NEW", "ADDRESS_IN_USE", "CAMERA_UNAVAILABLE"}
    # CONFIG_ERROR and NOT_INITIALISED stop the server before it serves anything;
    # METHOD_NOT_ALLOWED belongs to the admin endpoints' methods (elsewhere: info.description);
    # IDEMPOTENCY_KEY_REUSED and CURSOR_EXPIRED are the reference cloud's answers
    # (docs/sync-protocol.md, docs/cloud-openapi.yaml), and so are KEY_CONFLICT and DATABASE_UNAVAILABLE
    assert seen == set(HTTP_STATUS) - {"CONFIG_ERROR", "NOT_INITIALISED", "IDEMPOTENCY_KEY_REUSED",
                                       "CURSOR_EXPIRED", "KEY_CONFLICT", "DATABASE_UNAVAILABLE"}


# --- routes -----------------------------------------------------------------------------------

def app_routes(app) -> dict[tuple[str, str], object]:
    out = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith(("screens.", "admin_screens.")):
            continue  # the screens' HTML, assets and event stream: docs/screens.md, not the JSON API
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            out[(path, method.lower())] = app.view_functions[rule.endpoint]
    return out


def test_openapi_paths_are_exactly_the_apps_routes(app, spec):
    documented = {(path, method) for path, method, _ in operations(spec)}
    served = set(app_routes(app))
    assert served - documented == set(), "routes missing from docs/openapi.yaml"
    assert documented - served == set(), "docs/openapi.yaml has routes the app does not serve"


def test_openapi_security_matches_the_rbac_policy(app, spec):
    for (path, method), view in app_routes(app).items():
        op = spec["paths"][path][method]
        public = op.get("security", spec["security"]) == []
        assert public == (policy_of(view) == "public"), f"{method.upper()} {path}"
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert (schemes["cookie"]["in"], schemes["cookie"]["name"]) == (
        "cookie", config_mod.defaults()["sessions"]["cookie_name"])


def test_every_ref_resolves(spec):
    refs = re.findall(r"\$ref: '([^']+)'", (DOCS / "openapi.yaml").read_text())
    assert refs
    for ref in set(refs):
        resolve(spec, {"$ref": ref})


# --- responses validate against the documented schemas ---------------------------------------

TYPES = {"null": type(None), "string": str, "boolean": bool, "object": dict, "array": list,
         "integer": int, "number": (int, float)}


def schema_errors(spec: dict, schema: dict, value, where: str = "$") -> list[str]:
    """A small JSON Schema (2020-12 subset) check: enough for docs/openapi.yaml."""
    schema = resolve(spec, schema) if "$ref" in schema and len(schema) == 1 else schema
    if "$ref" in schema:
        errs = schema_errors(spec, resolve(spec, {"$ref": schema["$ref"]}), value, where)
        schema = {k: v for k, v in schema.items() if k != "$ref"}
        return errs + schema_errors(spec, schema, value, where)
    errs: list[str] = []
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        ok = any(isinstance(value, TYPES[n]) and not (isinstance(value, bool) and n in ("integer", "number"))
                 for n in names)
        if not ok:
            return [f"{where}: {value!r} is not {'/'.join(names)}"]
    if "const" in schema and value != schema["const"]:
        errs.append(f"{where}: {value!r} != {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errs.append(f"{where}: {value!r} not in {schema['enum']}")
    for key, alts in (("oneOf", 1), ("anyOf", None)):
        if key in schema:
            n = sum(not schema_errors(spec, s, value, where) for s in schema[key])
            if (n != 1) if alts == 1 else n == 0:
                errs.append(f"{where}: {n} of {key} match")
    for s in schema.get("allOf", []):
        errs += schema_errors(spec, s, value, where)
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", 10**9):
            errs.append(f"{where}: length {len(value)}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errs.append(f"{where}: {value!r} !~ {schema['pattern']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < schema.get("minimum", float("-inf")) or value > schema.get("maximum", float("inf")):
            errs.append(f"{where}: {value} out of range")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        errs += [f"{where}: {k} missing" for k in schema.get("required", []) if k not in value]
        if len(value) < schema.get("minProperties", 0):
            errs.append(f"{where}: too few properties")
        extra = schema.get("additionalProperties", True)
        for k, v in value.items():
            if k in props:
                errs += schema_errors(spec, props[k], v, f"{where}.{k}")
            elif extra is False:
                errs.append(f"{where}: unexpected {k}")
            elif isinstance(extra, dict):
                errs += schema_errors(spec, extra, v, f"{where}.{k}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            errs += schema_errors(spec, schema["items"], v, f"{where}[{i}]")
    return errs


def test_the_schema_check_is_not_vacuous(spec):
    err = {"$ref": "#/components/schemas/Error"}
    good = {"success": False, "error": {"code": "NOT_FOUND", "message": "m", "details": {}},
            "timestamp": "2026-05-28T20:26:40.000Z"}
    assert schema_errors(spec, err, good) == []
    assert schema_errors(spec, err, {**good, "extra": 1})
    assert schema_errors(spec, err, {**good, "error": {**good["error"], "code": "NOPE"}})
    assert schema_errors(spec, err, {**good, "timestamp": "2026-05-28 20:26:40"})
    assert schema_errors(spec, {"$ref": "#/components/schemas/TokenList"}, {"success": True, "count": 0})


class Checker:
    """Send requests through the test client and check each answer against the spec."""

    def __init__(self, spec, client):
        self.spec, self.client, self.seen = spec, client, set()

    def __call__(self, method, url, status, *, code=None, path=None, **kw):
        path = path or url.split("?")[0]  # the documented path (its template, for a URL with parameters)
        op = self.spec["paths"][path][method]
        if isinstance(kw.get("json"), dict) and status < 400:
            body_schema = op["requestBody"]["content"]["application/json"]["schema"]
            assert schema_errors(self.spec, body_schema, kw["json"]) == [], "documented request"
        r = getattr(self.client, method)(url, **kw)
        if status < 400 and r.mimetype != "application/json":  # a download (the admin export)
            assert r.status_code == status, r.get_data(as_text=True)[:300]
            content = resolve(self.spec, op["responses"][str(status)])["content"]
            assert r.mimetype in content, f"{method.upper()} {path} {status}: {r.mimetype} is not documented"
            self.seen.add((path, method, status))
            return r.get_data(as_text=True)
        body = r.get_json()
        assert r.status_code == status, body
        assert str(status) in op["responses"], f"{method.upper()} {path}: {status} is not documented"
        resp = resolve(self.spec, op["responses"][str(status)])
        schema = resp["content"]["application/json"]["schema"]
        assert schema_errors(self.spec, schema, body) == [], body
        if status >= 400:
            assert body["error"]["code"] == code and code in resp["x-error-codes"]
        for name in resp.get("headers", {}):
            assert name in r.headers, f"{method.upper()} {path} {status}: no {name} header"
        self.seen.add((path, method, status))
        return body


@pytest.fixture
def check(spec, client):
    return Checker(spec, client)


def bearer(body):
    return {"Authorization": "Bearer " + body["sessionJWT"]}


def test_real_responses_match_the_documented_schemas(check, issue, instance, clock, spec):
    check("get", "/healthz", 200)
    guest = check("post", "/api/qr/scan", 200, json={"qrToken": issue("guest", name="Ada"), "hotelId": "demo"})
    staff = check("post", "/api/qr/scan", 200,
                  json={"qrToken": issue("staff", reusable=True), "hotelId": "demo", "scanMethod": "manual"})
    admin = check("post", "/api/qr/scan", 200, json={"qrToken": issue("admin"), "hotelId": "demo"})
    g, s, a = bearer(guest), bearer(staff), bearer(admin)
    # a screen's scan: the other documented answer (the bound cookie and its key, no JWT)
    assert "screenKey" in check("post", "/api/qr/scan", 200, json={"qrToken": issue("guest"), "hotelId": "demo"},
                                headers={"X-Kiosk-Screen": "1"})
    check("get", "/api/session", 200, headers=g)

    created = check("post", "/api/admin?endpoint=tokens", 201, headers=a,
                    json={"role": "guest", "userId": "guest-1042", "name": "Ms Ada Lovelace", "expiresIn": "3d",
                          "walkIn": True})
    check("post", "/api/admin?endpoint=tokens", 404, code="NOT_FOUND", headers=a, json={"role": "guest", "userId": "NOPE"})
    # signing in with the booking: both answers, and the refusal
    instance.db()["reservations"].insert({"hotel_id": "demo", "confirmation": "R-88", "guest_name": "Ada Lovelace",
                                          "status": "InHouse", "arrival": "2020-01-01", "departure": "2030-01-01"})
    assert "sessionJWT" in check("post", "/api/lobby/sign-in", 200,
                                 json={"hotelId": "demo", "confirmation": "R-88", "lastName": "lovelace"})
    assert "screenKey" in check("post", "/api/lobby/sign-in", 200, json={"confirmation": "r-88", "lastName": "LOVELACE"},
                                headers={"X-Kiosk-Screen": "1"})
    check("post", "/api/lobby/sign-in", 401, code="INVALID_TOKEN",
          json={"hotelId": "demo", "confirmation": "R-88", "lastName": "Byron"})
    instance.db().execute("DELETE FROM reservations WHERE confirmation = 'R-88'")  # not part of the night audit below
    check("get", "/api/admin?endpoint=tokens&status=active&limit=50", 200, headers=a)
    check("put", "/api/admin?endpoint=tokens", 200, headers=a, json={"jti": created["jti"]})
    check("post", "/api/qr/scan", 401, code="TOKEN_REVOKED", json={"qrToken": created["token"], "hotelId": "demo"})
    check("get", "/api/admin?endpoint=sessions&active=1", 200, headers=a)
    seed = check("post", "/api/admin?endpoint=tokens", 201, headers=a, json={"userRole": "guest", "expiresInDays": 30})
    assert seed["data"]["token"] == seed["token"]
    check("get", "/api/admin?endpoint=sessions&status=expired", 200, headers=a)
    check("post", "/api/admin?endpoint=sessions", 200, headers=a, json={"sessionId": guest["sessionId"]})

    workorders.create(instance.db(), hotel_id="demo", work_order_id="WO-1", by="pms", now=clock.now(),
                      node="kiosk-test", room_number="101", description="AC rattles")
    check("post", "/api/pms/update", 200, headers=s,
          json={"workOrderId": "WO-1", "changes": {"status": "assigned", "assignee": "s-7"}, "expectedVersion": 1})
    check("post", "/api/pms/update", 200, headers=s, json={"workOrderId": "WO-1", "changes": {"status": "assigned"}})
    check("post", "/api/pms/update", 409, code="INVALID_TRANSITION", headers=s,
          json={"workOrderId": "WO-1", "changes": {"status": "done"}})
    check("post", "/api/pms/update", 409, code="VERSION_CONFLICT", headers=s,
          json={"workOrderId": "WO-1", "changes": {"notes": "x"}, "expectedVersion": 1})
    check("post", "/api/pms/update", 404, code="NOT_FOUND", headers=s,
          json={"workOrderId": "WO-404", "changes": {"notes": "x"}})
    ticket = {"type": "maintenance", "title": "AC rattles", "description": "loud at night", "roomNumber": "204"}
    check("post", "/api/tickets/auto", 201, headers=s, json=ticket)
    check("post", "/api/tickets/auto", 200, headers=s, json=ticket)
    check("post", "/api/tickets/auto", 403, code="FORBIDDEN", headers=g, json=ticket)

    # the screens' JSON
    db0 = instance.db()
    db0["rooms"].insert({"hotel_id": "demo", "room_number": "204", "room_type": "KING", "floor": 2,
                         "status": "Inspected", "occupied": 0})
    db0["reservations"].insert({"hotel_id": "demo", "confirmation": "R-77", "guest_name": "Ada Lovelace",
                                "room_number": "204", "room_type": "KING", "arrival": "2026-05-28",
                                "departure": "2026-05-30", "status": "InHouse", "language": "de"})
    db0["offers"].insert({"hotel_id": "demo", "offer_id": "O1", "name": "Late checkout", "type": "addon",
                          "price": 25.0, "margin": 20.0, "inventory": 5})
    r77 = bearer(check("post", "/api/qr/scan", 200, json={"qrToken": issue("guest", user="R-77"), "hotelId": "demo"}))
    home = check("get", "/api/guest/home", 200, headers=r77)
    assert home["welcome"] == "Willkommen, Ada Lovelace" and home["room"]["ready"] is True
    assert [o["offerId"] for o in home["offers"]] == ["O1"] and home["stay"]["nights"] == 2
    check("post", "/api/guest/requests", 201, headers=r77, json={"text": "Two more towels please"})
    check("post", "/api/guest/requests", 200, headers=r77, json={"text": "Two more towels please"})
    check("post", "/api/guest/requests", 400, code="VALIDATION_ERROR", headers=r77, json={"text": "x"})
    check("get", "/api/guest/home", 403, code="FORBIDDEN", headers=s)
    tasks = check("get", "/api/staff/tasks", 200, headers=s)
    assert [w["workOrderId"] for w in tasks["workOrders"]] == ["WO-1"]
    assert tasks["workOrders"][0]["allowedStatuses"] == ["in_progress", "on_hold", "open", "cancelled"] or \
        set(tasks["workOrders"][0]["allowedStatuses"]) == {"in_progress", "on_hold", "open", "cancelled"}
    check("get", "/api/staff/tasks", 403, code="FORBIDDEN", headers=g)

    # the guest's side and the staff work queue
    mine = check("get", "/api/guest/requests", 200, headers=r77)["requests"]
    assert [q["text"] for q in mine] == ["Two more towels please"] and mine[0]["stage"] == "received"
    taken = "/api/guest/offers/{offer_id}/accept"
    assert check("post", "/api/guest/offers/O1/accept", 201, headers=r77, path=taken)["syncStatus"] == "queued"
    assert check("post", "/api/guest/offers/O1/accept", 200, headers=r77, path=taken)["syncStatus"] == "unchanged"
    check("post", "/api/guest/offers/NOPE/accept", 404, code="NOT_FOUND", headers=r77, path=taken)
    asked = check("post", "/api/guest/questions", 200, headers=r77, json={"question": "Can my dog stay with me?"})
    assert asked["handover"] is True and asked["request"]["stage"] == "received"
    check("post", "/api/guest/questions", 400, code="VALIDATION_ERROR", headers=r77, json={"question": ""})
    import base64
    import io
    import wave
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:  # half a second of a quiet room: nothing to understand
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000), w.writeframes(b"\0\0" * 8000)
    heard = check("post", "/api/guest/voice", 200, headers=r77, json={"audio": base64.b64encode(buf.getvalue()).decode()})
    assert heard["outcome"] in ("not_understood", "unavailable")
    check("post", "/api/guest/voice", 400, code="VALIDATION_ERROR", headers=r77, json={"audio": "bm90IGEgd2F2ZQ=="})
    queue = check("get", "/api/staff/tasks?scope=all&kind=ticket", 200, headers=s)
    assert {i["kind"] for i in queue["items"]} == {"ticket"} and queue["filters"]["kind"] == "ticket"
    check("get", "/api/staff/tasks?scope=everybody", 400, code="VALIDATION_ERROR", headers=s)
    act = "/api/staff/tasks/{kind}/{item_id}"
    first = queue["items"][0]["id"]
    done = check("post", f"/api/staff/tasks/ticket/{first}", 200, headers=s, path=act, json={"action": "accept"})
    assert done["item"]["status"] == "accepted" and done["syncStatus"] == "queued"
    check("post", f"/api/staff/tasks/ticket/{first}", 409, code="INVALID_TRANSITION", headers=s, path=act,
          json={"action": "accept"})
    check("post", "/api/staff/tasks/ticket/T-404", 404, code="NOT_FOUND", headers=s, path=act, json={"action": "done"})
    check("post", f"/api/staff/tasks/ticket/{first}", 400, code="VALIDATION_ERROR", headers=s, path=act,
          json={"action": "fly"})
    check("post", f"/api/staff/tasks/ticket/{first}", 403, code="FORBIDDEN", headers=g, path=act,
          json={"action": "done"})
    feed = check.client.get("/api/staff/events", headers=s, buffered=False)  # a stream: checked by hand
    assert feed.status_code == 200 and feed.mimetype == "text/event-stream"
    assert next(iter(feed.response)) == b"retry: 2000\n\n"
    feed.close()
    check.seen.add(("/api/staff/events", "get", 200))
    check("get", "/api/staff/events", 403, code="FORBIDDEN", headers=g)

    # the hotel models
    sid = check("get", "/api/session", 200, headers=s)["sessionId"]
    audit_run = check("post", "/api/ai/trigger", 200, headers=s,
                      json={"sessionId": sid, "modelId": "night-audit", "requestPayload": {"businessDate": "2026-05-28"}})
    assert [(f["type"], f["confirmation"]) for f in audit_run["findings"]] == [("MISSING_ROOM_CHARGE", "R-77")]
    batch = check("post", "/api/ai/trigger", 200, headers=s,
                  json={"sessionId": sid, "modelIds": ["night-audit", "task-routing"], "requestPayload": {}})
    assert {r["modelId"] for r in batch["results"]} == {"night-audit", "task-routing"}
    check("post", "/api/ai/trigger", 404, code="NOT_FOUND", headers=s, json={"sessionId": sid, "modelId": "x"})
    billing = check("post", "/api/ai/trigger", 200, headers=s, json={"sessionId": sid, "modelId": "billing-detection",
                                                                     "requestPayload": {"businessDate": "2026-05-28"}})
    approval_id = billing["actionsTriggered"][0]["approvalTaskId"]
    decided = check("post", "/api/approvals", 200, headers=s, json={"taskId": approval_id, "decision": "approve"})
    assert decided["proposal"]["changes"] == {"post": "ROOM", "amount": 0.0} and decided["outboxKey"]
    check("post", "/api/approvals", 404, code="NOT_FOUND", headers=s, json={"taskId": approval_id, "decision": "reject"})
    check("post", "/api/approvals", 400, code="VALIDATION_ERROR", headers=s, json={"taskId": approval_id})
    check("post", "/api/approvals", 403, code="FORBIDDEN", headers=g, json={"taskId": approval_id, "decision": "reject"})
    check("post", "/api/ai/trigger", 403, code="FORBIDDEN", headers=g,
          json={"sessionId": guest["sessionId"], "modelId": "night-audit"})

    db = instance.db()
    db.execute("UPDATE outbox SET state = 'dead', last_error = 'rejected: test' WHERE id = (SELECT min(id) FROM outbox)")
    dead = check("get", "/api/admin?endpoint=outbox", 200, headers=a)
    assert dead["count"] == 1
    check("put", "/api/admin?endpoint=outbox", 200, headers=a, json={"id": dead["dead"][0]["id"], "action": "retry"})

    from kiosk import sync_status
    with store.transaction(db):
        sync_status.record_conflict(db, "demo", {"entityType": "work_order", "entityId": "WO-1", "field": "notes",
                                          "rule": "field-lww", "outcome": "kept the value with the later stamp",
                                          "incoming": {"value": "a", "hlc": "1-00000-k1"},
                                          "current": {"value": "b", "hlc": "2-00000-k2"}},
                             source="pull", now=clock.now(), key="cloud:1")
        db.execute("INSERT INTO security_events (hotel_id, kind, subject, details, detected_at) VALUES"
                   " ('demo', 'TOKEN_REPLAY', 'jti-1', '{}', ?)", [clock.now()])
    assert check("get", "/api/admin?endpoint=conflicts", 200, headers=a)["count"] == 1
    assert check("get", "/api/admin?endpoint=security", 200, headers=a)["count"] == 1
    assert check("get", "/api/admin?endpoint=sync", 200, headers=a)["stale"] is True  # never heard from a cloud
    check("post", "/api/admin?endpoint=sync", 405, code="METHOD_NOT_ALLOWED", headers=a, json={})
    with store.transaction(db):
        sync_status.put(db, {"trust_newest_at": clock.now() + 7200})  # a key from 2 h "in the future"
    check("post", "/api/qr/scan", 503, code="CLOCK_NOT_TRUSTED", json={"qrToken": issue("guest"), "hotelId": "demo"})
    with store.transaction(db):
        sync_status.put(db, {"trust_newest_at": None})

    # analytics, a staff session's timeline, exports
    check("get", "/api/admin?endpoint=analytics", 200, headers=a)
    check("get", "/api/admin?endpoint=analytics&from=2026-05-01&to=2026-05-28", 200, headers=a)
    check("get", "/api/admin?endpoint=analytics&period=year", 400, code="VALIDATION_ERROR", headers=a)
    detail = check("post", "/api/admin?endpoint=sessions", 200, headers=a, json={"sessionId": staff["sessionId"]})
    assert {"scan", "model.run", "model.actions", "approval"} <= {e["kind"] for e in detail["timeline"]}
    check("post", "/api/admin?endpoint=export", 200, headers=a, json={"format": "json", "period": "week"})
    assert check("post", "/api/admin?endpoint=export", 200, headers=a,
                 json={"format": "csv", "kinds": ["audit", "tickets"]}).startswith("kind,at,id,")
    check("get", "/api/admin?endpoint=export&format=ndjson&kinds=modelRuns,pmsChanges", 200, headers=a)
    check("post", "/api/admin?endpoint=export", 400, code="VALIDATION_ERROR", headers=a, json={"format": "xls"})
    check("delete", "/api/admin?endpoint=sessions", 200, headers=a, json={"sessionId": guest["sessionId"]})
    check("get", "/api/session", 401, code="SESSION_EXPIRED", headers=g)

    # the admin API's routes (the `?endpoint=` form above is their compatibility form)
    made = check("post", "/api/admin/tokens", 201, headers=a, json={"role": "staff", "expiresIn": "1d"})
    check("get", "/api/admin/tokens?status=active&limit=50", 200, headers=a)
    revoke = "/api/admin/tokens/{jti}/revoke"
    check("post", f"/api/admin/tokens/{made['jti']}/revoke", 200, headers=a, path=revoke)
    check("post", "/api/admin/tokens/nope/revoke", 404, code="NOT_FOUND", headers=a, path=revoke)
    one = "/api/admin/sessions/{session_id}"
    other = check("post", "/api/qr/scan", 200, json={"qrToken": issue("guest"), "hotelId": "demo"})["sessionId"]
    check("get", "/api/admin/sessions?status=active&limit=10", 200, headers=a)
    check("get", f"/api/admin/sessions/{other}", 200, headers=a, path=one)
    check("delete", f"/api/admin/sessions/{other}", 200, headers=a, path=one)
    check("get", "/api/admin/sessions/nope", 404, code="NOT_FOUND", headers=a, path=one)
    check("get", "/api/admin/analytics?period=week", 200, headers=a)
    check("get", "/api/admin/export?format=csv&kinds=audit", 200, headers=a)
    check("post", "/api/admin/export", 200, headers=a, json={"format": "json", "kinds": ["sessions"]})
    db.execute("UPDATE outbox SET state = 'dead', last_error = 'rejected: test'"
               " WHERE id IN (SELECT id FROM outbox ORDER BY id DESC LIMIT 2)")
    dead = check("get", "/api/admin/outbox?limit=10", 200, headers=a)["dead"]
    check("post", f"/api/admin/outbox/{dead[0]['id']}/retry", 200, headers=a, path="/api/admin/outbox/{entry_id}/retry")
    check("post", f"/api/admin/outbox/{dead[1]['id']}/drop", 200, headers=a, path="/api/admin/outbox/{entry_id}/drop")
    assert check("get", "/api/admin/conflicts", 200, headers=a)["count"] == 1
    assert check("get", "/api/admin/security", 200, headers=a)["count"] == 1
    check("get", "/api/admin/sync", 200, headers=a)
    check("post", "/api/admin/guests/erase", 200, headers=a,
          json={"hotelId": "demo", "confirmation": "R-1042", "confirm": "R-1042"})
    check("get", "/api/admin/tokens", 403, code="FORBIDDEN", headers=s)

    # errors of the admin API
    check("get", "/api/admin?endpoint=tokens", 403, code="FORBIDDEN", headers=s)
    check("delete", "/api/session", 200, headers=s)
    check("get", "/api/admin?endpoint=nope", 404, code="NOT_FOUND", headers=a)
    check("delete", "/api/admin?endpoint=tokens", 405, code="METHOD_NOT_ALLOWED", headers=a)
    check("get", "/api/admin?endpoint=tokens&limit=0", 400, code="VALIDATION_ERROR", headers=a)
    check("post", "/api/admin?endpoint=tokens", 403, code="HOTEL_MISMATCH", headers=a,
          json={"role": "guest", "hotelId": "harbor"})
    check("put", "/api/admin?endpoint=tokens", 404, code="NOT_FOUND", headers=a, json={"jti": "nope"})
    check.client.delete_cookie("kiosk_session")
    check("get", "/api/admin?endpoint=tokens", 401, code="UNAUTHORIZED")
    check("post", "/api/admin?endpoint=tokens", 413, code="PAYLOAD_TOO_LARGE", headers=a,
          data="x" * (instance.config.server.max_body_bytes + 1), content_type="application/json")

    # errors of the scan
    once = issue("guest")
    check("post", "/api/qr/scan", 200, json={"qrToken": once, "hotelId": "demo"})
    check("post", "/api/qr/scan", 409, code="TOKEN_ALREADY_USED", json={"qrToken": once, "hotelId": "demo"})
    check("post", "/api/qr/scan", 403, code="HOTEL_MISMATCH", json={"qrToken": issue("guest"), "hotelId": "harbor"})
    check("post", "/api/qr/scan", 400, code="VALIDATION_ERROR", json={"qrToken": "x"})
    old = issue("guest", ttl=60)
    clock.advance(3600)
    check("post", "/api/qr/scan", 401, code="TOKEN_EXPIRED", json={"qrToken": old, "hotelId": "demo"})
    for _ in range(instance.config.scan.max_failures):
        body = {"qrToken": "not-a-token", "hotelId": "demo"}
        if check.client.post("/api/qr/scan", json=body).status_code == 429:
            break
    limited = check("post", "/api/qr/scan", 429, code="RATE_LIMITED", json=body)
    assert limited["error"]["details"]["retryAfter"] >= 1

    documented = {(p, m, int(s)) for p, m, op in operations(spec) for s in op["responses"]
                  if int(s) < 400}
    assert documented <= check.seen, "every documented success response was produced"


def test_method_not_allowed_and_unknown_path_have_the_error_body(client, spec):
    for method, url, status in (("patch", "/api/admin", 405), ("get", "/api/qr/scan", 405),
                                ("get", "/no/such/path", 404)):
        body = getattr(client, method)(url).get_json()
        assert schema_errors(spec, {"$ref": "#/components/schemas/Error"}, body) == []
        assert HTTP_STATUS[body["error"]["code"]] == status


def test_examples_in_the_spec_validate(spec):
    n = 0
    for path, method, op in operations(spec):
        content = op.get("requestBody", {}).get("content", {}).get("application/json", {})
        if "example" in content:
            assert schema_errors(spec, content["schema"], content["example"]) == [], f"{method} {path}"
            n += 1
        for status, resp in op["responses"].items():
            c = resolve(spec, resp).get("content", {}).get("application/json", {})
            if "example" in c:
                assert schema_errors(spec, c["schema"], c["example"]) == [], f"{method} {path} {status}"
                if int(status) >= 400:
                    assert HTTP_STATUS[c["example"]["error"]["code"]] == int(status)
                n += 1
    assert n >= 5


# --- config ----------------------------------------------------------------------------------

def key_paths(tree: dict, prefix: tuple = ()) -> set[tuple]:
    out = set()
    for k, v in tree.items():
        out.add((*prefix, k))
        if isinstance(v, dict):
            out |= key_paths(v, (*prefix, k))
    return out


def test_config_yaml_is_the_embedded_defaults():
    path = REPO / "config.yaml"
    assert config_mod.load(path, env={}).model_dump() == config_mod.defaults()
    in_file = key_paths(yaml.safe_load(path.read_text()))
    assert key_paths(config_mod.defaults()) == in_file  # every key written out, none extra


# --- token sizes -----------------------------------------------------------------------------

def qr_version(token: str, level: str) -> str:
    return segno.make_qr(token, error=level, boost_error=False).designator


def test_tokens_md_sizes_are_measured(issue):
    text = (DOCS / "tokens.md").read_text()
    rows = {
        "guest or staff, one-time, generated user id": issue("guest"),
        "admin, reusable (`mu`), generated user id": issue("admin", reusable=True),
        "guest, one-time, user id `guest-000123456789`": issue("guest", user="guest-000123456789"),
    }
    assert len(issue("staff")) == len(rows["guest or staff, one-time, generated user id"])
    for label, tok in rows.items():
        assert qr.make(tok).designator == qr_version(tok, "m")  # the kiosk prints at level M
        row = f"| {label} | {len(tok)} | {qr_version(tok, 'm')} | {qr_version(tok, 'l')} |"
        assert row in text, f"docs/tokens.md should have the row {row}"
    header, claims, signature = rows["guest or staff, one-time, generated user id"].split(".")
    assert (len(header), len(signature)) == (43, 86)
    assert f"Header 43 + claims {len(claims)} + signature 86 + two dots = {len(header) + len(claims) + 88}" in text


def test_tokens_md_capacity_figures():
    """Byte-mode capacities quoted in docs/tokens.md: n bytes fit, n + 1 do not."""
    text = (DOCS / "tokens.md").read_text()

    def fits(n, version, level):
        try:
            segno.make_qr("a" * n, version=version, error=level, mode="byte", boost_error=False)
        except segno.DataOverflowError:
            return False
        return True

    for n, version, level in ((213, 10, "m"), (271, 10, "l"), (251, 11, "m"), (287, 12, "m")):
        assert fits(n, version, level) and not fits(n + 1, version, level), (n, version, level)
    assert "holds **213** bytes (10-L holds 271, 11-M 251, 12-M 287)" in text
