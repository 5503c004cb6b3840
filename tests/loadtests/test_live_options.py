"""``--sla-stop-early`` needs ``--sla`` and a live interval above 0: without them it is one
line and exit 2, decided from the parsed options alone (no Locust run)."""

from __future__ import annotations

import io

import pytest

from loadtests.harness.options import LoadOptions
from loadtests.harness.options_doc import slabench_parser
from sla.errors import SlabenchError, report_error


def _options(*argv: str) -> LoadOptions:
    return LoadOptions.from_namespace(slabench_parser().parse_args(list(argv)))


@pytest.mark.parametrize(
    "argv",
    [
        ("--sla-stop-early",),
        ("--sla-stop-early", "--live-interval", "5"),
        ("--sla-stop-early", "--sla", "spec.yaml", "--live-interval", "0"),
    ],
    ids=["alone", "without-sla", "live-off"],
)
def test_stop_early_without_sla_or_live_view_is_one_line_exit_2(argv: tuple[str, ...]) -> None:
    with pytest.raises(SlabenchError) as caught:
        _options(*argv)
    out = io.StringIO()
    assert report_error(caught.value, stream=out) == 2
    assert out.getvalue() == (
        "slabench: error: --sla-stop-early needs --sla SPEC and a --live-interval above 0\n"
    )


def test_stop_early_with_sla_and_live_view_is_accepted() -> None:
    options = _options("--sla-stop-early", "--sla", "spec.yaml", "--live-interval", "2")
    assert (options.sla_stop_early, options.live_interval_s) == (True, 2.0)
    # The environment variable sets it as the flag does, and is checked the same way.
    parser = slabench_parser()
    ns = parser.parse_args([], env_vars={"SLABENCH_SLA_STOP_EARLY": "true"})
    with pytest.raises(SlabenchError, match="--sla-stop-early needs --sla"):
        LoadOptions.from_namespace(ns)
