"""Bad load option values are user errors of one line, read from the real option parser by
the real ``LoadOptions`` and dataset loader, in the order a locust reads them
(``loadtests.harness.events``). That such an error leaves Locust as that one line and exit
2 before any load, with no traceback and no run directory, is shown end to end in
test_e2e_failures.py."""

from __future__ import annotations

import pytest

from loadtests.harness.options import LoadOptions
from loadtests.harness.options_doc import slabench_parser
from loadtests.workloads.datasets import load_dataset
from sla.errors import EXIT_USAGE, SlabenchError, error_line

BAD_LOAD_OPTIONS = [
    (("--arrival-rate", "-1"), "--arrival-rate"),
    (("--arrival-rate", "nan"), "--arrival-rate"),
    (("--shape", "bogus"), "shape 'bogus'"),
    (("--warmup", "soon"), "--warmup"),
    (("--max-inflight", "0"), "--max-inflight"),
    (("--input-len", "fixed:-3"), "fixed:-3"),
    (("--request-timeout", "0"), "--request-timeout"),
    (("--max-loop-lag", "0"), "--max-loop-lag"),
    (("--shape", "steps:users=1,step=1s", "--arrival-rate", "5"), "--shape"),
    (("--insecure", "--ca-bundle", "x.pem"), "--insecure checks no certificate"),
    (("--ca-bundle", "missing.pem"), "--ca-bundle 'missing.pem': no PEM certificates"),
]


def _read(argv: tuple[str, ...]) -> None:
    options = LoadOptions.from_namespace(slabench_parser().parse_args(list(argv)))
    load_dataset(
        options.dataset,
        input_len=options.input_len,
        output_len=options.output_len,
        seed=options.seed,
        chars_per_token=options.chars_per_token or 4.0,
    )


@pytest.mark.parametrize(
    ("option", "fragment"),
    BAD_LOAD_OPTIONS,
    ids=lambda v: "_".join(v) if isinstance(v, tuple) else None,
)
def test_bad_option_value_is_one_line_error(option: tuple[str, ...], fragment: str) -> None:
    with pytest.raises(SlabenchError) as raised:
        _read(option)
    line = error_line(raised.value)
    assert line.startswith("slabench: error: ") and "\n" not in line, line
    assert fragment in line, line
    assert raised.value.exit_code == EXIT_USAGE


def test_the_options_of_a_good_run_read_without_error() -> None:
    _read(("--arrival-rate", "5", "--warmup", "1s", "--input-len", "fixed:16"))
