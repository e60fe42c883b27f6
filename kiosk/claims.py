"""One-time codes held across boxes: a scan claims the code at the kiosk's upstream first.

Every box of a hotel decides on its own (offline first), so a one-time code used at one
lobby kiosk would still open a session at another until their syncs meet and flag a replay
(docs/conflicts.md).  When the box is linked to a cloud, the scan service therefore asks
the cloud to *claim* the code (``POST /sync/v1/claims``, docs/sync-protocol.md) before its
own transaction consumes it, within a budget (``sync.claim_timeout_ms``, 300 ms):

* ``claimed`` — no other kiosk holds the code (a repeat by this kiosk is one too): go on;
* ``used`` — another kiosk consumed or claimed it first: the scan is refused
  (``TOKEN_ALREADY_USED``, naming that kiosk and when);
* anything else — not linked, claims off, the cloud unreachable, slower than the budget,
  a 5xx, an answer that is not one of the above: the kiosk decides alone, as it does
  offline (a replay is flagged later, if there was one).

The link is the agent's file (``kiosk-agent link`` writes DATA_DIR/keys/cloud.json: url,
deviceId, credential); the kiosk reads it itself — it never imports the agent — and again
whenever the file changes (one ``stat`` per claim).  The HTTP request is made outside any
SQLite transaction: nothing waits on the store's write lock while the cloud answers.

The request goes through urllib3 directly (a kept-alive connection per thread), not a
``requests.Session``: on 127.0.0.1 requests' own work per call (preparing the request,
hooks, cookies, merging the environment's settings) was about a third of a claim's round
trip (bench/scan.py, ``+claim``).  What requests would take from the environment is taken
the same way once per connection: a proxy (``HTTPS_PROXY`` … and ``NO_PROXY``) and, when
``cloud.ca_bundle`` is not set, ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` or certifi's bundle.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import requests
import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util import Timeout

log = logging.getLogger("kiosk.claims")

PATH = "/sync/v1/claims"
#: the longest text of the cloud's answer echoed into the scan's refusal
MAX_DETAIL_CHARS = 64
#: a clock stamp's form (kiosk/hlc.py): 15-digit wall milliseconds, 5-digit counter, the node
STAMP = re.compile(r"[0-9]{15}-[0-9]{5}-[A-Za-z0-9._:@-]{1,64}")


def link_path(data_dir: str | os.PathLike) -> Path:
    """Where the agent keeps the cloud link (agent/link.py writes it)."""
    return Path(data_dir) / "keys" / "cloud.json"


@dataclass(frozen=True)
class Link:
    url: str
    device_id: str
    credential: str


@dataclass(frozen=True)
class Outcome:
    """What a claim decided: ``claimed`` (``hlc``: the stamp the cloud gave this kiosk's
    consumption, when it said one), ``used`` (``kiosk_id``, ``used_at`` of the first use
    elsewhere) or ``alone`` (``reason``: why the cloud did not decide)."""
    decision: str
    reason: str = ""
    kiosk_id: str | None = None
    used_at: str | float | None = None
    hlc: str | None = None

    @property
    def used_elsewhere(self) -> bool:
        return self.decision == "used"


class LinkFile:
    """The cloud link in its file, re-read when the file changes (a new inode, size or
    modification time); None when there is none or it is not usable."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._link: Link | None = None

    def current(self) -> Link | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None  # not linked (or not readable): decide alone
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp != self._stamp:
                self._link, self._stamp = self._read(), stamp
            return self._link

    def _read(self) -> Link | None:
        try:
            raw = json.loads(self.path.read_text())
            url, device_id, credential = raw["url"], raw["deviceId"], raw["credential"]
            u = urlparse(url)
            ok = (isinstance(url, str) and u.scheme in ("http", "https") and u.netloc
                  and isinstance(credential, str) and credential and isinstance(device_id, str))
        except (OSError, ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            log.warning("the cloud link is not usable; one-time codes are not claimed",
                        extra={"path": str(self.path)})
            return None
        return Link(url.rstrip("/"), device_id, credential)


class Upstream:
    """The claim client of one kiosk: thread-safe (a urllib3 pool of one connection per thread,
    so the connection to the cloud is kept alive between scans)."""

    def __init__(self, data_dir: str | os.PathLike, *, kiosk_id: str, timeout_ms: int,
                 ca_bundle: str | None = None):
        self.link = LinkFile(link_path(data_dir))
        self.kiosk_id = kiosk_id
        self.budget = timeout_ms / 1000.0
        self.verify: str | bool = ca_bundle or True
        self._local = threading.local()
        self._last_alone: str | None = None

    def current(self) -> Link | None:
        """The link claims go to; None when claims are off or the box is not linked."""
        return self.link.current() if self.budget > 0 else None

    def claim(self, link: Link, *, hotel_id: str, jti: str, at: float, session_id: str | None = None) -> Outcome:
        """Claim ``jti`` for this kiosk at ``link``'s cloud; never raises, never waits much
        longer than the budget."""
        body = {"hotelId": hotel_id, "jti": jti, "kioskId": self.kiosk_id, "at": at}
        if session_id is not None:
            body["sessionId"] = session_id
        try:
            r = self._pool(link).request("POST", link.url + PATH, body=json.dumps(body).encode(),
                                         timeout=Timeout(total=self.budget), redirect=False, retries=False)
        except NewConnectionError as e:  # refused, no such host (urllib3 makes it a kind of timeout)
            return self._alone("unreachable", f"{type(e).__name__}: {e}"[:200])
        except Urllib3Timeout:
            return self._alone("timeout", f"no answer within {self.budget * 1000:g} ms")
        except (Urllib3Error, OSError, ValueError) as e:  # reset, TLS, a proxy that failed
            return self._alone("unreachable", f"{type(e).__name__}: {e}"[:200])
        answer = _json(r.data)
        if r.status == 200 and isinstance(answer, dict) and answer.get("claimed") is True:
            stamp = answer.get("hlc")
            return self._decided(Outcome("claimed", hlc=stamp if isinstance(stamp, str) and STAMP.fullmatch(stamp)
                                         else None))
        error = answer.get("error") if isinstance(answer, dict) else None
        if r.status == 409 and isinstance(error, dict) and error.get("code") == "TOKEN_ALREADY_USED":
            details = error.get("details") if isinstance(error.get("details"), dict) else {}
            return self._decided(Outcome("used", kiosk_id=_short(details.get("kioskId")),
                                         used_at=_short(details.get("usedAt"))))
        code = error.get("code") if isinstance(error, dict) else None
        return self._alone(f"http_{r.status}", str(code or r.data[:120].decode(errors="replace")))

    def _pool(self, link: Link) -> urllib3.PoolManager:
        """This thread's connection to ``link``'s cloud (a new one when the link changed)."""
        held = getattr(self._local, "held", None)
        if held is None or held[0] != link:
            if held is not None:
                held[1].clear()
            held = self._local.held = (link, self._new_pool(link))
        return held[1]

    def _new_pool(self, link: Link) -> urllib3.PoolManager:
        """What ``requests`` would use for ``link``: the environment's proxy, the CA bundle."""
        kw: dict = {"num_pools": 1, "maxsize": 1, "retries": False,
                    "headers": {"Authorization": f"Bearer {link.credential}", "Content-Type": "application/json",
                                "Accept": "application/json"}}
        if link.url.startswith("https:"):
            ca = self.verify if isinstance(self.verify, str) else (
                os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
                or requests.utils.extract_zipped_paths(requests.utils.DEFAULT_CA_BUNDLE_PATH))
            kw.update(cert_reqs="CERT_REQUIRED", **({"ca_cert_dir": ca} if os.path.isdir(ca) else {"ca_certs": ca}))
        proxy = requests.utils.select_proxy(link.url, requests.utils.get_environ_proxies(link.url))
        return urllib3.ProxyManager(proxy, **kw) if proxy else urllib3.PoolManager(**kw)

    def _decided(self, out: Outcome) -> Outcome:
        if self._last_alone is not None:
            log.info("one-time codes are claimed at the cloud again", extra={"was": self._last_alone})
            self._last_alone = None
        return out

    def _alone(self, reason: str, detail: str) -> Outcome:
        """Decide alone; said once per change of reason, not once per scan."""
        if reason != self._last_alone:
            log.warning("claim not decided by the cloud; deciding alone", extra={"reason": reason,
                                                                                 "detail": detail})
            self._last_alone = reason
        return Outcome("alone", reason=reason)


def _json(data: bytes):
    try:
        return json.loads(data)
    except ValueError:  # not JSON, or not UTF-8
        return None


def _short(value) -> str | float | None:
    """A value of the cloud's answer fit to echo: a short string or a number, else None."""
    if isinstance(value, str):
        return value[:MAX_DETAIL_CHARS]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None
