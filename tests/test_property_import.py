"""kiosk data import: a PMS export folder, all or nothing, errors naming file/line/column."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from kiosk.cli import main
from kiosk.property import importer

DOCS = Path(__file__).resolve().parents[1] / "docs" / "property-data.md"


def export(tmp_path, **files) -> Path:
    d = tmp_path / "export"
    d.mkdir(exist_ok=True)
    for name, text in files.items():
        (d / f"{name}.csv").write_text(text)
    return d


ROOMS = "room_number,room_type,floor,status,occupied,wing\n101,KING,1,Clean,0,east\n102,TWIN,1,Dirty,1,east\n"
RES = ("confirmation,guest_name,room_number,arrival,departure,status,adults,nightly_rate,vip\n"
       "R1,Ada,101,2026-11-24,2026-11-26,InHouse,2,120.5,1\n")


def test_a_good_export_imports_with_unknown_columns_ignored(tmp_path, instance):
    d = export(tmp_path, rooms=ROOMS, reservations=RES, notes="whatever\n")
    counts = importer.import_dir(instance.db(), d, "demo")
    assert counts == {"rooms": 2, "reservations": 1}
    db = instance.db()
    assert db.execute("SELECT room_type, floor, occupied FROM rooms WHERE room_number = '102'").fetchone() == \
        ("TWIN", 1, 1)
    assert db.execute("SELECT nightly_rate, vip, children FROM reservations").fetchone() == (120.5, 1, 0)
    later = tmp_path / "later"
    later.mkdir()
    importer.import_dir(instance.db(), export(later, rooms=ROOMS.splitlines()[0] + "\n201,KING,2,Clean,0,x\n"),
                        "demo")
    assert [r[0] for r in db.execute("SELECT room_number FROM rooms")] == ["201"]  # the file replaces the table


def test_a_bad_cell_names_file_line_and_column_and_nothing_is_written(tmp_path, instance):
    bad_res = RES + "R2,Bo,101,2026-11-31,2026-12-02,InHouse,1,99,0\n"
    d = export(tmp_path, rooms=ROOMS, reservations=bad_res)
    r = CliRunner().invoke(main, ["--data-dir", str(instance.root), "data", "import", str(d), "--hotel", "demo"])
    assert r.exit_code == 1
    assert "reservations.csv line 3, column 'arrival'" in r.output and "VALIDATION_ERROR" in r.output
    db = instance.db()
    assert db.execute("SELECT count(*) FROM rooms").fetchone()[0] == 0  # rooms.csv was fine, still nothing
    for text, where in ((ROOMS.replace("Clean", "Spotless"), "rooms.csv line 2, column 'status'"),
                        (ROOMS.replace(",1,Dirty", ",one,Dirty"), "rooms.csv line 3, column 'floor'"),
                        (ROOMS + "101,KING,1,Clean,0,x\n", "rooms.csv line 4, column 'room_number'"),
                        ("room_number,room_type\n101,KING\n", "rooms.csv line 1, column 'floor'")):
        d = export(tmp_path, rooms=text)
        try:
            importer.import_dir(instance.db(), d, "demo")
            raise AssertionError("accepted " + where)
        except Exception as e:
            assert where in e.message, (where, e.message)
    d = export(tmp_path, rooms=ROOMS, reservations=RES.replace(",101,", ",999,"))
    r = CliRunner().invoke(main, ["--data-dir", str(instance.root), "data", "import", str(d), "--hotel", "demo"])
    assert r.exit_code == 1 and "room '999' is not in rooms.csv" in r.output


def test_the_cli_imports_for_a_served_hotel_only(tmp_path, instance):
    d = export(tmp_path, rooms=ROOMS)
    r = CliRunner().invoke(main, ["--data-dir", str(instance.root), "data", "import", str(d), "--hotel", "demo"])
    assert r.exit_code == 0 and json.loads(r.output.splitlines()[-1]) == {"rooms": 2}
    r = CliRunner().invoke(main, ["--data-dir", str(instance.root), "data", "import", str(d), "--hotel", "elsewhere"])
    assert r.exit_code == 2


def test_the_documented_columns_are_the_importers():
    text = DOCS.read_text()
    for stem, (_, _, cols) in importer.SPECS.items():
        section = text.split(f"## `{stem}.csv`")[1].split("##")[0]
        line = next(x for x in section.splitlines() if x.strip())
        documented = [(re.sub(r"\*", "", c.strip()), c.strip().startswith("**")) for c in line.split(",")]
        assert documented == [(c.name, c.required) for c in cols], stem
