"""The hotel edge kiosk: local store, offline QR tokens, sessions, scan API, admin."""

__version__ = "0.1.0"
