"""Decoder benchmark: detections and ms per frame, each decoder alone and the chains, side by side.

Sets: generated frames (kiosk/camera/synth.py: easy, medium, hard, inverted, at 640x480
and 1280x720, plus frames with no code) holding a real-size kiosk token, and the
photographed codes of ../shared/data/qr-photos (ZXing's black-box set, with expected
texts).  Every contender is a kiosk.camera.decoders.Chain, so a decoder that raises on
an input counts as a miss, as it would in the scan loop.

    python bench/decode.py              # ~2 minutes
    python bench/decode.py --frames 10  # quicker

Aims (issue 5): the chain reads at least as many codes as the best single decoder on
every set; its median at most 1.5x the fastest decoder's; its p99 at 720p under 33 ms;
a frame with no code under 3 ms at 720p.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import click
import cv2
import numpy as np

sys.path[0] = str(Path(__file__).resolve().parents[1])  # not bench/: bench/sync.py would shadow `sync`

from kiosk.camera import synth  # noqa: E402
from kiosk.camera.decoders import Chain  # noqa: E402

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "qr-photos"
TOKEN = ("eyJhbGciOiJFZERTQSIsImtpZCI6IlNmX0JMRHpXIn0.eyJpc3MiOiJkZW1vIiwiaGlkIjoiZGVtbyIsInN1YiI6ImRlbW8tZ3Vl"
         "c3QiLCJyb2wiOiJndWVzdCIsImp0aSI6Im9ZV0JYd2dNZElRIiwiaWF0IjoxNzk1NTM1NTIyLCJleHAiOjE3OTYxNDAzMjJ9."
         "ahzgf0JAwBOwv78FFv6pQUfqNUSxqJ9AeXAbovycLEWZkxVCjHu8lmdqa_LoM-v4Vepi2VoN17MndHqPeN5lDQ")
#: name -> (decoders in order, gated)
CONTENDERS = {"zxing": (("zxing",), False), "pyzbar": (("pyzbar",), False), "opencv": (("opencv",), False),
              "zxing>pyzbar ungated": (("zxing", "pyzbar"), False),
              "zxing>pyzbar (default)": (("zxing", "pyzbar"), True),
              "zxing>pyzbar>opencv": (("zxing", "pyzbar", "opencv"), True)}


def generated_sets(n: int) -> dict[str, list[tuple[np.ndarray, str | None]]]:
    out = {}
    for size in ((640, 480), (1280, 720)):
        tag = f"{size[1]}p"
        for name, d in (("easy", synth.EASY), ("medium", synth.MEDIUM), ("hard", synth.HARD),
                        ("inverted", synth.INVERTED)):
            out[f"{name} {tag}"] = [(synth.frame(TOKEN, size, d, np.random.default_rng(i)), TOKEN) for i in range(n)]
        out[f"no code {tag}"] = [(synth.frame(None, size, synth.MEDIUM, np.random.default_rng(i)), None)
                                 for i in range(n)]
    return out


def photo_set() -> list[tuple[np.ndarray, str]]:
    out = []
    for txt in sorted(PHOTOS.glob("*/*.txt")):
        if txt.name.endswith(".metadata.txt"):
            continue
        for ext in (".png", ".jpg", ".jpeg", ".gif"):
            img_path = txt.with_suffix(ext)
            if img_path.exists():
                img = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
                if img is not None:
                    out.append((img, txt.read_bytes().decode("utf-8", "replace")))
                break
    return out


def run(chain: Chain, frames: list[tuple[np.ndarray, str | None]]) -> dict:
    hits, ms = 0, []
    for img, expected in frames:
        t = time.perf_counter()
        r = chain.decode(img)
        ms.append((time.perf_counter() - t) * 1000)
        hits += (expected in r.texts) if expected is not None else (not r.texts)
    ms.sort()
    return {"hits": hits, "n": len(frames), "median": statistics.median(ms), "p99": ms[min(len(ms) - 1,
                                                                                       int(len(ms) * 0.99))]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=40, help="generated frames per set")
    args = ap.parse_args()
    sets = generated_sets(args.frames)
    photos = photo_set()
    if photos:
        sets["shared photos"] = photos
    chains = {name: Chain(names, budget_ms=1e9, gate=gate) for name, (names, gate) in CONTENDERS.items()}
    for c in chains.values():  # warm up (first calls allocate)
        c.decode(sets["easy 480p"][0][0])
    results: dict[str, dict[str, dict]] = {}
    with click.progressbar(length=len(sets) * len(chains), label="decoding", file=sys.stderr) as bar:
        for set_name, frames in sets.items():
            results[set_name] = {}
            for name, chain in chains.items():
                results[set_name][name] = run(chain, frames)
                bar.update(1)

    names = list(CONTENDERS)
    print(f"\nQR decoding, detections / frames and median | p99 ms per frame (no-code sets: frames "
          f"correctly left empty); {args.frames} generated frames per set, {len(photos)} shared photos")
    head = f"{'set':<16}" + "".join(f"{n:>28}" for n in names)
    print(head)
    print("-" * len(head))
    for set_name, row in results.items():
        cells = "".join(f"{r['hits']:>5}/{r['n']:<4}{r['median']:>8.2f} |{r['p99']:>7.2f}" for r in
                        (row[n] for n in names))
        print(f"{set_name:<16}{cells}")

    chosen = "zxing>pyzbar (default)"
    print(f"\nAims for the default chain ({chosen}):")
    singles = ["zxing", "pyzbar", "opencv"]
    code_sets = [s for s in results if not s.startswith("no code")]
    ok_hits = all(results[s][chosen]["hits"] >= max(results[s][d]["hits"] for d in singles) for s in code_sets)
    worst_ratio = max(results[s][chosen]["median"] / min(results[s][d]["median"] for d in singles) for s in results)
    p99_720 = max(results[s][chosen]["p99"] for s in results if s.endswith("720p"))
    empty_720 = results["no code 720p"][chosen]["median"]
    print(f"  reads >= best single decoder on every set: {'yes' if ok_hits else 'NO'}")
    print(f"  median / fastest single decoder's median, worst set: {worst_ratio:.2f}x (aim <= 1.5x)")
    print(f"  p99 at 720p, worst set: {p99_720:.1f} ms (aim < 33 ms)")
    print(f"  frame with no code at 720p, median: {empty_720:.2f} ms (aim < 3 ms)")


if __name__ == "__main__":
    main()
