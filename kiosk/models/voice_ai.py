"""voice-ai: a spoken (or typed) request turned into an intent with slots, and a task.

Speech is transcribed offline by pocketsphinx (its bundled en-us acoustic model) with a
hotel grammar (JSGF below): recognition is restricted to the things guests ask a kiosk,
which is what makes it robust to accents and speeds where an open vocabulary fails.
When the grammar's path does not finish (fast speech, a breath between words) the first
pass hears nothing; the next passes (``PASSES``: fillers allowed, the clip 15 % slower)
often do (bench/models.py: espeak-ng voices, flite's CMU voices, held-out phrasings).
The transcript (or typed text) is parsed into an intent — ``request_item`` (item,
quantity, room), ``clean_room`` (room), ``report_fault`` (thing, room), ``late_checkout``,
``question`` — and actionable intents become a CREATE_TASK for the right team.
Audio: a 16 kHz mono 16-bit WAV; other rates (8–48 kHz) are resampled, stereo is mixed
down; at most 30 s; anything else is VALIDATION_ERROR before any decoding
(``kiosk.media``).
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import threading
import wave

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import ValidationError
from ..media import wav_params
from ..validation import parse
from .base import Action, Context, ModelSpec, Result, own_room

ITEMS = ("towel", "towels", "pillow", "pillows", "blanket", "blankets", "water", "toothbrush", "soap", "shampoo",
         "coffee", "kettle", "iron", "hair dryer")
THINGS = ("television", "air conditioning", "light", "lamp", "shower", "toilet", "heater", "fridge", "safe",
          "kettle", "internet")
NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
           "nine": 9, "ten": 10, "some": 2}
DIGITS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
          "seven": "7", "eight": "8", "nine": "9"}
#: the words of each request the way guests put it (written from the intents: polite forms, "send
#: up", "extra", word forms such as "cleaning" / "cleaned", contractions); the held-out phrasings in
#: bench/models.py were never used to write it
GRAMMAR = f"""#JSGF V1.0;
grammar hotel;
public <utterance> = [please] (<item_request> | <clean> | <fault> | <late> | <question>) [please | thank you | thanks];
<num> = a | an | one | two | three | four | five | six | seven | eight | nine | ten | some | another | a few
      | a couple of | a couple | a new | a fresh | a clean;
<digit> = zero | oh | one | two | three | four | five | six | seven | eight | nine;
<room> = [in | to | for | up to] room <digit> <digit> <digit> [<digit>] | [in | to | for | up to] (my | our) room;
<item> = {' | '.join(ITEMS)};
<ask> = can i have | could i have | may i have | can i get | could i get | can we have | could we have
      | can we get | could we get | i need | we need | i want | we want | i would like | we would like
      | i'd like | we'd like;
<you> = can you | could you | would you | can someone | could someone | will you;
<give> = bring | send | bring up | send up;
<item_request> = (<ask> | [<you>] [please] <give> [me | us] [up]) [<num>] [more | extra] <item> [<room>] [please];
<clean> = [<you>] [please] (clean | make up | tidy | tidy up) [my | our | the] room [<room>] [please]
        | [<you>] [please] (clean | make up | tidy) room <digit> <digit> <digit> [<digit>]
        | (my | our | the) room (needs | need) (cleaning | to be cleaned | cleaned)
        | (i would like | we would like | i want | i'd like | we'd like) (my | our | the) room cleaned
        | ([<ask>] | [<you>] send) housekeeping [<room>] [please];
<thing> = {' | '.join(THINGS)} | tv | wifi | air conditioner | lights;
<broken> = is broken | does not work | doesn't work | is not working | isn't working | has stopped working
         | stopped working | will not turn on | won't turn on | is not on | keeps turning off;
<fault> = (the | my | our) <thing> [<room>] <broken> [<room>] | there is a problem with the <thing> [<room>];
<checkout> = checkout | check out;
<late> = (<ask>) a late <checkout> [<room>] | late <checkout> [please]
       | (can i | could i | can we | could we | i would like to | we would like to) check out (late | later);
<question> = (what time is | when is) (breakfast | lunch | dinner | <checkout> | check in)
           | what time does the (pool | gym | restaurant | spa | bar) (open | close)
           | where is the (pool | gym | restaurant | spa | bar | lift | elevator);
