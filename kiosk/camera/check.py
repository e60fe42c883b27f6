"""``kiosk camera check``: what the configured source delivers, and how fast it decodes."""

from __future__ import annotations

import time

from .decoders import Chain
from .sources import from_config


def check(cfg, seconds: float, progress=None) -> dict:
    """Read from the source for ``seconds``; frame rate, resolution, decode rate and reads."""
    source = from_config(cfg.camera)
    chain = Chain(tuple(cfg.camera.decoders), budget_ms=cfg.camera.frame_budget_ms)
    frames, none, decoded, reads, decode_ms, shape = 0, 0, 0, 0, 0.0, None
    texts: set[str] = set()
    start = time.monotonic()
    try:
        while (elapsed := time.monotonic() - start) < seconds:
            frame = source.read()
            if progress:
                progress(elapsed)
            if frame is None:
                none += 1
                time.sleep(0.01)
                continue
            frames += 1
            shape = frame.shape
            if frames % 3 == 1:  # decode every third frame: measures decoding without starving capture
                r = chain.decode(frame)
                decoded += 1
                decode_ms += r.ms
                reads += bool(r.texts)
                texts |= set(r.texts)
        elapsed = time.monotonic() - start
        return {"source": source.describe(), "seconds": round(elapsed, 2),
                "resolution": f"{shape[1]}x{shape[0]}" if shape else None,
                "fps": round(frames / elapsed, 1), "emptyReads": none,
                "decodesPerSecond": round(1000 * decoded / decode_ms, 1) if decode_ms else None,
                "decodeMsMean": round(decode_ms / decoded, 2) if decoded else None,
                "framesWithCode": reads, "decodedFrames": decoded, "decoders": list(chain.decoders),
                "unavailable": chain.unavailable, "codes": len(texts)}
    finally:
        source.close()
