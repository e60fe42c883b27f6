"""The tree's dependencies go one way (docs/architecture.md):

    agent (kiosk-agent) ──▶ sync ──▶ kiosk (the kiosk and the core it is built on)
    sync/cloud (kiosk-cloud) ──▶ sync, kiosk

The kiosk never imports sync or the agent (the outbox, the hybrid logical clock and the
work-order rules it writes with are its own: kiosk/outbox.py, kiosk/hlc.py,
kiosk/workflow_rules.py; sync/ re-exports them); sync never imports the agent; the agent's
daemon does not import its command line.  Imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute (relative imports resolved), anywhere in the file."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            mod = ".".join([*base, node.module] if node.module else base)
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}  # `from . import outbox` imports a module
    return out


def files(package: str, *, exclude: str | None = None) -> list[Path]:
    return [p for p in sorted((ROOT / package).rglob("*.py"))
            if not (exclude and p.is_relative_to(ROOT / exclude))]


def offenders(paths: list[Path], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    out = {}
    for p in paths:
        bad = sorted(m for m in imports(p) if m.split(".")[0] in forbidden or m.startswith(forbidden))
        bad = [m for m in bad if any(m == f or m.startswith(f + ".") for f in forbidden)]
        if bad:
            out[str(p.relative_to(ROOT))] = bad
    return out


@pytest.mark.parametrize("package, forbidden, exclude", [
    ("kiosk", ("sync", "agent"), None),
    ("sync", ("agent",), None),
])
def test_dependencies_go_one_way(package, forbidden, exclude):
    assert offenders(files(package, exclude=exclude), forbidden) == {}


def test_the_agents_daemon_does_not_import_its_command_line():
    """``kiosk-agent run`` starts the daemon (cli -> runner); both build their clients in
    agent/clients.py, so the daemon needs nothing from the command line."""
    assert not {m for m in imports(ROOT / "agent" / "runner.py") if m == "agent.cli" or m.startswith("agent.cli.")}


def test_the_check_sees_relative_and_late_imports(tmp_path):
    assert "kiosk.outbox" in imports(ROOT / "kiosk" / "scan.py")
    assert "sync.delivery" in imports(ROOT / "agent" / "clients.py")
    assert "kiosk.models.runner" in imports(ROOT / "agent" / "runner.py")  # inside a method


def test_the_old_import_paths_still_work():
    from kiosk import hlc, outbox, sync_status, workflow_rules
    from sync import hlc as sync_hlc
    from sync import outbox as sync_outbox
    from sync import status
    from sync import workflow_rules as sync_rules
    from sync.delivery import list_dead, resolve_dead

    assert (sync_hlc.tick, sync_outbox.enqueue, status.summary, sync_rules.can_move) == (
        hlc.tick, outbox.enqueue, sync_status.summary, workflow_rules.can_move)
    assert (list_dead, resolve_dead) == (outbox.list_dead, outbox.resolve_dead)
