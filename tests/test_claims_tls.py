"""Claims over HTTPS: a real TLS server on 127.0.0.1 with its own certificate authority.  The
kiosk trusts the cloud's certificate through ``cloud.ca_bundle`` or, as requests would, through
``REQUESTS_CA_BUNDLE``; an untrusted certificate is never talked to (the kiosk decides alone)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kiosk import claims


def self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test cloud")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cloud.pem", tmp_path / "cloud.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def tls_cloud(tmp_path):
    """(url, CA file, requests seen): answers every claim with claimed, except jti 'used-1'."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
            if body.get("jti") == "used-1":
                out, status = {"error": {"code": "TOKEN_ALREADY_USED",
                                         "details": {"kioskId": "lobby-2", "usedAt": 1.0}}}, 409
            else:
                out, status = {"claimed": True}, 200
            raw = json.dumps(out).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *a):
            pass

    cert, key = self_signed(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert, seen
    server.shutdown()
    server.server_close()


def upstream(tmp_path, url, **kw) -> tuple[claims.Upstream, claims.Link]:
    keys = tmp_path / "kiosk" / "keys"
    keys.mkdir(parents=True)
    (keys / "cloud.json").write_text(json.dumps({"url": url, "deviceId": "lobby-1", "credential": "c" * 43}))
    up = claims.Upstream(tmp_path / "kiosk", kiosk_id="lobby-1", timeout_ms=3000, **kw)
    link = up.current()
    assert link is not None
    return up, link


def test_a_claim_over_https_with_the_cloud_ca_bundle(tls_cloud, tmp_path, monkeypatch):
    url, cert, seen = tls_cloud
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    up, link = upstream(tmp_path, url, ca_bundle=str(cert))
    assert up.claim(link, hotel_id="demo", jti="j-1", at=1.0).decision == "claimed"
    used = up.claim(link, hotel_id="demo", jti="used-1", at=2.0)
    assert (used.decision, used.kiosk_id) == ("used", "lobby-2")
    assert [s["body"]["jti"] for s in seen] == ["j-1", "used-1"]
    assert {s["auth"] for s in seen} == {"Bearer " + "c" * 43} and {s["path"] for s in seen} == {claims.PATH}


def test_an_untrusted_certificate_is_not_talked_to(tls_cloud, tmp_path, monkeypatch):
    url, _, seen = tls_cloud
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    up, link = upstream(tmp_path, url)
    out = up.claim(link, hotel_id="demo", jti="j-2", at=1.0)
    assert (out.decision, out.reason) == ("alone", "unreachable")
    assert seen == []  # no request reached the server over an unverified connection


def test_requests_ca_bundle_is_honoured_as_requests_would(tls_cloud, tmp_path, monkeypatch):
    url, cert, seen = tls_cloud
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    up, link = upstream(tmp_path, url)
    assert up.claim(link, hotel_id="demo", jti="j-3", at=1.0).decision == "claimed"
    assert len(seen) == 1
