"""Three counts for one run: every recorded row is measured, warm-up, cancelled, late or
without a start, exactly once; the end-of-run line says so and run.json, the summary and
the verdict agree with it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loadtests.harness.terminal import format_summary, reconciliation
from reports import summarize_run
from sla.files.run import CANCELLED_ERROR, load_run
from sla.files.verdict import load_verdict
from tests.loadtests.conftest import SMALL_LOAD, RunLocust
from tests.reports import Req, write_run
from tests.server_process import ServerProcess

REPO = Path(__file__).resolve().parents[2]
LINE = re.compile(
    r"recorded (\d+) = measured (\d+) \+ warm-up (\d+) \+ cancelled (\d+) "
    r"\+ after the end (\d+); run\.json requests (\d+)\n"
)
T0 = 1_700_000_000.0


def test_every_recorded_row_is_counted_once(tmp_path: Path) -> None:
    reqs = [
        Req(at_s=0.2, latency_s=0.1),  # warm-up
        Req(at_s=0.5, latency_s=0.1, status=0, error=CANCELLED_ERROR),  # cancelled in warm-up
        *[Req(at_s=1.0 + i, latency_s=0.1) for i in range(6)],  # measured
        Req(at_s=3.0, latency_s=0.1, status=0, error="dropped: in flight", ttft_s=None),
        Req(at_s=9.5, latency_s=0.5, status=0, error=CANCELLED_ERROR),  # cancelled
        Req(at_s=10.2, latency_s=0.1),  # started after ended_at (a worker stopping late)
    ]
    meta = {"measured_from": T0 + 1.0, "dropped": 1, "requests": 11}
    run = load_run(write_run(tmp_path / "run", reqs, duration_s=10.0, meta=meta))
    s = summarize_run(run)
    assert (s.recorded, s.measured, s.warmup, s.cancelled, s.late) == (11, 7, 1, 2, 1)
    assert s.accounted == s.recorded == len(run.requests)
    assert s.run_json_requests == 11
    assert reconciliation(s) == (
        "  recorded 11 = measured 7 + warm-up 1 + cancelled 2 + after the end 1; "
        "run.json requests 11; 1 dropped sends are failed rows among these"
    )
    assert reconciliation(s) in format_summary("run", s)


def test_a_disagreeing_run_json_is_flagged(tmp_path: Path) -> None:
    meta = {"requests": 5}
    run = load_run(write_run(tmp_path / "run", [Req(at_s=1.0, latency_s=0.1)], meta=meta))
    assert "run.json requests 5 DISAGREES" in reconciliation(summarize_run(run))


def test_requests_that_could_not_be_written_are_counted_beside_the_rows(tmp_path: Path) -> None:
    """After a failed write run.json counts every request that ended, the file only those
    written: the line adds them up instead of flagging a disagreement."""
    meta = {"requests": 11, "requests_not_written": 9, "status": "write_failed"}
    reqs = [Req(at_s=1.0, latency_s=0.1), Req(at_s=2.0, latency_s=0.1)]
    s = summarize_run(load_run(write_run(tmp_path / "run", reqs, meta=meta)))
    assert reconciliation(s).endswith(
        "; run.json requests 11 = 2 written + 9 not written (a write failed)"
    )
    meta["requests_not_written"] = 8
    s = summarize_run(load_run(write_run(tmp_path / "other", reqs, meta=meta)))
    assert reconciliation(s).endswith("= 3 written + 8 not written (a write failed) DISAGREES")


@pytest.mark.e2e
def test_the_counts_agree_on_a_real_run(
    run_locust: RunLocust, reference_server: ServerProcess
) -> None:
    server = reference_server
    result = run_locust(
        "chat",
        *("--host", server.url, "-u", "6", "-r", "6", "-t", "5s"),
        *("--warmup", "2s", "--sla", str(REPO / "sla/examples/smoke.yaml")),
        *SMALL_LOAD,
        *("--output-len", "fixed:48"),  # answers long enough to be cut off at the end
        timeout_s=90,
    )
    found = LINE.search(result.output)
    assert found, result.output
    recorded, measured, warmup, cancelled, late, in_json = map(int, found.groups())
    assert recorded == measured + warmup + cancelled + late
    # Every category is exercised by the synthetic run above; a real run may end with no
    # request in flight (the users' last answers can all land before the stop).
    assert warmup >= 1, found.group(0)
    run = load_run(result.run_dir)
    assert recorded == in_json == run.meta["requests"] == len(run.requests)
    s = summarize_run(run)
    assert (s.measured, s.warmup, s.cancelled, s.late) == (measured, warmup, cancelled, late)
    verdict = load_verdict(result.run_dir)
    assert verdict is not None
    assert (verdict.counts.recorded, verdict.counts.measured) == (recorded, measured)


@pytest.mark.parametrize(
    ("reqs", "why"),
    [
        ([], "none was sent (check -u, --arrival-rate and the target)"),
        (
            [Req(at_s=9.0 + i / 10, latency_s=5.0, status=0, error=CANCELLED_ERROR)
             for i in range(3)],
            "all 3 were cut off by the end of the test (cancelled); give -t longer than the "
            "target takes to answer",
        ),
        ([Req(at_s=0.2, latency_s=0.1)], "every request fell in the warm-up"),
    ],
    ids=["none sent", "all cancelled", "all in the warm-up"],
)  # fmt: skip
def test_a_run_that_measured_nothing_says_so(tmp_path: Path, reqs: list[Req], why: str) -> None:
    meta = {"measured_from": T0 + 1.0, "requests": len(reqs)}
    run = load_run(write_run(tmp_path / "run", reqs, duration_s=10.0, meta=meta))
    text = format_summary("run", summarize_run(run))
    assert "  WARNING: no request was measured, so this run says nothing about the target: " in text
    assert why in text
    measured = [Req(at_s=2.0, latency_s=0.1)]
    ok = load_run(write_run(tmp_path / "ok", measured, duration_s=10.0, meta=meta))
    assert "no request was measured" not in format_summary("run", summarize_run(ok))
