"""voice-ai's passes: fast speech whose path through the grammar never finished gave an empty
transcript; the compact grammar, filler words or the clip played slower hear it. Word forms
the parser lacked, flite's voices heard as another request, hiss heard as a request."""

from __future__ import annotations

import base64
import shutil
import subprocess

import pytest

from kiosk.models import voice_ai
from kiosk.models.base import Context

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def wav_of(pcm: bytes) -> bytes:
    import io
    import wave

    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm)
    return out.getvalue()


def said(tmp_path, text, voice, speed) -> bytes:
    out = tmp_path / "said.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(out), text], check=True)
    return out.read_bytes()


@pytest.mark.parametrize("voice", ["en-gb", "en+f3"])
def test_a_fast_request_is_heard(tmp_path, voice):
    wav = said(tmp_path, "could i get three more pillows", voice, 200)
    r = voice_ai.run(Context(db=None, hotel_id="demo", now=0.0), {"audio": base64.b64encode(wav).decode()})
    assert r.outputs["intent"] == "request_item" and r.outputs["slots"]["item"] == "pillow"
    assert 0 < r.confidence <= 1


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed")
@pytest.mark.parametrize("voice", ["awb", "rms"])
def test_a_late_checkout_in_flites_voices_is_not_a_blanket(tmp_path, voice):
    out = tmp_path / "said.wav"
    subprocess.run(["flite", "-voice", voice, "-t", "i would like a late checkout please", "-o", str(out)], check=True)
    r = voice_ai.run(Context(db=None, hotel_id="demo", now=0.0), {"audio": base64.b64encode(out.read_bytes()).decode()})
    assert r.outputs["intent"] == "late_checkout", r.outputs["transcript"]


def test_hiss_is_no_request():
    import numpy as np

    hiss = np.random.default_rng(1).normal(0, 3000, 32000).astype("<i2").tobytes()
    assert voice_ai.flatness(hiss) > 0.5 and voice_ai.transcribe(hiss) == ("", 0.0)


def test_hiss_recorded_at_8_khz_is_no_request():
    """Resampled to 16 kHz, an 8 kHz recording has nothing above 4 kHz: its hiss was measured as
    speech, and the passes spent minutes on a 30 s clip of it."""
    import io
    import wave

    import numpy as np

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.random.default_rng(2).normal(0, 3000, 8000 * 3).astype("<i2").tobytes())
    pcm = voice_ai.pcm16k(buf.getvalue())
    assert voice_ai.flatness(pcm) > 0.3 and voice_ai.transcribe(pcm) == ("", 0.0)


def test_a_long_clip_gets_the_first_pass_only(monkeypatch):
    """A spoken request takes seconds; the later passes on a long clip would hold a model worker
    for minutes."""
    tried: list[str] = []
    monkeypatch.setattr(voice_ai, "flatness", lambda pcm: 0.0)
    monkeypatch.setattr(voice_ai, "decoder", lambda kind: kind)
    monkeypatch.setattr(voice_ai, "_search", lambda d, clip: (tried.append(d), ("", 0.0))[1])
    short = b"\x01\x00" * int(16000 * voice_ai.RETRY_SECONDS)
    voice_ai.transcribe(short)
    assert tried == ["words"] + [kind for kind, _, _ in voice_ai.PASSES]
    tried.clear()
    voice_ai.transcribe(short + b"\x01\x00" * 16000)
    assert tried == ["words", voice_ai.PASSES[0][0]]


def test_slower_keeps_the_clip_and_lengthens_it():
    pcm = (b"\x01\x00" * 16000)
    assert len(voice_ai.slower(pcm, 1.15)) == pytest.approx(len(pcm) * 1.15, rel=0.01)


def test_the_grammar_is_compiled_to_a_small_graph_with_no_null_edges_but_into_the_end():
    from pocketsphinx import Decoder

    d = Decoder(lm=None, loglevel="FATAL")
    start, finals, edges = voice_ai._edges(d, voice_ai.GRAMMAR)
    assert sum(w is None for _, _, w in edges) > 1000  # pocketsphinx's own: mostly null edges
    toy = "#JSGF V1.0;\ngrammar t;\npublic <u> = [please] (bring | send) [me] a towel [please];\n"
    s, f, e = voice_ai._edges(d, toy)
    s1, f1, e1 = voice_ai._determinized(f, {s}, [(b, a, w) for a, b, w in e])
    s2, f2, e2 = voice_ai._determinized(f1, {s1}, [(b, a, w) for a, b, w in e1])
    assert all(w is not None for _, _, w in e2)
    assert len(e2) == 10 and len(f2) == 2  # please|bring|send, bring|send, me|a, a, towel, please; two ends

    def accepts(words):
        state = s2
        for w in words.split():
            state = next((b for a, b, x in e2 if a == state and x == w), None)
            if state is None:
                return False
        return state in f2

    assert accepts("please send me a towel please") and accepts("bring a towel")
    assert not accepts("please please bring a towel") and not accepts("send me towel")
    fsg, start, final = voice_ai.compact_fsg(d)
    assert fsg.word_id("housekeeping") >= 0


