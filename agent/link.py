"""The kiosk's link to its cloud: URL, device id and credential, in a 0600 file."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

from kiosk.errors import NotInitialised, ValidationError
from kiosk.files import write_private


def path(data_dir: Path) -> Path:
    return Path(data_dir) / "keys" / "cloud.json"


def save(data_dir: Path, *, cloud: str, device_id: str, credential: str) -> dict:
    u = urlparse(cloud)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise ValidationError(f"not a cloud URL: {cloud!r} (use https://host[:port])", {"field": "cloud"})
    if u.scheme == "http" and u.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValidationError("plain http is only allowed to this machine; use https", {"field": "cloud"})
    if not device_id or not credential:
        raise ValidationError("device id and credential are required", {"field": "credential"})
    link = {"url": cloud.rstrip("/"), "deviceId": device_id, "credential": credential}
    write_private(path(data_dir), json.dumps(link).encode())
    return {"url": link["url"], "deviceId": device_id}


def load(data_dir: Path) -> dict:
    p = path(data_dir)
    if not p.exists():
        raise NotInitialised(f"{data_dir} is not linked to a cloud; run `kiosk-agent link` first",
                             {"dataDir": str(data_dir)})
    return json.loads(p.read_text())
