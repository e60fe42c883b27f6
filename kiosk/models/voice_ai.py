"""voice-ai: a spoken (or typed) request turned into an intent with slots, and a task.

With the ``voice`` extra installed, speech is transcribed by Whisper tiny.en (``whisper``; ``listen``
below): its words are read by the parser, a long sentence the parser finds no request in by the
classifier, and speech in which neither finds one is heard by pocketsphinx as a second opinion
that stands only when its words sound like Whisper's; no speech is no request. Without the extra
(or with a model file whose hash is not the pinned one) pocketsphinx alone hears it, as follows.
``outputs.recogniser`` says whose words they are: ``whisper-tiny.en``, ``pocketsphinx`` or ``text``.

Speech is transcribed offline by pocketsphinx (its bundled en-us acoustic model) twice over:
with a hotel grammar (JSGF below), which holds recognition to the things guests ask a kiosk
and so is robust to accents and speeds where an open vocabulary fails; and with a statistical
model of a wider set of phrasings (``PHRASINGS``) and the commonest English words (``arpa``),
which still hears a request phrased in a way the grammar lacks, where the grammar fits some
other request to it.
The grammar's request stands unless the statistical pass heard another that does not share its
subject (``confirmed``), or the two share so few words that the grammar forced a request on a
phrasing it lacks: then a naive Bayes classifier (``Intents``) reads the statistical pass's
words. Room noise goes under the clip first (``padded``): exact digital silence between words
made the recogniser lose them. When the grammar's path does not finish
(a breath between words, fast speech) its next passes (``PASSES``: fillers allowed, the clip
15 % slower) often do. Measured in bench/models.py on espeak-ng voices, flite's CMU voices and
six held-out lists of phrasings, the last four written by people who never saw the grammar.
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
import math
import re
import threading
import wave

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import ValidationError
from ..media import wav_params
from ..validation import parse
from .base import Action, Context, ModelSpec, Result, own_room

ITEMS = ("towel", "towels", "pillow", "pillows", "blanket", "blankets", "water", "toothbrush", "toothpaste", "soap",
         "shampoo", "conditioner", "razor", "comb", "tissues", "toilet paper", "toilet roll", "coffee", "tea", "milk",
         "sugar", "kettle", "iron", "hair dryer", "hangers", "charger", "adapter", "umbrella", "cot", "crib",
         "bathrobe", "robe", "slippers", "shower cap", "glass", "glasses", "cups", "mugs", "ice", "duvet", "quilt",
         "ironing board", "cushion", "earplugs", "sewing kit", "shaving cream", "mouthwash", "body lotion")
THINGS = ("television", "air conditioning", "light", "lamp", "shower", "toilet", "heater", "heating", "radiator",
          "fridge", "mini bar", "safe", "kettle", "coffee machine", "internet", "hair dryer", "key card", "door",
          "lock", "window", "sink", "tap", "bath", "drain", "remote", "phone", "hot water", "socket", "curtains",
          "blinds", "iron", "smoke alarm", "leak")
NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
           "nine": 9, "ten": 10, "some": 2}
DIGITS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
          "seven": "7", "eight": "8", "nine": "9"}
#: the words the grammar's search knows for items and faulty things (the parser knows more:
#: ``ITEMS``, ``THINGS``)
GRAMMAR_ITEMS = ("towel", "towels", "pillow", "pillows", "blanket", "blankets", "water", "toothbrush", "soap",
                 "shampoo", "coffee", "kettle", "iron", "hair dryer")
GRAMMAR_THINGS = ("television", "air conditioning", "light", "lamp", "shower", "toilet", "heater", "fridge", "safe",
                  "kettle", "internet")
#: a room as both grammars say it: three or four digits, or "my room"
ROOM_RULES = """<digit> = zero | oh | one | two | three | four | five | six | seven | eight | nine;
<room> = [in | to | for | up to] room <digit> <digit> <digit> [<digit>] | [in | to | for | up to] (my | our) room;
"""
#: the words of each request the way guests put it (written from the intents: polite forms, "send
#: up", "extra", word forms such as "cleaning" / "cleaned", contractions); the held-out phrasings in
#: bench/models.py were never used to write it. Its search is exact on the requests it holds; a
#: request phrased outside it is heard by the statistical pass (``PHRASINGS``)
GRAMMAR = f"""#JSGF V1.0;
grammar hotel;
public <utterance> = [please] (<item_request> | <clean> | <fault> | <late> | <question>) [please | thank you | thanks];
<num> = a | an | one | two | three | four | five | six | seven | eight | nine | ten | some | another | a few
      | a couple of | a couple | a new | a fresh | a clean;
{ROOM_RULES}<item> = {' | '.join(GRAMMAR_ITEMS)};
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
<thing> = {' | '.join(GRAMMAR_THINGS)} | tv | wifi | air conditioner | lights;
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
#: the ways of asking that the statistical pass learns (``arpa``), wider than ``GRAMMAR``: the
#: grammar's requests, a greeting first and a time after, and the phrasings of the second and third
#: held-out lists in bench/models.py ("do you have a spare", "we've run out of", "keep the room
#: longer", "how late is … open", "no hot water"). As the grammar itself it was slower (four
#: times the edges) and less exact: more requests to fit, more near misses on clear speech
#: (bench/models.py, first list 1.000 → 0.926). The fourth list there, written by someone who never
#: saw either, is the judge.
PHRASINGS = f"""#JSGF V1.0;
grammar hotel;
public <utterance> = [<hello>] [please] (<item_request> | <clean> | <fault> | <late> | <question>) [<room>] [<when>]
                     [please | thank you | thanks | thank you very much | if possible | if you can];
<hello> = hi | hello | hi there | excuse me | sorry | um | er | yes | good morning | good evening;
<when> = today | tomorrow | tonight | now | right now | this morning | this afternoon | this evening
       | as soon as possible | when you can | when you get a chance | while we're out
       | on (monday | tuesday | wednesday | thursday | friday | saturday | sunday);
<num> = a | an | one | two | three | four | five | six | seven | eight | nine | ten | some | any | another | a few
      | a couple of | a couple | a new | a fresh | a clean | a spare | some more | any more;
{ROOM_RULES}<item> = {' | '.join(ITEMS)} | phone charger | bottled water | bath towels;
<want> = i would like | we would like | i'd like | we'd like | i want | we want;
<ask> = can i have | could i have | may i have | can i get | could i get | can we have | could we have
      | can we get | could we get | i need | we need | <want> | can i borrow | could i borrow | may i borrow
      | do you have | have you got | is it possible to get | would it be possible to get | could i please have
      | can i please have;
<you> = can you | could you | would you | can someone | could someone | will you | would someone;
<give> = bring | send | bring up | send up | get;
<out> = (we've | we have | i've | i have) run out of | we ran out of | we're out of | there's no | there is no
      | there are no | (i | we) forgot (my | our) | (i | we) don't have (a | any | an);
<item_request> = (<ask> | [<you>] [please] <give> [me | us] [up] | <out>) [<num>] [more | extra] <item>;
<done> = cleaning | to be cleaned | cleaned | doing | done | made up | making up | serviced;
<clean> = [<you>] [please] (clean | make up | tidy | tidy up | do | service) [my | our | the] (room | bathroom)
        | [<you>] [please] (clean | make up | tidy) room <digit> <digit> <digit> [<digit>]
        | (my | our | the) (room | bathroom) (needs | need) <done>
        | (my | our | the) room (hasn't | has not | wasn't | was not) been (cleaned | done | made up) [today | yet]
        | (<want> | can you have | could you have | can we have | could we have) (my | our | the) room <done>
        | (<want> | can we have | could we have | can you) [our | my | the] (sheets | bed | bedding) changed
        | [<you>] [please] change [the | our | my] (sheets | bed | bedding)
        | [<you>] [please] (take out | empty) the (rubbish | trash | garbage | bins)
        | [<you>] [please] send (someone | a maid | a cleaner) to (clean | tidy | make up) [my | our | the] room
        | (<ask> | [<you>] send | <want>) housekeeping [to come [by | up | round]];
<thing> = {' | '.join(THINGS)} | tv | wifi | air conditioner | lights | bedside lamp | mini fridge
        | remote control | telephone | door lock | faucet;
<broken> = is broken | does not work | doesn't work | is not working | isn't working | has stopped working
         | stopped working | will not turn on | won't turn on | won't come on | is not on | keeps turning off
         | won't turn off | is dripping | keeps dripping | is blocked | is clogged | is stuck
         | won't flush | doesn't flush | won't drain | isn't draining | won't open | won't close | won't lock
         | isn't getting (hot | cold | warm) | isn't heating | isn't cold | isn't keeping anything cold
         | is making a (weird | strange | loud | funny) noise | keeps beeping | is flickering
         | won't connect | keeps dropping | doesn't seem to work | isn't working properly | don't work
         | don't turn on | isn't cold | is warm | won't stop running;
<fault> = [the | my | our] <thing> [<room>] <broken>
        | ((there is | there's) a problem | (something is | something's) wrong) with the <thing>
        | i can't turn (on | off) the <thing> | (there is | there's) no hot water | i can't connect to the wifi;
<checkout> = checkout | check out;
<later> = late | later | a bit later | a little later | an hour later | two hours later;
<late> = (<ask> | is there | any chance of) a (late | later) <checkout> | late <checkout>
       | is a late <checkout> possible | (can i | can we | could i | could we) have a later <checkout>
       | (can i | could i | can we | could we | i would like to | we would like to | i'd like to | we'd like to
          | i need to | we need to | is it possible to | would it be possible to) check out <later> [than usual]
       | (can i | can we | could i | could we) keep (the | my | our) room (a bit | a little | an hour | a few hours
          | a couple of hours | two hours) (longer | later | past <checkout> | after <checkout>)
       | (can i | can we | could i | could we) stay in the room (a bit | a little) longer
       | (can i | can we | could i | could we) extend (my | our) <checkout>
       | (can i | can we | could i | could we) leave at (one | two | noon) instead of eleven
       | (can i | can we | could i | could we) (keep | hold on to | hang on to) (the | my | our) room
         (until | till) (noon | midday | one | two | three)
       | (can i | can we | could i | could we) stay in (the | my | our) room (past | after) <checkout>
       | (i | we) need the room for (an extra | a few more | a couple more | two more) hours
       | (can i | can we | could i | could we) check out at (twelve | one | two) [thirty];
<place> = pool | swimming pool | gym | restaurant | spa | bar | lift | elevator | lobby | reception | car park
        | parking | laundry | ice machine | business centre | shop;
<meal> = breakfast | lunch | dinner | brunch;
<question> = (what time is | when is) (<meal> | <checkout> | check in) [served]
           | (what time | when) does (the <place> | <meal>) (open | close | start | finish)
           | (where is | where's | where can i find | how do i get to | which floor is) the <place>
           | how late is (the <place> open | <meal> served) | is the <place> [still] open
           | is the restaurant still (serving | doing) (<meal> | food) [now] | is <meal> included
           | is there a <place> | (what is | what's) the wifi password | how do i connect to the wifi
           | what time do (i | we) have to check out | which floor is the <place> on
           | how do i get to the (airport | station | city centre | beach) | is there a (shuttle | taxi | bus)
           | do you have parking | where can i get a taxi;
"""
TEAM = {"request_item": ("delivery", "housekeeping"), "clean_room": ("housekeeping", "cleaning"),
        "report_fault": ("maintenance", "maintenance")}