"""
TEAM = {"request_item": ("delivery", "housekeeping"), "clean_room": ("housekeeping", "cleaning"),
        "report_fault": ("maintenance", "maintenance")}
_lock = threading.Lock()
_decoder = None
_decoders: dict[str, object] = {}
#: the passes, tried in turn until one hears a request the parser knows (measured on espeak-ng
#: voices and speeds, then judged on flite's voices and held-out phrasings): the compact grammar
#: with no silence of its own (the quiet padding is taken by the first and last words); with
#: silence allowed before and after the request; with filler words between words (a breath or a
#: click no longer breaks the path); and the clip played 15 % slower (fast talkers)
PASSES = (("bare", 1.0, 1.0), ("hotel", 1.0, 1.0), ("fillers", 1.0, 0.9), ("bare", 1.15, 0.8))
#: clips longer than this get the first pass only: a spoken request takes a few seconds, and the
#: later passes cost up to ten times the first on long audio (a 30 s clip: ~5 minutes of CPU on
#: a busy 2-core box instead of ~20 s), which would hold a model worker for its whole timeout
RETRY_SECONDS = 10.0


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    audio: str | None = Field(None, max_length=10_000_000)
    text: str | None = Field(None, min_length=1, max_length=500)
    roomNumber: str | None = Field(None, max_length=10)

    @model_validator(mode="after")
    def _one(self):
        if (self.audio is None) == (self.text is None):
            raise ValueError("give either audio or text")
        return self


def pcm16k(data: bytes) -> bytes:
    """16 kHz mono 16-bit PCM from a WAV file's bytes (within media.wav_params' bounds)."""
    rate, channels, _, n = wav_params(data)
    with wave.open(io.BytesIO(data)) as w:
        frames = w.readframes(n)
    frames = frames[:len(frames) - len(frames) % (2 * channels)]
    x = np.frombuffer(frames, "<i2").astype(np.float32)
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1)
    if rate != 16000:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(16000, rate)
        x = resample_poly(x, 16000 // g, rate // g)
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()


def _edges(d, jsgf: str) -> tuple[int, set, list]:
    """(start, finals, edges) of pocketsphinx's own compilation of the JSGF: a graph with a state
    per word position of each rule and null edges (word None) for every optional and alternative."""
    import os
    import tempfile

    fsg = d.parse_jsgf(jsgf)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "g.fsg")
        fsg.writefile(path)
        with open(path) as f:
            lines = [ln.split() for ln in f]
    start = next(int(t[1]) for t in lines if t[:1] == ["START_STATE"])
    final = next(int(t[1]) for t in lines if t[:1] == ["FINAL_STATE"])
    return start, {final}, [(int(t[1]), int(t[2]), t[4] if len(t) > 4 else None)
                            for t in lines if t[:1] == ["TRANSITION"]]


def _determinized(starts, finals: set, edges: list) -> tuple[int, set, list]:
    """The same language as a deterministic graph without null edges (subset construction)."""
    null: dict[int, set] = {}
    out: dict[int, list] = {}
    for a, b, w in edges:
        if w is None:
            null.setdefault(a, set()).add(b)
        else:
            out.setdefault(a, []).append((w, b))

    def closure(states) -> frozenset:
        seen, todo = set(states), list(states)
        while todo:
            for b in null.get(todo.pop(), ()):
                if b not in seen:
                    seen.add(b)
                    todo.append(b)
        return frozenset(seen)

    first = closure(starts)
    ids, todo, result, accepting = {first: 0}, [first], [], set()
    while todo:
        here = todo.pop()
        if here & finals:
            accepting.add(ids[here])
        step: dict[str, set] = {}
        for s in here:
            for w, b in out.get(s, ()):
                step.setdefault(w, set()).add(b)
        for w, there in sorted(step.items()):
            there = closure(there)
            if there not in ids:
                ids[there] = len(ids)
                todo.append(there)
            result.append((ids[here], ids[there], w))
    return 0, accepting, result


def compact_fsg(d, jsgf: str = GRAMMAR):
    """The grammar as the smallest deterministic word graph (Brzozowski: determinize the reverse,
    then the reverse of that). pocketsphinx's own compilation of a grammar with many optional words
    has thousands of edges, most of them null: the search over it was slow (seconds with filler
    words allowed) and often ended on no final state at all (an empty transcript); this one has a
    few hundred and none null but the ones into the single final state."""
    start, finals, edges = _edges(d, jsgf)
    s1, f1, e1 = _determinized(finals, {start}, [(b, a, w) for a, b, w in edges])
    start, finals, edges = _determinized(f1, {s1}, [(b, a, w) for a, b, w in e1])
    final = 1 + max(max(a, b) for a, b, _ in edges)
    edges = edges + [(a, final, None) for a in sorted(finals)]
    degree: dict[int, int] = {}
    for a, _, _ in edges:
        degree[a] = degree.get(a, 0) + 1
    fsg = d.create_fsg("hotel", start, final, [(a, b, 1.0 / degree[a]) + ((w,) if w else ()) for a, b, w in edges])
    return fsg, start, final


def decoder(kind: str = "hotel"):
    """``hotel``: the compact grammar, silence only before and after the request, and wide beams
    (measured on espeak-ng voices, bench/models.py: these recognise the last word of a request far
    more often); ``bare``: the same without that silence; ``fillers``: filler words allowed
    between words."""
    global _decoder
    if kind not in _decoders:
        from pocketsphinx import Decoder

        d = Decoder(lm=None, loglevel="FATAL", fsgusefiller=kind == "fillers", beam=1e-60, pbeam=1e-60,
                    wbeam=1e-50)
        fsg, start, final = compact_fsg(d)
        if kind == "hotel":
            fsg.add_silence("<sil>", start, 0.5)
            fsg.add_silence("<sil>", final, 0.5)
        d.add_fsg("hotel", fsg)
        d.activate_search("hotel")
        _decoders[kind] = d
        if kind == "hotel":
            _decoder = d
    return _decoders[kind]


def padded(pcm: bytes, before: float = 0.3, after: float = 0.5) -> bytes:
    """The utterance with quiet room noise around it: the recogniser needs silence after
    the last word to finish it, and a clip trimmed tight to the speech (as a push-to-talk
    button or a TTS file gives) otherwise loses that word (measured: bench/models.py)."""
    rng = np.random.default_rng(0)
    quiet = lambda s: rng.normal(0, 30, int(16000 * s)).astype("<i2").tobytes()  # noqa: E731
    return quiet(before) + pcm + quiet(after)


def _search(d, pcm: bytes) -> tuple[str, float]:
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    hyp = d.hyp()
    if hyp is None or not hyp.hypstr:
        return "", 0.0
    # a grammar search gives no usable posterior; how much of the audio the words cover is
    # a fair proxy (a garbled utterance leaves long stretches unexplained)
    seg = [s for s in d.seg() if s.word not in ("<s>", "</s>", "<sil>", "[NOISE]")]
    covered = sum(s.end_frame - s.start_frame + 1 for s in seg)
    return hyp.hypstr, min(1.0, covered / max(1, d.n_frames()) * 1.5)


def slower(pcm: bytes, factor: float) -> bytes:
    """The clip ``factor`` times as long (resampled and played at 16 kHz: slower and lower)."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    f = Fraction(factor).limit_denominator(40)
    x = resample_poly(np.frombuffer(pcm, "<i2").astype(np.float32), f.numerator, f.denominator)
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()


