"""One registry of sync kinds: what kiosks push, what they pull, and how each side applies it.

A kind is declared once, in its own module of this package (``KIND = Kind(...)``), and
listed in :data:`MODULES`: the outbox entries kiosks push for it (each with the function
the cloud applies it with), the entity types the cloud sends down for it and how a kiosk
applies them, its sections of the cloud's snapshot, and its conflict rule
(docs/conflicts.md).  The cloud validates a pushed entry's kind and entity type here, the
kiosk's pull dispatches here, the snapshot reads its sections from here; nothing else
names a kind.  Adding a kind: write its module, add it to :data:`MODULES`
(docs/architecture.md, "Adding a sync kind").

The cloud's functions are named as ``"module:function"`` and imported only when the cloud
uses them, so a kiosk loads no cloud code (tests/test_layout.py keeps the direction).
Each table they write still has one owner module; a kind's code calls the owners.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: the kinds, in order: a kind's snapshot sections are served in this order
MODULES = ("trust_key", "reference", "work_order", "ticket", "token", "session", "task", "message", "pms",
           "conflict", "security_event", "audit_checkpoint", "guest_erasure")


@dataclass(frozen=True)
class Push:
    """An outbox entry kind kiosks push (``ticket.created``) and the cloud's function for it:
    ``fn(db, entry, now) -> list of conflicts | None`` (``"module:function"``).

    ``many``, if given, applies a run of such entries (each of its own entity) set-wise:
    ``fn(db, entries, now) -> [list of conflicts | Rejected, ...]`` in their order, the same
    answers ``cloud`` would give one by one, writing nothing for a refused one (the cloud
    calls it without savepoints; sync/cloud/apply.py)."""
    name: str
    cloud: str
    many: str | None = None


def recorded(name: str) -> Push:
    """An entry the cloud keeps in its event log as the kiosk wrote it (sync/cloud/events.py)."""
    return Push(name, "sync.cloud.events:record", many="sync.cloud.events:record_many")


@dataclass(frozen=True)
class Kind:
    name: str
    summary: str
    #: the ``entityType`` its pushed entries name, and the entries
    push_entity: str | None = None
    push: tuple[Push, ...] = ()
    #: the ``entityType`` values the cloud sends down for it, and how a kiosk applies one:
    #: ``fn(ctx: PullContext, hotel_id, change)``, inside the page's transaction
    pull_entities: tuple[str, ...] = ()
    pull: Callable[[PullContext, str, dict], None] | None = None
    #: its sections of the cloud's snapshot, in order: (section, ``"module:function"``)
    snapshot: tuple[tuple[str, str], ...] = ()
    #: the rule conflicts of this kind are resolved by (docs/conflicts.md), if any
    conflict_rule: str | None = None
    #: how a cloud run as a property hub applies a change of ``pull_entities`` it pulled from
    #: the chain's cloud: ``fn(db, hotel_id, change, now)`` (``"module:function"``), inside the
    #: page's transaction; it writes the hub's own state through the table's owner and logs
    #: the change for the hub's kiosks (sync/cloud/relay.py)
    relay: str | None = None
    #: its changes erase data (a guest's erasure): a page holding one is applied with SQLite's
    #: ``secure_delete`` on and the write-ahead log truncated after it (sync/pull.py, and a hub's
    #: relay, sync/cloud/relay.py), so the erased bytes are gone from the files
    erases: bool = False


def erasing_push(entries: list) -> bool:
    """Whether a push holds an entry of a kind that :attr:`Kind.erases` (an admin's erasure
    request): the cloud applies such a push with ``secure_delete`` on and truncates its WAL
    after (sync/cloud/routes/sync_api.py)."""
    names = {p.name for k in _load().values() if k.erases for p in k.push}
    return bool(names) and any(isinstance(e, dict) and e.get("kind") in names for e in entries)


def erasing(changes: list[dict]) -> bool:
    """Whether a page of changes holds one of a kind that :attr:`Kind.erases` (a set lookup a
    change: pages of thousands pass through here)."""
    types = {e for k in _load().values() if k.erases for e in k.pull_entities}
    return bool(types) and any(ch.get("entityType") in types for ch in changes)


@dataclass
class PullContext:
    """What a kind's ``pull`` gets besides the change: the kiosk's store (in the page's
    transaction), its node id, the time, and the trust list (loaded once per page, saved by
    the puller before the page commits)."""
    db: Any
    node: str
    now: float
    trust_path: Path
    replays: list[str] = field(default_factory=list)
    _trust: Any = None

    def trust(self):
        if self._trust is None:
            from kiosk.trust import TrustList
            self._trust = TrustList.load(self.trust_path)
        return self._trust

    def save(self) -> None:
        if self._trust is not None:
            self._trust.save(self.trust_path)


_LOCK = threading.Lock()
_KINDS: dict[str, Kind] = {}
_LOADED = False


def _load() -> dict[str, Kind]:
    global _LOADED
    if not _LOADED:
        with _LOCK:
            if not _LOADED:
                for name in MODULES:
                    _add(importlib.import_module(f"{__name__}.{name}").KIND)
                _LOADED = True
    return _KINDS


def _add(kind: Kind) -> None:
    if kind.name in _KINDS:
        raise ValueError(f"sync kind {kind.name!r} is declared twice")
    pushed = {p.name for k in _KINDS.values() for p in k.push}
    pulled = {e for k in _KINDS.values() for e in k.pull_entities}
    sections = {s for k in _KINDS.values() for s, _ in k.snapshot}
    clash = ({p.name for p in kind.push} & pushed) | (set(kind.pull_entities) & pulled) | (
        {s for s, _ in kind.snapshot} & sections)
    if clash:
        raise ValueError(f"sync kind {kind.name!r} claims what another kind declares: {sorted(clash)}")
    if kind.pull_entities and not kind.relay:
        raise ValueError(f"sync kind {kind.name!r} sends changes down but names no relay function for a hub")
    if kind.push and not kind.push_entity:
        raise ValueError(f"sync kind {kind.name!r} pushes entries but names no push_entity")
    _KINDS[kind.name] = kind


def register(kind: Kind) -> Kind:
    """Add a kind at run time (after the declared ones; a test's, say)."""
    _load()
    with _LOCK:
        _add(kind)
    return kind


def unregister(name: str) -> None:
    _load()
    with _LOCK:
        _KINDS.pop(name, None)


def kinds() -> list[Kind]:
    return list(_load().values())


def get(name: str) -> Kind:
    return _load()[name]


def pushed(entry_kind: str) -> tuple[Kind, Push] | None:
    """The kind and entry declaration of a pushed entry kind (``ticket.created``), or None."""
    for k in _load().values():
        for p in k.push:
            if p.name == entry_kind:
                return k, p
    return None


def pulled(entity_type: str) -> Kind | None:
    """The kind that applies a pulled change of ``entity_type`` at a kiosk, or None."""
    for k in _load().values():
        if entity_type in k.pull_entities:
            return k
    return None


def entry_kinds() -> dict[str, str]:
    """Every pushed entry kind and the entity type it must name."""
    return {p.name: k.push_entity for k in _load().values() for p in k.push}


def snapshot_sections() -> list[tuple[str, str]]:
    """The cloud snapshot's sections in the order they are served: (name, ``"module:function"``)."""
    return [s for k in _load().values() for s in k.snapshot]


def resolve(target: str) -> Callable:
    """``"package.module:function"`` -> the function (looked up at each call: a test can patch it)."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)
