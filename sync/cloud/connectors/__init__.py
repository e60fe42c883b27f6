"""Connectors from the cloud to hotels' property-management systems (PMS)."""
