"""Configuration: embedded defaults -> YAML file -> environment -> validate.

The defaults live here (pydantic models); ``config.yaml`` at the top of the
repository documents them and a test keeps the two equal.  A wrong or unknown
key fails fast with a :class:`~kiosk.errors.ConfigError` naming the key and
the file (or environment variable) it came from.

Environment: ``KIOSK_CONFIG`` names the file, ``KIOSK_DATA_DIR`` the data
directory, and ``KIOSK__SECTION__KEY=value`` overrides any key
(``KIOSK__SERVER__PORT=8081``); values are parsed as YAML scalars.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticError

from .clock import parse_duration
from .errors import ConfigError

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PropertyConfig(_Section):
    issuer: str = Field("demo", pattern=ID_PATTERN)
    hotels: list[str] = Field(default_factory=lambda: ["demo"], min_length=1)
    kiosk_id: str = Field("kiosk-1", pattern=ID_PATTERN)
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")  # ISO 4217: what offer prices are in
    # IANA zone of the hotel: shifts, "today", business dates and scheduled models are local time
    timezone: str = "UTC"

    @field_validator("hotels")
    @classmethod
    def _hotel_ids(cls, v: list[str]) -> list[str]:
        for h in v:
            if not re.match(ID_PATTERN, h):
                raise ValueError(f"hotel id {h!r} must match {ID_PATTERN}")
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            if v == "localtime":  # the machine's zone, not the hotel's: name it
                raise ValueError(v)
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"unknown time zone {v!r}: give an IANA name such as Europe/Berlin or"
                             " America/New_York (the system's tzdata lists them)") from None
        return v


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    threads: int = Field(8, ge=1, le=64)
    max_body_bytes: int = Field(65536, ge=1024)
    max_media_body_bytes: int = Field(4_194_304, ge=1024)
    # names a request's Host header may carry (port stripped); server.host is allowed too when it
    # is a specific address; anything else is 421 HOST_NOT_ALLOWED (DNS rebinding, docs/security.md)
    allowed_hosts: list[str] = Field(default_factory=lambda: ["127.0.0.1", "localhost", "::1"])

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, v: list[str]) -> list[str]:
        for h in v:
            if not re.fullmatch(r"\[?[A-Za-z0-9_.:-]{1,253}\]?", h):
                raise ValueError(f"{h!r}: give a host name or address, without scheme, port or path")
        return v


class TokensConfig(_Section):
    default_ttl: str = "30d"
    max_ttl: str = "400d"
    leeway_seconds: int = Field(30, ge=0, le=600)

    @field_validator("default_ttl", "max_ttl")
    @classmethod
    def _duration(cls, v: str) -> str:
        parse_duration(v)
        return v


class IdleByRoleConfig(_Section):
    # seconds without a request after which a session of the role ends; null: sessions.idle_seconds
    guest: int | None = Field(None, ge=5, le=86400)
    staff: int | None = Field(900, ge=5, le=86400)
    admin: int | None = Field(600, ge=5, le=86400)


class SessionsConfig(_Section):
    ttl_seconds: int = Field(3600, ge=60, le=86400)
    # a session ends after this long without a request (SESSION_EXPIRED, reason "idle") ...
    idle_seconds: int = Field(300, ge=5, le=86400)
    # ... or after this long for its role
    idle_seconds_by_role: IdleByRoleConfig = IdleByRoleConfig()
    # a session opened at the lobby (typed there or a camera claim), staff and admins too,
    # is that screen's visit: it ends after this long without a touch (the lobby's own timer)
    lobby_idle_seconds: int = Field(90, ge=5, le=3600)
    cookie_name: str = "kiosk_session"
    cookie_secure: bool = False


class ScanConfig(_Section):
    max_failures: int = Field(10, ge=1)
    window_seconds: int = Field(60, ge=1)
    max_failures_per_code: int = Field(3, ge=1)
    penalty_seconds: float = Field(2.0, ge=0, le=60)


class TicketsConfig(_Section):
    duplicate_window_seconds: int = Field(3600, ge=0)


class GuestConfig(_Section):
    # what one guest session may send per minute (sliding window); past it: RATE_LIMITED (429)
    max_requests_per_minute: int = Field(10, ge=1, le=1000)
    max_questions_per_minute: int = Field(10, ge=1, le=1000)
    max_offers_per_minute: int = Field(10, ge=1, le=1000)


class CloudConfig(_Section):
    ca_bundle: str | None = None
    connect_timeout_seconds: float = Field(3.0, gt=0)
    request_timeout_seconds: float = Field(15.0, gt=0)


class AgentConfig(_Section):
    poll_interval_seconds: float = Field(0.25, gt=0)
    push_interval_seconds: float = Field(5.0, gt=0)
    batch_size: int = Field(500, ge=1, le=1000)
    backoff_base_seconds: float = Field(1.0, gt=0)
    backoff_max_seconds: float = Field(300.0, gt=0)
    housekeeping_interval_seconds: int = Field(300, ge=1)
    delivered_retention_days: int = Field(7, ge=0)
    pull_interval_seconds: float = Field(5.0, gt=0)
    pull_page_size: int = Field(500, ge=1, le=1000)
    # the live pull: a long-poll (GET /sync/v1/pull?wait=) of this many seconds, always open
    # while linked, so another kiosk's change arrives within a second; 0: only the scheduled pull
    live_pull_wait_seconds: int = Field(20, ge=0, le=25)
    # models run on a schedule: "HH:MM model-id" (property.timezone), daily, for every hotel (payload {})
    scheduled_models: list[str] = ["03:00 night-audit", "03:10 billing-detection", "06:00 housekeeping",
                                   "06:05 task-routing", "04:00 maintenance"]

    @field_validator("scheduled_models")
    @classmethod
    def _schedule(cls, v: list[str]) -> list[str]:
        for item in v:
            if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d [a-z-]+", item):
                raise ValueError(f"{item!r}: each entry is 'HH:MM model-id'")
        return v


class CapacityConfig(_Section):
    # work that holds a server thread for long is admitted under a bound, refused past it (BUSY)
    model_runs: int = Field(4, ge=1, le=64)
    model_runs_per_session: int = Field(2, ge=1, le=16)
    retry_after_seconds: int = Field(2, ge=1, le=60)
    streams: int = Field(32, ge=1, le=256)
    streams_per_session: int = Field(4, ge=1, le=64)
    stream_retry_seconds: int = Field(15, ge=1, le=600)

    @model_validator(mode="after")
    def _per_session_within_total(self):
        if self.model_runs_per_session > self.model_runs:
            raise ValueError("model_runs_per_session may not exceed model_runs")
        if self.streams_per_session > self.streams:
            raise ValueError("streams_per_session may not exceed streams")
        return self


class ScreenConfig(_Section):
    # local users whose browsers may receive the lobby's scan feed and redeem its claims
    # (besides the kiosk's own user); e.g. the kiosk-browser unit's user id
    allowed_uids: list[int] = []
    claim_seconds: float = Field(30.0, gt=0, le=300)


class CameraConfig(_Section):
    enabled: bool = False
    source: str = Field("folder", pattern="^(v4l2|file|folder|stream)$")
    uri: str = ""
    width: int = Field(1280, ge=160, le=4096)
    height: int = Field(720, ge=120, le=4096)
    fps: int = Field(30, ge=1, le=120)
    loop: bool = False
    hold_seconds: float = Field(2.0, gt=0)
    decoders: list[str] = ["zxing", "pyzbar"]
    frame_budget_ms: float = Field(60.0, gt=0)
    stable_reads: int = Field(2, ge=1, le=10)
    stable_window_ms: float = Field(500.0, gt=0)
    cooldown_seconds: float = Field(5.0, ge=0)

    @field_validator("decoders")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [d for d in v if d not in ("zxing", "pyzbar", "opencv")]
        if bad or not v:
            raise ValueError(f"decoders must be a non-empty list of zxing, pyzbar, opencv (got {v})")
        return v


class ModelsConfig(_Section):
    default_timeout_seconds: float = Field(20.0, gt=0, le=120)
    timeout_seconds: dict[str, float] = {}
    workers: int = Field(2, ge=1, le=16)
    memory_limit_mb: int = Field(768, ge=0, le=65536)


class SyncConfig(_Section):
    stale_after_seconds: int = Field(3600, ge=1)
    clock_tolerance_seconds: int = Field(300, ge=0)
    # a one-time code is claimed at the linked cloud before it is consumed (kiosk/claims.py);
    # no answer within this budget: the kiosk decides alone, as offline.  0: never claim
    claim_timeout_ms: int = Field(300, ge=0, le=10_000)


class StoreConfig(_Section):
    busy_timeout_ms: int = Field(5000, ge=0)
    synchronous: str = Field("FULL", pattern="^(FULL|EXTRA|NORMAL)$")
    serialize_writers: bool = True


class LogConfig(_Section):
    level: str = Field("INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")


class Config(_Section):
    data_dir: str = "var/kiosk"
    property: PropertyConfig = PropertyConfig()
    server: ServerConfig = ServerConfig()
    tokens: TokensConfig = TokensConfig()
    sessions: SessionsConfig = SessionsConfig()
    scan: ScanConfig = ScanConfig()
    tickets: TicketsConfig = TicketsConfig()
    guest: GuestConfig = GuestConfig()
    cloud: CloudConfig = CloudConfig()
    agent: AgentConfig = AgentConfig()
    sync: SyncConfig = SyncConfig()
    camera: CameraConfig = CameraConfig()
    screen: ScreenConfig = ScreenConfig()
    capacity: CapacityConfig = CapacityConfig()
    models: ModelsConfig = ModelsConfig()
    store: StoreConfig = StoreConfig()
    log: LogConfig = LogConfig()


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _env_overrides(env: dict[str, str]) -> tuple[dict, dict[tuple, str]]:
    tree: dict[str, Any] = {}
    origin: dict[tuple, str] = {}
    for name, raw in env.items():
        if not name.startswith("KIOSK__"):
            continue
        path = tuple(p.lower() for p in name[len("KIOSK__"):].split("__"))
        node = tree
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = yaml.safe_load(raw) if raw != "" else ""
        origin[path] = f"environment variable {name}"
    if env.get("KIOSK_DATA_DIR"):
        tree["data_dir"] = env["KIOSK_DATA_DIR"]
        origin[("data_dir",)] = "environment variable KIOSK_DATA_DIR"
    return tree, origin


def load(path: str | os.PathLike | None = None, *, env: dict[str, str] | None = None,
         overrides: dict | None = None) -> Config:
    """Build the configuration.  ``overrides`` (e.g. CLI flags) apply last."""
    env = dict(os.environ) if env is None else env
    path = path or env.get("KIOSK_CONFIG") or None
    data: dict[str, Any] = {}
    source = "embedded defaults"
    if path:
        source = str(path)
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise ConfigError(f"cannot read config file {path}: {e.strerror}", {"file": str(path)}) from e
        try:
            loaded = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}", {"file": str(path)}) from e
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping", {"file": str(path)})
        data = loaded
    env_tree, env_origin = _env_overrides(env)
    data = _merge(data, env_tree)
    if overrides:
        data = _merge(data, overrides)
    try:
        return Config.model_validate(data)
    except PydanticError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        where = env_origin.get(tuple(str(p) for p in err["loc"]), source)
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        raise ConfigError(f"{where}: {key}: {msg}", {"key": key, "file": where}) from e


def defaults() -> dict:
    """The embedded defaults as plain data (what config.yaml documents)."""
    return Config().model_dump()


def unused_local_config(path: str | os.PathLike | None, cwd: str | os.PathLike | None = None) -> str | None:
    """What to say when a ``config.yaml`` in the working directory is not the file in use and
    says something else than the configuration in use would (someone edited it, expecting it
    to count); None when there is nothing to say.  The repository's own ``config.yaml`` is the
    embedded defaults, so running from the checkout stays quiet."""
    here = Path(cwd or os.getcwd()) / "config.yaml"
    if not here.is_file():
        return None
    if path is not None and Path(path).resolve() == here.resolve():
        return None
    in_use = str(path) if path is not None else "the embedded defaults"
    try:
        differs = load(here, env={}).model_dump() != (load(path, env={}).model_dump() if path else defaults())
    except ConfigError as e:
        return f"./config.yaml is not in use ({in_use} is) and is not valid either: {e.message.splitlines()[0]}"
    if not differs:
        return None
    return (f"./config.yaml is not the configuration in use ({in_use}); pass --config config.yaml or"
            f" set KIOSK_CONFIG=config.yaml to use it")
