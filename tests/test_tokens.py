"""QR tokens: the lifecycle (issue, scan, reuse, revoke, expiry) and forged tokens refused.

Forgeries are built by hand and sent through POST /api/qr/scan, so each test
checks the public error code; ``details.reason`` pins which check refused it,
so a forgery cannot pass for the wrong reason.  A correctly signed token built
by the same helper is accepted (``test_helper_builds_an_acceptable_token``),
so each forgery differs from a good token in one respect only.
"""

import base64
import hashlib
import hmac
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from kiosk import qr, tokens
from kiosk.clock import iso
from kiosk.errors import HotelMismatch, InvalidToken, NotFound
from kiosk.web import create_app

LEEWAY = 30  # tokens.leeway_seconds in the default config


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_json(obj: dict) -> str:
    return b64u(json.dumps(obj, separators=(",", ":")).encode())


def jti_of(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["jti"]


def scan(client, token, hotel="demo"):
    r = client.post("/api/qr/scan", json={"qrToken": token, "hotelId": hotel})
    return r.status_code, r.get_json()


def refused(client, token, hotel="demo"):
    """Scan expecting a refusal; returns the error object."""
    status, body = scan(client, token, hotel)
    assert body["success"] is False, body
    assert status == {"INVALID_TOKEN": 401, "TOKEN_EXPIRED": 401, "TOKEN_REVOKED": 401,
                      "TOKEN_ALREADY_USED": 409, "HOTEL_MISMATCH": 403}[body["error"]["code"]]
    return body["error"]


@pytest.fixture
def claims(clock):
    now = int(clock.now())
    return {"iss": "demo", "hid": "demo", "sub": "g-forge", "rol": "guest", "jti": "forge-1",
            "iat": now, "exp": now + 3600}


@pytest.fixture
def sign(keys):
    """sign(claims, key=<the property's key>, kid=<its kid>) -> an EdDSA JWT."""
    def _sign(payload, key=None, kid=None):
        return jwt.encode(payload, key or keys.signing_key, algorithm="EdDSA",
                          headers={"kid": kid or keys.kid})
    return _sign


# --- lifecycle ---------------------------------------------------------------------------------

def test_issue_records_the_token(instance, keys, clock):
    tok, row = tokens.issue(instance.db(), keys, hotel_id="demo", role="staff", now=clock.now(),
                            ttl_seconds=600, user_id="s-1", name="Sam", issuer="demo", node="k")
    c = tokens.verify(tok, keys.trust, now=clock.now())
    assert (c.hotel_id, c.subject, c.role, c.jti, c.reusable) == ("demo", "s-1", "staff", row["jti"], False)
    assert c.expires_at - c.issued_at == 600
    assert jwt.get_unverified_header(tok) == {"alg": "EdDSA", "kid": keys.kid}
    listed = tokens.list_tokens(instance.db(), hotels=["demo"], now=clock.now())
    assert [(t["jti"], t["status"], t["display_name"]) for t in listed] == [(row["jti"], "active", "Sam")]


def test_a_token_id_never_starts_with_a_dash(instance, keys, clock, monkeypatch):
    # A jti such as "-wQ3…" reads as an option to `kiosk token revoke JTI`, so one token in
    # 64 could not be revoked from the command line: such draws are drawn again.
    draws = iter(["-wQ3xVbZ9aE", "-A", "Ry13vFCdpsA"])
    monkeypatch.setattr(tokens.secrets, "token_urlsafe", lambda n: next(draws))
    _, row = tokens.issue(instance.db(), keys, hotel_id="demo", role="guest", now=clock.now(),
                          ttl_seconds=60, issuer="demo", node="k")
    assert row["jti"] == "Ry13vFCdpsA"
    monkeypatch.undo()
    assert not any(tokens.new_jti().startswith("-") for _ in range(2000))


def test_a_new_signing_key_id_never_starts_with_a_dash(monkeypatch):
    # `kiosk-cloud key retire KID` would read a kid such as "-x3…" as an option.
    from kiosk import trust
    drawn = []
    real = trust.Ed25519PrivateKey.generate

    def generate():
        want_dash = not drawn  # a key whose kid starts with a dash first, then one that does not
        k = real()
        while trust.key_id(k.public_key()).startswith("-") != want_dash:
            k = real()
        drawn.append(trust.key_id(k.public_key()))
        return k
    monkeypatch.setattr(trust.Ed25519PrivateKey, "generate", staticmethod(generate))
    key = trust.new_signing_key()
    assert drawn[0].startswith("-") and len(drawn) == 2
    assert trust.key_id(key.public_key()) == drawn[1]


def test_issue_refuses_a_hotel_the_key_may_not_sign_for(instance, keys, clock):
    with pytest.raises(HotelMismatch):
        tokens.issue(instance.db(), keys, hotel_id="paris", role="guest", now=clock.now(),
                     ttl_seconds=60, issuer="demo", node="k")
    assert instance.db().execute("SELECT count(*) FROM qr_tokens").fetchone()[0] == 0


def test_one_time_token_scans_once_then_is_refused_with_used_at(client, issue, clock, instance):
    tok = issue("guest", name="Ana")
    status, body = scan(client, tok)
    assert status == 200 and body["user"]["name"] == "Ana"
    used_at = clock.now()
    clock.advance(5)
    err = refused(client, tok)
    assert err["code"] == "TOKEN_ALREADY_USED"
    assert err["details"]["usedAt"] == iso(used_at)
    assert err["details"]["kioskId"] == instance.config.property.kiosk_id  # used here: this kiosk
    listed = tokens.list_tokens(instance.db(), hotels=["demo"], now=clock.now())
    assert listed[0]["status"] == "used"


def test_a_code_used_at_another_kiosk_is_refused_naming_that_kiosk(client, issue, clock, instance):
    tok = issue("guest", name="Ana")
    jti = jwt.decode(tok, options={"verify_signature": False})["jti"]
    db = instance.db()
    with db.conn:  # what a pull brought: the code was used at the lobby box, then at the bar
        db.execute("INSERT INTO remote_consumptions (jti, hotel_id, kiosk_id, session_id, consumed_at, one_time, hlc)"
                   " VALUES (?, 'demo', 'bar', 's2', ?, 1, 'x'), (?, 'demo', 'lobby', 's1', ?, 1, 'x')",
                   [jti, clock.now() - 5, jti, clock.now() - 60])
    err = refused(client, tok)
    assert err["code"] == "TOKEN_ALREADY_USED"
    assert err["details"] == {"usedAt": iso(clock.now() - 60), "kioskId": "lobby"}  # the first use
    listed = tokens.list_tokens(instance.db(), hotels=["demo"], now=clock.now())
    assert (listed[0]["status"], listed[0]["used_at"]) == ("used", clock.now() - 60)  # the admin sees it used
    assert tokens.list_tokens(instance.db(), hotels=["demo"], now=clock.now(), status="active") == []


def test_reusable_token_scans_twice(client, issue, clock):
    tok = issue("staff", reusable=True)
    first = scan(client, tok)
    clock.advance(1)
    second = scan(client, tok)
    assert first[0] == second[0] == 200
    assert first[1]["sessionId"] != second[1]["sessionId"]


def test_revoked_token_is_refused(client, issue, instance, clock):
    tok = issue("guest", reusable=True)
    assert scan(client, tok)[0] == 200
    tokens.revoke(instance.db(), jti_of(tok), hotels=["demo"], now=clock.now(), by="test", node="k")
    err = refused(client, tok)
    assert err["code"] == "TOKEN_REVOKED"
    assert err["details"]["revokedAt"] == iso(clock.now())


def test_revoke_is_idempotent_and_scoped(instance, issue, clock):
    jti = jti_of(issue("guest"))
    first = tokens.revoke(instance.db(), jti, hotels=["demo"], now=clock.now(), by="t", node="k")
    clock.advance(10)
    again = tokens.revoke(instance.db(), jti, hotels=["demo"], now=clock.now(), by="t", node="k")
    assert again["revokedAt"] == first["revokedAt"]
    kinds = [r[0] for r in instance.db().execute("SELECT kind FROM outbox WHERE entity_id = ?", [jti])]
    assert kinds.count("token.revoked") == 1
    with pytest.raises(NotFound):
        tokens.revoke(instance.db(), jti, hotels=["harbor"], now=clock.now(), by="t", node="k")


def test_expiry_honours_the_leeway(client, issue, clock):
    within, beyond = issue("guest", ttl=600), issue("guest", ttl=600)
    clock.advance(600 + LEEWAY)  # exactly at exp + leeway: still accepted
    assert scan(client, within)[0] == 200
    clock.advance(1)
    err = refused(client, beyond)
    assert err["code"] == "TOKEN_EXPIRED"
    assert err["details"]["expiredAt"] == int(clock.now()) - LEEWAY - 1


def test_typical_guest_token_fits_a_version_12_qr_code_at_level_m(issue):
    # An Ed25519 signature alone is 86 base64url characters and the header 43; with these
    # seven claims a token is ~280 characters, so version 10 (213 bytes at M) cannot hold it.
    tok = issue("guest", ttl=30 * 86400, name="Ana Silva")
    code = qr.make(tok)
    assert len(tok) <= 290
    assert code.error == "M"
    assert code.version <= 12


# --- forged and unacceptable tokens ------------------------------------------------------------

def test_helper_builds_an_acceptable_token(client, sign, claims):
    status, body = scan(client, sign(claims))
    assert status == 200 and body["user"]["id"] == "g-forge"


def test_alg_none_is_refused(client, keys, claims):
    tok = b64u_json({"alg": "none", "kid": keys.kid}) + "." + b64u_json(claims) + "."
    err = refused(client, tok)
    assert err["code"] == "INVALID_TOKEN" and err["details"]["reason"] == "algorithm"


@pytest.mark.parametrize("encoding", ["raw", "pem"])
def test_hs256_signed_with_the_public_key_is_refused(client, instance, keys, claims, encoding):
    trusted = json.loads(instance.trust_path.read_text())["keys"][0]
    assert trusted["kid"] == keys.kid
    secret = base64.urlsafe_b64decode(trusted["publicKey"] + "==")
    if encoding == "pem":
        secret = keys.trust.get(keys.kid).public_key.public_bytes(Encoding.PEM,
                                                                 PublicFormat.SubjectPublicKeyInfo)
    signing_input = b64u_json({"alg": "HS256", "typ": "JWT", "kid": keys.kid}) + "." + b64u_json(claims)
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    err = refused(client, signing_input + "." + b64u(mac))
    assert err["code"] == "INVALID_TOKEN" and err["details"]["reason"] == "algorithm"


@pytest.mark.parametrize("kid", ["nope1234", "", None])
def test_unknown_kid_is_refused(client, keys, claims, kid):
    header = {"kid": kid} if kid is not None else {}
    tok = jwt.encode(claims, keys.signing_key, algorithm="EdDSA", headers=header)
    if kid is None:
        assert "kid" not in jwt.get_unverified_header(tok)
    err = refused(client, tok)
    assert err["code"] == "INVALID_TOKEN" and err["details"]["reason"] == "unknown_kid"


def test_untrusted_key_claiming_a_trusted_kid_is_refused(client, sign, keys, claims):
    err = refused(client, sign(claims, key=Ed25519PrivateKey.generate(), kid=keys.kid))
    assert err["code"] == "INVALID_TOKEN" and err["details"]["reason"] == "signature"


def test_tampered_payload_is_refused(client, issue):
    header, payload, signature = issue("guest").split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=="))
    data["rol"] = "admin"
    err = refused(client, f"{header}.{b64u_json(data)}.{signature}")
    assert err["code"] == "INVALID_TOKEN" and err["details"]["reason"] == "signature"


@pytest.mark.parametrize("claim", tokens.REQUIRED)
def test_each_missing_claim_is_refused(client, sign, claims, claim):
    assert claim in ("iss", "hid", "sub", "rol", "jti", "iat", "exp")
    del claims[claim]
    err = refused(client, sign(claims))
    assert err["code"] == "INVALID_TOKEN"
    assert err["details"] == {"reason": "missing_claim", "claim": claim}


@pytest.mark.parametrize("claim,value", [("rol", "owner"), ("sub", ""), ("jti", 7), ("exp", "soon"),
                                         ("iat", 1.5), ("exp", True)])
def test_malformed_claim_is_refused(client, sign, claims, claim, value):
    claims[claim] = value
    err = refused(client, sign(claims))
    assert err["code"] == "INVALID_TOKEN"


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_not_yet_valid_is_refused_beyond_the_leeway(client, sign, claims, clock, claim):
    now = int(clock.now())
    ok = dict(claims, jti="early-ok", **{claim: now + LEEWAY})
    assert scan(client, sign(ok))[0] == 200
    early = dict(claims, jti="early-no", **{claim: now + LEEWAY + 60})
    err = refused(client, sign(early))
    assert err["code"] == "INVALID_TOKEN" and err["details"]["reason"] == "not_yet_valid"


def test_wrong_issuer_is_refused(client, sign, claims):
    err = refused(client, sign(dict(claims, iss="evil-chain")))
    assert err["code"] == "INVALID_TOKEN" and err["details"]["reason"] == "issuer"


def test_hotel_the_key_is_not_trusted_for_is_refused(client, sign, claims, keys):
    assert "paris" not in keys.trust.get(keys.kid).hotels
    for requested in ("demo", "paris"):
        err = refused(client, sign(dict(claims, hid="paris")), hotel=requested)
        assert err["code"] == "INVALID_TOKEN" and err["details"]["reason"] == "issuer"


def test_token_for_another_hotel_than_the_scan_is_hotel_mismatch(client, issue):
    tok = issue("guest", hotel="harbor")
    err = refused(client, tok, hotel="demo")
    assert err["code"] == "HOTEL_MISMATCH"
    assert err["details"] == {"tokenHotel": "harbor", "requestedHotel": "demo"}
    assert scan(client, tok, hotel="harbor")[0] == 200  # the refusal did not consume it


def test_retired_key_is_refused(instance, issue, keys, clock):
    tok = issue("guest")
    data = json.loads(instance.trust_path.read_text())
    for k in data["keys"]:
        k["status"] = "retired"
    instance.trust_path.write_text(json.dumps(data))
    with pytest.raises(InvalidToken):
        tokens.verify(tok, instance.load_keys().trust, now=clock.now())
    client = create_app(instance=instance).test_client()
    err = refused(client, tok)
    assert err["code"] == "INVALID_TOKEN" and err["details"]["reason"] == "unknown_kid"


@pytest.mark.parametrize("garbage", ["", "x", "a.b.c", "e30.e30.", "." * 3000, "ey" * 1500])
def test_garbage_is_refused_cleanly(client, garbage):
    status, body = scan(client, garbage)
    assert body["success"] is False
    assert body["error"]["code"] in ("INVALID_TOKEN", "VALIDATION_ERROR")
    assert status in (400, 401)


def test_revoking_a_token_ends_the_sessions_it_opened(client, issue, login, instance):
    tok = issue("staff", reusable=True)
    opened = [client.post("/api/qr/scan", json={"qrToken": tok, "hotelId": "demo"}).get_json() for _ in range(2)]
    heads = [{"Authorization": "Bearer " + o["sessionJWT"]} for o in opened]
    assert all(client.get("/api/session", headers=h).status_code == 200 for h in heads)
    jti = __import__("jwt").decode(tok, options={"verify_signature": False})["jti"]
    r = client.put("/api/admin?endpoint=tokens", headers=login("admin"), json={"jti": jti})
    assert r.status_code == 200
    for h in heads:
        r = client.get("/api/session", headers=h)
        assert r.status_code == 401 and r.get_json()["error"]["code"] == "SESSION_EXPIRED"
    ended = instance.db().execute("SELECT count(*) FROM outbox WHERE kind = 'session.ended'").fetchone()[0]
    assert ended == 2  # the cloud hears that they ended
