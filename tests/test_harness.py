"""The test harness itself: a server it starts is the one the test talks to."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from harness import Kiosk, listens


class _Squatter(BaseHTTPRequestHandler):
    def do_GET(self):  # the standard library's name for it
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"squatter": true}')

    def log_message(self, *args):
        pass


def test_a_kiosk_whose_port_another_process_took_serves_on_a_free_one(tmp_path):
    """Another test's server took the port between the harness choosing it and the kiosk's
    start: the kiosk cannot listen (ADDRESS_IN_USE), the other server answers the health check.
    The harness must not take that answer for the kiosk's; it starts the kiosk on a new port."""
    squatter = ThreadingHTTPServer(("127.0.0.1", 0), _Squatter)
    threading.Thread(target=squatter.serve_forever, daemon=True).start()
    try:
        taken = squatter.server_address[1]
        k = Kiosk(tmp_path)
        k.port, k.url = taken, f"http://127.0.0.1:{taken}"
        k.serve()
        try:
            assert k.port != taken and listens(k.server.p.pid, k.port)
            assert "squatter" not in requests.get(k.url + "/healthz", timeout=10).text
            assert "ADDRESS_IN_USE" in (tmp_path / "kiosk.log").read_text()  # the first start, refused
        finally:
            k.server.stop()
    finally:
        squatter.shutdown()
        squatter.server_close()
