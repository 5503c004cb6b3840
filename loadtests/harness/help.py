"""Make ``locust --help`` list slabench's options.

Locust prints ``--help`` before it imports the locustfile, so options registered by a
scenario never show there. ``scripts/install.sh`` puts a one-line ``.pth`` file in the
environment that calls ``install()`` at interpreter start-up; it does nothing unless the
process is ``locust ... --help``.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def wants_locust_help(argv: list[str]) -> bool:
    """True for ``locust ... --help`` and ``python -m locust ... --help``."""
    is_locust = any(
        os.path.basename(arg) == "locust" or (arg == "locust" and argv[i - 1] == "-m")
        for i, arg in enumerate(argv[:3])
    )
    return is_locust and ("--help" in argv or "-h" in argv)


def install() -> None:
    if not wants_locust_help(list(getattr(sys, "orig_argv", None) or sys.argv or [])):
        return
    from locust import events

    from loadtests.harness.options import add_options

    def _add(parser: Any, **_: Any) -> None:
        add_options(parser)

    events.init_command_line_parser.add_listener(_add)