@pytest.mark.parametrize("text, intent, slots", [
    ("my room needs cleaning", "clean_room", {"room": None}),
    ("could you send up two extra towels", "request_item", {"item": "towel", "quantity": 2, "room": None}),
    ("i'd like a couple of pillows", "request_item", {"item": "pillow", "quantity": 2, "room": None}),
    ("the tv isn't working in room two one four", "report_fault", {"thing": "television", "room": "214"}),
    ("there is a problem with the wifi", "report_fault", {"thing": "internet", "room": None}),
    ("could i check out later", "late_checkout", {"room": None}),
])
def test_word_forms_and_contractions_are_parsed(text, intent, slots):
    assert voice_ai.parse_intent(text) == (intent, slots)


def test_digital_silence_gets_room_noise_under_it():
    """Synthetic speech and gated audio have exact zeros between words; the recogniser lost words
    there. The noise sits NOISE_BELOW_SPEECH_DB under the speech's level, whatever that level."""
    import numpy as np

    for loud in (2000, 9000):
        t = np.arange(16000) / 16000
        tone = (loud * np.sqrt(2) * np.sin(2 * np.pi * 300 * t)).astype("<i2")
        pcm = np.concatenate([tone, np.zeros(8000, "<i2"), tone]).tobytes()
        out = np.frombuffer(voice_ai.padded(pcm), "<i2").astype(float)
        gap = out[int(16000 * 0.3) + 16000 + 800:int(16000 * 0.3) + 16000 + 7200]
        assert (gap == 0).mean() < 0.02  # not a run of exact zeros any more
        below = 20 * np.log10(loud / gap.std())
        assert abs(below - voice_ai.NOISE_BELOW_SPEECH_DB) < 1.5, below


def test_the_statistical_model_is_a_proper_distribution():
    """Every history's next-word probabilities (the listed ones and the backed-off rest) add up to
    one, so no word is favoured by a bookkeeping slip."""
    import math

    text, vocab = voice_ai.arpa([["bring", "a", "towel"], ["bring", "two", "towels"], ["a", "late", "checkout"]],
                                {"the": 0.5, "a": 0.3, "is": 0.2}, share=0.2)
    grams: dict[int, dict] = {1: {}, 2: {}, 3: {}}
    order = 0
    for line in text.splitlines():
        if line.endswith("-grams:"):
            order = int(line[1])
        elif order and line.strip() and not line.startswith("\\"):
            parts = line.split("\t")
            grams[order][tuple(parts[1].split())] = (10 ** float(parts[0]), 10 ** float(parts[2]) if len(parts) > 2 else 1)

    def prob(words: tuple) -> float:
        if words in grams[len(words)]:
            return grams[len(words)][words][0]
        return grams[len(words) - 1].get(words[:-1], (0, 1.0))[1] * prob(words[1:])

    nexts = sorted(vocab | {"</s>"})
    for history in [("<s>",), ("bring",), ("a",), ("the",), ("<s>", "bring"), ("bring", "a"), ("a", "late")]:
        assert math.isclose(sum(prob(history + (w,)) for w in nexts), 1.0, abs_tol=1e-4), history
    assert prob(("bring", "a")) > prob(("bring", "is"))


@pytest.mark.parametrize("grammar, words, kept", [
    ("please bring two towels", "bring me towels", True),           # same request
    ("please bring two towels", "will you the", True),             # the statistical pass heard no request
    ("the shower is not working", "shower please clean room", True),  # its subject, heard
    ("the tv is not working", "the tv please clean room", True),    # its subject, as it is said
    ("please i'd like a couple of kettle", "the late checkout was able", False),  # another request
    ("", "is there a late checkout", False),
    # a request with no subject slot is borne out by its own words
    ("please clean room two one four", "please clean room two water call", True),
    ("can i have a late checkout", "can i have a late the kettle", True),
    ("what time is breakfast", "what time is the towel", True),
    ("can i have a late checkout", "can someone get eight soap", False),
])
def test_the_grammar_is_overruled_only_by_another_request_that_lacks_its_subject(grammar, words, kept):
    assert voice_ai.confirmed(grammar, words) is kept