_lock = threading.Lock()
_decoders: dict[str, object] = {}
_graphs: dict[str, tuple[int, set, list]] = {}
_intents = None
#: the grammar's passes, tried in turn until one hears a request the parser knows (measured on
#: espeak-ng voices and speeds, then judged on flite's voices and held-out phrasings): the compact
#: grammar with silence allowed before and after the request; with filler words between words (a
#: breath or a click no longer breaks the path); and the clip played 15 % slower (fast talkers)
PASSES = (("hotel", 1.0, 1.0), ("fillers", 1.0, 0.9), ("hotel", 1.15, 0.8))
#: room noise mixed under the whole clip, this far below the speech's level (never under σ 30):
#: synthetic speech, and audio a noise gate or a push-to-talk button cut, has exact digital
#: silence between words, which the recogniser's features (log energies) turn into nonsense, and
#: it loses words there (bench/models.py: the statistical pass heard 0.49 of the held-out
#: requests in espeak-ng's voices without it, 0.97 with it)
NOISE_BELOW_SPEECH_DB = 32.0
#: the statistical pass's words: the grammar's, and this many of the commonest English words (from
#: pocketsphinx's general model), with this share of the probability, so that a request phrased
#: outside the grammar ("is a late checkout possible") is still heard word by word
COMMON_WORDS, COMMON_SHARE = 500, 0.1
RETRY_SECONDS = 10.0
#: when the grammar's words and the statistical pass's share less than this (``shared``) and the
#: statistical pass heard at least this many words, the grammar forced a request on a phrasing it
#: lacks (``hear``; chosen on the fifth held-out list of bench/models.py, judged on the sixth)
FORCED = (0.4, 7)


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


