"""The options table in docs/load-tests.md is the parser's, and `python -m loadtests options`
lists every option without Locust or a start-up hook."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.harness.options_doc import (
    BEGIN,
    END,
    current_table,
    main,
    option_rows,
    slabench_parser,
    with_table,
)

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "load-tests.md"


def _stale_copy(tmp_path: Path, old: str, new: str) -> Path:
    page = PAGE.read_text(encoding="utf-8")
    assert old in page
    copy = tmp_path / "load-tests.md"
    copy.write_text(page.replace(old, new, 1), encoding="utf-8")
    return copy


def test_the_docs_table_is_the_parsers() -> None:
    page = PAGE.read_text(encoding="utf-8")
    assert with_table(page, current_table()) == page, (
        "docs/load-tests.md's options table disagrees with the parser; run "
        "`python -m loadtests.harness.options_doc --write docs/load-tests.md`"
    )
    assert main(["--check", str(PAGE)]) == 0


def test_every_option_has_one_row_with_its_environment_variable() -> None:
    rows = option_rows(slabench_parser())
    assert len(rows) >= 40
    assert len({row.flag for row in rows}) == len(rows)
    table = PAGE.read_text(encoding="utf-8").split(BEGIN)[1].split(END)[0]
    for row in rows:
        assert row.env_var == "SLABENCH_" + row.flag[2:].upper().replace("-", "_")
        assert table.count(f"| `{row.flag}` | `{row.env_var}` |") == 1, row.flag
    arrival = next(row for row in rows if row.flag == "--arrival")
    assert arrival.default == "`poisson`" and "`gamma`" in arrival.help
    assert "[env" not in table  # the variable has its own column


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (
            "| `--max-inflight` | `SLABENCH_MAX_INFLIGHT` | `256` |",
            "| `--max-inflight` | `SLABENCH_MAX_INFLIGHT` | `128` |",
        ),
        ("| `--seed` |", "| `--random-seed` |"),
    ],
    ids=["default changed", "option renamed"],
)
def test_a_stale_table_fails_the_check(tmp_path: Path, old: str, new: str) -> None:
    copy = _stale_copy(tmp_path, old, new)
    assert main(["--check", str(copy)]) == 1
    assert main(["--write", str(copy)]) == 0
    assert copy.read_text(encoding="utf-8") == PAGE.read_text(encoding="utf-8")


def test_a_missing_row_fails_the_check(tmp_path: Path) -> None:
    page = PAGE.read_text(encoding="utf-8")
    row = next(line for line in page.splitlines() if line.startswith("| `--cost-per-hour`"))
    copy = _stale_copy(tmp_path, row + "\n", "")
    assert main(["--check", str(copy)]) == 1


def test_write_keeps_the_rest_of_the_page(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(f"# Title\n\nbefore\n{BEGIN}\nold\n{END}\nafter\n", encoding="utf-8")
    assert main(["--write", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# Title\n\nbefore\n") and text.endswith(f"{END}\nafter\n")
    assert "old" not in text and "`--run-dir`" in text


def test_a_page_without_markers_is_a_usage_error(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# no markers\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exited:
        main(["--check", str(page)])
    assert exited.value.code == 2


@pytest.mark.parametrize("args", [["options"], ["--help"]])
def test_python_dash_m_loadtests_lists_every_option(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "loadtests", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())  # help lines wrap anywhere
    for row in option_rows(slabench_parser()):
        assert f"{row.flag} " in text and f"[env {row.env_var}]" in text, row.flag


def test_listing_the_options_imports_no_locust() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from loadtests.__main__ import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['options', '--markdown']) == 0\n"
        "assert 'locust' not in sys.modules and 'gevent' not in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_unknown_arguments_exit_2() -> None:
    from loadtests.__main__ import main as loadtests_main

    assert loadtests_main(["bogus"]) == 2
