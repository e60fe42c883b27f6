"""A real HTTP proxy on 127.0.0.1 that injects faults between the agent and the cloud.

``mode`` decides per request: ``pass``; ``error500`` (answer 500, forward
nothing); ``drop_after_forward`` (forward, let the cloud apply, then close the
connection without an answer); ``hang`` (hold the request ``delay`` seconds,
then close); ``slow`` (wait ``delay`` seconds, then forward).  ``rule`` may be
a function of the parsed body returning a mode, to fail some entities only.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests


class FaultProxy:
    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.mode = "pass"
        self.delay = 0.0
        self.rule = None
        self.seen: list[tuple[str, str]] = []  # (path, mode used)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                mode = proxy.mode
                if proxy.rule and body:
                    try:
                        mode = proxy.rule(json.loads(body)) or mode
                    except ValueError:
                        pass
                proxy.seen.append((self.path, mode))
                if mode == "error500":
                    return self._reply(500, b'{"error": "injected"}')
                if mode == "hang":
                    time.sleep(proxy.delay)
                    return self._drop()
                if mode == "slow":
                    time.sleep(proxy.delay)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("authorization", "content-type", "idempotency-key")}
                r = requests.request(self.command, proxy.upstream + self.path, data=body, headers=headers,
                                     timeout=30)
                if mode == "drop_after_forward":
                    return self._drop()
                return self._reply(r.status_code, r.content)

            def _reply(self, status, data):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _drop(self):
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

            do_GET = do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def modes(self) -> list[str]:
        return [m for p, m in self.seen if p.startswith("/sync/v1/push")]