def flatness(pcm: bytes) -> float:
    """Spectral flatness (geometric over arithmetic mean of the power spectrum) of the louder half
    of the clip's 25 ms frames: about 0.55 for hiss or static, under 0.01 for every spoken request
    of bench/models.py. The grammar fits some request to anything, noise included (a short one such
    as "send up soap"), so a clip as flat as hiss is no request at all.  Measured over 120–3,800 Hz,
    the band every accepted recording has: an 8 kHz recording resampled to 16 kHz has nothing
    above 4 kHz, and that empty half made its hiss look like speech."""
    x = np.frombuffer(pcm, "<i2").astype(np.float64)
    n = len(x) // 400
    if n < 2:
        return 1.0
    power = np.abs(np.fft.rfft(x[:n * 400].reshape(n, 400) * np.hanning(400), axis=1))[:, 3:96] ** 2 + 1e-9
    loud = power.sum(axis=1) >= np.median(power.sum(axis=1))
    return float(np.median((np.exp(np.log(power).mean(axis=1)) / power.mean(axis=1))[loud]))


def transcribe(pcm: bytes) -> tuple[str, float]:
    """(transcript, confidence) of 16 kHz mono PCM: the first of ``PASSES`` that hears a request
    the intent parser knows (its confidence scaled down for the later passes); else the first
    pass's words, if any.  Clips past ``RETRY_SECONDS`` get the first pass only."""
    if flatness(pcm) > 0.3:
        return "", 0.0
    first = None
    passes = PASSES if len(pcm) <= RETRY_SECONDS * 16000 * 2 else PASSES[:1]
    with _lock:  # one decoder per pass, one utterance at a time
        for kind, stretch, weight in passes:
            clip = padded(pcm if stretch == 1.0 else slower(pcm, stretch))
            text, confidence = _search(decoder(kind), clip)
            if first is None:
                first = (text, confidence)
            if text and parse_intent(text)[0] != "unknown":
                return text, round(confidence * weight, 3)
    return first


