"""The tree's dependencies go one way (docs/architecture.md):

    agent (kiosk-agent) ──▶ sync ──▶ kiosk (the kiosk and the core it is built on)
    sync/cloud (kiosk-cloud) ──▶ sync, kiosk

The kiosk never imports sync or the agent (the outbox, the hybrid logical clock and the
work-order rules it writes with are its own: kiosk/outbox.py, kiosk/hlc.py,
kiosk/workflow_rules.py; sync/ re-exports them); sync never imports the agent; the agent's
daemon does not import its command line.  Imports inside functions count too.

No import circles: at module level nowhere in kiosk/, sync/ and agent/ (a circle there
breaks or not depending on which module is imported first); in sync/cloud/ not even
through imports inside functions (a lazy import is how a circle hides: the cloud's
storage and its schema module once imported each other that way).  Elsewhere a lazy
import that closes a circle is tolerated, as a deliberate way to break it.
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


def module_graph(root: Path, packages: tuple[str, ...], *, lazy: bool) -> dict[str, set[str]]:
    """Each module of ``packages`` (under ``root``) and the modules of them it imports, at
    module level (``if TYPE_CHECKING:`` blocks excepted) or, with ``lazy``, anywhere.
    ``from p import x`` is an edge to ``p.x`` when that is a module, else to ``p``."""
    def name(path: Path) -> str:
        parts = list(path.relative_to(root).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    paths = {name(p): p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}
    graph = {}
    for mod, path in paths.items():
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        tree = ast.parse(path.read_text())
        if lazy:
            nodes = list(ast.walk(tree))
        else:
            nodes, todo = [], list(tree.body)
            while todo:
                n = todo.pop()
                if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) or (
                        isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)):
                    continue
                nodes.append(n)
                todo.extend(ast.iter_child_nodes(n))
        out = set()
        for n in nodes:
            if isinstance(n, ast.Import):
                out |= {a.name for a in n.names if a.name in paths}
            elif isinstance(n, ast.ImportFrom):
                base = package[:len(package) - n.level + 1] if n.level else []
                src = ".".join([*base, n.module] if n.module else base)
                for a in n.names:
                    if f"{src}.{a.name}" in paths:
                        out.add(f"{src}.{a.name}")
                    elif src in paths:
                        out.add(src)
        graph[mod] = out - {mod}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected parts of ``graph`` with more than one module (Tarjan's,
    iterative): each is a set of modules that import each other, round a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in graph:
                    continue
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    part = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        part.append(w)
                        if w == v:
                            break
                    if len(part) > 1:
                        found.append(sorted(part))
    return found


def test_no_import_circles_at_module_level():
    assert circles(module_graph(ROOT, ("kiosk", "sync", "agent"), lazy=False)) == []


def test_the_cloud_has_no_import_circle_even_through_lazy_imports():
    graph = module_graph(ROOT, ("sync",), lazy=True)
    cloud = {m: {d for d in deps if d.startswith("sync.cloud")} for m, deps in graph.items()
             if m.startswith("sync.cloud")}
    assert circles(cloud) == []
    # the storage interface and its backends need the schema, never the helpers over them
    assert "sync.cloud.db" not in graph["sync.cloud.storage"]
    assert "sync.cloud.storage" not in graph["sync.cloud.schema"]


def test_the_circle_check_sees_lazy_and_relative_circles(tmp_path):
    pkg = tmp_path / "p"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .c import g\n")
    (pkg / "c.py").write_text("import p.a\nfrom p.d import x\n")
    (pkg / "d.py").write_text("x = 1\n")
    assert circles(module_graph(tmp_path, ("p",), lazy=False)) == []
    assert circles(module_graph(tmp_path, ("p",), lazy=True)) == [["p.a", "p.b", "p.c"]]


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


def test_no_module_only_re_exports_another():
    """Imports point at the module that defines a thing: no shim modules of star imports."""
    shims = [str(p.relative_to(ROOT)) for d in ("kiosk", "sync", "agent") for p in sorted((ROOT / d).rglob("*.py"))
             if any(isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names)
                    for n in ast.walk(ast.parse(p.read_text())))]
    assert shims == []
