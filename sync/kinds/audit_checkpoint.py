"""Signed checkpoints of a kiosk's audit chain (kiosk/audit.py, docs/audit-log.md): the cloud
checks each against the kiosk's key and refuses one that does not extend the last it holds
(``AUDIT_REWRITTEN``).  Kiosk -> cloud only: nothing is sent down but the security event a
refusal raises, which travels as a ``security_event``."""

from __future__ import annotations

from kiosk.audit import CHECKPOINT_ENTITY, CHECKPOINT_KIND

from . import Kind, Push

KIND = Kind("audit_checkpoint", "signed checkpoints of each kiosk's audit chain (kiosk -> cloud)",
            push_entity=CHECKPOINT_ENTITY, push=(Push(CHECKPOINT_KIND, "sync.cloud.audit_chain:record"),))
