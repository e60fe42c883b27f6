"""Messages to guests a hotel model queued: recorded in the cloud, which sends them."""

from __future__ import annotations

from . import Kind, recorded

KIND = Kind("message", "guest messages to send (kiosk -> cloud)",
            push_entity="message", push=(recorded("message.send"),))
