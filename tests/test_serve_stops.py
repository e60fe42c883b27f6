"""``kiosk serve`` and ``kiosk-cloud serve`` stop on any mix of SIGINT and SIGTERM, every time,
within 10 s, with one stop line (tests/test_agent_stop.py is the agent's version).

Ctrl-C in a terminal sends SIGINT to the whole process group, and scripts/run-demo.sh sends
SIGTERM right behind it.  Waitress's own ``run()`` stops on an exception a signal handler
raises; the second signal raised again inside that stop (a traceback, or with only SIGTERM
handled a KeyboardInterrupt through the cleanup).  Now the handlers only record the signal and
the serving loop looks after each round (kiosk.cliutil.serve_until_signal).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import requests
from harness import Cloud, Kiosk, Proc, wait_for

MIXES = [(signal.SIGINT, signal.SIGTERM), (signal.SIGTERM, signal.SIGINT), (signal.SIGINT, signal.SIGINT),
         (signal.SIGTERM, signal.SIGTERM), (signal.SIGTERM,), (signal.SIGINT,)]
TRIES = 10
STOP_DEADLINE = 10.0


def _stop_tries(start, stop_line: str, stopped_line: str) -> list[float]:
    """Start a server ``TRIES`` times, send it a mix of signals at once, and return how long
    each stop took; AssertionError if one took longer than :data:`STOP_DEADLINE`."""
    took = []
    for i in range(TRIES):
        proc, log = start(i)
        mix = MIXES[i % len(MIXES)]
        t0 = time.monotonic()
        for sig in mix:
            os.killpg(proc.p.pid, sig)
        try:
            code = proc.p.wait(timeout=STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"try {i}: it did not stop within {STOP_DEADLINE} s on {mix}\n"
                                 f"{log.read_text()[-2000:]}") from None
        took.append(time.monotonic() - t0)
        text = log.read_text()
        assert code == 0, (i, mix, code, text[-2000:])
        assert text.count(f'"msg":"{stop_line}"') == 1, (i, mix, text[-2000:])
        assert f'"msg":"{stopped_line}"' in text, (i, mix, text[-2000:])
        assert "Traceback" not in text, (i, mix, text[-2000:])
    print(f"stop times: max {max(took):.2f} s, mean {sum(took) / len(took):.2f} s")
    return took


def test_kiosk_serve_stops_on_sigint_and_sigterm_together_10_times(tmp_path):
    k = Kiosk(tmp_path, "k1")

    def start(i):
        log = tmp_path / f"kiosk-{i}.log"
        proc = Proc(["kiosk", "serve", "--port", str(k.port)], log, env=k.env).start()
        # serving, and busy: a request answered, so the worker threads are up
        wait_for(lambda: '"msg":"serving"' in log.read_text(), timeout=120, what="the kiosk's start")
        wait_for(lambda: _answers(k.url + "/healthz"), timeout=120, what="the kiosk's /healthz")
        return proc, log

    assert max(_stop_tries(start, "kiosk stopping", "kiosk stopped")) < STOP_DEADLINE


def test_cloud_serve_stops_on_sigint_and_sigterm_together_10_times(tmp_path):
    cloud = Cloud(tmp_path)

    def start(i):
        log = tmp_path / f"cloud-{i}.log"
        proc = Proc(["kiosk-cloud", "serve", "--data-dir", str(cloud.dir), "--port", str(cloud.port)], log,
                    env=cloud.env).start()
        wait_for(lambda: _answers(cloud.url + "/healthz"), timeout=120, what="the cloud's /healthz")
        return proc, log

    assert max(_stop_tries(start, "cloud stopping", "cloud stopped")) < STOP_DEADLINE


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
