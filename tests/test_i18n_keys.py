"""Every translation key the screens use exists in every language (English and German).

Keys come from the templates (``data-i18n="…"``) and from the JavaScript: every string
literal that looks like a key of a namespace the dictionary has (``"guest.request.sent"``)
and every key built from a prefix (``"status." + s``), whose values are enumerated here
from the Python code that produces them — so a new status, kind or action without words
in both languages fails this test, and so does a prefix nobody declared.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from kiosk import guest, queue, tickets
from kiosk.workflow_rules import STATUSES as WO_STATUSES

WEB = Path(__file__).resolve().parents[1] / "kiosk" / "web"
STRINGS = json.loads((WEB / "static" / "i18n.json").read_text())

#: prefix -> the values the code can append (from where they are defined)
ENUMERATED = {
    "status.": set(tickets.STATUSES) | set(WO_STATUSES) | set(queue.TASK_STATUSES),
    "kind.": set(queue.KINDS),
    "priority.": set(queue.PRIORITY_RANK),
    "guest.stage.": set(guest.STAGE.values()),
    "staff.action.": {"accept", "start", "done", "assign", "make_work_order"},
    "staff.did.": {"accept", "start", "done", "assign", "approve", "reject", "reply", "make_work_order"},
    "staff.": {"approve", "reject"},
    "channel.": {"spoken", "question"},
    "dept.": set(queue.DEPARTMENTS),
    "time.due.": {"m", "h", "d"},
    "time.overdue.": {"m", "h", "d"},
}
#: prefixes whose code falls back when a key is missing (error codes, model finding types, task types)
GUARDED = {"error.", "finding.", "tasktype."}


def namespaces() -> set[str]:
    return {k.split(".")[0] for lang in STRINGS.values() for k in lang}


def used_keys() -> dict[str, set[str]]:
    """key -> the files that use it."""
    used: dict[str, set[str]] = {}
    ns = namespaces()
    for path in sorted((WEB / "templates").glob("*.html")):
        for key in re.findall(r'data-i18n="([^"]+)"', path.read_text()):
            used.setdefault(key, set()).add(path.name)
    for path in sorted((WEB / "static").glob("*.js")):
        text = path.read_text()
        # string literals shaped like keys, not object keys ({"session.opened": ...} names an event)
        for key in re.findall(r'["\'`]([a-z]+(?:\.[A-Za-z0-9_]+)+)["\'`](?!\s*:)', text):
            if key.split(".")[0] in ns and not key.endswith((".js", ".json", ".css", ".png")):
                used.setdefault(key, set()).add(path.name)
        for prefix in re.findall(r'["\']([a-z_]+(?:\.[a-z_]+)*\.)["\']\s*\+', text):
            if prefix in GUARDED:
                continue
            assert prefix in ENUMERATED, f"{path.name} builds keys from {prefix!r}: declare its values in this test"
            for value in ENUMERATED[prefix]:
                used.setdefault(prefix + value, set()).add(path.name)
    return used


def test_every_key_used_by_a_screen_exists_in_every_language():
    used = used_keys()
    assert len(used) > 200  # the scan found the screens' keys
    assert {"en", "de"} <= set(STRINGS)
    missing = {lang: sorted(f"{k} ({', '.join(sorted(used[k]))})" for k in used if k not in strings)
               for lang, strings in STRINGS.items()}
    assert missing == {lang: [] for lang in STRINGS}


def test_both_languages_have_the_same_keys_and_no_empty_text():
    en = STRINGS["en"]
    for lang, strings in STRINGS.items():
        assert set(strings) == set(en), lang
        assert [k for k, v in strings.items() if not str(v).strip()] == [], lang
        for k, v in strings.items():  # the same placeholders, so no translation drops a name or a number
            assert set(re.findall(r"\{(\w+)\}", v)) == set(re.findall(r"\{(\w+)\}", en[k])), f"{lang} {k}"


def test_the_check_finds_a_missing_key(tmp_path, monkeypatch):
    fake = tmp_path / "web"
    (fake / "templates").mkdir(parents=True)
    (fake / "static").mkdir()
    (fake / "templates" / "x.html").write_text('<p data-i18n="guest.nope">x</p>')
    (fake / "static" / "x.js").write_text('Kiosk.t("staff.also.nope"); Kiosk.t("status." + s);')
    monkeypatch.setattr(__import__(__name__), "WEB", fake)
    used = used_keys()
    assert {"guest.nope", "staff.also.nope", "status.received"} <= set(used)
    assert "guest.nope" not in STRINGS["de"]
