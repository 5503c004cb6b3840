"""The layering of docs/architecture.md, checked on the source: no import circles, arrows
one way, locust/gevent only where they may be, benchmarks independent of the tests."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("reference_server", "sla", "dashboards", "reports", "loadtests")
GEVENT = ("locust", "gevent", "geventhttpclient")


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> Iterator[str]:
    """Every absolute import of a module (type-checking-only imports included)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def library_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the modules it imports. A module's own parent packages are left out: a
    package ``__init__`` re-exporting its modules is not a circle with them."""
    files = {module_name(f, root): f for p in PACKAGES for f in (root / p).rglob("*.py")}
    return {
        m: {i for i in imports(f) if i in files and i != m and not m.startswith(f"{i}.")}
        for m, f in files.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component that has one (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_library_has_no_import_circles() -> None:
    assert cycles(library_graph()) == []


def test_the_cycle_finder_finds_a_circle(tmp_path: Path) -> None:
    pkg = tmp_path / "sla"
    pkg.mkdir()
    (pkg / "a.py").write_text("from sla.b import x\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import sla.a\n"
    )
    (pkg / "c.py").write_text("import sla.a\n")
    for other in PACKAGES[:1] + PACKAGES[2:]:
        (tmp_path / other).mkdir()
    assert cycles(library_graph(tmp_path)) == [["sla.a", "sla.b"]]


# Which packages each one may import (docs/architecture.md, "Which package may import which").
ALLOWED = {
    "reference_server": {"reference_server"},
    "sla": {"sla"},
    "dashboards": {"dashboards", "sla"},
    "reports": {"reports", "dashboards", "sla"},
    "loadtests": {"loadtests", "reports", "sla"},
}


@pytest.mark.parametrize("package", PACKAGES)
def test_arrows_point_one_way(package: str) -> None:
    wrong = {
        (module, target)
        for module, targets in library_graph().items()
        if module.split(".")[0] == package
        for target in targets
        if target.split(".")[0] not in ALLOWED[package]
    }
    assert wrong == set()


NO_GEVENT = ("sla", "dashboards", "reports", "reference_server", "loadtests.gate",
             "loadtests.workloads", "loadtests.bundled_server", "loadtests.errors",
             "loadtests.children")  # fmt: skip


def test_locust_and_gevent_stay_in_the_load_generator() -> None:
    offenders = {
        module
        for p in PACKAGES
        for f in (ROOT / p).rglob("*.py")
        if (module := module_name(f)).startswith(NO_GEVENT)
        and any(i.split(".")[0] in GEVENT for i in imports(f))
    }
    assert offenders == set()


def test_benchmarks_import_nothing_from_the_tests() -> None:
    offenders = {
        f.name
        for f in (ROOT / "benchmarks").rglob("*.py")
        if any(i.split(".")[0] == "tests" for i in imports(f))
    }
    assert offenders == set()
