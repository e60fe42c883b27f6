"""The sync library: what moves between a kiosk and its cloud.

``delivery`` pushes the outbox (batches, idempotency keys, per-entity order, backoff,
dead letters), ``pull`` applies the cloud's change log page by page with the rules of
``conflicts``, ``transport`` speaks the protocol (HTTP, or in memory for tests), and
``health`` tells the cloud how the kiosk is doing.  ``cloud/`` is the reference cloud
(``kiosk-cloud``).  The outbox, the hybrid logical clock and the work-order rules belong
to the kiosk's store (``kiosk.outbox``, ``kiosk.hlc``, ``kiosk.workflow_rules``), and
``kinds`` is the one registry of what travels.  Nothing here
imports the agent, and the kiosk imports nothing from here (docs/architecture.md).
"""
