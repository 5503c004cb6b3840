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
program name with ``report_error``; programming errors stay tracebacks. A command line's
``__main__`` exits through ``run_command``, so that a reader that stops early
(``| head``) ends it quietly too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TextIO

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_USAGE",
    "SlabenchError",
    "error_line",
    "report_error",
    "run_command",
]

EXIT_USAGE = 2
# 128 + SIGPIPE: what a shell reports for a writer whose reader went away (``yes | head``).
EXIT_BROKEN_PIPE = 141


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


def run_command(main: Callable[[], int]) -> int:
    """``main()``'s exit code, its standard output flushed; ``EXIT_BROKEN_PIPE``, quietly,
    when the reader closed it early (``python -m sla check ... | head``): Python ignores
    SIGPIPE, so the write raises ``BrokenPipeError``, a traceback to the user."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout once more at exit, which would fail and print again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code
