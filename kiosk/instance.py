"""One kiosk instance: its data directory, keys and database.

Layout under the data directory (all mutable state of one instance)::

    kiosk.db              the local store (SQLite, WAL)
    keys/issuer.pem       the property's Ed25519 signing key      (0600)
    keys/trust.json       the trust list of public keys            (0600)
    keys/session.secret   the per-kiosk HS256 session secret       (0600)
    logs/kiosk.jsonl      JSON-lines log

Several instances run side by side on one machine with different data dirs.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from . import store
from .clock import SystemClock, iso
from .config import Config
from .errors import NotInitialised
from .files import fsync_dir, make_dirs, write_private
from .trust import TrustedKey, TrustFile, TrustList, key_id, new_signing_key


@dataclass
class Keys:
    signing_key: Ed25519PrivateKey
    kid: str
    trust: TrustList
    session_secret: bytes


class Instance:
    def __init__(self, config: Config, clock=None):
        self.config = config
        self.clock = clock or SystemClock()
        self.root = Path(config.data_dir)
        self._local = threading.local()

    db_path = property(lambda self: self.root / "kiosk.db")
    key_path = property(lambda self: self.root / "keys" / "issuer.pem")
    trust_path = property(lambda self: self.root / "keys" / "trust.json")
    secret_path = property(lambda self: self.root / "keys" / "session.secret")
    log_dir = property(lambda self: self.root / "logs")

    def is_initialised(self) -> bool:
        return self.key_path.exists() and self.trust_path.exists() and self.secret_path.exists()

    def init(self) -> dict:
        """Create keys, trust list, secret and database; existing files are kept."""
        make_dirs(self.root)  # durable: each new directory's parent is fsync'ed
        self.root.chmod(0o700)  # guest data and keys: owner only
        make_dirs(self.log_dir)
        created = []
        if not self.key_path.exists():
            key = new_signing_key()
            write_private(self.key_path, key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
            created.append("issuer key")
        key = self._signing_key()
        kid = key_id(key.public_key())
        trust = TrustList.load(self.trust_path) if self.trust_path.exists() else TrustList()
        if trust.get(kid) is None:
            prop = self.config.property
            trust.add(TrustedKey(kid=kid, issuer=prop.issuer, hotels=tuple(prop.hotels),
                                 public_key=key.public_key(), added_at=iso(self.clock.now())))
            trust.save(self.trust_path)
            created.append("trust list")
        if not self.secret_path.exists():
            write_private(self.secret_path, secrets.token_hex(32).encode())
            created.append("session secret")
        self.connect().conn.close()
        fsync_dir(self.root)  # kiosk.db's own directory entry
        return {"dataDir": str(self.root), "kid": kid, "created": created}

    def _signing_key(self) -> Ed25519PrivateKey:
        return load_pem_private_key(self.key_path.read_bytes(), password=None)

    def load_keys(self) -> Keys:
        if not self.is_initialised():
            raise NotInitialised(f"{self.root} is not initialised; run `kiosk init` first",
                                 {"dataDir": str(self.root)})
        key = self._signing_key()
        return Keys(signing_key=key, kid=key_id(key.public_key()),
                    trust=TrustFile(self.trust_path),
                    session_secret=self.secret_path.read_bytes().strip())

    def connect(self):
        s = self.config.store
        return store.connect(self.db_path, busy_timeout_ms=s.busy_timeout_ms, synchronous=s.synchronous,
                             serialize_writers=s.serialize_writers)

    def db(self):
        """This thread's connection (opened on first use, kept for the thread's life)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self.connect()
        return db
