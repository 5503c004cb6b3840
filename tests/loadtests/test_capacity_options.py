"""Bad --capacity-search options are user errors of one line (``LoadSpecError``), read
from the real option parser by the real ``LoadOptions``/``SearchOptions``, in the order a
locust reads them (``loadtests.harness.events``). That such an error leaves Locust as that
one line and exit 2, with no traceback, is shown end to end in test_e2e_capacity_faults.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests.capacity.options import SearchOptions
from loadtests.errors import LoadSpecError
from loadtests.harness.options import LoadOptions
from loadtests.harness.options_doc import slabench_parser
from sla.errors import EXIT_USAGE, error_line

# (argv, what the one line says); "S" stands for a valid spec file.
BAD_SEARCH_OPTIONS = [
    (("--capacity-search",), "--capacity-search needs --sla"),
    (("--capacity-search", "--arrival-rate", "5", "--sla", "S"), "drop --arrival-rate"),
    (("--capacity-search", "--sla", "S", "--search-precision", "150%"), "below 100%"),
    (("--capacity-search", "--sla", "S", "--search-factor", "1"), "--search-factor"),
    (("--capacity-search", "--sla", "S", "--step-time", "0"), "--step-time"),
    (("--capacity-search", "--sla", "S", "--cost-per-hour", "-1"), "--cost-per-hour"),
    (("--capacity-search", "--sla", "S", "--master"), "--processes N"),
    (("--capacity-search", "--sla", "S", "--search-mode", "concurrency",
      "--search-start", "1.5"), "whole number"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), BAD_SEARCH_OPTIONS)
def test_bad_search_options_are_one_line_errors(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nobjectives:\n  - {metric: latency_ms, stat: p50, max: 5s}\n")
    argv = [str(spec) if a == "S" else a for a in args if a != "--master"]
    ns = slabench_parser().parse_args(argv)
    ns.master = "--master" in args  # a Locust option: Locust's parser sets it
    with pytest.raises(LoadSpecError) as raised:
        LoadOptions.from_namespace(ns)
        SearchOptions.from_namespace(ns)
    line = error_line(raised.value)  # as the locust prints it (harness.events)
    assert line.startswith("slabench: error: ") and "\n" not in line, line
    assert message in line, line
    assert raised.value.exit_code == EXIT_USAGE
