"""Bad load option values are user errors of one line, read from the real option parser by
the real ``LoadOptions`` and dataset loader, in the order a locust reads them
(``loadtests.harness.events``). That such an error leaves Locust as that one line and exit
2 before any load, with no traceback and no run directory, is shown end to end in
test_e2e_failures.py."""

from __future__ import annotations

import pytest

from loadtests.client.transport import Target, TargetError
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
    (("--poll-interval-ms", "-1"), "--poll-interval-ms -1.0 must be 0 to 100 milliseconds"),
    (("--poll-interval-ms", "nan"), "--poll-interval-ms"),
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


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("ftp://127.0.0.1:8000", ""),
        ("garbage", ""),
        ("http://", ""),
        ("http://127.0.0.1:99999", "(Port out of range 0-65535)"),
        ("http://127.0.0.1:abc", "(Port could not be cast to integer value as 'abc')"),
        ("http://[::1", "(Invalid IPv6 URL)"),
    ],
)
def test_a_bad_host_is_one_line_error(host: str, why: str) -> None:
    with pytest.raises(TargetError) as raised:
        Target.parse(host)
    line = error_line(raised.value)
    assert line == f"slabench: error: --host {host!r} must look like http://HOST:PORT[/prefix]" + (
        f" {why}" if why else ""
    )
    assert raised.value.exit_code == EXIT_USAGE


def test_good_hosts_parse() -> None:
    assert Target.parse("http://127.0.0.1:8000/v1/") == Target("http://127.0.0.1:8000", "/v1")
    assert Target.parse("https://[::1]:443").base_url == "https://[::1]:443"


def test_a_warmup_as_long_as_the_load_is_one_line_before_any_load() -> None:
    ns = slabench_parser().parse_args(["--warmup", "10s"])
    ns.run_time = 3  # Locust's -t, in seconds by the time slabench reads it
    with pytest.raises(SlabenchError) as raised:
        LoadOptions.from_namespace(ns)
    assert error_line(raised.value) == (
        "slabench: error: --warmup 10s is not shorter than the load (-t: 3 s): nothing would "
        "be measured; shorten the warm-up or run longer"
    )
    ns.run_time = 11
    assert LoadOptions.from_namespace(ns).warmup_s == 10.0
    shape = slabench_parser().parse_args(["--warmup", "1m", "--shape", "steps:users=1,step=5s"])
    with pytest.raises(SlabenchError, match=r"\(--shape: "):
        LoadOptions.from_namespace(shape)


def test_a_bad_host_is_read_with_the_options() -> None:
    ns = slabench_parser().parse_args([])
    ns.host = "http://127.0.0.1:99999"  # Locust's --host
    with pytest.raises(TargetError, match=r"Port out of range"):
        LoadOptions.from_namespace(ns)