def _word_graph(d, jsgf: str = GRAMMAR) -> tuple[int, set, list]:
    """The grammar as the smallest deterministic word graph (Brzozowski: determinize the reverse,
    then the reverse of that); built once per grammar (both grammar passes and the statistical
    model's sentences use it)."""
    if jsgf not in _graphs:
        _graphs[jsgf] = _minimal(d, jsgf)
    return _graphs[jsgf]


def _minimal(d, jsgf: str) -> tuple[int, set, list]:
    start, finals, edges = _edges(d, jsgf)
    s1, f1, e1 = _determinized(finals, {start}, [(b, a, w) for a, b, w in edges])
    return _determinized(f1, {s1}, [(b, a, w) for a, b, w in e1])


def compact_fsg(d, jsgf: str = GRAMMAR):
    """The grammar's smallest word graph as pocketsphinx's FSG. pocketsphinx's own compilation of a
    grammar with many optional words has thousands of edges, most of them null: the search over it
    was slow (seconds with filler words allowed) and often ended on no final state at all (an empty
    transcript); this one has a few hundred and none null but the ones into the single final state.
    (Keeping each long word list that several states share once, behind null edges, cut the edges
    by 40 % and lost the exact request on 6 of 80 bench clips: "a few towels" for "two towels".)"""
    start, finals, edges = _word_graph(d, jsgf)
    final = 1 + max(max(a, b) for a, b, _ in edges)
    edges = edges + [(a, final, None) for a in sorted(finals)]
    degree: dict[int, int] = {}
    for a, _, _ in edges:
        degree[a] = degree.get(a, 0) + 1
    fsg = d.create_fsg("hotel", start, final, [(a, b, 1.0 / degree[a]) + ((w,) if w else ()) for a, b, w in edges])
    return fsg, start, final


def sentences(d, n: int, seed: int = 0, jsgf: str = GRAMMAR) -> list[list[str]]:
    """``n`` requests the grammar accepts, drawn by walking its word graph (each way on equally)."""
    return _walks(*_word_graph(d, jsgf), n, seed)


def _walks(start: int, finals: set, edges: list, n: int, seed: int) -> list[list[str]]:
    import random

    out: dict[int, list] = {}
    for a, b, w in edges:
        out.setdefault(a, []).append((w, b))
    rng, drawn = random.Random(seed), []
    for _ in range(n):
        state, words = start, []
        while True:
            ways = out.get(state, [])
            i = rng.randrange(len(ways) + (state in finals))
            if i == len(ways):
                break
            word, state = ways[i]
            words.append(word)
        drawn.append(words)
    return drawn


