"""One writer per table: every SQL statement in the code that writes a table (INSERT,
REPLACE, UPDATE, DELETE) is in the table's owner module, as docs/architecture.md's tables
name it (migrations and the cloud's schema exempt).  A table the docs do not list, or a
second writer, fails here; so does an owner table in the docs that nothing writes."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
EXEMPT = {"kiosk/migrations.py", "sync/cloud/schema.py"}
#: the one module allowed to write a table named by a variable (it checks the name itself)
DYNAMIC = {"kiosk": {"kiosk/property/tables.py"}, "cloud": set()}
WRITE = re.compile(r"\b(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|REPLACE\s+INTO|UPDATE(?:\s+OR\s+\w+)?|DELETE\s+FROM)"
                   r"\s+(\{[^}]*\}|[A-Za-z_]\w*)")  # SQL is written in capitals here; prose is not


def sql_strings(path: Path):
    """Every string literal of the module, f-strings with their holes as ``{expr}``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value
        elif isinstance(node, ast.JoinedStr):
            yield "".join(v.value if isinstance(v, ast.Constant) else "{" + ast.unparse(v.value) + "}"
                          for v in node.values)


def writers(paths) -> dict[str, dict[str, set[str]]]:
    """side ("kiosk" | "cloud") -> table -> modules whose SQL writes it."""
    out: dict[str, dict[str, set[str]]] = {"kiosk": {}, "cloud": {}}
    for p in paths:
        rel = p.relative_to(ROOT).as_posix()
        if rel in EXEMPT:
            continue
        side = "cloud" if rel.startswith("sync/cloud/") else "kiosk"
        for text in sql_strings(p):
            for m in WRITE.finditer(text):
                table = m.group(1)
                if table == "SET":
                    continue
                out[side].setdefault(table, set()).add(rel)
    return out


def code() -> list[Path]:
    return [p for d in ("kiosk", "sync", "agent") for p in sorted((ROOT / d).rglob("*.py"))]


def documented() -> dict[str, dict[str, str]]:
    """The owners docs/architecture.md names: side -> table -> module."""
    text = DOC.read_text()
    part = text[text.index("## One owner per table"):text.index("## Sync kinds")]
    kiosk_part, cloud_part = part.split("The cloud's database:")
    out = {}
    for side, chunk in (("kiosk", kiosk_part), ("cloud", cloud_part)):
        owners = {}
        for line in chunk.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 2 and cells[1].startswith("`") and cells[1].endswith(".py`"):
                for table in re.findall(r"`(\w+)`", cells[0]):
                    owners[table] = cells[1].strip("`")
        out[side] = owners
    return out


def test_every_table_has_one_writer_its_documented_owner():
    found, owners = writers(code()), documented()
    assert owners["kiosk"] and owners["cloud"]
    problems = []
    for side in ("kiosk", "cloud"):
        for table, modules in sorted(found[side].items()):
            if table.startswith("{"):
                extra = modules - DYNAMIC[side]
                if extra:
                    problems.append(f"{side}: a table named by a variable is written in {sorted(extra)}")
                continue
            if table not in owners[side]:
                problems.append(f"{side}: {table} is written by {sorted(modules)} but has no owner in the docs")
            elif modules != {owners[side][table]}:
                problems.append(f"{side}: {table} is owned by {owners[side][table]} but written by {sorted(modules)}")
        written_by = {(t, m) for d in found.values() for t, ms in d.items() for m in ms}
        unwritten = {t for t, m in owners[side].items() if (t, m) not in written_by and m not in DYNAMIC[side]}
        if unwritten:
            problems.append(f"{side}: the docs name owners of tables nothing writes: {sorted(unwritten)}")
    assert problems == []


def test_the_check_finds_a_second_writer(tmp_path):
    """The scan sees plain and f-string SQL, and a writer outside the owner."""
    stray = tmp_path / "kiosk" / "stray.py"
    stray.parent.mkdir()
    stray.write_text('def f(db, t):\n'
                     '    db.execute("UPDATE work_orders SET status = ? WHERE id = ?", [1, 2])\n'
                     '    db.execute(f"DELETE FROM {t} WHERE hotel_id = ?", [1])\n'
                     '    note = "update the screen when this changes"\n')
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        found = writers([stray])
    finally:
        ROOT = saved
    assert found["kiosk"] == {"work_orders": {"kiosk/stray.py"}, "{t}": {"kiosk/stray.py"}}


def test_the_property_tables_writer_refuses_a_table_it_does_not_own(tmp_path):
    import pytest

    from kiosk import store
    from kiosk.property import tables

    db = store.connect(tmp_path / "k.db")
    for bad in ("outbox", "sessions", "rooms; DROP TABLE rooms", "sqlite_master"):
        with pytest.raises(ValueError):
            tables.insert_many(db, "demo", bad, [{"x": 1}])
        with pytest.raises(ValueError):
            tables.clear(db, "demo", bad)
    with store.transaction(db):  # tasks and work orders go to their owners
        tables.insert_many(db, "demo", "tasks", [{"task_id": "T-1", "type": "clean", "status": "open",
                                                  "priority": "normal", "created_at": "2026-12-06T08:00:00",
                                                  "unknown_column": "dropped"}])
        tables.upsert(db, "demo", "rooms", {"room_number": "101", "room_type": "KING", "floor": 1, "status": "Clean",
                                           "nope": 1})
    assert db.execute("SELECT task_id FROM tasks WHERE hotel_id = 'demo'").fetchall() == [("T-1",)]
    assert db.execute("SELECT room_number FROM rooms").fetchall() == [("101",)]
