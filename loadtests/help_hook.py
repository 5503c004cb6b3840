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


def install() -> None:
    argv = getattr(sys, "argv", None) or []
    if not argv or os.path.basename(argv[0]) != "locust":
        return
    if "--help" not in argv and "-h" not in argv:
        return
    from locust import events

    from loadtests.options import add_options

    def _add(parser: Any, **_: Any) -> None:
        add_options(parser)

    events.init_command_line_parser.add_listener(_add)