def arpa(drawn: list[list[str]], common: dict[str, float], share: float = COMMON_SHARE,
         discount: float = 0.5) -> tuple[str, set]:
    """(an ARPA trigram model, its words): the requests' trigrams with absolute discounting and
    backoff, the unigrams mixed with ``common`` words (word → probability) at ``share``."""
    from collections import Counter
    from math import log10

    c1, c2, c3 = Counter(), Counter(), Counter()
    for words in drawn:
        t = ["<s>", *words, "</s>"]
        c1.update(t[1:])
        c2.update(zip(t, t[1:], strict=False))
        c3.update(zip(t, t[1:], t[2:], strict=False))
    total, norm = sum(c1.values()), sum(common.values()) or 1.0
    vocab = set(c1) | set(common)
    p1 = {w: (1 - share) * c1[w] / total + share * common.get(w, 0.0) / norm for w in vocab}

    def backed_off(counts: Counter, lower) -> tuple[dict, dict]:
        seen, kinds, after = Counter(), Counter(), {}
        for k, c in counts.items():
            seen[k[:-1]] += c
            kinds[k[:-1]] += 1
            after.setdefault(k[:-1], []).append(k[-1])
        prob = {k: (c - discount) / seen[k[:-1]] + discount * kinds[k[:-1]] / seen[k[:-1]] * lower(k[1:])
                for k, c in counts.items()}
        weight = {h: (1 - sum(prob[h + (w,)] for w in ws)) / max(1e-12, 1 - sum(lower(h[1:] + (w,)) for w in ws))
                  for h, ws in after.items()}
        return prob, weight

    p2, bow1 = backed_off(c2, lambda k: p1[k[-1]])
    p3, bow2 = backed_off(c3, lambda k: p2.get(k, bow1.get(k[:1], 1.0) * p1[k[-1]]))
    lg = lambda x: f"{log10(max(x, 1e-99)):.6f}"  # noqa: E731
    lines = ["\\data\\", f"ngram 1={len(vocab) + 1}", f"ngram 2={len(p2)}", f"ngram 3={len(p3)}", "",
             "\\1-grams:", f"-99\t<s>\t{lg(bow1.get(('<s>',), 1.0))}"]
    lines += [f"{lg(p1[w])}\t{w}\t{lg(bow1.get((w,), 1.0))}" for w in sorted(vocab)]
    lines += ["", "\\2-grams:"] + [f"{lg(v)}\t{' '.join(k)}\t{lg(bow2.get(k, 1.0))}" for k, v in sorted(p2.items())]
    lines += ["", "\\3-grams:"] + [f"{lg(v)}\t{' '.join(k)}" for k, v in sorted(p3.items())]
    return "\n".join(lines + ["", "\\end\\", ""]), vocab - {"</s>"}


def _statistical(options: dict):
    """A decoder with a trigram model of the grammar's requests and the commonest English words
    (``arpa``), over a dictionary of just those words."""
    import os
    import tempfile

    import pocketsphinx
    from pocketsphinx import Decoder

    model = os.path.join(pocketsphinx.get_model_path(), "en-us")
    prons: dict[str, list[str]] = {}
    with open(os.path.join(model, "cmudict-en-us.dict")) as f:
        for line in f:
            prons.setdefault(line.split(" ", 1)[0].split("(")[0], []).append(line)
    general = pocketsphinx.NGramModel(pocketsphinx.Config(), pocketsphinx.LogMath(),
                                      os.path.join(model, "en-us.lm.bin"))
    score = {w: general.prob([w]) for w in prons}  # log base 1.0001
    common = {w: math.exp(score[w] * math.log(1.0001)) for w in sorted(prons, key=lambda w: -score[w])[:COMMON_WORDS]}
    # the grammar's own requests weigh as much as all the wider phrasings together: drawn from the
    # wider ones only, its clear requests lost out to likelier phrasings ("two extra pillows" heard
    # as "to check out late"); the grammar decoder parses both
    d = decoder("hotel")
    text, vocab = arpa(sentences(d, 10_000) + sentences(d, 10_000, seed=1, jsgf=PHRASINGS), common)
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "hotel.arpa"), "w") as f:
            f.write(text)
        with open(os.path.join(tmp, "hotel.dict"), "w") as f:
            f.writelines(line for w in sorted(vocab) for line in prons.get(w, ()))
        return Decoder(lm=os.path.join(tmp, "hotel.arpa"), dict=os.path.join(tmp, "hotel.dict"), **options)


def decoder(kind: str = "hotel"):
    """``hotel``: the compact grammar, silence allowed before and after the request, and wide
    beams (measured on espeak-ng voices, bench/models.py: these recognise the last word of a
    request far more often); ``fillers``: filler words allowed between words; ``words``: the
    statistical model (``_statistical``), any sequence of its words, the grammar's the likeliest."""
    if kind not in _decoders:
        from pocketsphinx import Decoder

        options = {"loglevel": "FATAL"}
        if kind == "words":
            d = _statistical(options)
        else:
            d = Decoder(lm=None, fsgusefiller=kind == "fillers", beam=1e-60, pbeam=1e-60, wbeam=1e-50, **options)
            fsg, start, final = compact_fsg(d)
            fsg.add_silence("<sil>", start, 0.5)
            fsg.add_silence("<sil>", final, 0.5)
            d.add_fsg("hotel", fsg)
            d.activate_search("hotel")
        _decoders[kind] = d
    return _decoders[kind]


def padded(pcm: bytes, before: float = 0.3, after: float = 0.5) -> bytes:
    """The utterance with room noise under it and around it, ``NOISE_BELOW_SPEECH_DB`` below the
    level of its louder frames: the recogniser needs quiet after the last word to finish it (a clip
    trimmed tight to the speech, as a push-to-talk button or a TTS file gives, otherwise loses that
    word), and noise where the clip has exact digital silence (see ``NOISE_BELOW_SPEECH_DB``)."""
    x = np.frombuffer(pcm, "<i2").astype(np.float64)
    n = len(x) // 400
    level = float(np.percentile(np.sqrt((x[:n * 400].reshape(n, 400) ** 2).mean(axis=1)), 90)) if n else 0.0
    sigma = max(30.0, level * 10 ** (-NOISE_BELOW_SPEECH_DB / 20))
    y = np.concatenate([np.zeros(int(16000 * before)), x, np.zeros(int(16000 * after))])
    y += np.random.default_rng(0).normal(0, sigma, len(y))
    return np.clip(y, -32768, 32767).astype("<i2").tobytes()


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


