"""Physical bounds of uploaded media, checked from their headers before anything is decoded.

A 700-byte WAV can claim a 1 Hz frame rate (resampling it to 16 kHz multiplies it
16,000×) and a 100 KB PNG can unpack to 18,000 × 18,000 pixels; both are refused here,
with VALIDATION_ERROR naming the bound, before a decoder sees them.
"""

from __future__ import annotations

import io
import struct
import wave

from .errors import ValidationError

MAX_PIXELS = 25_000_000      # a 24-megapixel phone photo fits; a decompression bomb does not
MAX_SIDE = 10_000
SAMPLE_RATES = (8_000, 48_000)
MAX_AUDIO_SECONDS = 30.0


def image_size(data: bytes, field: str = "image") -> tuple[int, int]:
    """(width, height) of a PNG or JPEG from its header; anything else is VALIDATION_ERROR."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        w, h = struct.unpack(">II", data[16:24])
    elif data[:2] == b"\xff\xd8":
        w = h = None
        i = 2
        while i + 4 <= len(data):
            if data[i] != 0xFF:
                break
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
                i += 2
                continue
            (length,) = struct.unpack(">H", data[i + 2:i + 4])
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                if i + 9 > len(data):
                    break
                h, w = struct.unpack(">HH", data[i + 5:i + 9])
                break
            i += 2 + length
        if w is None:
            raise ValidationError(f"{field} is a JPEG without a readable frame header", {"field": field})
    else:
        raise ValidationError(f"{field} must be a PNG or JPEG picture", {"field": field})
    if not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE and w * h <= MAX_PIXELS):
        raise ValidationError(f"{field} is {w}×{h} pixels; at most {MAX_SIDE} a side and {MAX_PIXELS:,} in all",
                              {"field": field, "width": w, "height": h, "maxPixels": MAX_PIXELS})
    return w, h


def wav_params(data: bytes, field: str = "audio") -> tuple[int, int, int, int]:
    """(rate, channels, sample width, frames) of a WAV within the bounds speech needs."""
    try:
        with wave.open(io.BytesIO(data)) as w:
            rate, channels, width, frames = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
    except (wave.Error, EOFError, struct.error) as e:
        raise ValidationError(f"{field} is not a WAV file: {e}", {"field": field}) from None
    lo, hi = SAMPLE_RATES
    if not lo <= rate <= hi:
        raise ValidationError(f"{field}: a sample rate of {rate} Hz; speech needs {lo}–{hi} Hz",
                              {"field": field, "sampleRate": rate, "min": lo, "max": hi})
    if channels not in (1, 2):
        raise ValidationError(f"{field}: {channels} channels; mono or stereo only", {"field": field, "channels": channels})
    if width != 2:
        raise ValidationError(f"{field} must be 16-bit PCM", {"field": field, "sampleWidth": width})
    if frames / rate > MAX_AUDIO_SECONDS:
        raise ValidationError(f"{field} lasts {frames / rate:.1f} s; at most {MAX_AUDIO_SECONDS:g} s",
                              {"field": field, "seconds": round(frames / rate, 1), "max": MAX_AUDIO_SECONDS})
    return rate, channels, width, frames
