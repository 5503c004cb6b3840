"""The README and docs/ pages: every relative link lands on a file (and heading) that exists,
every test the reliability page names exists, and no example carries a path of the machine
it was written on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|tmp|root|home)/")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, flags=re.M)}


def _relative_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def test_the_pages_exist() -> None:
    names = {page.name for page in PAGES}
    assert {"README.md", "load-tests.md", "sla.md", "capacity.md", "run-directory.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in _relative_links(page):
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_machine_paths(page: Path) -> None:
    lines = page.read_text(encoding="utf-8").splitlines()
    hits = [f"{n}: {line}" for n, line in enumerate(lines, 1) if MACHINE_PATH.search(line)]
    assert not hits, f"{page.name} shows paths of the machine it was written on: {hits}"


def test_the_readme_stays_a_front_door() -> None:
    assert len((ROOT / "README.md").read_bytes()) <= 12 * 1024


def test_the_checker_catches_a_broken_link(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# A heading\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md#a-heading) [gone](missing.md) [bad](there.md#nope) [web](https://x.org)\n",
        encoding="utf-8",
    )
    links = _relative_links(page)
    assert links == ["there.md#a-heading", "missing.md", "there.md#nope"]
    assert _anchors(tmp_path / "there.md") == {"a-heading"}
    assert _slug("Set-up: two commands") == "set-up-two-commands"


TEST_ID = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def _missing_tests(page: Path) -> list[str]:
    """The ``tests/....py::test_name`` references of ``page`` naming no test function."""
    missing = []
    for path, name in TEST_ID.findall(page.read_text(encoding="utf-8")):
        source = ROOT / path
        defined = source.exists() and re.search(
            rf"^def {name}\(", source.read_text(encoding="utf-8"), flags=re.M
        )
        if not defined:
            missing.append(f"{path}::{name}")
    return missing


def test_the_reliability_page_names_only_tests_that_exist() -> None:
    page = ROOT / "docs" / "reliability.md"
    text = page.read_text(encoding="utf-8")
    assert len(TEST_ID.findall(text)) >= 30
    assert "PENDING" not in text
    assert not _missing_tests(page)


def test_the_test_name_checker_catches_a_renamed_test(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "`tests/test_docs.py::test_the_readme_stays_a_front_door` "
        "`tests/test_docs.py::test_gone` `tests/nowhere.py::test_x`\n",
        encoding="utf-8",
    )
    assert _missing_tests(page) == ["tests/test_docs.py::test_gone", "tests/nowhere.py::test_x"]