def test_a_request_phrased_outside_the_grammar_is_heard(tmp_path):
    """The grammar has no "is ... possible": it fitted some other request to it."""
    wav = said(tmp_path, "is a late checkout possible", "en-us", 160)
    r = voice_ai.run(Context(db=None, hotel_id="demo", now=0.0), {"audio": base64.b64encode(wav).decode()})
    assert r.outputs["intent"] == "late_checkout", r.outputs["transcript"]


@pytest.mark.parametrize("grammar", ["GRAMMAR", "PHRASINGS"])
@pytest.mark.parametrize("rule, intent", [("item_request", "request_item"), ("clean", "clean_room"),
                                          ("fault", "report_fault"), ("late", "late_checkout"),
                                          ("question", "question")])
def test_every_request_the_grammar_accepts_is_parsed_as_its_own_intent(grammar, rule, intent):
    """The recogniser hears only what the grammar and the statistical model (drawn from the wider
    phrasings) hold; a phrasing they have and the parser does not know would be heard right and
    then lost."""

    from pocketsphinx import Decoder

    jsgf = getattr(voice_ai, grammar)
    only = voice_ai.one_rule(jsgf, rule)
    assert only != jsgf
    drawn = voice_ai.sentences(Decoder(lm=None, loglevel="FATAL"), 3000, seed=7, jsgf=only)
    wrong = [(" ".join(w), voice_ai.parse_intent(" ".join(w))[0]) for w in drawn
             if voice_ai.parse_intent(" ".join(w))[0] != intent]
    assert wrong == [], f"{len(wrong)} of {len(drawn)}, e.g. {wrong[:5]}"


@pytest.mark.parametrize("text, intent, slots", [
    ("we've run out of toilet paper", "request_item", {"item": "toilet paper", "quantity": 1, "room": None}),
    ("could we get two extra glasses", "request_item", {"item": "glass", "quantity": 2, "room": None}),
    ("i forgot my toothpaste do you have a spare", "request_item",
     {"item": "toothpaste", "quantity": 1, "room": None}),
    ("where's the ice machine", "question", None),
    ("is the restaurant still serving dinner", "question", None),
    ("how late is the bar open", "question", None),
    ("there's a leak in the bathroom", "report_fault", {"thing": "leak", "room": None}),
    ("the sink is blocked in room three one two", "report_fault", {"thing": "sink", "room": "312"}),
    ("the bathroom light keeps flickering", "report_fault", {"thing": "light", "room": None}),
    ("the mini fridge isn't keeping anything cold", "report_fault", {"thing": "fridge", "room": None}),
    ("we'd like our sheets changed", "clean_room", {"room": None}),
    ("my room hasn't been done today", "clean_room", {"room": None}),
    ("could we keep the room a couple of hours past checkout", "late_checkout", {"room": None}),
    ("can we check out a bit later than usual", "late_checkout", {"room": None}),
    ("what time is checkout", "question", None),
    ("please empty the bin", "clean_room", {"room": None}),
    ("could we have the room cleaned after lunch", "clean_room", {"room": None}),  # not a later checkout
    ("can you push our checkout back to one", "late_checkout", {"room": None}),
    ("there is water leaking under the sink", "report_fault", {"thing": "sink", "room": None}),
    ("the air conditioning is blowing warm air", "report_fault", {"thing": "air conditioning", "room": None}),
    ("i'd like an extra duvet for the sofa bed", "request_item", {"item": "duvet", "quantity": 1, "room": None}),
    ("the lights in the bedroom don't turn on", "report_fault", {"thing": "light", "room": None}),
    ("we don't have any bath towels", "request_item", {"item": "towel", "quantity": 1, "room": None}),
    ("the minibar fridge is warm", "report_fault", {"thing": "fridge", "room": None}),
    ("could we leave at one instead of eleven", "late_checkout", {"room": None}),
    ("we need the room for a couple more hours", "late_checkout", {"room": None}),
    ("can i hold on to my room till noon", "late_checkout", {"room": None}),
    ("can i stay in my room past checkout", "late_checkout", {"room": None}),
    ("what time does the bar stay open until", "question", None),       # "stay", but no later checkout
    ("do you have luggage storage after checkout", "question", None),   # "after checkout", likewise
])
def test_the_ways_guests_ask_beyond_the_first_grammar_are_parsed(text, intent, slots):
    got, got_slots = voice_ai.parse_intent(text)
    assert got == intent
    if slots is not None:
        assert got_slots == slots


