"""Connectors from the cloud to hotels' property-management systems (PMS).

A PMS is one module here with one class, listed in :data:`KINDS`.  The class is built with
``from_link(url, pms_hotel, credentials, clock, session)`` and has:

* ``read_reservations()`` — the hotel's reservations in the kiosk's columns (plus
  ``pms_id``, the PMS's own id every write names), page by page;
* ``ACTIONS`` — the actions of the cloud's PMS outbox it sends (``charge``,
  ``service_request``, ``service_request_status``, ``room_status``); the cloud queues no
  other action for a hotel linked to it;
* ``IDEMPOTENT`` — those the PMS makes safe to send twice (an idempotency key, a state);
* ``send(action, data, reference)`` — one action, returning the PMS's id of what it made;
* ``find(action, data, reference)`` — for an action that is not idempotent, what an
  earlier send made if it reached the PMS (None if it did not): the lookup before a send
  whose answer was lost is repeated.

Every failure is a :class:`~.errors.PmsError` (``permanent``, ``retry_after``); a connector
never sleeps or retries: the outbox decides when (sync/cloud/pms_delivery.py).
"""

from __future__ import annotations

import importlib

#: kind -> "module:class"
KINDS = {"opera": "sync.cloud.connectors.opera:OperaConnector",
         "cloudbeds": "sync.cloud.connectors.cloudbeds:CloudbedsConnector"}
#: kind -> the fields its credentials file must hold
CREDENTIALS = {"opera": ("app_key", "client_id", "client_secret", "username", "password"),
               "cloudbeds": ("api_key",)}
#: kind -> how people call it
NAMES = {"opera": "OPERA Cloud", "cloudbeds": "Cloudbeds"}


def connector_class(kind: str):
    module, _, name = KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def open_connector(kind: str, url: str, pms_hotel: str, credentials: dict, clock, session=None):
    return connector_class(kind).from_link(url, pms_hotel, credentials, clock=clock, session=session)
