"""Imported once by the model workers' forkserver (see ``sandbox``): every model module and
the heavy libraries they use, so each worker forked from it starts ready."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # a worker is one run: no BLAS thread pools per worker
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from .. import media  # noqa: F401,E402  # OpenCV's pixel bound (media.MAX_PIXELS), set before cv2 loads

try:  # a failure here must not stop the forkserver: the worker then imports on first use
    import cv2  # noqa: F401
    import numpy  # noqa: F401
    import scipy.signal  # noqa: F401

    from . import registry

    registry.specs()
    from . import voice_ai

    for kind in ("words", "hotel"):
        voice_ai.decoder(kind)
    voice_ai.intents()  # the classifier of misheard sentences, trained once here
except Exception:  # noqa: BLE001  # pragma: no cover
    pass
