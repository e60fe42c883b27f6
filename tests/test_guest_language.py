"""guest-messaging answers in the language the question was asked in (issue 11): a German
guest who types in English used to get a handover (confidence 0.0) instead of the answer."""

from __future__ import annotations

import pytest

from kiosk.models import registry
from kiosk.models.base import Context
from kiosk.models.guest_messaging import detect_language

FAQ = [("wifi", "en", "What is the wifi password?", "Join Harbor-Guest; the password is on your key card sleeve."),
       ("breakfast", "en", "When is breakfast served?", "From 6:30 to 10:30 in the Lighthouse restaurant."),
       ("parking", "en", "Where can I park my car?", "In the garage under the hotel, 18 EUR per night."),
       ("wifi", "de", "Wie lautet das WLAN-Passwort?", "Netz Harbor-Guest; das Passwort steht auf der Kartenhülle."),
       ("breakfast", "de", "Wann gibt es Frühstück?", "Von 6:30 bis 10:30 Uhr im Restaurant Lighthouse."),
       ("breakfast", "fr", "À quelle heure est le petit-déjeuner ?", "De 6h30 à 10h30 au restaurant Lighthouse.")]


@pytest.fixture
def hotel(instance):
    db = instance.db()
    db["faq"].insert_all([{"hotel_id": "demo", "faq_id": f, "language": lang, "question": q, "answer": a}
                          for f, lang, q, a in FAQ])
    db["reservations"].insert_all([
        {"hotel_id": "demo", "confirmation": "DE1", "guest_name": "Karl", "arrival": "2026-05-27",
         "departure": "2026-05-30", "status": "InHouse", "language": "de"},
        {"hotel_id": "demo", "confirmation": "EN1", "guest_name": "Ada", "arrival": "2026-05-27",
         "departure": "2026-05-30", "status": "InHouse", "language": "en"}])
    return db


def ask(db, clock, conf, question, **extra):
    ctx = Context(db=db, hotel_id="demo", now=clock.now(), actor=conf, role="guest")
    return registry.get("guest-messaging").run(ctx, {"question": question, **extra})


def test_a_german_guest_asking_in_english_gets_the_english_answer(hotel, clock):
    r = ask(hotel, clock, "DE1", "where can I park the car")
    assert r.outputs["questionLanguage"] == "en" and r.outputs["faqId"] == "parking"
    assert not r.outputs["handover"] and r.confidence >= 0.3 and r.actions == []
    assert r.outputs["language"] == "de" and r.outputs["message"].startswith("Guten Tag")  # the greeting stays theirs


def test_an_english_guest_asking_in_german_or_french_is_answered_in_that_language(hotel, clock):
    de = ask(hotel, clock, "EN1", "Wann gibt es morgens Frühstück?").outputs
    assert (de["questionLanguage"], de["faqId"], de["answer"]) == ("de", "breakfast", FAQ[4][3])
    fr = ask(hotel, clock, "EN1", "le petit-déjeuner est servi à quelle heure ?").outputs
    assert (fr["questionLanguage"], fr["faqId"], fr["answer"]) == ("fr", "breakfast", FAQ[5][3])


def test_a_handover_speaks_the_questions_language_and_nothing_tells_keeps_the_profile(hotel, clock):
    r = ask(hotel, clock, "DE1", "can I bring my parrot")
    assert r.outputs["handover"] and r.outputs["answer"].startswith("Thank you for your question")
    assert detect_language("WLAN?", default="de") == "de" and detect_language("ok", default="fr") == "fr"
    assert detect_language("parking", default="de") == "de"  # English or French: no sign either way
