"""Imported once by the model workers' forkserver (see ``sandbox``): every model module and
the heavy libraries they use, so each worker forked from it starts ready.

Whisper (voice-ai's recogniser with the ``voice`` extra) is the exception: its libraries are
imported here, but its model is loaded in each worker as it starts (``in_worker``), after the
worker's memory budget is set, so the budget covers it. CTranslate2 runs the model on a thread
pool that a fork does not copy: a worker forked from a forkserver that had loaded the model
would wait for those threads forever."""

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

try:  # the voice extra's libraries (CTranslate2, ONNX Runtime, tokenizers): imports only, no model
    from . import whisper

    if whisper.check():  # missing or the wrong hash: said once here, and no worker tries
        import faster_whisper.vad  # noqa: F401
except Exception:  # noqa: BLE001  # pragma: no cover - not installed: voice-ai uses pocketsphinx
    pass


def in_worker() -> None:
    """Called by each model worker once its memory budget is set: loads Whisper in the background
    (about 2 s; a voice-ai run that comes first waits for it, any other model does not), once per
    worker, never per request. Without the voice extra, or with a model file whose hash is not the
    pinned one, it only notes why (``whisper.reason``) and voice-ai uses pocketsphinx."""
    import threading

    from . import whisper

    if not whisper.check():
        return
    _few_arenas()
    threading.Thread(target=whisper.warm, name="whisper-load", daemon=True).start()


#: glibc's malloc gives each thread that allocates an arena of its own, reserving 64 MiB of
#: address space each: CTranslate2's threads and the loading thread took ~300 MiB of the
#: worker's address-space budget (models.memory_limit_mb) for almost no memory in use. Two
#: arenas: measured (bench/models.py) no slower, and the worker's peak 696 → ~430 MiB above its
#: start-up size on a 30 s clip.
ARENAS = 2
M_ARENA_MAX = -8  # glibc's malloc.h


def _few_arenas() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(M_ARENA_MAX, ARENAS)
    except (OSError, AttributeError):  # pragma: no cover - not glibc: its malloc, its own rules
        pass
