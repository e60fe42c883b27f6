"""voice-ai with Whisper tiny.en (kiosk/models/whisper.py, the ``voice`` extra): requests spoken by
espeak-ng and flite are heard and say which recogniser heard them; silence and white noise are no
request; Whisper's known failures (loops, the prompt read back, speech-free segments) are dropped;
without Whisper (not installed, or a model file whose hash is not the pinned one) pocketsphinx
hears the request as before. ``scripts/setup.sh --test`` installs the extra, so CI runs these."""

from __future__ import annotations

import base64
import io
import logging
import shutil
import subprocess
import wave
from types import SimpleNamespace

import numpy as np
import pytest

from kiosk.models import voice_ai, whisper
from kiosk.models.base import Context

needs_whisper = pytest.mark.skipif(not whisper.check(), reason=f"Whisper is unavailable: {whisper.reason()}")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def wav_of(pcm: bytes, rate: int = 16000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return out.getvalue()


def said(tmp_path, engine: str, voice: str, text: str) -> bytes:
    out = tmp_path / "said.wav"
    if engine == "espeak-ng":
        cmd = ["espeak-ng", "-v", voice, "-s", "150", "-w", str(out), text]
    else:
        cmd = ["flite", "-voice", voice, "-t", text, "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    return out.read_bytes()


def run(audio: bytes | None = None, text: str | None = None, db=None):
    payload = {"audio": base64.b64encode(audio).decode()} if audio is not None else {"text": text}
    return voice_ai.run(Context(db=db, hotel_id="demo", now=0.0, role="staff"), payload)


# --- Whisper hears requests ------------------------------------------------------------------

@needs_whisper
@needs_espeak
@pytest.mark.parametrize("engine, voice, text, intent, slots", [
    ("espeak-ng", "en-us", "the shower is not working in room three zero five", "report_fault",
     {"thing": "shower", "room": "305"}),
    ("espeak-ng", "en-gb", "my room needs cleaning", "clean_room", {"room": None}),
    ("espeak-ng", "en-us", "what time is breakfast", "question", None),
    ("flite", "slt", "could i get three more pillows", "request_item", {"item": "pillow", "quantity": 3, "room": None}),
    ("flite", "awb", "i would like a late checkout please", "late_checkout", {"room": None}),
])
def test_whisper_hears_spoken_requests(tmp_path, engine, voice, text, intent, slots):
    if shutil.which(engine) is None:
        pytest.skip(f"{engine} is not installed")
    r = run(said(tmp_path, engine, voice, text))
    assert r.outputs["recogniser"] == "whisper-tiny.en"
    assert r.outputs["intent"] == intent, r.outputs["transcript"]
    if slots is not None:
        assert r.outputs["slots"] == slots, r.outputs["transcript"]
    assert 0 < r.confidence <= 1
    # the output fields of before are all there
    assert {"transcript", "intent", "slots"} <= set(r.outputs)


@needs_whisper
@pytest.mark.parametrize("kind", ["silence", "white noise", "quiet noise at 8 kHz"])
def test_speech_free_audio_is_no_request(kind):
    rng = np.random.default_rng(5)
    if kind == "silence":
        wav = wav_of(b"\0\0" * 16000 * 3)
    elif kind == "white noise":
        wav = wav_of(rng.normal(0, 3000, 16000 * 3).astype("<i2").tobytes())
    else:
        wav = wav_of(rng.normal(0, 300, 8000 * 5).astype("<i2").tobytes(), rate=8000)
    r = run(wav)
    assert r.outputs["recogniser"] == "whisper-tiny.en"
    assert (r.outputs["transcript"], r.outputs["intent"], r.actions) == ("", "unknown", [])
    assert r.confidence <= 0.1


def test_typed_text_says_so_and_is_parsed_as_before():
    r = run(text="please bring two towels to room four one two")
    assert r.outputs == {"transcript": "please bring two towels to room four one two", "intent": "request_item",
                         "slots": {"item": "towel", "quantity": 2, "room": "412"}, "recogniser": "text"}


# --- the guards, on crafted segments ---------------------------------------------------------

def seg(text, avg_logprob=-0.3, no_speech_prob=0.01, compression_ratio=1.2):
    return SimpleNamespace(text=text, avg_logprob=avg_logprob, no_speech_prob=no_speech_prob,
                           compression_ratio=compression_ratio, tokens=list(range(len(text.split()) + 1)))


PROMPT = voice_ai.vocabulary(Context(db=None, hotel_id="demo", now=0.0))


@pytest.mark.parametrize("segments, why", [
    ([seg(" Thank you. Thank you. Thank you.")], "repetition"),
    ([seg(" towels towels towels towels")], "repetition"),
    ([seg(" Could I have a towel?"), seg(" Could I have a towel?")], "repetition"),  # the same segment again
    ([seg(" " + PROMPT)], "prompt-echo"),
    ([seg(" towels, pillows, blanket, toothbrush, toothpaste, shampoo")], "prompt-echo"),  # a stretch of it
    ([seg(" you", avg_logprob=-1.4, no_speech_prob=0.9)], "no-speech"),
    ([seg(" the the room the room the", compression_ratio=2.9)], "compression"),
])
def test_whispers_known_failures_are_dropped(segments, why):
    kept, dropped = whisper.kept(segments, PROMPT)
    assert why in dropped
    assert kept == (segments[:1] if len(segments) == 2 else [])  # a segment said again: its first copy stays


def test_a_loop_spread_over_segments_leaves_nothing():
    kept, dropped = whisper.kept([seg(" I need a towel"), seg(" I need a towel I need a towel")], PROMPT)
    assert kept == [] and dropped


@pytest.mark.parametrize("text", [
    "Please bring two towels to room two two two.",          # a room number said digit by digit
    "Could I have two more pillows and a blanket, please?",
    "The TV and the wifi are not working.",                  # words of the prompt in a request of the guest's
    "Can I have a late checkout?",
])
def test_real_requests_pass_the_guards(text):
    kept, dropped = whisper.kept([seg(" " + text)], PROMPT)
    assert [s.text.strip() for s in kept] == [text] and dropped == []


@needs_whisper
def test_a_transcript_with_only_dropped_segments_is_empty(monkeypatch):
    class Fake:
        def transcribe(self, audio, **kw):
            assert kw["initial_prompt"] == PROMPT and kw["language"] == "en" and kw["vad_filter"] is True
            assert kw["condition_on_previous_text"] is False
            return iter([seg(" Thank you. Thank you. Thank you.")]), SimpleNamespace(duration_after_vad=1.0)

    monkeypatch.setattr(whisper, "model", lambda: Fake())
    monkeypatch.setattr(voice_ai, "hear", lambda pcm: pytest.fail("no speech: pocketsphinx is not asked"))
    assert whisper.transcribe(b"\0\0" * 16000, PROMPT)[:2] == ("", 0.0)
    assert voice_ai.listen(b"\0\0" * 16000, PROMPT) == ("", 0.0, None, "whisper-tiny.en")


@pytest.mark.parametrize("whispers, sphinx, expected", [
    # Whisper's request stands; pocketsphinx is not asked
    ("Could I have two more pillows?", None, ("Could I have two more pillows?", 0.7, None, "whisper-tiny.en")),
    # Whisper misheard a word; the grammar's request sounds like what it heard: pocketsphinx's words
    ("The hair conditioning does not work.", ("the air conditioning does not work", 0.9, None),
     ("the air conditioning does not work", 0.9, None, "pocketsphinx")),
    # speech with no request (German, heard by an English model): the grammar's forced request
    # sounds nothing like it, and stays unheard
    ("It's my hand to her.", ("get milk we'd like one two two", 0.7, "request_item"),
     ("It's my hand to her", 0.7, None, "whisper-tiny.en")),
    ("Hello, I'm just waiting for my husband, he'll be down in a minute.", ("", 0.0, None),
     ("Hello, I'm just waiting for my husband, he'll be down in a minute", 0.7, None, "whisper-tiny.en")),
])
def test_pocketsphinx_is_a_second_opinion_only_on_speech_without_a_request(monkeypatch, whispers, sphinx, expected):
    monkeypatch.setattr(whisper, "transcribe", lambda pcm, prompt: (whispers, 0.7, {}))
    monkeypatch.setattr(voice_ai, "hear", lambda pcm: sphinx if sphinx else pytest.fail("pocketsphinx was asked"))
    assert voice_ai.listen(b"\0\0" * 16000, PROMPT) == expected


@pytest.mark.parametrize("heard, words", [
    ("Please bring two towels to room 41 to.", "Please bring two towels to room 412"),
    ("The shower is not working in room 3.05.", "The shower is not working in room 305"),
    ("The toilet is broken in room free zero-five.", "The toilet is broken in room 305"),
    ("I would like to extra pillows in room 5.0 to.", "I would like two extra pillows in room 502"),
    ("Could you send someone to room 412 to clean it?", "Could you send someone to room 412 to clean it?"),
    ("Please clean my room for me.", "Please clean my room for me"),
    ("Bring me to towels.", "Bring me two towels"),   # "to" before a plural item
    ("I need to go to bed!", "I need to go to bed"),  # not before anything else
])
def test_whispers_numbers_are_read_as_the_guest_said_them(heard, words):
    assert voice_ai.whisper_words(heard) == words


# --- the prompt ------------------------------------------------------------------------------

def test_the_prompt_names_the_propertys_offers_and_faq_topics(instance):
    db = instance.db()
    db["offers"].insert({"hotel_id": "demo", "offer_id": "SPA", "name": "Spa afternoon", "type": "addon",
                         "price": 60, "margin": 30})
    db["faq"].insert_all([{"hotel_id": "demo", "faq_id": "park", "language": "en", "question": "Where can I park my car?",
                           "answer": "In the garage."},
                          {"hotel_id": "demo", "faq_id": "park", "language": "de", "question": "Wo kann ich parken?",
                           "answer": "In der Garage."},
                          {"hotel_id": "harbor", "faq_id": "x", "language": "en", "question": "Is there a sauna?",
                           "answer": "Yes."}])
    prompt = voice_ai.vocabulary(Context(db=db, hotel_id="demo", now=0.0))
    assert "Spa afternoon" in prompt and "park" in prompt and "car" in prompt and "towels" in prompt
    assert "parken" not in prompt and "sauna" not in prompt  # English only, this hotel only
    assert voice_ai.vocabulary(Context(db=None, hotel_id="demo", now=0.0)).startswith("Hotel kiosk: towels")


# --- the fallback ----------------------------------------------------------------------------

@needs_espeak
def test_without_whisper_pocketsphinx_hears_the_request(tmp_path, monkeypatch):
    monkeypatch.setattr(whisper, "available", lambda: False)
    r = run(said(tmp_path, "espeak-ng", "en-us", "the shower is not working in room three zero five"))
    assert r.outputs["recogniser"] == "pocketsphinx"
    assert (r.outputs["intent"], r.outputs["slots"]["thing"]) == ("report_fault", "shower")
    assert [a.type for a in r.actions] == ["CREATE_TASK"]


@needs_whisper
@needs_espeak
def test_a_model_file_with_another_hash_is_not_used(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(whisper, "MODEL_SHA256", "0" * 64)
    monkeypatch.setattr(whisper, "_model", None)
    monkeypatch.setattr(whisper, "_tried", False)
    monkeypatch.setattr(whisper, "_why_not", None)
    spoken = "please make up my room"
    wav = said(tmp_path, "espeak-ng", "en-us", spoken)
    with caplog.at_level(logging.WARNING, logger="kiosk.models"):
        first = run(wav)
        second = run(wav)
    assert first.outputs["recogniser"] == second.outputs["recogniser"] == "pocketsphinx"
    assert first.outputs["intent"] == "clean_room"
    assert "sha256" in whisper.reason() and whisper.MODEL_SHA256[:12] in whisper.reason()
    said_so = [r.getMessage() for r in caplog.records if "Whisper unavailable" in r.getMessage()]
    assert len(said_so) == 1  # once, not per request
    assert "room" not in said_so[0].split(":", 1)[1]  # the reason names files and hashes, never the words heard


# --- in a model worker ---------------------------------------------------------------------

@needs_whisper
@needs_espeak
def test_a_model_worker_loads_whisper_once_within_its_memory_budget(instance, tmp_path):
    """The worker loads Whisper as it starts (preload.in_worker), after its address-space limit is
    set (models.memory_limit_mb, the default here): the budget must hold the model; requests after
    the first find it loaded."""
    from kiosk.models import runner, sandbox

    audio = base64.b64encode(said(tmp_path, "espeak-ng", "en-us", "i need a blanket")).decode()
    cfg = instance.config
    assert cfg.models.memory_limit_mb > 0  # the default budget (768 MiB): a limit is set
    first = runner.run(instance, "voice-ai", {"audio": audio}, hotel_id="demo", role="staff")
    assert first["status"] == "success", first
    assert (first["outputs"]["recogniser"], first["outputs"]["intent"]) == ("whisper-tiny.en", "request_item")
    pool = sandbox.pool(cfg.models.workers, cfg.models.memory_limit_mb)
    pids = {w.proc.pid for w in pool._idle}
    for _ in range(2):
        again = runner.run(instance, "voice-ai", {"audio": audio}, hotel_id="demo", role="staff")
        assert again["outputs"]["recogniser"] == "whisper-tiny.en"
    assert {w.proc.pid for w in pool._idle} & pids  # the same worker, its model kept
    for pid in {w.proc.pid for w in pool._idle}:
        with open(f"/proc/{pid}/status") as f:
            rss_kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        assert rss_kb < 700 * 1024, rss_kb  # Whisper tiny int8 and the pocketsphinx models: ~400 MB
