"""Image bounds read from headers (kiosk/media.py) agree with what OpenCV decodes.

A JPEG's size is in its first start-of-frame segment, but finding that segment means
following the markers as libjpeg does: a fill byte (0xFF, legal before any marker) once
let a 12,000 × 12,000 frame hide behind a 16 × 16 decoy.  Here: that decoy, each rule of
the marker walk, the PNG header, OpenCV's own pixel cap as a second wall, and a seeded
fuzz of mutated headers checking that the header check never says less than OpenCV finds.
"""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from kiosk import media
from kiosk.errors import ValidationError
from kiosk.media import image_size

ROOT = Path(__file__).resolve().parents[1]


# --- building pictures ------------------------------------------------------------------------

def seg(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def split_jpeg(jpg: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """([(marker, payload)] from after SOI up to and including SOS, the entropy data after it)."""
    assert jpg[:2] == b"\xff\xd8"
    i, out = 2, []
    while True:
        marker = jpg[i + 1]
        (length,) = struct.unpack(">H", jpg[i + 2:i + 4])
        out.append((marker, jpg[i + 4:i + 2 + length]))
        if marker == 0xDA:
            return out, jpg[i + 2 + length:]
        i += 2 + length


def join_jpeg(segs: list[tuple[int, bytes]], scan: bytes, fill: dict[int, int] | None = None) -> bytes:
    """SOI + the segments (``fill``: index -> extra 0xFF bytes before that marker) + scan data."""
    fill = fill or {}
    return b"\xff\xd8" + b"".join(b"\xff" * fill.get(k, 0) + seg(m, p) for k, (m, p) in enumerate(segs)) + scan


def with_size(sof_payload: bytes, w: int, h: int) -> bytes:
    return sof_payload[:1] + struct.pack(">HH", h, w) + sof_payload[5:]


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(w: int, h: int, *, extra: bytes = b"", idat: bytes | None = None) -> bytes:
    """A grey PNG claiming w × h (rows of zeros, so a real one decodes)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\0" * ((w + 1) * h)) if idat is None else idat
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def cv2_jpeg(w: int = 16, h: int = 16, **params) -> bytes:
    import cv2
    import numpy as np

    img = (np.arange(w * h, dtype=np.uint32).reshape(h, w) * 7 % 251).astype(np.uint8)
    args = [x for k, v in params.items() for x in (int(getattr(cv2, k)), int(v))]
    ok, buf = cv2.imencode(".jpg", img, args)
    assert ok
    return buf.tobytes()


def decoded_size(data: bytes, flags: int | None = None) -> tuple[int, int] | None:
    """(width, height) OpenCV decodes from ``data``, None when it decodes nothing."""
    import cv2
    import numpy as np

    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE if flags is None else flags)
    except cv2.error:
        return None
    return None if img is None else (img.shape[1], img.shape[0])


def fill_byte_decoy(w: int = 12_000, h: int = 12_000) -> bytes:
    """A JPEG whose real frame is w × h, with one fill byte before its SOF0 and a 16 × 16
    SOF0 inside a comment exactly where a reader that takes the fill byte for a marker lands
    (it reads the SOF0 marker and its length's high byte, 0xC000, as a segment length)."""
    segs, scan = split_jpeg(cv2_jpeg())
    k = next(k for k, (m, _) in enumerate(segs) if m == 0xC0)
    sof = with_size(segs[k][1], w, h)
    before = join_jpeg(segs[:k], b"")
    lands = len(before) + 2 + 0xC000                      # where the misreading jumps to
    com_start = len(before) + 1 + len(seg(0xC0, sof))     # the comment right after the frame header
    decoy = seg(0xC0, with_size(segs[k][1], 16, 16))
    pad = lands - (com_start + 4)
    assert pad >= 0
    comment = seg(0xFE, b"\0" * pad + decoy + b"\0" * 16)
    return before + b"\xff" + seg(0xC0, sof) + comment + join_jpeg(segs[k + 1:], scan)[2:]


# --- the decoy --------------------------------------------------------------------------------

def test_a_fill_byte_before_the_frame_header_does_not_hide_a_bomb():
    bomb = fill_byte_decoy()
    with pytest.raises(ValidationError) as e:
        image_size(bomb)
    assert (e.value.details["width"], e.value.details["height"]) == (12_000, 12_000)


def test_the_decoy_is_real_opencv_without_the_cap_decodes_the_whole_frame(tmp_path):
    """What the fix is for: unguarded, OpenCV turns the 49 KB decoy into 144 megapixels."""
    f = tmp_path / "decoy.jpg"
    f.write_bytes(fill_byte_decoy())
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}
    code = ("import sys, cv2, numpy as np\n"
            "img = cv2.imdecode(np.fromfile(sys.argv[1], np.uint8), cv2.IMREAD_GRAYSCALE)\n"
            "print(img.shape)")
    p = subprocess.run([sys.executable, "-c", code, str(f)], capture_output=True, text=True, env=env, timeout=120)
    assert p.stdout.strip() == "(12000, 12000)", p.stderr[-500:]


def test_importing_media_caps_what_opencv_decodes_even_past_a_header_check(tmp_path):
    """The second wall: with kiosk.media imported before cv2 (as in the model workers),
    OpenCV itself refuses a picture past MAX_PIXELS; a lower cap already set is kept."""
    segs, scan = split_jpeg(cv2_jpeg())
    k = next(k for k, (m, _) in enumerate(segs) if m == 0xC0)
    big = join_jpeg(segs[:k] + [(0xC0, with_size(segs[k][1], 6000, 5000))] + segs[k + 1:], scan)  # 30 MP
    ok = join_jpeg(segs[:k] + [(0xC0, with_size(segs[k][1], 4000, 3000))] + segs[k + 1:], scan)   # 12 MP
    (tmp_path / "big.jpg").write_bytes(big)
    (tmp_path / "ok.jpg").write_bytes(ok)
    code = ("import os, sys\n"
            "import kiosk.media\n"
            "import cv2, numpy as np\n"
            "print(os.environ['OPENCV_IO_MAX_IMAGE_PIXELS'])\n"
            "for name in ('big', 'ok'):\n"
            "    try:\n"
            "        img = cv2.imdecode(np.fromfile(os.path.join(sys.argv[1], name + '.jpg'), np.uint8), 0)\n"
            "        print(name, img.shape)\n"
            "    except cv2.error:\n"
            "        print(name, 'refused')\n")

    def run(**extra):
        env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"} | extra
        p = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                           env=env, cwd=ROOT, timeout=120)
        assert p.returncode == 0, p.stderr[-500:]
        return p.stdout.split("\n")[:3]

    assert run() == [str(media.MAX_PIXELS), "big refused", "ok (3000, 4000)"]
    assert run(OPENCV_IO_MAX_IMAGE_PIXELS=str(2 ** 30)) == [str(media.MAX_PIXELS), "big refused", "ok (3000, 4000)"]
    assert run(OPENCV_IO_MAX_IMAGE_PIXELS="1000000") == ["1000000", "big refused", "ok refused"]


# --- the marker walk ----------------------------------------------------------------------------

def test_real_pictures_are_measured_as_opencv_decodes_them():
    cases = [cv2_jpeg(), cv2_jpeg(40, 24), cv2_jpeg(33, 17, IMWRITE_JPEG_PROGRESSIVE=1),
             cv2_jpeg(64, 8, IMWRITE_JPEG_RST_INTERVAL=1), cv2_jpeg(20, 30, IMWRITE_JPEG_OPTIMIZE=1),
             png(31, 7)]
    for data in cases:
        assert image_size(data) == decoded_size(data), data[:4]


def test_fill_bytes_and_standalone_markers_are_skipped_as_libjpeg_skips_them():
    segs, scan = split_jpeg(cv2_jpeg(40, 24))
    padded = join_jpeg(segs, scan, fill={k: 1 + k % 3 for k in range(len(segs))})
    assert image_size(padded) == decoded_size(padded) == (40, 24)
    # TEM and RST0-7 carry no length: a reader that takes one for a segment loses its place
    standalone = b"\xff\x01\xff\xd0\xff\xd7"
    k = next(k for k, (m, _) in enumerate(segs) if m == 0xC0)
    data = join_jpeg(segs[:k], b"") + standalone + join_jpeg(segs[k:], scan)[2:]
    assert image_size(data) == decoded_size(data) == (40, 24)


@pytest.mark.parametrize("sof", [0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF])
def test_every_start_of_frame_marker_carries_the_size(sof):
    segs, scan = split_jpeg(cv2_jpeg())
    k = next(k for k, (m, _) in enumerate(segs) if m == 0xC0)
    segs[k] = (sof, with_size(segs[k][1], 12_000, 12_000))
    with pytest.raises(ValidationError) as e:
        image_size(join_jpeg(segs, scan))
    assert e.value.details["width"] == 12_000


@pytest.mark.parametrize("marker", [0xC4, 0xCC])
def test_dht_and_dac_are_not_frame_headers(marker):
    """C4 (DHT) and CC (DAC) sit among the SOFn codes but carry no size: a decoy shaped like a
    frame header in one must not be read as the size (the real one after it is)."""
    segs, scan = split_jpeg(cv2_jpeg())
    k = next(k for k, (m, _) in enumerate(segs) if m == 0xC0)
    decoy = (marker, with_size(segs[k][1], 12_000, 12_000))
    # the decoy is only looked at, never decoded: libjpeg would refuse a DHT of this shape
    assert image_size(join_jpeg(segs[:k] + [decoy] + segs[k:], scan)) == (16, 16)


def broken_jpegs() -> dict[str, bytes]:
    segs, scan = split_jpeg(cv2_jpeg())
    k = next(k for k, (m, _) in enumerate(segs) if m == 0xC0)
    s = next(k for k, (m, _) in enumerate(segs) if m == 0xDA)
    good = join_jpeg(segs, scan)
    return {
        "no SOS": join_jpeg(segs[:s], b""),
        "SOS before SOF": join_jpeg([segs[s]] + segs[:s], scan),
        "no SOF": join_jpeg(segs[:k] + segs[k + 1:], scan),
        "two SOFs": join_jpeg(segs[:k + 1] + [(0xC0, with_size(segs[k][1], 12, 12))] + segs[k + 1:], scan),
        "bytes between segments": join_jpeg(segs[:k], b"") + b"\0\0" + join_jpeg(segs[k:], scan)[2:],
        "stuffed zero as a marker": join_jpeg(segs[:k], b"") + b"\xff\x00" + join_jpeg(segs[k:], scan)[2:],
        "second SOI": join_jpeg(segs[:k], b"") + b"\xff\xd8" + join_jpeg(segs[k:], scan)[2:],
        "EOI before SOS": join_jpeg(segs[:k + 1], b"") + b"\xff\xd9" + join_jpeg(segs[k + 1:], scan)[2:],
        "reserved marker": join_jpeg(segs[:k] + [(0xC8, b"\0" * 8)] + segs[k:], scan),
        "JPGn marker": join_jpeg(segs[:k] + [(0xF3, b"\0" * 8)] + segs[k:], scan),
        "length 1": join_jpeg(segs[:k], b"") + b"\xff\xfe\x00\x01" + join_jpeg(segs[k:], scan)[2:],
        "segment past the end": good[:good.index(b"\xff\xc0") + 6],
        "SOF too short": join_jpeg(segs[:k] + [(0xC0, segs[k][1][:4])] + segs[k + 1:], scan),
        "only SOI and fill": b"\xff\xd8\xff\xff\xff",
        "zero height": join_jpeg(segs[:k] + [(0xC0, with_size(segs[k][1], 16, 0))] + segs[k + 1:], scan),
        "SOI then not a marker": b"\xff\xd8\x00" + good[2:],
    }


@pytest.mark.parametrize("name", sorted(broken_jpegs()))
def test_a_jpeg_the_walk_cannot_follow_is_refused(name):
    with pytest.raises(ValidationError):
        image_size(broken_jpegs()[name])


def test_png_header_must_be_a_first_13_byte_ihdr_with_its_crc():
    good = png(20, 10)
    assert image_size(good) == decoded_size(good) == (20, 10)
    bad_crc = bytearray(good)
    bad_crc[29] ^= 1
    wrong_first = b"\x89PNG\r\n\x1a\n" + chunk(b"tEXt", b"a\0b") + good[8:]
    long_ihdr = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", good[16:29] + b"\0") + good[33:]
    for data in (bytes(bad_crc), wrong_first, long_ihdr, good[:30], good[:8]):
        with pytest.raises(ValidationError):
            image_size(data)
    with pytest.raises(ValidationError) as e:
        image_size(png(18_000, 18_000, idat=b""))
    assert e.value.details["width"] == 18_000


def test_a_png_chunk_longer_than_the_file_is_refused_before_opencv_allocates_it(tmp_path):
    """OpenCV's PNG reader sizes its buffer by a chunk's length before reading it: found by
    the fuzz below, a 140-byte PNG whose text chunk claims 4 GB cost 4 GB and seconds."""
    text = chunk(b"tEXt", b"k\0v")
    bomb = png(9, 5, extra=struct.pack(">I", 0xFFFF_0003) + text[4:])
    for data in (bomb, png(9, 5)[:-12], png(9, 5, idat=b"x" * 10)[:-20]):
        with pytest.raises(ValidationError):
            image_size(data)
    (tmp_path / "bomb.png").write_bytes(bomb)
    code = ("import resource, sys, cv2, numpy as np\n"
            "cv2.imdecode(np.fromfile(sys.argv[1], np.uint8), cv2.IMREAD_GRAYSCALE)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)")
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "bomb.png")], capture_output=True, text=True,
                       timeout=120)
    # MB: what the header check spares a worker (a box short of memory fails to allocate it)
    assert p.returncode != 0 or int(p.stdout.split()[-1]) > 2000, p.stdout


