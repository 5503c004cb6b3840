"""The one base of the errors a user can cause, and the one place that reports them.

    SlabenchError                 a user error: str() is one line saying what and how to fix
    ├── sla.spec.SpecError        an SLA spec that cannot be used
    ├── sla.files.run.RunDirError a run directory (or its verdict.json) that cannot be read
    ├── sla.files.capacity.CapacityError  a sweep directory / capacity.json that cannot be read
    ├── reports.errors.ReportError        a report that cannot be made (or a bad argument)
    ├── dashboards.view.DashboardError    a figure option that cannot be used
    └── loadtests.errors.DatasetError, LoadSpecError

Every entry point (``python -m sla``, ``python -m reports``, Locust's listeners, the pytest
gate) catches ``SlabenchError`` and turns it into ``slabench: error: ...`` or its own
program name with ``report_error``; programming errors stay tracebacks.
"""

from __future__ import annotations

import sys
from typing import TextIO

__all__ = ["EXIT_USAGE", "SlabenchError", "error_line", "report_error"]

EXIT_USAGE = 2


class SlabenchError(Exception):
    """A user error. The message is folded onto one line, whatever the caller passed;
    ``exit_code`` is what a command line exits with (2: bad input)."""

    exit_code: int = EXIT_USAGE

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.splitlines()))


def error_line(exc: SlabenchError, prog: str = "slabench") -> str:
    """The one line a user sees: ``<prog>: error: <message>``."""
    return f"{prog}: error: {exc}"


def report_error(exc: SlabenchError, prog: str = "slabench", stream: TextIO | None = None) -> int:
    """Print ``error_line`` on ``stream`` (stderr) and return the exit code to use."""
    print(error_line(exc, prog), file=stream if stream is not None else sys.stderr)
    return exc.exit_code
