"""Camera scanning: frame sources, QR decoders, stable reads, the scan loop."""

from .. import media  # noqa: E402,F401  # OpenCV's pixel bound (media.MAX_PIXELS), set before any cv2 import here
