"""``python -m loadtests options``: list slabench's Locust options, however it was installed.

Locust prints ``locust --help`` before it imports the locustfile, so the options a scenario
registers show there only when a start-up hook has registered them first. This command
needs none:

    python -m loadtests options              # as --help shows them, with environment variables
    python -m loadtests options --markdown   # the table of docs/load-tests.md
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from loadtests.harness.options_doc import current_table, options_help
from sla.errors import run_command

USAGE = "usage: python -m loadtests options [--markdown]"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args in ([], ["-h"], ["--help"], ["options"]):
        print(options_help(), end="")
        return 0
    if args == ["options", "--markdown"]:
        print(current_table())
        return 0
    print(
        f"{USAGE}\npython -m loadtests: error: unknown arguments {' '.join(args)}", file=sys.stderr
    )
    return 2


if __name__ == "__main__":
    sys.exit(run_command(main))