def _grammar(pcm: bytes, clip: bytes) -> tuple[str, float]:
    """The first of ``PASSES`` that hears a request the intent parser knows (its confidence scaled
    down for the later passes), else the first pass's words; clips past ``RETRY_SECONDS`` get the
    first pass only. ``clip`` is ``padded(pcm)``, shared by the passes at the clip's own speed."""
    first = None
    passes = PASSES if len(pcm) <= RETRY_SECONDS * 16000 * 2 else PASSES[:1]
    for kind, stretch, weight in passes:
        text, confidence = _search(decoder(kind), clip if stretch == 1.0 else padded(slower(pcm, stretch)))
        if first is None:
            first = (text, confidence)
        if text and parse_intent(text)[0] != "unknown":
            return text, round(confidence * weight, 3)
    return first


def confirmed(grammar: str, words: str) -> bool:
    """Whether the statistical pass's ``words`` bear out the grammar's request: the same intent, no
    request heard at all, the grammar's item or faulty thing among the words, or, for a request with
    no subject, its own words (a cleaning word, "late", a question's form). The grammar fits
    its likeliest request to anything (a phrasing it lacks comes out as some other request); the
    statistical pass is freer and loses words more often, so only a request of its own that does
    not share the grammar's subject overrules it."""
    mine, slots = parse_intent(grammar)
    theirs, _ = parse_intent(words)
    if theirs in ("unknown", mine):
        return True
    heard = normalised(words)  # "tv" bears out the grammar's "television"
    if mine == "clean_room":
        return bool(re.search(rf"\b(?:{CLEAN})\b", heard))
    if mine == "late_checkout":
        return bool(re.search(rf"\blate\b|\blater\b|{LATE}", heard))
    if mine == "question":
        return bool(re.search(QUESTION, heard))
    return any(re.search(rf"\b{slots[k].split()[0]}", heard) for k in ("item", "thing") if slots.get(k))


def shared(grammar: str, words: str) -> float:
    """The share of the grammar's words that the statistical pass heard too."""
    mine = set(grammar.split())
    return len(mine & set(words.split())) / max(1, len(mine))


def hear(pcm: bytes) -> tuple[str, float, str | None]:
    """(transcript, confidence, intent or None) of 16 kHz mono PCM: the grammar's passes
    (``_grammar``) and the statistical pass over the same clip; the grammar's request unless the
    statistical pass heard another one that does not bear it out (``confirmed``). When the two
    share few words and the statistical pass heard a whole sentence (``FORCED``), the grammar
    fitted its likeliest request to a phrasing it lacks: the transcript is the statistical pass's
    and its intent is the classifier's (``Intents``), which weighs every word where the parser
    wants exact forms. Hiss and static are no request."""
    if flatness(pcm) > 0.3:
        return "", 0.0, None
    with _lock:  # one decoder per pass, one utterance at a time
        clip = padded(pcm)
        words, sure = _search(decoder("words"), clip)
        grammar, confidence = _grammar(pcm, clip)
    shares, long = FORCED
    if grammar and len(words.split()) >= long and shared(grammar, words) < shares:
        return words, round(sure * 0.8, 3), intents().intent(words, parse_intent(words)[0])
    if confirmed(grammar, words):
        return ((grammar, confidence) if grammar else (words, sure)) + (None,)
    return words, round(sure * 0.9, 3), None


def transcribe(pcm: bytes) -> tuple[str, float]:
    """(transcript, confidence) of 16 kHz mono PCM (``hear``)."""
    return hear(pcm)[:2]


#: the words Whisper is primed with (its ``initial_prompt``): the things guests ask this kiosk for,
#: as a list (a sentence of requests in the prompt was read back as a request on unclear audio,
#: and a request that is also a stretch of the prompt would be taken for the prompt read back:
#: ``whisper.echoes``); the property's offers and FAQ topics are added (``vocabulary``)
PROMPT_WORDS = ("towels", "pillows", "blanket", "toothbrush", "toothpaste", "shampoo", "toilet paper", "kettle",
                "hair dryer", "iron", "housekeeping", "late checkout", "TV", "air conditioning", "shower", "toilet",
                "heater", "fridge", "minibar", "safe", "wifi", "key card", "breakfast", "restaurant", "gym", "pool",
                "spa")
#: Whisper's transcripts are read by the parser; one it finds no request in that has at least this
#: many words is read by the classifier (``Intents``), as ``hear`` does with a sentence the grammar
#: lacks (``FORCED``: the same 7), whose intent stands when it is this much (natural log) likelier
#: than the next: Whisper hears any speech, and "hello, I'm waiting for my husband" is some intent
#: by a hair (chosen on the first five held-out lists of bench/models.py: 0, 3, 5, 8 or never gave
#: 0.958, 0.962, 0.959, 0.960, 0.959 with the second opinion below)
WHISPER_FORCED, CLASSIFIER_MARGIN = FORCED[1], 3.0
#: when Whisper heard speech and the parser and the classifier no request in it, pocketsphinx
#: hears the clip too (``hear``): its request stands when its words sound like Whisper's (rapidfuzz
#: ratio of the two at least this). Whisper's open vocabulary mishears synthetic voices ("the hair
#: conditioning", "can I emulate the checkout") where the grammar snaps to the request; the grammar
#: also fits a request to speech that holds none (German, chatter), and those words are far from
#: Whisper's: five German requests in espeak-ng's voice came to 34–48, the held-out lists' right
#: second opinions mostly above 50 (first five lists: 0.898 Whisper alone, 0.966 any second
#: opinion, 0.962 at 50, 0.946 at 60)
AGREE = 50.0
STOP = frozenset("what when where which who how is are the a an i my we our can could do does you your to of in "
                 "for at on there it this that and or with me us".split())