def test_other_formats_and_non_bytes_are_refused():
    for data in (b"", b"GIF89a" + b"\0" * 40, b"BM" + b"\0" * 60, b"\xff\xd8", b"\xff\xd8\xfe", "\xff\xd8\xff", None):
        with pytest.raises(ValidationError):
            image_size(data)  # type: ignore[arg-type]


# --- fuzz ---------------------------------------------------------------------------------------

def seeds() -> list[bytes]:
    extra = chunk(b"tEXt", b"k\0v") + chunk(b"acTL", struct.pack(">II", 1, 0)) + \
        chunk(b"fcTL", struct.pack(">IIIIIHHBB", 0, 9, 5, 0, 0, 1, 10, 0, 0))
    return [cv2_jpeg(), cv2_jpeg(24, 40, IMWRITE_JPEG_PROGRESSIVE=1), cv2_jpeg(48, 16, IMWRITE_JPEG_RST_INTERVAL=1),
            png(9, 5), png(9, 5, extra=extra)]


def small_or_huge(rng: random.Random) -> int:
    """A size that decodes quickly or is far past the bounds (decoding must stay cheap)."""
    return rng.choice((rng.randint(0, 300), rng.randint(0, 300), rng.randint(10_001, 65_535), 0, 65_535))


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        if len(b) < 4:
            break
        op = rng.randrange(9)
        head = min(len(b), 700)  # the header: where the sizes and markers are
        if op == 0 and b:                                       # flip a byte
            b[rng.randrange(head)] = rng.randrange(256)
        elif op == 1:                                           # fill bytes or a marker
            at = rng.randrange(2, head + 1)
            b[at:at] = rng.choice((b"\xff" * rng.randint(1, 4), bytes([0xFF, rng.randrange(256)])))
        elif op == 2:                                           # a whole segment or chunk
            at = rng.randrange(2, head + 1)
            payload = bytes(rng.randrange(256) for _ in range(rng.randint(0, 12)))
            if b[:1] == b"\x89":
                kind = rng.choice((b"IHDR", b"fcTL", b"acTL", b"tEXt", b"IDAT", b"zzZz"))
                b[at:at] = chunk(kind, struct.pack(">II", small_or_huge(rng), small_or_huge(rng)) + payload)
            else:
                marker = rng.choice((0xC0, 0xC2, 0xC4, 0xCC, 0xFE, 0xE1, 0xDD, 0xD0, rng.randrange(256)))
                b[at:at] = seg(marker, b"\x08" + struct.pack(">HH", small_or_huge(rng), small_or_huge(rng)) + payload)
        elif op == 3:                                           # the size fields of the first frame header
            at = b.find(b"IHDR") + 4 if b[:1] == b"\x89" else max(b.find(b"\xff\xc0"), b.find(b"\xff\xc2")) + 5
            if at > 4:
                b[at:at + 4] = struct.pack(">HH", small_or_huge(rng), small_or_huge(rng))
                if b[:1] == b"\x89":
                    b[at:at + 8] = struct.pack(">II", small_or_huge(rng), small_or_huge(rng))
                    b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])))  # a CRC that fits
        elif op == 4:                                           # cut it short
            del b[rng.randrange(len(b)):]
        elif op == 5 and len(b) > 8:                            # drop a run of bytes
            at = rng.randrange(2, len(b))
            del b[at:at + rng.randint(1, 8)]
        elif op == 6:                                           # a length field off by a little
            at = rng.randrange(2, max(3, head - 1))
            if at + 2 <= len(b):
                (v,) = struct.unpack(">H", b[at:at + 2])
                b[at:at + 2] = struct.pack(">H", (v + rng.choice((-2, -1, 1, 2, 0x100))) % 65_536)
        elif op == 7 and rng.random() < 0.5:                    # a length claiming far more than is there
            at = rng.randrange(2, max(3, head - 4))
            if b[:1] == b"\x89":
                b[at:at + 4] = struct.pack(">I", rng.choice((0xFFFF_0003, 0x7FFF_FFFF, 1 << 24, len(b))))
            else:
                b[at:at + 2] = struct.pack(">H", rng.choice((0xFFFF, 0x8000, len(b))))
        elif op == 7:                                           # duplicate a slice
            at, n = rng.randrange(len(b)), rng.randint(1, 40)
            b[at:at] = b[at:at + n]
        else:                                                   # a chunk of another seed
            other = rng.choice(SEEDS)
            at, n = rng.randrange(len(other)), rng.randint(4, 60)
            pos = rng.randrange(2, head + 1)
            b[pos:pos] = other[at:at + n]
    return bytes(b)


