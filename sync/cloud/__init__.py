"""The reference cloud: what docs/sync-protocol.md describes, on its own SQLite database.

``schema`` (migrations), ``storage`` (SQLite or PostgreSQL behind one interface),
``devices`` (credentials), ``validation`` (entry shapes), ``apply`` (one push, one
transaction), ``workorders`` / ``tickets`` / ``events`` (the effect of each entry kind),
``app`` and ``routes`` (HTTP) and ``cli`` (``kiosk-cloud``).
"""
