"""slabench's Locust options as text and as the table in ``docs/load-tests.md``.

Both are built from the parser itself (``add_options``), so they cannot drift from it:

    python -m loadtests.harness.options_doc --write docs/load-tests.md   # regenerate the table
    python -m loadtests.harness.options_doc --check docs/load-tests.md   # exit 1 when it is stale

The table sits between ``BEGIN`` and ``END``; everything else in the page is left as it is.
Locust is never imported here (it monkey-patches the process with gevent): the parser is
configargparse's, the argparse subclass Locust's own parser is built on.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import configargparse

from loadtests.harness.options import add_options

BEGIN = "<!-- options:begin -->"
END = "<!-- options:end -->"
REGENERATE = "python -m loadtests.harness.options_doc --write docs/load-tests.md"
USAGE = "locust -f loadtests/scenarios/SCENARIO.py [locust options] [slabench options]"


@dataclass(frozen=True, slots=True)
class OptionRow:
    flag: str
    env_var: str
    default: str
    help: str


def slabench_parser() -> configargparse.ArgumentParser:
    """A parser holding slabench's options and nothing of Locust's."""
    parser = configargparse.ArgumentParser(
        prog="locust",
        usage=USAGE,
        add_help=False,
        add_env_var_help=False,
        add_config_file_help=False,
    )
    add_options(parser)
    return parser


def option_rows(parser: argparse.ArgumentParser) -> list[OptionRow]:
    # argparse has no public list of actions; every slabench option has a SLABENCH_ variable.
    actions = [a for a in parser._actions if getattr(a, "env_var", "").startswith("SLABENCH_")]
    return [_row(parser, action) for action in actions]


def _row(parser: argparse.ArgumentParser, action: argparse.Action) -> OptionRow:
    env_var: str = getattr(action, "env_var", "")
    text = (action.help or "") % {**vars(action), "prog": parser.prog}  # as argparse expands it
    text = text.removesuffix(f"[env {env_var}]").strip()
    if action.choices:
        text += " (" + ", ".join(f"`{choice}`" for choice in action.choices) + ")"
    return OptionRow(
        flag=action.option_strings[0], env_var=env_var, default=_default(action), help=text
    )


def _default(action: argparse.Action) -> str:
    if isinstance(action, argparse._StoreTrueAction):
        return "off"
    if action.default in ("", None):
        return "—"
    return f"`{action.default}`"


def render_table(rows: Sequence[OptionRow]) -> str:
    lines = [
        f"<!-- generated from the parser by `{REGENERATE}`; do not edit by hand -->",
        "",
        "| option | environment variable | default | meaning |",
        "|---|---|---|---|",
    ]
    for row in rows:
        cells = (f"`{row.flag}`", f"`{row.env_var}`", row.default, _escape(row.help))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _escape(text: str) -> str:
    """A table cell: ``|`` would end it, ``<...>`` would be read as an HTML tag."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def with_table(page: str, table: str) -> str:
    """``page`` with the text between the markers replaced by ``table``."""
    start, end = page.find(BEGIN), page.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the page needs the markers {BEGIN} and {END}, in that order")
    return page[: start + len(BEGIN)] + "\n" + table + "\n" + page[end:]


def current_table() -> str:
    return render_table(option_rows(slabench_parser()))


def options_help() -> str:
    """The text ``python -m loadtests options`` prints: the options as ``--help`` shows them."""
    return slabench_parser().format_help()


def main(argv: Sequence[str] | None = None) -> int:
    cli = argparse.ArgumentParser(
        prog="python -m loadtests.harness.options_doc",
        description="Regenerate or check the options table of a docs page.",
    )
    mode = cli.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", metavar="PAGE", type=Path, help="regenerate the table in PAGE")
    mode.add_argument("--check", metavar="PAGE", type=Path, help="exit 1 if PAGE's is stale")
    args = cli.parse_args(argv)
    page_path: Path = args.write or args.check
    page = page_path.read_text(encoding="utf-8")
    try:
        updated = with_table(page, current_table())
    except ValueError as exc:
        cli.error(f"{page_path}: {exc}")
    if args.write:
        page_path.write_text(updated, encoding="utf-8")
        return 0
    if updated != page:
        print(f"{page_path}: the options table is stale; run `{REGENERATE}`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
