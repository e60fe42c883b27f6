"""guest-messaging: the message for the moment, in the guest's language, and answers to
free-text questions from the hotel's FAQ.

The moment comes from the reservation and today: ``arrival`` (arriving today, not yet
in house), ``departure`` (leaving today), ``in_stay`` or ``pre_arrival``.  Templates in
English, German and French, personalised with the name, room and dates; other
languages fall back to English.  A question is answered in the language it was asked in
(:func:`detect_language`: common words and letters of English, German and French; the
guest's profile language when the question gives no sign — a German guest who types in
English gets the English answer).  It is answered by retrieval: TF-IDF vectors of the
hotel's FAQ (question + answer; per entry the one in the question's language, else the
English one: ``fallback`` and ``answerLanguage`` say so) against the question, cosine similarity as the confidence; below ``HANDOVER`` the guest
is told staff will answer, and a CREATE_TASK hands the question over (once per guest and
question a day).  The message for the moment is sent once per reservation and moment.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ValidationError
from ..validation import parse
from .base import Action, Context, ModelSpec, Result, own_confirmation

HANDOVER = 0.3
#: the language of the hotel's own texts (the FAQ's ``language`` default)
DEFAULT_LANGUAGE = "en"
TEMPLATES = {
    "en": {"pre_arrival": "Dear {name}, we look forward to welcoming you on {arrival}.",
           "arrival": "Welcome, {name}! Your room {room} is {ready}. Enjoy your {nights}-night stay.",
           "in_stay": "Good day, {name}. We hope you are enjoying your stay in room {room}.",
           "departure": "Dear {name}, we hope you enjoyed your stay. Check-out is until 11:00 today.",
           "ready": "ready", "not_ready": "being prepared",
           "handover": "Thank you for your question. A member of our team will answer you shortly."},
    "de": {"pre_arrival": "Liebe(r) {name}, wir freuen uns, Sie am {arrival} begrüßen zu dürfen.",
           "arrival": "Willkommen, {name}! Ihr Zimmer {room} ist {ready}. Genießen Sie Ihre {nights} Nächte.",
           "in_stay": "Guten Tag, {name}. Wir hoffen, Sie genießen Ihren Aufenthalt in Zimmer {room}.",
           "departure": "Liebe(r) {name}, wir hoffen, Ihr Aufenthalt war angenehm. Check-out ist heute bis 11:00.",
           "ready": "bereit", "not_ready": "in Vorbereitung",
           "handover": "Danke für Ihre Frage. Ein Mitglied unseres Teams antwortet Ihnen in Kürze."},
    "fr": {"pre_arrival": "Cher/Chère {name}, nous avons hâte de vous accueillir le {arrival}.",
           "arrival": "Bienvenue, {name} ! Votre chambre {room} est {ready}. Bon séjour de {nights} nuits.",
           "in_stay": "Bonjour {name}. Nous espérons que vous appréciez votre séjour en chambre {room}.",
           "departure": "Cher/Chère {name}, nous espérons que votre séjour vous a plu. Départ avant 11h00.",
           "ready": "prête", "not_ready": "en préparation",
           "handover": "Merci pour votre question. Un membre de notre équipe vous répondra rapidement."},
}
_WORD = re.compile(r"\w+", re.UNICODE)
# words that say nothing about what a question is about (en, de, fr)
STOP = frozenset("""a an and are at be can could do does for from have how i in is it me my of on or please the
there to we what when where which who will with would you your ich ist die der das und wie wo wann kann ich mein
meine ein eine einen es gibt hier für hat haben bis ab le la les de des du au aux et est je mon ma mes où quand
comment un une pour il y qu ce quel quelle""".split())


# words that mark a language (frequent, short, rarely shared): a question is short, so a few count
MARKERS = {
    "en": frozenset("""the is are what when where which who how do does can could would will you your i my me we
is there a an of to for in on at and or with please time open close get have has room pool breakfast wifi
password parking checkout check out late early""".split()),
    "de": frozenset("""der die das ist sind was wann wo wer wie welche welcher kann können könnte ich mein meine
mir wir sie ihr ihre ein eine einen und oder mit bitte für im am um gibt es zimmer frühstück parken
abreise spät früh haben habe bis""".split()),
    "fr": frozenset("""le la les est sont que quoi quand où qui comment quel quelle je mon ma mes me nous vous
votre vos un une des et ou avec pour dans au aux il y a-t-il chambre petit-déjeuner déjeuner piscine
parking départ tard tôt est-ce puis-je""".split()),
}
LETTERS = {"de": frozenset("äöüß"), "fr": frozenset("éèêëàâçîïôûùœ")}


def detect_language(text: str, default: str = "en") -> str:
    """The language of ``text`` among the templates' (en, de, fr): the most marker words
    (letters only German or French use count double); ``default`` when nothing tells or a tie."""
    words = re.findall(r"[\w'-]+", text.lower())
    scores = {lang: sum(w in marks for w in words) for lang, marks in MARKERS.items()}
    for lang, letters in LETTERS.items():
        scores[lang] += 2 * sum(ch in letters for ch in text.lower())
    best = max(scores.values())
    if best == 0:
        return default
    leaders = [lang for lang, v in scores.items() if v == best]
    return leaders[0] if len(leaders) == 1 else default


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    confirmation: str | None = Field(None, max_length=64)
    userId: str | None = Field(None, max_length=64)     # the seed's name for the guest (= confirmation)
    context: str | None = Field(None, max_length=500)   # the seed's free-text moment ("guest just checked in")
    question: str | None = Field(None, max_length=500)
    language: str | None = Field(None, pattern="^[a-z]{2}$")


def tokens(text: str) -> list[str]:
    out = []
    for w in _WORD.findall(text.lower()):
        if w in STOP:
            continue
        for suffix in ("ing", "en", "es", "ed", "s", "e"):
            if w.endswith(suffix) and len(w) - len(suffix) >= 3:
                w = w[: -len(suffix)]
                break
        if len(w) > 1 and w not in STOP:
            out.append(w)
    return out


def in_language(faq: list[dict], lang: str) -> list[dict]:
    """One entry per question of the FAQ: the one in ``lang``; where the hotel wrote none in
    it, the default language's (else any), which the answer then marks as a fallback."""
    rank = {lang: 0, DEFAULT_LANGUAGE: 1}
    best: dict[str, dict] = {}
    for f in sorted(faq, key=lambda f: (rank.get(f.get("language") or DEFAULT_LANGUAGE, 2), f.get("language") or "")):
        best.setdefault(f["faq_id"], f)
    return sorted(best.values(), key=lambda f: f["faq_id"])