def vocabulary(ctx: Context) -> str:
    """Whisper's prompt: ``PROMPT_WORDS``, the property's offers (their English names) and the topics
    of its English FAQ (the questions' words, less the common ones). Without a store (the
    benchmark, a test) the words alone."""
    words = list(PROMPT_WORDS)
    if ctx.db is not None:
        try:
            offers = [r[0] for r in ctx.db.execute(
                "SELECT name FROM offers WHERE hotel_id = ? ORDER BY offer_id LIMIT 8", [ctx.hotel_id])]
            asked = [r[0] for r in ctx.db.execute(
                "SELECT question FROM faq WHERE hotel_id = ? AND language = 'en' ORDER BY faq_id LIMIT 20",
                [ctx.hotel_id])]
        except Exception:  # noqa: BLE001  # a store without these tables (an old one): the words alone
            offers, asked = [], []
        known = {w.lower() for w in words}
        for extra in offers + [w for q in asked for w in re.findall(r"[A-Za-z][A-Za-z-]+", q)
                               if w.lower() not in STOP and len(w) > 2]:
            if extra.lower() not in known and len(", ".join(words)) < 400:
                known.add(extra.lower())
                words.append(extra)
    return "Hotel kiosk: " + ", ".join(words) + "."


#: how Whisper writes the digits of a spoken room number ("room 41 to", "room for one two",
#: "room 3.05", "room free zero-five", "room 11-0") and of "two extra" ("to extra")
SOUNDS_LIKE = {"to": "2", "too": "2", "two": "2", "for": "4", "four": "4", "free": "3", "three": "3", "oh": "0",
               "o": "0", "zero": "0", "one": "1", "won": "1", "five": "5", "six": "6", "seven": "7", "eight": "8",
               "nine": "9"}
_SPOKEN_DIGIT = r"(?:\d+|" + "|".join(sorted(SOUNDS_LIKE, key=len, reverse=True)) + r")\b"
ROOM_SAID = re.compile(rf"\broom ({_SPOKEN_DIGIT}(?:[ .,-]{{0,2}}{_SPOKEN_DIGIT}){{0,3}})", re.IGNORECASE)


#: "to" before these is "two" ("bring me to towels")
PLURALS = tuple(i for i in ITEMS if i.endswith("s") and not i.endswith("ss") and i not in ("toothpaste",))


def whisper_words(text: str) -> str:
    """Whisper's transcript with a spoken room number as its digits ("room 41 to" → "room 412")
    when they come to three or four, "to extra/more/towels…" as "two", without the full stop
    Whisper ends a sentence with; the rest as Whisper wrote it."""
    def digits(m: re.Match) -> str:
        said, end = "", m.start(1)
        for t in re.finditer(r"\d|[a-z]+", m.group(1).lower()):
            if len(said) >= 3 and not t.group().isdigit() and t.group() not in DIGITS:
                break  # "room 412 to clean it": a word that only sounds like a digit ends a whole number
            said += SOUNDS_LIKE.get(t.group(), t.group())
            end = m.start(1) + t.end()
        if not 3 <= len(said) <= 4:
            return m.group(0)
        return f"{m.group(0)[:5]}{said}{m.string[end:m.end()]}"

    text = ROOM_SAID.sub(digits, text)
    text = re.sub(rf"\b([Tt])o (?=(?:extra|more|spare|fresh|{'|'.join(PLURALS)})\b)", r"\1wo ", text)
    return re.sub(r"(?<=\w)[.!]+$", "", text.strip())  # a request, not a sentence: "Bring me two towels"


def listen(pcm: bytes, prompt: str) -> tuple[str, float, str | None, str]:
    """(transcript, confidence, intent or None, recogniser) of 16 kHz mono PCM with Whisper
    (``whisper``), its numbers as said (``whisper_words``): the parser's request; else, for a
    sentence of ``WHISPER_FORCED`` words, the classifier's when clearly likelier
    (``CLASSIFIER_MARGIN``); else pocketsphinx's request when its words sound like Whisper's
    (``AGREE``; ``recogniser`` then says "pocketsphinx"). No speech (Whisper's VAD found none, or
    its guards dropped every segment) is an empty transcript and no request: pocketsphinx is
    not asked, so silence, hiss and room noise never become a task."""
    from rapidfuzz import fuzz

    from . import whisper

    text, confidence, _ = whisper.transcribe(pcm, prompt)
    text = whisper_words(text)
    if not text:
        return "", 0.0, None, whisper.NAME
    heard = None
    if parse_intent(text)[0] == "unknown" and len(normalised(text).split()) >= WHISPER_FORCED:
        best, margin = intents().best(text)
        heard = best if margin >= CLASSIFIER_MARGIN else None
    if parse_intent(text, heard)[0] != "unknown":
        return text, confidence, heard, whisper.NAME
    words, sure, theirs = hear(pcm)
    if words and parse_intent(words, theirs)[0] != "unknown" \
            and fuzz.ratio(normalised(text), normalised(words)) >= AGREE:
        return words, sure, theirs, "pocketsphinx"
    return text, confidence, None, whisper.NAME


def whisper_ready() -> bool:
    """Whether Whisper transcribes speech here (the voice extra installed, the model's hash right)."""
    from . import whisper

    return whisper.available()