SEEDS: list[bytes] = []


def fuzz(n: int, seed: int) -> dict:
    import cv2

    SEEDS[:] = seeds()
    rng = random.Random(seed)
    stats = {"cases": 0, "refused": 0, "accepted": 0, "decoded": 0}
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # a warning per broken case
    try:
        for _ in range(n):
            one(rng, stats)
    finally:
        cv2.utils.logging.setLogLevel(level)
    return stats


def one(rng: random.Random, stats: dict) -> None:
    """One mutated picture: image_size refuses it (ValidationError, nothing else) or says a
    size within the bounds that OpenCV's decode does not exceed.  (A refused one is not
    decoded: it may claim gigapixels.)"""
    import cv2
    import numpy as np

    data = mutate(rng.choice(SEEDS), rng)
    stats["cases"] += 1
    try:
        size = image_size(data)
    except ValidationError:
        stats["refused"] += 1
        return
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"image_size raised {e!r} on {data[:80]!r}…")
    w, h = size
    assert 0 < w <= media.MAX_SIDE and 0 < h <= media.MAX_SIDE and w * h <= media.MAX_PIXELS
    stats["accepted"] += 1
    flags = rng.choice((cv2.IMREAD_GRAYSCALE, cv2.IMREAD_COLOR, cv2.IMREAD_UNCHANGED))
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as e:
        # OpenCV's own cap (kiosk.media sets it when imported before cv2) means a decode
        # bigger than MAX_PIXELS, so bigger than the size we were told
        assert "CV_IO_MAX_IMAGE" not in str(e), (size, str(e), data[:120])
        return
    if img is not None:
        stats["decoded"] += 1
        # EXIF orientation may turn the picture: compare sides, not width with width
        (g0, g1), (s0, s1) = sorted(img.shape[:2]), sorted(size)
        assert g0 <= s0 and g1 <= s1, (size, img.shape, data[:120])


def peak_rss_mb() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def test_fuzzed_headers_never_say_less_than_opencv_decodes():
    t, rss = time.monotonic(), peak_rss_mb()
    stats = fuzz(20_000, seed=20240611)
    took = time.monotonic() - t
    print(f"fuzz: {stats} in {took:.1f} s, peak RSS +{peak_rss_mb() - rss} MB")
    assert stats["accepted"] > 4000 and stats["decoded"] > 2000, stats  # the fuzz reaches the decoder
    assert peak_rss_mb() - rss < 1000  # no accepted picture made OpenCV allocate gigabytes
    assert took < 10


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_fuzzed_headers_long(seed):
    t, rss = time.monotonic(), peak_rss_mb()
    stats = fuzz(400_000, seed=seed)
    print(f"fuzz seed {seed}: {stats} in {time.monotonic() - t:.1f} s, peak RSS +{peak_rss_mb() - rss} MB")
    assert peak_rss_mb() - rss < 1000
