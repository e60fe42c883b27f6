"""A reference cloud driven through its CLI in-process (``kiosk-cloud`` by click's CliRunner),
with each hotel's stays imported from a PMS export: the start of the guest-data tests."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from sync.cloud.cli import main as cloud_cli


def imported(tmp_path: Path, url: str | None, rooms: str, stays: dict[str, str]):
    """``(run, data_dir)``: ``run(*args)`` invokes ``kiosk-cloud`` on ``tmp_path/cloud`` (SQLite, or
    PostgreSQL at ``url``) whose hotels hold ``rooms`` and their ``stays`` (hotel -> reservations.csv)."""
    data_dir = tmp_path / "cloud"
    where = ["--data-dir", str(data_dir), *(["--database", url] if url else [])]

    def run(*args: str):
        return CliRunner().invoke(cloud_cli, [*where, *args])

    for hotel, reservations in stays.items():
        export = tmp_path / f"export-{hotel}"
        export.mkdir()
        (export / "rooms.csv").write_text(rooms)
        (export / "reservations.csv").write_text(reservations)
        r = run("data", "import", str(export), "--hotel", hotel)
        assert r.exit_code == 0, r.output
    return run, data_dir