class Intents:
    """A naive Bayes classifier (Bernoulli: which words and word pairs occur) of the five intents,
    trained on requests drawn from each intent's rule of both grammars (``GRAMMAR`` and
    ``PHRASINGS``), ``per_rule`` of each. A misheard sentence still carries most of its words
    ("the light my milk … to my room past checkout tomorrow"): the regular expressions of
    ``parse_intent`` need exact forms and the first one to match wins, the classifier weighs them all.
    """

    RULES = (("item_request", "request_item"), ("clean", "clean_room"), ("fault", "report_fault"),
             ("late", "late_checkout"), ("question", "question"))

    def __init__(self, d, per_rule: int = 2000, seed: int = 3, alpha: float = 0.5):
        from collections import Counter

        seen: dict[str, Counter] = {}
        drawn: Counter = Counter()
        for jsgf in (GRAMMAR, PHRASINGS):
            for rule, intent in self.RULES:
                for words in _walks(*_minimal(d, one_rule(jsgf, rule)), per_rule, seed):  # not cached
                    seen.setdefault(intent, Counter()).update(set(self.features(" ".join(words))))
                    drawn[intent] += 1
        self.weights = {}  # intent → feature → log-odds of the feature being present
        for intent, counts in seen.items():
            n = drawn[intent]
            present = {f: (c + alpha) / (n + 2 * alpha) for f, c in counts.items()}
            self.weights[intent] = {f: math.log(p) - math.log(1 - p) for f, p in present.items()}
        self.unseen = {i: math.log(alpha / (drawn[i] + 2 * alpha)) - math.log(1 - alpha / (drawn[i] + 2 * alpha))
                       for i in seen}
        # log P(no feature present): what a feature's presence is weighed against
        self.absent = {i: sum(math.log(1 - (c + alpha) / (drawn[i] + 2 * alpha)) for c in seen[i].values())
                       for i in seen}
        self.vocabulary = set().union(*self.weights.values())

    @staticmethod
    def features(text: str) -> list[str]:
        words = normalised(text).split()
        return words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]

    def scores(self, text: str) -> dict[str, float]:
        feats = set(self.features(text)) & self.vocabulary
        return {i: self.absent[i] + sum(w.get(f, self.unseen[i]) for f in feats) for i, w in self.weights.items()}

    def best(self, text: str) -> tuple[str, float]:
        """(the likeliest intent, how much likelier it is than the next, natural log)."""
        scores = self.scores(text)
        first, second = sorted(scores.values(), reverse=True)[:2]
        return max(scores, key=scores.get), first - second

    def intent(self, text: str, parsed: str = "unknown", within: float = 10.0) -> str:
        """The likeliest intent; the parser's own (``parsed``) stands unless the likeliest is
        ``within`` (natural log) likelier still: an exact form the parser knows is good evidence."""
        scores = self.scores(text)
        best = max(scores, key=scores.get)
        return parsed if parsed in scores and scores[best] - scores[parsed] < within else best


def one_rule(jsgf: str, rule: str) -> str:
    """The grammar with only ``rule`` (``item_request``, ``clean``, ``fault``, ``late`` or
    ``question``) as its request."""
    return re.sub(r"\((?:<item_request> \| <clean> \| <fault> \| <late> \| <question>)\)", f"<{rule}>", jsgf,
                  count=1)


def intents() -> Intents:
    """The classifier, trained once on first use (1.6 s; the model workers' forkserver does it)."""
    global _intents
    if _intents is None:
        _intents = Intents(decoder("hotel"))
    return _intents


#: spoken forms and word forms mapped to the parser's words
SAID = (("tv", "television"), ("telly", "television"), ("wi fi", "internet"), ("wifi", "internet"),
        ("ac", "air conditioning"), ("aircon", "air conditioning"), ("air conditioner", "air conditioning"),
        ("a c", "air conditioning"), ("faucet", "tap"), ("telephone", "phone"), ("minibar", "mini bar"),
        ("hairdryer", "hair dryer"), ("keycard", "key card"), ("toiletries", "soap"),
        ("i d", "i would"), ("we d", "we would"), ("isn t", "is not"), ("doesn t", "does not"),
        ("don t", "do not"), ("didn t", "did not"), ("till", "until"), ("midday", "noon"),
        ("won t", "will not"), ("can t", "cannot"), ("can not", "cannot"), ("hasn t", "has not"),
        ("wasn t", "was not"), ("aren t", "are not"), ("lights", "light"), ("a couple of", "two"),
        ("a couple", "two"), ("a few", "three"), ("another", "one more"), ("checkout", "check out"),
        ("check out later", "late check out"), ("check out late", "late check out"))
FAULTY = (r"broken|not work|(?:does|do|did) not(?! have)|is not|will not|stopped working|not on|turning off|problem with|out of order"
          r"|wrong with|leak|leaking|dripping|blocked|clogged|stuck|flush|noise|noisy|buzzing|beeping|flickering"
          r"|not keeping|not getting|not heating|no hot water|cannot (?:get|turn|connect|open|lock)|broke|dead"
          r"|not draining|dropping|keeps? (?:going|switching|cutting) off|playing up|acting up|blowing|not cooling"
          r"|too (?:hot|cold|warm)|not (?:cold|cool|warm|hot) enough|(?:is|gets|it is) (?:warm|freezing)\b")
CLEAN = (r"clean|cleaned|cleaning|make up|made up|tidy|tidied|housekeeping|housekeeper|serviced|service the room"
         r"|maid|cleaner|hoover|hoovered|vacuum|vacuumed|rubbish|trash|garbage|bins?|linen|sheets changed|bed changed"
         r"|bedding changed|fresh sheets"
         r"|change (?:the |our |my )?(?:sheets|bed|bedding)|turn ?down|room (?:done|doing)|making up|needs? (?:doing|done)|been done"
         r"|(?:do|service) (?:the |our |my )?(?:room|bathroom)")
