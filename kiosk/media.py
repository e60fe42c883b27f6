"""Physical bounds of uploaded media, checked from their headers before anything is decoded.

A 700-byte WAV can claim a 1 Hz frame rate (resampling it to 16 kHz multiplies it
16,000×) and a 100 KB PNG can unpack to 18,000 × 18,000 pixels; both are refused here,
with VALIDATION_ERROR naming the bound, before a decoder sees them.

The image headers are read the way the decoders read them (libpng and OpenCV for a PNG,
libjpeg for a JPEG), and anything this reader cannot follow is refused rather than
guessed at: a decoder must never find a bigger picture than the one checked here.  As a
second wall, importing this module sets ``OPENCV_IO_MAX_IMAGE_PIXELS`` to the same bound;
OpenCV reads it when it is loaded, so every process that imports this module before
``cv2`` (the model workers' forkserver is started after the model registry has imported
it) refuses to decode more pixels than the bound even if a header slipped past.
"""

from __future__ import annotations

import io
import os
import struct
import wave
import zlib

from .errors import ValidationError

MAX_PIXELS = 25_000_000      # a 24-megapixel phone photo fits; a decompression bomb does not
MAX_SIDE = 10_000
SAMPLE_RATES = (8_000, 48_000)
MAX_AUDIO_SECONDS = 30.0


def _cap_opencv_decodes() -> None:
    """OpenCV's own pixel bound (default 2^30) down to ours, unless it is set lower already."""
    try:
        if 0 < int(os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", "")) <= MAX_PIXELS:
            return
    except ValueError:
        pass
    os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(MAX_PIXELS)


_cap_opencv_decodes()

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: start-of-frame markers, the only segments that carry the picture's size (C4 is DHT,
#: C8 is reserved, CC is DAC)
JPEG_SOF = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF))
#: markers that stand alone, with no length after them: TEM and RST0-7 (libjpeg skips them)
JPEG_STANDALONE = frozenset((0x01, *range(0xD0, 0xD8)))
#: segments with a length that libjpeg reads or skips before the first scan: DHT, DAC, DQT,
#: DNL, DRI, APP0-15, COM (anything else there makes libjpeg give up, and us too)
JPEG_SEGMENTS = frozenset((0xC4, 0xCC, 0xDB, 0xDC, 0xDD, *range(0xE0, 0xF0), 0xFE))
SOI, EOI, SOS = 0xD8, 0xD9, 0xDA


def image_size(data: bytes, field: str = "image") -> tuple[int, int]:
    """(width, height) of a PNG or JPEG from its header; anything else, or a header this
    reader cannot follow, is VALIDATION_ERROR (so is a size past the bounds)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValidationError(f"{field} must be a PNG or JPEG picture", {"field": field})
    data = bytes(data)
    if data[:8] == PNG_SIGNATURE:
        w, h = _png_size(data, field)
    elif data[:3] == b"\xff\xd8\xff":  # what OpenCV takes for a JPEG
        w, h = _jpeg_size(data, field)
    else:
        raise ValidationError(f"{field} must be a PNG or JPEG picture", {"field": field})
    _check_bounds(w, h, field)
    return w, h


def _check_bounds(w: int, h: int, field: str) -> None:
    if not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE and w * h <= MAX_PIXELS):
        raise ValidationError(f"{field} is {w}×{h} pixels; at most {MAX_SIDE} a side and {MAX_PIXELS:,} in all",
                              {"field": field, "width": w, "height": h, "maxPixels": MAX_PIXELS})


def _unreadable(field: str, kind: str, why: str) -> ValidationError:
    return ValidationError(f"{field} is a {kind} whose header cannot be read: {why}", {"field": field})


def _png_size(data: bytes, field: str) -> tuple[int, int]:
    """The size in the IHDR chunk, which must come first, be 13 bytes and have a right CRC
    (as libpng and OpenCV require; OpenCV sizes every frame of an animated PNG by it too).
    Every chunk up to IEND must fit in the data: OpenCV allocates what a chunk's length
    says before it reads it, so a 150-byte PNG claiming a 4 GB text chunk costs 4 GB."""
    n = len(data)
    if n < 33:
        raise _unreadable(field, "PNG", "too short")
    length, kind = struct.unpack(">I4s", data[8:16])
    if kind != b"IHDR" or length != 13:
        raise _unreadable(field, "PNG", "the first chunk is not a 13-byte IHDR")
    (crc,) = struct.unpack(">I", data[29:33])
    if zlib.crc32(data[12:29]) != crc:
        raise _unreadable(field, "PNG", "IHDR's CRC is wrong")
    w, h = struct.unpack(">II", data[16:24])
    i = 33
    while True:
        if i + 12 > n:
            raise _unreadable(field, "PNG", "it ends before its IEND chunk")
        length, kind = struct.unpack(">I4s", data[i:i + 8])
        if length > 0x7FFF_FFFF or i + 12 + length > n:
            raise _unreadable(field, "PNG", f"chunk {kind!r} at byte {i} claims {length} bytes")
        if kind == b"IEND":
            return w, h
        i += 12 + length


def _jpeg_size(data: bytes, field: str) -> tuple[int, int]:
    """The size in the first start-of-frame segment, following the markers from SOI to the
    first scan (SOS) as libjpeg does: fill bytes (0xFF) before a marker skipped, standalone
    markers skipped, every other segment skipped by its length.  A second frame header, a
    scan before the frame, bytes between segments, a reserved marker or a segment running
    past the end: refused."""
    n = len(data)
    i = 2  # after SOI
    size: tuple[int, int] | None = None
    while True:
        if i >= n or data[i] != 0xFF:
            raise _unreadable(field, "JPEG", f"no marker at byte {i}")
        while i < n and data[i] == 0xFF:  # the marker's own 0xFF and any fill bytes
            i += 1
        if i >= n:
            raise _unreadable(field, "JPEG", "it ends before its first scan")
        marker = data[i]
        i += 1
        if marker in JPEG_STANDALONE:
            continue
        if marker == SOS:
            if size is None:
                raise _unreadable(field, "JPEG", "a scan before any frame header")
            return size
        if marker in (SOI, EOI):
            raise _unreadable(field, "JPEG", f"marker 0x{marker:02X} before the first scan")
        if marker not in JPEG_SOF and marker not in JPEG_SEGMENTS:
            raise _unreadable(field, "JPEG", f"marker 0x{marker:02X} at byte {i - 1}")
        if i + 2 > n:
            raise _unreadable(field, "JPEG", "it ends inside a segment")
        (length,) = struct.unpack(">H", data[i:i + 2])
        end = i + length
        if length < 2 or end > n:
            raise _unreadable(field, "JPEG", f"segment 0x{marker:02X} of length {length} at byte {i - 2}")
        if marker in JPEG_SOF:
            if size is not None:
                raise _unreadable(field, "JPEG", "two frame headers")
            if length < 8:
                raise _unreadable(field, "JPEG", f"a frame header of length {length}")
            h, w = struct.unpack(">HH", data[i + 3:i + 7])
            _check_bounds(w, h, field)  # a bomb is named as one, whatever follows it
            size = (w, h)
        i = end


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