#: spoken forms and word forms mapped to the parser's words
SAID = (("tv", "television"), ("telly", "television"), ("wi fi", "internet"), ("wifi", "internet"),
        ("ac", "air conditioning"), ("aircon", "air conditioning"), ("air conditioner", "air conditioning"),
        ("i d", "i would"), ("we d", "we would"), ("isn t", "is not"), ("doesn t", "does not"),
        ("won t", "will not"), ("can t", "cannot"), ("lights", "light"), ("a couple of", "two"),
        ("a couple", "two"), ("a few", "three"), ("another", "one more"), ("checkout", "check out"),
        ("check out later", "late check out"), ("check out late", "late check out"))
FAULTY = r"broken|not work|does not|is not|will not|stopped working|not on|turning off|problem with|out of order"
CLEAN = r"clean|cleaned|cleaning|make up|made up|tidy|tidied|housekeeping|serviced"


def parse_intent(text: str) -> tuple[str, dict]:
    joined = " ".join(re.findall(r"[a-z0-9]+", text.lower()))
    for said, meant in SAID:
        joined = re.sub(rf"\b{said}\b", meant, joined)
    words = joined.split()
    room = None
    m = re.search(r"room ((?:(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)\s?){3,4})", joined)
    if m:
        room = "".join(DIGITS[w] for w in m.group(1).split())
    else:
        m = re.search(r"room (\d{3,4})", joined)
        room = m.group(1) if m else None
    if "late check out" in joined:
        return "late_checkout", {"room": room}
    for thing in THINGS:
        if re.search(rf"\b{thing}", joined) and re.search(FAULTY, joined):
            return "report_fault", {"thing": thing, "room": room}
    if re.search(rf"\b({CLEAN})\b", joined) and not any(i in words for i in ITEMS):
        return "clean_room", {"room": room}
    for item in sorted(ITEMS, key=len, reverse=True):
        if re.search(rf"\b{item}\b", joined):
            qty = 1
            m = re.search(rf"\b(\w+) (?:(?:more|extra|new|fresh|clean) )?{item}\b", joined)
            if m and m.group(1) in NUMBERS:
                qty = NUMBERS[m.group(1)]
            elif m and m.group(1).isdigit():
                qty = int(m.group(1))
            return "request_item", {"item": item.rstrip("s") if item.endswith("s") and item != "glass" else item,
                                    "quantity": qty, "room": room}
    if re.search(r"\b(what|where|when|how)\b", joined):
        return "question", {"text": text}
    return "unknown", {}


def run(ctx: Context, payload: dict) -> Result:
    p = parse(Payload, payload)
    if p.audio is not None:
        try:
            raw = base64.b64decode(p.audio, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError("audio is not base64", {"field": "audio"}) from None
        transcript, confidence = transcribe(pcm16k(raw))
    else:
        transcript, confidence = p.text, 1.0
    intent, slots = parse_intent(transcript)
    if intent == "unknown":
        confidence = min(confidence, 0.1)
    room = own_room(ctx, p.roomNumber)  # a guest: their own room only (another is FORBIDDEN)
    if "room" in slots:
        if ctx.role == "guest":
            # a guest files tasks for their own room: a spoken room number (or a misheard one) is ignored
            slots["spokenRoom"] = slots["room"] if slots["room"] not in (None, room) else None
            slots["room"] = room
        elif slots["room"] is None:
            slots["room"] = room
    actions = []
    if intent in TEAM:
        kind, skill = TEAM[intent]
        what = {"request_item": f"{slots.get('quantity')} × {slots.get('item')}",
                "clean_room": "clean the room", "report_fault": f"{slots.get('thing')} not working"}[intent]
        actions.append(Action("CREATE_TASK", {"type": kind, "roomNumber": slots.get("room"), "requiredSkill": skill,
                                              "priority": "high" if intent == "report_fault" else "normal",
                                              "description": f"{what} (voice: {transcript!r})"}))
    return Result(confidence=round(confidence, 3), outputs={"transcript": transcript, "intent": intent, "slots": slots},
                  actions=actions)


SPEC = ModelSpec(id="voice-ai", run=run, roles=frozenset({"guest", "staff", "admin"}), reads=(),
                 timeout_seconds=30.0, description="Spoken or typed requests to intents with slots and a task")