def answer(faq: list[dict], question: str) -> tuple[dict | None, float]:
    """The best FAQ entry for ``question`` by TF-IDF cosine, and the similarity."""
    docs = [Counter(tokens(f"{f['question']} {f['question']} {f['answer']}")) for f in faq]
    if not docs:
        return None, 0.0
    df = Counter(t for d in docs for t in d)
    idf = {t: math.log((1 + len(docs)) / (1 + n)) + 1 for t, n in df.items()}

    def vec(c: Counter) -> dict:
        v = {t: (1 + math.log(n)) * idf.get(t, 0.0) for t, n in c.items()}
        norm = math.sqrt(sum(x * x for x in v.values())) or 1.0
        return {t: x / norm for t, x in v.items()}

    q = vec(Counter(tokens(question)))
    scores = [sum(q.get(t, 0.0) * x for t, x in vec(d).items()) for d in docs]
    best = max(range(len(docs)), key=lambda i: scores[i])
    return faq[best], scores[best]


def run(ctx: Context, payload: dict) -> Result:
    p = parse(Payload, payload)
    if p.confirmation and p.userId and p.confirmation != p.userId:
        raise ValidationError("confirmation and userId name different guests", {"fields": ["confirmation", "userId"]})
    conf = own_confirmation(ctx, p.confirmation or p.userId)
    rows = list(ctx.db.query("SELECT * FROM reservations WHERE hotel_id = ? AND confirmation = ?", [ctx.hotel_id, conf]))
    r = rows[0] if rows else None
    lang = p.language or (r["language"] if r else "en")
    t = TEMPLATES.get(lang, TEMPLATES["en"])
    lang = lang if lang in TEMPLATES else "en"
    today = ctx.today().isoformat()
    outputs: dict = {"language": lang}
    if r:
        moment = ("departure" if r["departure"] == today else "arrival" if r["arrival"] == today and
                  r["status"] == "Confirmed" else "in_stay" if r["arrival"] <= today < r["departure"] else "pre_arrival")
        room = ctx.db.execute("SELECT status FROM rooms WHERE hotel_id = ? AND room_number = ?",
                              [ctx.hotel_id, r["room_number"]]).fetchone()
        nights = (date.fromisoformat(r["departure"]) - date.fromisoformat(r["arrival"])).days
        outputs |= {"moment": moment, "message": t[moment].format(
            name=r["guest_name"] or conf, room=r["room_number"] or "-", arrival=r["arrival"], nights=nights,
            ready=t["ready"] if room and room[0] in ("Clean", "Inspected") else t["not_ready"])}
    actions, confidence = [], 1.0
    if r and not p.question:
        # the message for the moment goes to the guest once per moment of a stay (actions.apply
        # folds a repeat by this subject); the seed's answer names it content + templateId
        actions.append(Action("SEND_MESSAGE", {"confirmation": conf, "channel": "guest", "language": lang,
                                               "templateId": outputs["moment"], "text": outputs["message"]},
                              subject=f"{conf}:{outputs['moment']}"))
    if p.question:
        # answered in the language it was asked in; the screen's (or profile's) language when
        # the words give no sign either way
        asked = detect_language(p.question, default=lang)
        asked = asked if asked in TEMPLATES else "en"
        outputs["questionLanguage"] = asked
        ta = TEMPLATES[asked]
        faq = in_language(list(ctx.db.query("SELECT * FROM faq WHERE hotel_id = ?", [ctx.hotel_id])), asked)
        best, score = answer(faq, p.question)
        confidence = round(score, 3)
        if best is not None and score >= HANDOVER:
            said = best.get("language") or DEFAULT_LANGUAGE
            outputs |= {"answer": best["answer"], "faqId": best["faq_id"], "handover": False,
                        "answerLanguage": said, "fallback": said != asked}
        else:
            outputs |= {"answer": ta["handover"], "handover": True}
            question = " ".join(p.question.lower().split())
            actions.append(Action("CREATE_TASK", {"type": "guest_question", "priority": "normal",
                                                  "requiredSkill": "front_office",
                                                  "roomNumber": r["room_number"] if r else None,
                                                  "description": f"{conf}: {p.question}"},
                                  subject=f"question {conf} {question} on {today}"))
    return Result(confidence=confidence, outputs=outputs, actions=actions)


SPEC = ModelSpec(id="guest-messaging", run=run, roles=frozenset({"guest", "staff", "admin"}),
                 reads=("reservations", "rooms", "faq"), timeout_seconds=15.0,
                 description="The message for the moment in the guest's language; FAQ answers or a handover")
