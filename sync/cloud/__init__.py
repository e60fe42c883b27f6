"""The reference cloud: what docs/sync-protocol.md describes, on its own SQLite database.

``db`` (schema), ``devices`` (credentials), ``validation`` (entry shapes),
``apply`` (one push, one transaction), ``workorders`` / ``tickets`` / ``events``
(the effect of each entry kind), ``app`` (HTTP) and ``cli`` (``kiosk-cloud``).
"""