@pytest.mark.parametrize("text, voice, speed, intent", [
    ("can we keep the room a couple of hours past checkout", "en-us", 160, "late_checkout"),  # outside the grammar
    ("how late is the bar open", "en-us", 160, "question"),                                  # outside the grammar
    ("please make up my room", "en-us", 130, "clean_room"),  # the wider model alone heard "please leak up to my room"
    ("i would like two extra pillows in room five zero two", "en+f3", 160, "request_item"),  # … "to check out late"
])
def test_wider_phrasings_are_heard_and_the_grammars_own_requests_still_are(tmp_path, text, voice, speed, intent):
    wav = said(tmp_path, text, voice, speed)
    r = voice_ai.run(Context(db=None, hotel_id="demo", now=0.0), {"audio": base64.b64encode(wav).decode()})
    assert r.outputs["intent"] == intent, r.outputs["transcript"]


@pytest.mark.parametrize("words, intent", [
    # the statistical pass's words for clips of the fifth held-out list of bench/models.py
    ("how late is the lift coffee open on sunday", "question"),                    # the parser: an item
    ("excuse me we get kettle is the restaurant on", "question"),                  # likewise
    ("we need the room an extra couple on now if that check out for my room", "late_checkout"),  # nothing
    ("the mini bar pretty small because off cold cold", "report_fault"),          # nothing
    ("um could you send some want that like the room while we're out thank that", "clean_room"),
])
def test_the_classifier_reads_misheard_sentences_the_parser_does_not(words, intent):
    parsed = voice_ai.parse_intent(words)[0]
    assert parsed != intent
    assert voice_ai.intents().intent(words, parsed) == intent
    assert voice_ai.parse_intent(words, intent)[0] == intent


def test_the_classifier_knows_each_intent_of_both_grammars():
    c = voice_ai.intents()
    for text, intent in [("i need a blanket", "request_item"), ("please make up my room", "clean_room"),
                         ("the shower is not working", "report_fault"), ("can i have a late checkout", "late_checkout"),
                         ("what time is breakfast", "question")]:
        assert c.intent(text) == intent, text


def test_the_parsers_reading_stands_unless_the_classifier_is_far_surer():
    c = voice_ai.intents()
    words = "can we keep the room up to our room past you can"  # heard for "… a couple of hours past checkout"
    scores = c.scores(words)
    assert max(scores, key=scores.get) == "clean_room" and voice_ai.parse_intent(words)[0] == "late_checkout"
    assert c.intent(words, "late_checkout") == "late_checkout"
    assert c.intent(words, "late_checkout", within=0.0) == "clean_room"


@pytest.mark.parametrize("words, intent, expected", [
    ("my wifi you send iron and ironing board", "request_item", ("request_item", {"item": "ironing board", "quantity": 1, "room": None})),
    ("the mini bar pretty small in room two one four", "report_fault", ("report_fault", {"thing": "mini bar", "room": "214"})),
    ("hello could you send some one please", "request_item", ("unknown", {})),  # no item: nothing to bring
    ("hello is it the one", "report_fault", ("unknown", {})),                 # no faulty thing
    ("we need the room for my room three one two", "late_checkout", ("late_checkout", {"room": "312"})),
])
def test_a_given_intent_takes_its_slots_from_the_words(words, intent, expected):
    assert voice_ai.parse_intent(words, intent) == expected


def test_a_request_the_grammar_lacks_is_read_by_the_classifier(monkeypatch):
    """The grammar forced some request of its own on a long sentence it shares few words with."""
    said = "how late is the lift coffee open on sunday"
    monkeypatch.setattr(voice_ai, "_search", lambda d, clip: (said, 0.9))
    monkeypatch.setattr(voice_ai, "_grammar", lambda pcm, clip: ("our lights doesn't work in room one oh one seven", 1.0))
    monkeypatch.setattr(voice_ai, "flatness", lambda pcm: 0.01)
    monkeypatch.setattr(voice_ai, "whisper_ready", lambda: False)  # pocketsphinx's path (the fallback)
    assert voice_ai.hear(b"\0\0" * 16000) == (said, 0.72, "question")
    r = voice_ai.run(Context(db=None, hotel_id="demo", now=0.0),
                     {"audio": base64.b64encode(wav_of(b"\0\0" * 16000)).decode()})
    assert (r.outputs["intent"], r.actions) == ("question", [])
    # sharing most of the grammar's words, the grammar's request stands
    monkeypatch.setattr(voice_ai, "_grammar", lambda pcm, clip: ("how late is the lift open on sunday", 1.0))
    assert voice_ai.hear(b"\0\0" * 16000)[2] is None
