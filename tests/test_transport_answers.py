"""The agent's HTTP transport (sync/transport.py) reads the cloud's answers as the standard
library would (kiosk/jsontext.py: at orjson's speed; NaN and infinities, which JSON has not,
refused), and an answer it cannot use is a TransportError (the batch stays in the outbox), never
an exception of another kind.  A real HTTP server on 127.0.0.1 gives the answers."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sync.transport import HttpTransport, TransportError

ENTRIES = [{"key": "a"}, {"key": "b"}]


@pytest.fixture()
def cloud():
    said: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            body = said["body"]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            self._answer()

        def do_GET(self):  # noqa: N802
            self._answer()

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield said, HttpTransport(f"http://127.0.0.1:{server.server_address[1]}", "cred")
    server.shutdown()
    server.server_close()


def test_results_and_pages_are_read_with_every_value_as_the_standard_library_reads_it(cloud):
    said, transport = cloud
    big = 2 ** 70  # beyond 64 bits: orjson alone would refuse it
    said["body"] = ('{"results": [{"status": "applied", "n": ' + str(big) + ', "t": "caf\\u00e9 \\ud83c\\udf75"},'
                    ' {"status": "duplicate", "x": 1e-07}]}').encode()
    assert transport.push("k1", ENTRIES, "batch") == [
        {"status": "applied", "n": big, "t": "café 🍵"}, {"status": "duplicate", "x": 1e-07}]
    said["body"] = b'{"changes": [{"seq": 1, "data": "{\\"a\\": 1}"}], "cursor": 1, "more": false}'
    assert transport.pull("demo", 0, 100)["changes"] == [{"seq": 1, "data": '{"a": 1}'}]


@pytest.mark.parametrize("body", [b"<html>gateway</html>", b'{"results": 5}', b'{"nothing": []}', b'[1, 2]',
                                  b'{"results": [{"status": "applied"}]}',  # one result for two entries
                                  b'{"results": [NaN, NaN]}'])
def test_a_push_answer_that_cannot_be_used_is_a_transport_error(cloud, body):
    said, transport = cloud
    said["body"] = body
    with pytest.raises(TransportError):
        transport.push("k1", ENTRIES, "batch")


@pytest.mark.parametrize("body", [b"not json", b'{"changes": {}, "cursor": 1}', b'{"changes": [], "cursor": "1"}',
                                  b'{"cursor": 1}'])
def test_a_pull_answer_that_cannot_be_used_is_a_transport_error(cloud, body):
    said, transport = cloud
    said["body"] = body
    with pytest.raises(TransportError, match="not a"):
        transport.pull("demo", 0, 100)
