"""The trust list: the only place a token's ``kid`` is looked up.

A JSON file (mode 0600) of public keys, each with its ``kid``, the issuer it
belongs to, the hotels it may sign for, and a status (``active`` or
``retired``).  The property's own issuer key is added by ``kiosk init``; the
cloud's keys are added the same way (by sync, in a later step).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .files import write_private


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """A short, stable key id: the first 8 characters of the key's SHA-256 thumbprint."""
    return b64u(hashlib.sha256(raw_public(key)).digest())[:8]


def new_signing_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 key whose :func:`key_id` does not start with ``-``.

    A kid such as ``-x3…`` reads as an option to ``kiosk-cloud key retire KID``; such
    draws (one in 64) are drawn again. Existing kids are untouched: :func:`key_id` is stable.
    """
    while True:
        key = Ed25519PrivateKey.generate()
        if not key_id(key.public_key()).startswith("-"):
            return key


@dataclass(frozen=True)
class TrustedKey:
    kid: str
    issuer: str
    hotels: tuple[str, ...]
    public_key: Ed25519PublicKey
    status: str = "active"
    added_at: str = ""

    def to_json(self) -> dict:
        return {"kid": self.kid, "issuer": self.issuer, "hotels": list(self.hotels),
                "alg": "EdDSA", "publicKey": b64u(raw_public(self.public_key)),
                "status": self.status, "addedAt": self.added_at}

    @classmethod
    def from_json(cls, d: dict) -> TrustedKey:
        return cls(kid=d["kid"], issuer=d["issuer"], hotels=tuple(d["hotels"]),
                   public_key=Ed25519PublicKey.from_public_bytes(unb64u(d["publicKey"])),
                   status=d.get("status", "active"), added_at=d.get("addedAt", ""))


class TrustList:
    def __init__(self, keys: list[TrustedKey] | None = None):
        self._keys = {k.kid: k for k in keys or []}

    def get(self, kid: str) -> TrustedKey | None:
        key = self._keys.get(kid)
        return key if key is not None and key.status == "active" else None

    def add(self, key: TrustedKey) -> None:
        self._keys[key.kid] = key

    def keys(self) -> list[TrustedKey]:
        return list(self._keys.values())

    @classmethod
    def load(cls, path: Path) -> TrustList:
        data = json.loads(Path(path).read_text())
        return cls([TrustedKey.from_json(k) for k in data.get("keys", [])])

    def save(self, path: Path) -> None:
        write_private(Path(path), json.dumps({"keys": [k.to_json() for k in self._keys.values()]},
                                             indent=2).encode())


class TrustFile:
    """The trust list in its file, re-read when the file changes (the agent's pull
    adds and retires keys while the kiosk serves).  One ``stat`` per lookup."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._list = TrustList()

    def current(self) -> TrustList:
        st = self.path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._list, self._stamp = TrustList.load(self.path), stamp
        return self._list

    def get(self, kid: str) -> TrustedKey | None:
        return self.current().get(kid)

    def keys(self) -> list[TrustedKey]:
        return self.current().keys()
