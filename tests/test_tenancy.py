"""Two hotels on one kiosk (demo and harbor): an admin sees and changes only their own hotel."""

import jwt
import pytest

TABLES = ("qr_tokens", "sessions", "consumed_tokens", "workflow_state", "outbox")


def jti_of(token):
    return jwt.decode(token, options={"verify_signature": False})["jti"]


def snapshot(instance):
    db = instance.db()
    return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


@pytest.fixture
def anon(app):
    return app.test_client(use_cookies=False)


@pytest.fixture
def estate(anon, issue):
    """Tokens and live sessions in both hotels, and an admin of each."""
    out = {}
    for hotel in ("demo", "harbor"):
        spare = issue("guest", hotel)
        r = anon.post("/api/qr/scan", json={"qrToken": issue("guest", hotel), "hotelId": hotel})
        assert r.status_code == 200
        guest = r.get_json()
        admin_token = issue("admin", hotel, user=f"admin-{hotel}")
        r = anon.post("/api/qr/scan", json={"qrToken": admin_token, "hotelId": hotel})
        out[hotel] = {
            "spare": spare,
            "guest": {"Authorization": "Bearer " + guest["sessionJWT"]},
            "guestSession": guest["sessionId"],
            "admin": {"Authorization": "Bearer " + r.get_json()["sessionJWT"]},
            "adminSession": r.get_json()["sessionId"],
            "jtis": {jti_of(spare), jti_of(admin_token)},
        }
    return out


def test_admin_lists_only_own_hotel_tokens(anon, estate):
    r = anon.get("/api/admin?endpoint=tokens", headers=estate["demo"]["admin"])
    assert r.status_code == 200
    listed = r.get_json()["tokens"]
    assert {t["hotelId"] for t in listed} == {"demo"}
    assert len(listed) == r.get_json()["count"] == 3  # spare, the scanned guest token, the admin's
    assert estate["demo"]["jtis"] <= {t["jti"] for t in listed}
    assert not estate["harbor"]["jtis"] & {t["jti"] for t in listed}


def test_admin_lists_only_own_hotel_sessions(anon, estate):
    r = anon.get("/api/admin?endpoint=sessions", headers=estate["harbor"]["admin"])
    assert r.status_code == 200
    ids = {s["sessionId"] for s in r.get_json()["sessions"]}
    assert ids == {estate["harbor"]["guestSession"], estate["harbor"]["adminSession"]}


def test_admin_cannot_revoke_another_hotels_token(anon, estate, instance):
    jti = jti_of(estate["harbor"]["spare"])
    r = anon.put("/api/admin?endpoint=tokens", headers=estate["demo"]["admin"], json={"jti": jti})
    assert (r.status_code, r.get_json()["error"]["code"]) == (404, "NOT_FOUND")
    assert instance.db().execute("SELECT revoked_at FROM qr_tokens WHERE jti = ?", [jti]).fetchone() == (None,)
    r = anon.get("/api/admin?endpoint=tokens&status=active", headers=estate["harbor"]["admin"])
    assert jti in {t["jti"] for t in r.get_json()["tokens"]}
    r = anon.post("/api/qr/scan", json={"qrToken": estate["harbor"]["spare"], "hotelId": "harbor"})
    assert r.status_code == 200


def test_admin_cannot_terminate_another_hotels_session(anon, estate, instance):
    sid = estate["harbor"]["guestSession"]
    for kw in ({"json": {"sessionId": sid}}, {"query_string": {"endpoint": "sessions", "sessionId": sid}}):
        url = "/api/admin" if "query_string" in kw else "/api/admin?endpoint=sessions"
        r = anon.delete(url, headers=estate["demo"]["admin"], **kw)
        assert (r.status_code, r.get_json()["error"]["code"]) == (404, "NOT_FOUND")
    assert instance.db().execute("SELECT ended_at FROM sessions WHERE id = ?", [sid]).fetchone() == (None,)
    r = anon.get("/api/session", headers=estate["harbor"]["guest"])
    assert r.status_code == 200 and r.get_json()["hotelId"] == "harbor"


def test_admin_cannot_create_a_token_for_another_hotel(anon, estate, instance):
    before = snapshot(instance)
    r = anon.post("/api/admin?endpoint=tokens", headers=estate["demo"]["admin"],
                  json={"role": "admin", "hotelId": "harbor"})
    assert (r.status_code, r.get_json()["error"]["code"]) == (403, "HOTEL_MISMATCH")
    assert snapshot(instance) == before
    r = anon.post("/api/admin?endpoint=tokens", headers=estate["demo"]["admin"],
                  json={"role": "guest", "hotelId": "demo"})
    assert r.status_code == 201
    assert jwt.decode(r.get_json()["token"], options={"verify_signature": False})["hid"] == "demo"


def test_admin_created_token_belongs_to_the_admins_hotel(anon, estate):
    r = anon.post("/api/admin?endpoint=tokens", headers=estate["harbor"]["admin"], json={"role": "staff"})
    assert r.status_code == 201
    token = r.get_json()["token"]
    assert jwt.decode(token, options={"verify_signature": False})["hid"] == "harbor"
    r = anon.post("/api/qr/scan", json={"qrToken": token, "hotelId": "demo"})
    assert r.get_json()["error"]["code"] == "HOTEL_MISMATCH"


def test_token_scanned_at_the_other_hotel_is_refused_and_writes_nothing(anon, estate, instance):
    token = estate["demo"]["spare"]
    before = snapshot(instance)
    r = anon.post("/api/qr/scan", json={"qrToken": token, "hotelId": "harbor"})
    assert (r.status_code, r.get_json()["error"]["code"]) == (403, "HOTEL_MISMATCH")
    assert snapshot(instance) == before
    audit = instance.db().execute(
        "SELECT hotel_id, outcome, code, jti FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    assert audit == ("harbor", "refused", "HOTEL_MISMATCH", jti_of(token))
    r = anon.post("/api/qr/scan", json={"qrToken": token, "hotelId": "demo"})
    assert r.status_code == 200  # still unused at its own hotel

