"""Property data: the PMS export importer and the demo property."""
