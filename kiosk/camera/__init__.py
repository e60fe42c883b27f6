"""Camera scanning: frame sources, QR decoders, stable reads, the scan loop."""