#: asking for a later checkout, after ``SAID``: "check out a bit later", "keep the room two hours
#: past check out", "stay in the room a little longer", "extend our check out"
LATE = (r"late check out|later check out|check out (?:a |an )?(?:bit |little |hour |two hours |three hours )?later"
        r"|(?:keep|hang on to|hold on to) (?:the|my|our) room\b.*\b(?:longer|later|past|after|until|noon)"
        r"|\bstay\b(?! open).*\b(?:longer|later|more late|until)\b|hours? (?:more |longer )?in the room"
        r"|extend (?:my|our|the) check out|leave the room later|push (?:my|our|the) check out back"
        r"|\bleave at \w+ instead of|\b(?:stay|keep)\b.*\b(?:past|after|beyond) (?:the )?check out|hours? (?:past|after) check out"
        r"|\b(?:the|our|my) room (?:for )?(?:an? )?(?:extra|few|couple|bit|little|another|more|two|three|one more)\b"
        r".*\b(?:hours?|longer)\b"
        r"|(?:can|could|may) (?:i|we) check out at\b")
#: a question that names no request: a wh-word, or the forms of a yes/no question about the hotel
QUESTION = (r"\b(?:what|where|when|how|which|why)\b|\bis there\b|\bare there\b|\bis the\b|\bare the\b|\bdoes the\b"
            r"|\bdo you (?:have|know|serve|do)\b|\b(?:can|could) you tell\b|\bis (?:breakfast|lunch|dinner)\b"
            r"|\bpassword\b|\bopen\b|\bis brunch\b")


def singular(item: str) -> str:
    if item.endswith("sses"):
        return item[:-2]
    return item[:-1] if item.endswith("s") and not item.endswith("ss") else item


def normalised(text: str) -> str:
    """Lower-case words, with the spoken forms of ``SAID`` put as the parser's words."""
    joined = " ".join(re.findall(r"[a-z0-9]+", text.lower()))
    for said, meant in SAID:
        if said in joined:  # most are not: a substring test first is ten times quicker
            joined = re.sub(rf"\b{said}\b", meant, joined)
    return joined


def parse_intent(text: str, intent: str | None = None) -> tuple[str, dict]:
    """(intent, slots) of a transcript or typed request. With ``intent`` given (the classifier's,
    ``Intents``), only its slots are looked for; an item request with no item, or a fault with no
    faulty thing, in the words is ``unknown`` (nothing to act on: the guest is asked again)."""
    joined = normalised(text)
    if intent is not None:
        return _slots(intent, text, joined)
    room = _room(joined)
    if re.search(LATE, joined):
        return "late_checkout", {"room": room}
    if re.search(FAULTY, joined) and (thing := _thing(joined)):
        return "report_fault", {"thing": thing, "room": room}
    items = _items(joined)
    if re.search(rf"\b(?:{CLEAN})\b", joined) and not items:
        return "clean_room", {"room": room}
    if items:
        return "request_item", _item(items, joined, room)
    if re.search(QUESTION, joined):
        return "question", {"text": text}
    return "unknown", {}


def _room(joined: str) -> str | None:
    m = re.search(r"room ((?:(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)\s?){3,4})", joined)
    if m:
        return "".join(DIGITS[w] for w in m.group(1).split())
    m = re.search(r"room (\d{3,4})", joined)
    return m.group(1) if m else None


def _items(joined: str) -> list[str]:
    return [i for i in ITEMS if re.search(rf"\b{i}\b(?! machine)", joined)]  # not "where's the ice machine"


def _thing(joined: str) -> str | None:
    return next((t for t in THINGS if re.search(rf"\b{t}(?:s|es|ing)?\b", joined)), None)


def _item(items: list[str], joined: str, room: str | None) -> dict:
    item = max(items, key=len)
    qty = 1
    m = re.search(rf"\b(\w+) (?:(?:more|extra|new|fresh|clean|spare) )?{item}\b", joined)
    if m and m.group(1) in NUMBERS:
        qty = NUMBERS[m.group(1)]
    elif m and m.group(1).isdigit():
        qty = int(m.group(1))
    return {"item": singular(item), "quantity": qty, "room": room}


def _slots(intent: str, text: str, joined: str) -> tuple[str, dict]:
    room = _room(joined)
    if intent == "request_item":
        items = _items(joined)
        return ("request_item", _item(items, joined, room)) if items else ("unknown", {})
    if intent == "report_fault":
        thing = _thing(joined)
        return ("report_fault", {"thing": thing, "room": room}) if thing else ("unknown", {})
    if intent == "question":
        return "question", {"text": text}
    return intent, {"room": room}


def run(ctx: Context, payload: dict) -> Result:
    p = parse(Payload, payload)
    if p.audio is not None:
        try:
            raw = base64.b64decode(p.audio, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError("audio is not base64", {"field": "audio"}) from None
        pcm = pcm16k(raw)
        if whisper_ready():
            transcript, confidence, heard, recogniser = listen(pcm, vocabulary(ctx))
        else:
            recogniser = "pocketsphinx"
            transcript, confidence, heard = hear(pcm)
    else:
        recogniser = "text"
        transcript, confidence, heard = p.text, 1.0, None
    intent, slots = parse_intent(transcript, heard)
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
                "clean_room": "clean the room",
                "report_fault": "water leak" if slots.get("thing") == "leak" else f"{slots.get('thing')} not working"}[intent]
        actions.append(Action("CREATE_TASK", {"type": kind, "roomNumber": slots.get("room"), "requiredSkill": skill,
                                              "priority": "high" if intent == "report_fault" else "normal",
                                              "description": f"{what} (voice: {transcript!r})"}))
    return Result(confidence=round(confidence, 3), outputs={"transcript": transcript, "intent": intent, "slots": slots,
                                                             "recogniser": recogniser},
                  actions=actions)


SPEC = ModelSpec(id="voice-ai", run=run, roles=frozenset({"guest", "staff", "admin"}),
                 reads=("reservations", "offers", "faq"),
                 timeout_seconds=30.0, description="Spoken or typed requests to intents with slots and a task")
