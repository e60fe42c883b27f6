"""The guest's screen in the guest's language: offers and FAQ answers in German where the
property wrote them (else the English text, marked so the screen shows it as English), the
room's status worded for what is true today, and a German guest's screen in a real browser."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from browser import needs_chromium, shot

from kiosk import guest, store
from kiosk.migrations import MIGRATIONS, SCHEMA_VERSION
from kiosk.property import importer

I18N = json.loads((Path(__file__).resolve().parents[1] / "kiosk/web/static/i18n.json").read_text())
TODAY = "2026-05-28"  # the fake clock's day (conftest)

OFFERS = [
    {"hotel_id": "demo", "offer_id": "LATE", "name": "Late checkout until 14:00", "type": "addon", "price": 25.0,
     "margin": 22.0, "inventory": 10, "description": "Keep your room until 14:00.",
     "name_de": "Später Check-out bis 14:00 Uhr", "description_de": "Behalten Sie Ihr Zimmer bis 14:00 Uhr."},
    {"hotel_id": "demo", "offer_id": "SPA", "name": "Spa afternoon", "type": "addon", "price": 60.0,
     "margin": 30.0, "inventory": 5, "description": "Sauna and pool."}]  # no German text: the English, marked
FAQ = [("breakfast", "en", "When is breakfast served?", "From 6:30 to 10:30 in the Lighthouse restaurant."),
       ("breakfast", "de", "Wann gibt es Frühstück?", "Von 6:30 bis 10:30 Uhr im Restaurant Lighthouse."),
       ("parking", "en", "Where can I park my car?", "In the garage under the hotel, 18 EUR per night.")]


@pytest.fixture
def hotel(instance):
    db = instance.db()
    db["rooms"].insert_all([
        {"hotel_id": "demo", "room_number": n, "room_type": "KING", "floor": 3, "status": s, "occupied": 0}
        for n, s in (("306", "Dirty"), ("307", "Inspected"), ("308", "Dirty"), ("309", "Pickup"),
                     ("310", "OutOfOrder"), ("311", "Dirty"))])
    res = [("DE1", "Karl Benz", "306", "2026-05-22", "2026-05-31", "InHouse", "de"),   # six nights in
           ("EN1", "Ada Lovelace", "307", "2026-05-27", "2026-05-30", "InHouse", "en"),
           ("ARR", "Lea Arriving", "308", TODAY, "2026-05-30", "Confirmed", "de"),      # arriving today
           ("SOON", "Finn Later", "309", "2026-06-03", "2026-06-05", "Confirmed", "en"),
           ("OOO", "Mila Broken", "310", "2026-05-27", "2026-05-30", "InHouse", "en"),
           ("OUT", "Noah Gone", "311", "2026-05-25", TODAY, "CheckedOut", "en")]
    db["reservations"].insert_all([
        {"hotel_id": "demo", "confirmation": c, "guest_name": n, "room_number": r, "room_type": "KING",
         "arrival": a, "departure": d, "status": s, "language": lang} for c, n, r, a, d, s, lang in res])
    db["offers"].insert_all(OFFERS)
    db["faq"].insert_all([{"hotel_id": "demo", "faq_id": f, "language": lang, "question": q, "answer": a}
                          for f, lang, q, a in FAQ])
    return db


def home(client, login, user, lang=None):
    r = client.get("/api/guest/home" + (f"?lang={lang}" if lang else ""), headers=login("guest", user=user))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def by_id(h):
    return {o["offerId"]: o for o in h["offers"]}


# --- offers ---------------------------------------------------------------------------------------

def test_a_german_guest_gets_german_offers_and_the_english_one_marked(client, login, hotel):
    h = home(client, login, "DE1")
    assert h["language"] == "de" and h["guest"]["language"] == "de"
    late, spa = by_id(h)["LATE"], by_id(h)["SPA"]
    assert (late["name"], late["description"], late["lang"], late["fallback"]) == \
        ("Später Check-out bis 14:00 Uhr", "Behalten Sie Ihr Zimmer bis 14:00 Uhr.", "de", False)
    assert (spa["name"], spa["description"], spa["lang"], spa["fallback"]) == \
        ("Spa afternoon", "Sauna and pool.", "en", True)
    assert late["price"] == 25.0 and late["currency"] == "EUR" and late["accepted"] is False  # fields kept

    # the screen's chosen language wins over the reservation's; anything else is ignored
    en = by_id(home(client, login, "DE1", "en"))
    assert en["LATE"]["name"] == "Late checkout until 14:00" and not en["LATE"]["fallback"]
    assert en["LATE"]["lang"] == "en"
    assert by_id(home(client, login, "EN1", "de"))["LATE"]["name"] == "Später Check-out bis 14:00 Uhr"
    assert by_id(home(client, login, "EN1"))["LATE"]["name"] == "Late checkout until 14:00"
    odd = home(client, login, "DE1", "xx")
    assert odd["language"] == "de" and by_id(odd)["LATE"]["lang"] == "de"


def test_an_offer_taken_on_a_german_screen_goes_to_the_pms_by_its_english_name(client, login, instance, hotel):
    karl = login("guest", user="DE1")
    r = client.post("/api/guest/offers/LATE/accept", headers=karl)
    assert r.status_code == 201, r.get_json()
    payload = json.loads(instance.db().execute("SELECT payload FROM outbox WHERE kind = 'pms.update'").fetchone()[0])
    assert payload["changes"]["addOffer"]["name"] == "Late checkout until 14:00"
    taken = by_id(client.get("/api/guest/home", headers=karl).get_json())["LATE"]
    assert taken["accepted"] is True and taken["name"] == "Später Check-out bis 14:00 Uhr"


def test_the_answers_match_the_documented_schemas(client, login, hotel):
    import yaml
    from test_docs import schema_errors

    spec = yaml.safe_load((Path(__file__).resolve().parents[1] / "docs/openapi.yaml").read_text())
    schemas = spec["components"]["schemas"]
    for user, lang in (("DE1", None), ("DE1", "en"), ("SOON", "de"), ("OUT", None)):
        body = home(client, login, user, lang)
        assert schema_errors(spec, schemas["GuestHome"], body) == [], body
    for question in ("Wann gibt es Frühstück?", "Wo kann ich mein Auto parken?", "Darf mein Papagei mit?"):
        body = ask(client, login("guest", user="DE1"), question, "de")
        assert schema_errors(spec, schemas["QuestionAnswer"], body) == [], body


# --- FAQ ------------------------------------------------------------------------------------------

def ask(client, headers, question, language):
    r = client.post("/api/guest/questions", headers=headers, json={"question": question, "language": language})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_a_faq_answer_in_german_and_the_english_one_marked_when_there_is_none(client, login, hotel):
    karl = login("guest", user="DE1")
    de = ask(client, karl, "Wann gibt es Frühstück?", "de")
    assert de["answered"] and de["answer"] == FAQ[1][3]
    assert (de["answerLanguage"], de["fallback"]) == ("de", False)
    park = ask(client, karl, "Wo kann ich mein Auto parken?", "de")  # the hotel wrote no German for parking
    assert park["answered"] and park["answer"] == FAQ[2][3]
    assert (park["answerLanguage"], park["fallback"]) == ("en", True)
    en = ask(client, login("guest", user="EN1"), "When is breakfast served?", "en")
    assert (en["answer"], en["answerLanguage"], en["fallback"]) == (FAQ[0][3], "en", False)


# --- the migration and the importer ---------------------------------------------------------------

def test_the_migration_adds_the_language_columns_to_an_existing_database(tmp_path):
    path = tmp_path / "old.db"
    db = store.connect(path, migrate=False)
    store.run_migrations(db, MIGRATIONS[:11])  # the store as the version before the language columns made it
    assert "name_de" not in {r[1] for r in db.execute("PRAGMA table_info(offers)")}
    db["offers"].insert({"hotel_id": "demo", "offer_id": "SPA", "name": "Spa afternoon", "type": "addon",
                         "price": 60.0, "margin": 30.0})
    db.conn.close()
    db = store.connect(path)  # opening it migrates
    assert store.schema_version(db) == SCHEMA_VERSION
    cols = {r[1] for r in db.execute("PRAGMA table_info(offers)")}
    assert {"description", "name_de", "description_de"} <= cols
    row = db.execute("SELECT name, description, name_de, description_de FROM offers").fetchone()
    assert row == ("Spa afternoon", None, None, None)  # the offer is kept; no German text yet
    shown = guest.offers(db, "demo", {"confirmation": "X", "room_type": "KING"}, lang="de")
    assert [(o["name"], o["lang"], o["fallback"], o["description"]) for o in shown] == \
        [("Spa afternoon", "en", True, None)]


OFFERS_CSV = "offer_id,name,type,price,margin\nSPA,Spa afternoon,addon,60,30\n"
OFFERS_DE_CSV = ("offer_id,name,type,price,margin,description,name_de,description_de\n"
                 "SPA,Spa afternoon,addon,60,30,Sauna and pool.,Nachmittag im Spa,\"Sauna, Pool und Massage.\"\n"
                 "BRK,Breakfast buffet,addon,22,14,,,\n")


def export(tmp_path, name, **files):
    d = tmp_path / name
    d.mkdir()
    for stem, text in files.items():
        (d / f"{stem}.csv").write_text(text, encoding="utf-8")
    return d


def test_the_importer_reads_offers_with_and_without_the_language_columns(tmp_path, instance):
    db = instance.db()
    assert importer.import_dir(db, export(tmp_path, "plain", offers=OFFERS_CSV), "demo") == {"offers": 1}
    assert db.execute("SELECT name, description, name_de, description_de FROM offers").fetchall() == \
        [("Spa afternoon", None, None, None)]
    faq = "faq_id,language,question,answer\nwifi,de,Wie lautet das WLAN?,Netz Harbor-Guest.\nwifi,,What wifi?,Harbor.\n"
    counts = importer.import_dir(db, export(tmp_path, "german", offers=OFFERS_DE_CSV, faq=faq), "demo")
    assert counts == {"offers": 2, "faq": 2}
    assert db.execute("SELECT offer_id, description, name_de, description_de FROM offers ORDER BY offer_id"
                      ).fetchall() == [("BRK", None, None, None),
                                       ("SPA", "Sauna and pool.", "Nachmittag im Spa", "Sauna, Pool und Massage.")]
    assert sorted(db.execute("SELECT language, answer FROM faq").fetchall()) == \
        [("de", "Netz Harbor-Guest."), ("en", "Harbor.")]  # an empty language is the default, English
    shown = by_id({"offers": guest.offers(db, "demo", {"confirmation": "X", "room_type": "KING"}, lang="de")})
    assert (shown["SPA"]["name"], shown["SPA"]["lang"]) == ("Nachmittag im Spa", "de")
    assert (shown["BRK"]["name"], shown["BRK"]["fallback"]) == ("Breakfast buffet", True)


def test_the_demo_property_has_german_offers_and_faq(instance):
    from kiosk.property import demo

    db = instance.db()
    demo.seed(db, "demo", date(2026, 5, 28))
    assert db.execute("SELECT count(*) FROM offers WHERE name_de IS NULL OR description_de IS NULL").fetchone()[0] == 0
    assert {r[0] for r in db.execute("SELECT faq_id FROM faq WHERE language = 'de'")} == \
        {r[0] for r in db.execute("SELECT faq_id FROM faq WHERE language = 'en'")}


# --- the room's status ----------------------------------------------------------------------------

@pytest.mark.parametrize("user, state", [("DE1", "service"), ("EN1", "ready"), ("ARR", "preparing"),
                                         ("SOON", "upcoming"), ("OOO", "unavailable"), ("OUT", "checked_out")])
def test_the_room_status_says_what_is_true_today(client, login, hotel, user, state):
    room = home(client, login, user)["room"]
    assert room["state"] == state
    assert room["ready"] is (state == "ready")  # the fields the screen had are kept


def test_a_guest_six_nights_in_is_not_told_the_room_is_being_prepared():
    # each state has its words, in both languages; only an arrival's room is "being prepared"
    keys = {s: "guest.room." + ("notready" if s == "preparing" else s)
            for s in ("ready", "preparing", "upcoming", "service", "unavailable", "checked_out")}
    for lang in ("en", "de"):
        for key in keys.values():
            assert "{room}" in I18N[lang][key], (lang, key)
    assert "prepared" not in I18N["en"][keys["service"]] and "vorbereitet" not in I18N["de"][keys["service"]]
    assert "prepared" in I18N["en"][keys["preparing"]]
    res = {"status": "InHouse", "arrival": "2026-05-22", "departure": "2026-05-31"}
    assert guest.room_state("Dirty", res, date(2026, 5, 28)) == "service"
    assert guest.room_state("Pickup", res, date(2026, 5, 28)) == "service"
    assert guest.room_state("Dirty", res | {"status": "Confirmed"}, date(2026, 5, 22)) == "preparing"
    assert guest.room_state("Dirty", res | {"status": "Confirmed"}, date(2026, 5, 20)) == "upcoming"
    assert guest.room_state("Clean", res, date(2026, 5, 28)) == "ready"


# --- a German guest in the browser ----------------------------------------------------------------

@pytest.fixture
def lobby(tmp_path):
    from harness import Kiosk

    from kiosk import config as config_mod
    from kiosk.instance import Instance

    k = Kiosk(tmp_path, "lobby")
    db = Instance(config_mod.load(None, env={}, overrides={"data_dir": str(k.dir),
                                                           "property": {"hotels": ["demo"], "kiosk_id": "lobby"}})).db()
    today = date.today()
    db["rooms"].insert({"hotel_id": "demo", "room_number": "306", "room_type": "KING", "floor": 3,
                        "status": "Dirty", "occupied": 1})
    db["reservations"].insert({"hotel_id": "demo", "confirmation": "R-306", "guest_name": "Karl Benz",
                               "room_number": "306", "room_type": "KING",
                               "arrival": (today - timedelta(days=6)).isoformat(),
                               "departure": (today + timedelta(days=3)).isoformat(), "status": "InHouse",
                               "language": "de"})
    db["offers"].insert_all(OFFERS)
    db["faq"].insert_all([{"hotel_id": "demo", "faq_id": f, "language": lang, "question": q, "answer": a}
                          for f, lang, q, a in FAQ])
    db.conn.close()
    k.serve()
    yield k
    k.stop_all()


WAIT_MS = 60_000


@needs_chromium
@pytest.mark.parametrize("size", [{"width": 1920, "height": 1080}, {"width": 390, "height": 844}],
                         ids=["1920x1080", "390x844"])
def test_a_german_guest_reads_offers_an_answer_and_the_room_in_german(lobby, browser, size):
    from playwright.sync_api import expect

    tag = f"{size['width']}x{size['height']}"
    ctx = browser.new_context(viewport=size, locale="en-US")  # an English device: the stay says German
    page = ctx.new_page()
    try:
        page.goto(lobby.url)
        page.wait_for_selector("body[data-ready=yes]", timeout=WAIT_MS)
        page.locator("#token").fill(lobby.token("guest", user="R-306"))
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Willkommen, Karl Benz")).to_be_visible(timeout=WAIT_MS)
        assert page.evaluate("document.documentElement.lang") == "de"

        # six nights in, the room being cleaned: not "being prepared"
        expect(page.locator("#room")).to_have_text("Unser Reinigungsteam kümmert sich heute um Zimmer 306.",
                                                   timeout=WAIT_MS)
        # the stay's dates in German ("Fr., 4. Dezember"), not "Friday, December 4"
        stay = page.locator("#stay").text_content()
        assert re.search(r"\d{1,2}\. [A-ZÄÖÜ][a-zäöü]+ bis ", stay) and "Nächte" in stay, stay

        late = page.locator("#offers li[data-offer=LATE]")
        expect(late).to_contain_text("Später Check-out bis 14:00 Uhr", timeout=WAIT_MS)
        expect(late).to_contain_text("Behalten Sie Ihr Zimmer bis 14:00 Uhr.")
        assert late.locator("strong").get_attribute("lang") == "de"
        spa = page.locator("#offers li[data-offer=SPA]")  # no German text: English, and said to be
        assert spa.locator("strong").get_attribute("lang") == "en" and "Spa afternoon" in spa.text_content()
        assert spa.locator(".offer-lang").text_content().strip() == "(auf Englisch)"
        assert late.locator(".offer-lang").count() == 0
        assert "Zum Aufenthalt hinzufügen" in late.text_content()

        page.locator("#question-text").fill("Wann gibt es Frühstück?")
        page.locator("#question button[type=submit]").click()
        answer = page.locator("#answer .answer-words")
        expect(answer).to_have_text(FAQ[1][3], timeout=WAIT_MS)
        assert answer.get_attribute("lang") == "de" and page.locator("#answer .answer-lang").count() == 0
        page.evaluate("() => document.getElementById('offers-card').scrollIntoView()")
        page.screenshot(path=str(shot_path(f"guest-de-{tag}")))
        shot(page, f"guest-de-full-{tag}")

        page.locator("#question-text").fill("Wo kann ich mein Auto parken?")
        page.locator("#question button[type=submit]").click()
        expect(answer).to_have_text(FAQ[2][3], timeout=WAIT_MS)  # the hotel wrote it in English only
        assert answer.get_attribute("lang") == "en"
        expect(page.locator("#answer .answer-lang")).to_have_text("(auf Englisch)")
        shot(page, f"guest-de-fallback-{tag}")

        # English chosen on the screen: the offers come again, in English
        page.get_by_role("button", name="English").click()
        expect(late).to_contain_text("Late checkout until 14:00", timeout=WAIT_MS)
        assert late.locator("strong").get_attribute("lang") == "en"
        expect(spa.locator(".offer-lang")).to_have_count(0)  # English on an English screen: nothing to say
        expect(page.locator("#room")).to_have_text("Our housekeeping team is looking after room 306 today.")
        assert page.evaluate("document.documentElement.lang") == "en"
    finally:
        ctx.close()


def shot_path(name: str) -> Path:
    from browser import ARTIFACTS

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{name}.png"
