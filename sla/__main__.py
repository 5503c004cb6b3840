"""Command line: judge a saved run, or compare two runs.

    python -m sla check RUN_DIR SPEC [--allow-inconclusive] [--no-write]
    python -m sla compare BASELINE_RUN CANDIDATE_RUN --max-regression 10% [--confidence 0.95]

``check`` prints the verdict table, writes ``RUN_DIR/verdict.json`` and exits 0 PASS, 1 FAIL,
3 INCONCLUSIVE, 4 load generator saturated (see ``sla.verdict``). ``compare`` prints the
table and exits 1 when a metric regressed, else 0. Bad input exits 2 with one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from sla.compare import compare, format_comparison, parse_max_regression
from sla.errors import SlabenchError, report_error, run_command
from sla.files.run import load_run
from sla.files.verdict import write_verdict
from sla.spec import load_spec
from sla.table import format_table
from sla.verdict import evaluate, exit_code

PROG = "python -m sla"


class UsageError(SlabenchError):
    """Bad command-line input; str() is one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse would print the whole usage block; one line is easier to read in CI logs.
        raise UsageError(f"{message} (see {self.prog} --help)")


def _fraction(text: str) -> float:
    try:
        return parse_max_regression(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _confidence(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.5 < value < 1:
        raise argparse.ArgumentTypeError(f"confidence {text!r} must be in (0.5, 1), like 0.95")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Judge slabench runs against SLAs and baselines.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser("check", help="judge a saved run against an SLA spec")
    check.add_argument("run_dir", metavar="RUN_DIR", help="a slabench run directory")
    check.add_argument("spec", metavar="SPEC", help="an SLA spec YAML file")
    check.add_argument(
        "--allow-inconclusive", action="store_true", help="exit 0 instead of 3 on INCONCLUSIVE"
    )
    check.add_argument("--no-write", action="store_true", help="do not write verdict.json")
    cmp_ = commands.add_parser("compare", help="compare a candidate run with a baseline run")
    cmp_.add_argument("baseline", metavar="BASELINE_RUN")
    cmp_.add_argument("candidate", metavar="CANDIDATE_RUN")
    cmp_.add_argument(
        "--max-regression", type=_fraction, required=True, help="tolerated worsening, e.g. 10%%"
    )
    cmp_.add_argument("--confidence", type=_confidence, default=0.95, help="default 0.95")
    cmp_.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    return parser


def _check(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    run = load_run(args.run_dir)
    verdict = evaluate(spec, run)
    print(format_table(verdict))
    if not args.no_write:
        try:
            path = write_verdict(run.path, verdict)
        except OSError as exc:
            msg = f"cannot write {run.path}/verdict.json ({exc}); pass --no-write"
            raise UsageError(msg) from exc
        print(f"verdict written to {path}")
    return exit_code(verdict, allow_inconclusive=args.allow_inconclusive)


def _compare(args: argparse.Namespace) -> int:
    baseline, candidate = load_run(args.baseline), load_run(args.candidate)
    comparison = compare(
        baseline,
        candidate,
        max_regression=args.max_regression,
        confidence=args.confidence,
        seed=args.seed,
    )
    print(format_comparison(comparison))
    return comparison.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")  # ≤ and – on a non-UTF-8 terminal
    try:
        args = build_parser().parse_args(argv)
        return _check(args) if args.command == "check" else _compare(args)
    except SlabenchError as exc:
        return report_error(exc, PROG)


if __name__ == "__main__":
    sys.exit(run_command(main))
