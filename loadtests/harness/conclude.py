"""The end of a run on the master (or the single local process): the closed run directory
is loaded once, read once, and that one reading is summarised, judged and rendered."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from loadtests.harness.state import RunState
from loadtests.harness.terminal import format_summary, generator_warnings, timing_error_line
from reports.summary import RunSummary, summarize_run
from sla.errors import EXIT_USAGE, SlabenchError
from sla.files.run import load_run
from sla.files.verdict import write_verdict
from sla.reading import Reading, read_run
from sla.table import format_table
from sla.verdict import Verdict, evaluate, exit_code

__all__ = ["conclude"]

log = logging.getLogger("slabench")


def conclude(path: Path, meta: dict[str, Any], state: RunState) -> None:
    """Read the closed run once, then summarise, judge and render that one reading."""
    try:
        reading = read_run(load_run(path))
    except SlabenchError as exc:
        log.error("slabench: cannot read back %s: %s", path, exc)
        if state.spec is not None:
            state.exit_code = EXIT_USAGE
        return
    summary = _summarize(reading)
    _warn(meta, state)
    verdict = _judge(reading, state) if state.spec is not None else None
    if state.options.write_report:
        _write_html(reading, verdict, summary)


def _summarize(reading: Reading) -> RunSummary | None:
    try:
        summary = summarize_run(reading)
    except ValueError as exc:
        log.error("slabench: could not summarise %s: %s", reading.path, exc)
        return None
    print(format_summary(str(reading.path), summary), flush=True)
    return summary


def _judge(reading: Reading, state: RunState) -> Verdict:
    """--sla: judge the whole run (every worker's records) and decide the exit code."""
    assert state.spec is not None
    verdict = evaluate(state.spec, reading)
    write_verdict(reading.path, verdict)
    print(format_table(verdict), flush=True)
    state.exit_code = exit_code(verdict, allow_inconclusive=state.options.sla_allow_inconclusive)
    return verdict


def _write_html(reading: Reading, verdict: Verdict | None, summary: RunSummary | None) -> None:
    """The HTML report; a failure here is logged and never changes the exit code."""
    from reports.render import write_report  # plotly: imported only when a report is written

    try:
        written = write_report(reading, verdict, summary=summary)
    except (SlabenchError, OSError, ValueError) as exc:
        log.error("slabench: no report.html for %s: %s", reading.path, exc)
        return
    print(f"slabench: report {written}", flush=True)


def _warn(meta: dict[str, Any], state: RunState) -> None:
    timing = timing_error_line(meta.get("generator"))
    if timing is not None:
        print(timing, flush=True)
    for warning in generator_warnings(meta.get("generator")):
        print(f"slabench: WARNING: {warning}", flush=True)
    if state.embedded is not None and not state.embedded.alive():
        print(
            "slabench: WARNING: the bundled reference server exited during the run:\n"
            + "".join(list(state.embedded.output)[-10:]),
            flush=True,
        )
