"""The real ``kiosk`` console script, run as a subprocess, one data dir per test."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest
from procs import kiosk

from kiosk import config as config_mod
from kiosk import tokens
from kiosk.errors import InvalidToken, TokenAlreadyUsed, TokenExpired, TokenRevoked
from kiosk.instance import Instance
from kiosk.scan import ScanService
from kiosk.trust import TrustList


def ok(*args: str, env: dict | None = None):
    p = kiosk(*args, env=env)
    assert p.returncode == 0, f"kiosk {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def fails(*args: str, env: dict | None = None):
    p = kiosk(*args, env=env)
    assert p.returncode != 0, f"kiosk {' '.join(args)} should have failed\n{p.stdout}\n{p.stderr}"
    assert "Traceback" not in p.stderr, p.stderr
    return p


@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "kiosk"
    ok("--data-dir", str(d), "init")
    return d


def create(d: Path, *extra: str, hotel: str = "demo", role: str = "guest", env: dict | None = None) -> str:
    return ok("--data-dir", str(d), "token", "create", "--role", role, "--hotel", hotel, *extra,
              env=env).stdout.strip()


def listed(d: Path, *extra: str) -> list[dict]:
    out = ok("--data-dir", str(d), "token", "list", "--json", *extra).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def jti_of(token: str) -> str:
    return tokens.jwt.decode(token, options={"verify_signature": False})["jti"]


def library_instance(d: Path, **over) -> Instance:
    return Instance(config_mod.load(None, env={}, overrides={"data_dir": str(d), **over}))


# --- init ---------------------------------------------------------------------------------------


def test_init_creates_private_keys_and_is_idempotent(tmp_path):
    d = tmp_path / "k"
    first = json.loads(ok("--data-dir", str(d), "init").stdout)
    assert first["dataDir"] == str(d)
    assert set(first["created"]) == {"issuer key", "trust list", "session secret"}
    for name in ("issuer.pem", "trust.json", "session.secret"):
        f = d / "keys" / name
        assert f.is_file(), name
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, (name, oct(f.stat().st_mode))
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert (d / "kiosk.db").is_file()
    pem = (d / "keys" / "issuer.pem").read_bytes()
    secret = (d / "keys" / "session.secret").read_bytes()

    second = json.loads(ok("--data-dir", str(d), "init").stdout)
    assert second["kid"] == first["kid"]
    assert second["created"] == []
    assert (d / "keys" / "issuer.pem").read_bytes() == pem
    assert (d / "keys" / "session.secret").read_bytes() == secret
    trust = TrustList.load(d / "keys" / "trust.json")
    assert [k.kid for k in trust.keys()] == [first["kid"]]


def test_data_dir_from_environment(tmp_path):
    d = tmp_path / "from-env"
    out = json.loads(ok("init", env={"KIOSK_DATA_DIR": str(d)}).stdout)
    assert out["dataDir"] == str(d)
    assert (d / "keys" / "issuer.pem").is_file()


# --- token create -------------------------------------------------------------------------------


def test_token_create_prints_only_a_verifiable_token(data_dir):
    p = ok("--data-dir", str(data_dir), "token", "create", "--role", "guest", "--hotel", "demo",
           "--user", "u-42", "--name", "Ada", "--walk-in")  # u-42 is no reservation: a walk-in's code
    lines = p.stdout.splitlines()
    assert len(lines) == 1, p.stdout
    token = lines[0]
    assert token == token.strip() and len(token.split(".")) == 3 and all(token.split("."))

    inst = library_instance(data_dir)
    trust = TrustList.load(inst.trust_path)
    claims = tokens.verify(token, trust, now=time.time(), leeway=0)
    assert (claims.hotel_id, claims.role, claims.subject, claims.reusable) == ("demo", "guest", "u-42", False)
    assert claims.kid == inst.load_keys().kid
    assert 29 * 86400 <= claims.expires_at - claims.issued_at <= 30 * 86400  # tokens.default_ttl
    rows = listed(data_dir)
    assert [(r["jti"], r["status"], r["userId"]) for r in rows] == [(claims.jti, "active", "u-42")]


def test_token_create_writes_png_and_svg(data_dir, tmp_path):
    png, svg = tmp_path / "card.png", tmp_path / "card.svg"
    token = create(data_dir, "--png", str(png), "--svg", str(svg))
    assert len(token.split(".")) == 3
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = svg.read_text()
    assert "<svg" in text and text.rstrip().endswith("</svg>")
    assert token not in text  # the QR encodes it; it is not printed in clear on the card


def test_token_create_reusable_and_staff(data_dir):
    token = create(data_dir, "--reusable", role="staff")
    claims = tokens.verify(token, TrustList.load(data_dir / "keys" / "trust.json"), now=time.time())
    assert claims.reusable and claims.role == "staff"
    assert listed(data_dir)[0]["reusable"] is True


def test_token_create_rejects_bad_lifetime(data_dir):
    p = fails("--data-dir", str(data_dir), "token", "create", "--role", "guest", "--hotel", "demo",
              "--expires-in", "5y")
    assert "--expires-in" in p.stderr and p.stdout == ""
    p = fails("--data-dir", str(data_dir), "token", "create", "--role", "guest", "--hotel", "demo",
              "--expires-in", "500d")
    assert "max_ttl" in p.stderr and p.stdout == ""
    assert listed(data_dir) == []


def test_token_for_a_hotel_not_served_is_refused(data_dir):
    p = fails("--data-dir", str(data_dir), "token", "create", "--role", "guest", "--hotel", "other")
    assert "HOTEL_MISMATCH" in p.stderr
    assert p.stdout == ""
    assert listed(data_dir, "--hotel", "other") == [] and listed(data_dir) == []


def test_token_commands_need_init(tmp_path):
    for d in (tmp_path / "missing", tmp_path / "empty"):
        if d.name == "empty":
            d.mkdir()
        p = fails("--data-dir", str(d), "token", "create", "--role", "guest", "--hotel", "demo")
        assert "NOT_INITIALISED" in p.stderr and p.stdout == ""
        p = fails("--data-dir", str(d), "token", "list")
        assert "NOT_INITIALISED" in p.stderr
        assert not (d / "kiosk.db").exists()


# --- token list / revoke ------------------------------------------------------------------------


def test_token_list_filters_by_status(data_dir):
    env = {"KIOSK__TOKENS__LEEWAY_SECONDS": "0"}
    active = create(data_dir)
    used = create(data_dir)
    revoked = create(data_dir)
    reusable = create(data_dir, "--reusable")
    expired = create(data_dir, "--expires-in", "1s", env=env)
    created_at = time.time()

    # "used": consume it through the library's scan service, as the server would
    inst = library_instance(data_dir, tokens={"leeway_seconds": 0})
    svc = ScanService(inst, inst.load_keys())
    db = inst.connect()
    assert svc.scan(db, {"qrToken": used, "hotelId": "demo"})["success"] is True
    with pytest.raises(TokenAlreadyUsed):
        svc.scan(db, {"qrToken": used, "hotelId": "demo"})
    for _ in range(2):  # a reusable token scanned (twice) stays active
        assert svc.scan(db, {"qrToken": reusable, "hotelId": "demo"})["success"] is True

    out = json.loads(ok("--data-dir", str(data_dir), "token", "revoke", jti_of(revoked)).stdout)
    assert out["jti"] == jti_of(revoked) and out["hotelId"] == "demo" and out["revokedAt"]
    again = json.loads(ok("--data-dir", str(data_dir), "token", "revoke", jti_of(revoked)).stdout)
    assert again["revokedAt"] == out["revokedAt"]  # revoking twice is harmless

    time.sleep(max(0.0, created_at + 1.2 - time.time()))  # exp = int(iat) + 1 is now in the past
    with pytest.raises(TokenExpired):
        svc.scan(db, {"qrToken": expired, "hotelId": "demo"})

    want = {jti_of(active): "active", jti_of(used): "used", jti_of(revoked): "revoked",
            jti_of(reusable): "active", jti_of(expired): "expired"}
    everything = listed(data_dir)
    assert {r["jti"]: r["status"] for r in everything} == want
    for status in tokens.STATUSES:
        rows = listed(data_dir, "--status", status)
        assert {r["jti"] for r in rows} == {j for j, s in want.items() if s == status}, status
        assert all(r["status"] == status for r in rows)
    assert listed(data_dir, "--hotel", "elsewhere") == []

    text = ok("--data-dir", str(data_dir), "token", "list", "--status", "revoked").stdout
    assert len(text.splitlines()) == 1 and jti_of(revoked) in text and "revoked" in text

    p = fails("--data-dir", str(data_dir), "token", "list", "--status", "bogus")
    assert "bogus" in p.stderr


def test_revoke_stops_a_scan(data_dir):
    token = create(data_dir)
    ok("--data-dir", str(data_dir), "token", "revoke", jti_of(token))
    inst = library_instance(data_dir)
    svc = ScanService(inst, inst.load_keys())
    with pytest.raises(TokenRevoked):
        svc.scan(inst.connect(), {"qrToken": token, "hotelId": "demo"})
    assert [r["status"] for r in listed(data_dir)] == ["revoked"]


def test_revoke_unknown_jti_is_not_found(data_dir):
    create(data_dir)
    p = fails("--data-dir", str(data_dir), "token", "revoke", "no-such-jti")
    assert "NOT_FOUND" in p.stderr and "no-such-jti" in p.stderr
    assert p.stdout == ""
    assert [r["status"] for r in listed(data_dir)] == ["active"]


# --- configuration errors -----------------------------------------------------------------------


def test_unknown_config_key_names_key_and_file(data_dir, tmp_path):
    cfg = tmp_path / "kiosk.yaml"
    cfg.write_text("server:\n  port: 8081\n  bogus_key: 1\n")
    p = fails("--config", str(cfg), "--data-dir", str(data_dir), "token", "list")
    assert "CONFIG_ERROR" in p.stderr
    assert "server.bogus_key" in p.stderr and str(cfg) in p.stderr
    assert p.stdout == ""
    # the same through KIOSK_CONFIG
    p = fails("--data-dir", str(data_dir), "token", "list", env={"KIOSK_CONFIG": str(cfg)})
    assert "server.bogus_key" in p.stderr and str(cfg) in p.stderr


def test_bad_environment_value_names_the_variable(tmp_path):
    d = tmp_path / "k"
    p = fails("--data-dir", str(d), "init", env={"KIOSK__SERVER__PORT": "abc"})
    assert "CONFIG_ERROR" in p.stderr
    assert "KIOSK__SERVER__PORT" in p.stderr and "server.port" in p.stderr
    assert not d.exists()  # nothing is created from a broken configuration
    p = fails("--data-dir", str(d), "init", env={"KIOSK__SERVER__NOPE": "1"})
    assert "KIOSK__SERVER__NOPE" in p.stderr and "unknown key" in p.stderr


# --- several instances --------------------------------------------------------------------------


def test_two_instances_are_independent(tmp_path):
    a, b = tmp_path / "lobby-1", tmp_path / "lobby-2"
    kid_a = json.loads(ok("--data-dir", str(a), "init").stdout)["kid"]
    kid_b = json.loads(ok("--data-dir", str(b), "init").stdout)["kid"]
    assert kid_a != kid_b
    tok_a, tok_b = create(a), create(b)
    assert [r["jti"] for r in listed(a)] == [jti_of(tok_a)]
    assert [r["jti"] for r in listed(b)] == [jti_of(tok_b)]

    p = fails("--data-dir", str(b), "token", "revoke", jti_of(tok_a))
    assert "NOT_FOUND" in p.stderr
    assert listed(a)[0]["status"] == "active"

    trust_b = TrustList.load(b / "keys" / "trust.json")
    with pytest.raises(InvalidToken) as e:
        tokens.verify(tok_a, trust_b, now=time.time())
    assert e.value.details["reason"] == "unknown_kid"
    tokens.verify(tok_b, trust_b, now=time.time())


def test_a_token_id_that_starts_with_a_dash_is_revoked_after_a_double_dash(data_dir):
    # New ids never start with "-"; one issued by an older version may, and `--` reaches it.
    p = fails("--data-dir", str(data_dir), "token", "revoke", "--", "-wQ3xVbZ9aE")
    assert "NOT_FOUND" in p.stderr and "No such option" not in p.stderr
