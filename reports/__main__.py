"""Command line: the HTML report, a comparison report, and CI outputs of a saved run.

    python -m reports RUN_DIR [-o FILE] [--sla SPEC] [--window 5s]
    python -m reports compare BASELINE_RUN CANDIDATE_RUN [-o FILE] [--max-regression 10%]
    python -m reports junit RUN_DIR [-o FILE] [--sla SPEC] [--allow-inconclusive]
    python -m reports markdown RUN_DIR [-o FILE] [--sla SPEC]
    python -m reports capacity SWEEP_DIR [-o FILE]
    python -m reports capacity-compare SWEEP_DIR SWEEP_DIR [...] [--label L ...] -o FILE

A report uses ``--sla SPEC`` when given (judging the run now, without writing verdict.json),
else the run's verdict.json, else none ("no SLA"). Defaults: ``RUN_DIR/report.html``,
``CANDIDATE_RUN/comparison.html``, ``RUN_DIR/junit.xml``, ``SWEEP_DIR/report.html``;
markdown goes to stdout (append it to ``$GITHUB_STEP_SUMMARY``). Exit 0 once the file is
written, whatever the verdict (the gate is ``python -m sla check``); bad input exits 2 with
one line on stderr. A sweep directory (``capacity.json``, no ``run.json``) given without a
command gets the capacity report. A run directory literally named like a command
(``compare``, ``capacity``...) is written ``./compare``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from reports.capacity import write_capacity_report
from reports.capacity_compare import render_capacity_comparison
from reports.ci import junit_xml, markdown_summary
from reports.errors import ReportError
from reports.render import (
    REPORT_FILE,
    render_comparison,
    render_report,
    resolve_verdict,
    write_html,
)
from sla.compare import compare, parse_max_regression
from sla.errors import SlabenchError, report_error, run_command
from sla.files.capacity import CAPACITY_FILE
from sla.files.run import RUN_JSON, load_run
from sla.reading import read_run
from sla.spec import parse_duration_s

PROG = "python -m reports"
COMMANDS = ("render", "compare", "junit", "markdown", "capacity", "capacity-compare")
COMPARISON_FILE = "comparison.html"
JUNIT_FILE = "junit.xml"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line instead of argparse's usage block: easier to read in a CI log.
        raise ReportError(f"{message} (see {self.prog} --help)")


def _typed(parse: Callable[[str], float], what: str) -> Callable[[str], float]:
    """An argparse type from a parser that raises ValueError (argparse shows the message)."""

    def convert(text: str) -> float:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{what}: {exc}") from exc

    return convert


def _window(text: str) -> float:
    seconds = parse_duration_s(text)
    if seconds <= 0:
        raise ValueError(f"{text!r} must be a positive duration like 5s")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="HTML reports and CI outputs of slabench runs.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    render = commands.add_parser("render", help="the HTML report of a run (the default)")
    render.add_argument("run_dir", metavar="RUN_DIR")
    render.add_argument("-o", "--output", type=Path, help=f"default RUN_DIR/{REPORT_FILE}")
    render.add_argument("--sla", metavar="SPEC", help="judge with this spec (else verdict.json)")
    render.add_argument(
        "--window",
        type=_typed(_window, "--window"),
        metavar="DURATION",
        help="time-series window of the figures, e.g. 5s",
    )
    cmp_ = commands.add_parser("compare", help="compare a candidate run with a baseline run")
    cmp_.add_argument("baseline", metavar="BASELINE_RUN")
    cmp_.add_argument("candidate", metavar="CANDIDATE_RUN")
    cmp_.add_argument("-o", "--output", type=Path, help=f"default CANDIDATE_RUN/{COMPARISON_FILE}")
    cmp_.add_argument(
        "--max-regression",
        type=_typed(parse_max_regression, "--max-regression"),
        default=0.10,
        help="tolerated worsening (default 10%%)",
    )
    cmp_.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    junit = commands.add_parser("junit", help="JUnit XML of the run's SLA verdict")
    junit.add_argument("run_dir", metavar="RUN_DIR")
    junit.add_argument("-o", "--output", type=Path, help=f"default RUN_DIR/{JUNIT_FILE}")
    junit.add_argument("--sla", metavar="SPEC", help="judge with this spec (else verdict.json)")
    junit.add_argument(
        "--allow-inconclusive",
        action="store_true",
        help="report INCONCLUSIVE objectives as skipped, not failed",
    )
    markdown = commands.add_parser("markdown", help="a markdown summary for a CI job page")
    markdown.add_argument("run_dir", metavar="RUN_DIR")
    markdown.add_argument("-o", "--output", type=Path, help="default: standard output")
    markdown.add_argument("--sla", metavar="SPEC", help="judge with this spec (else verdict.json)")
    _add_capacity_commands(commands)
    return parser


def _add_capacity_commands(commands: argparse._SubParsersAction[_Parser]) -> None:
    cap = commands.add_parser("capacity", help="the HTML report of a capacity search")
    cap.add_argument("sweep_dir", metavar="SWEEP_DIR")
    cap.add_argument("-o", "--output", type=Path, help=f"default SWEEP_DIR/{REPORT_FILE}")
    cmp_ = commands.add_parser("capacity-compare", help="compare capacity searches")
    cmp_.add_argument("sweeps", nargs="+", metavar="SWEEP_DIR", help="two or more")
    cmp_.add_argument(
        "--label",
        action="append",
        metavar="LABEL",
        help="a name per sweep, in order (repeat; default: the directory names)",
    )
    cmp_.add_argument("-o", "--output", type=Path, required=True, help="the HTML file to write")


def _render(args: argparse.Namespace) -> None:
    reading = read_run(load_run(args.run_dir))
    verdict = resolve_verdict(reading, args.sla)
    text = render_report(reading, verdict, window_s=args.window)
    path = write_html(text, args.output or reading.path / REPORT_FILE)
    print(f"report written to {path}")


def _compare(args: argparse.Namespace) -> None:
    baseline, candidate = load_run(args.baseline), load_run(args.candidate)
    comparison = compare(baseline, candidate, max_regression=args.max_regression, seed=args.seed)
    text = render_comparison(baseline, candidate, comparison)
    path = write_html(text, args.output or candidate.path / COMPARISON_FILE)
    print(f"comparison written to {path}")


def _junit(args: argparse.Namespace) -> None:
    run = load_run(args.run_dir)
    verdict = resolve_verdict(run, args.sla)
    if verdict is None:
        raise ReportError(f"{run.path} has no verdict.json; pass --sla SPEC to judge it")
    text = junit_xml(verdict, allow_inconclusive=args.allow_inconclusive)
    path = write_html(text, args.output or run.path / JUNIT_FILE)
    print(f"JUnit XML written to {path}")


def _markdown(args: argparse.Namespace) -> None:
    reading = read_run(load_run(args.run_dir))
    text = markdown_summary(reading, resolve_verdict(reading, args.sla))
    if args.output is None:
        sys.stdout.write(text)
    else:
        write_html(text, args.output)


def _capacity(args: argparse.Namespace) -> None:
    path = write_capacity_report(args.sweep_dir, args.output)
    print(f"capacity report written to {path}")


def _capacity_compare(args: argparse.Namespace) -> None:
    if len(args.sweeps) < 2:
        raise ReportError("capacity-compare needs at least two sweep directories")
    text = render_capacity_comparison(args.sweeps, args.label, out_dir=args.output.parent)
    path = write_html(text, args.output)
    print(f"capacity comparison written to {path}")


def _default_command(first: str) -> str:
    """``render``, or ``capacity`` for a sweep directory (it has no run.json)."""
    path = Path(first)
    if (path / CAPACITY_FILE).is_file() and not (path / RUN_JSON).exists():
        return "capacity"
    return "render"


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] not in COMMANDS and not args_list[0].startswith("-"):
        args_list.insert(0, _default_command(args_list[0]))
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")  # ≤ and ✅ on a non-UTF-8 terminal
    try:
        args = build_parser().parse_args(args_list)
        handlers = {
            "render": _render,
            "compare": _compare,
            "junit": _junit,
            "markdown": _markdown,
            "capacity": _capacity,
            "capacity-compare": _capacity_compare,
        }
        handlers[args.command](args)
    except SlabenchError as exc:
        return report_error(exc, PROG)
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
