"""Open-loop load against the real server: latency counted from the scheduled send time
shows a stalled server (no coordinated omission), late sends are measured as schedule lag,
sends over the in-flight bound are recorded as dropped, and the arrival rate is met."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sla.files.run import UNSENT_ERROR, load_run
from sla.metrics import with_request_metrics
from sla.reading import read_run
from tests.loadtests.conftest import SMALL_LOAD, LocustRun, RunLocust
from tests.server_process import ServerProcess

pytestmark = pytest.mark.e2e

StartServer = Callable[..., ServerProcess]
DROPPED_PREFIX = "dropped: "
# The server's scheduler stops for the last second of every three.
STALL = ("--fault-stall-every", "3", "--fault-stall-duration", "1")


def measured_rows(result: LocustRun) -> tuple[pd.DataFrame, dict[str, Any]]:
    assert result.code == 0, result.output
    run = load_run(result.run_dir)
    return read_run(run).measured, run.meta


def test_open_loop_shows_a_stall_that_closed_loop_hides(
    run_locust: RunLocust, start_server: StartServer
) -> None:
    server = start_server(*STALL)
    # Two-token answers: many closed-loop requests, for a p99 that means something.
    load = (*SMALL_LOAD, "--output-len", "fixed:2")
    common = ("--host", server.url, "-u", "1", "-r", "1", "-t", "5s", *load)
    # The open-loop schedule starts 0.5 s into the run: its 4.5 s hold a whole 1 s stall
    # that ends before the run does.
    opened, _ = measured_rows(
        run_locust("chat", *common, "--arrival-rate", "20", "--arrival", "constant")
    )
    closed, _ = measured_rows(run_locust("chat", *common))

    assert opened["ok"].all() and closed["ok"].all()
    assert opened["scheduled_at"].notna().all() and closed["scheduled_at"].isna().all()
    open_p99 = float(np.percentile(opened["latency_ms"], 99))
    closed_p99 = float(np.percentile(closed["latency_ms"], 99))
    # Open loop: every request due during a stall waits for its end.
    assert open_p99 >= 800.0
    slow_open = float((opened["latency_ms"] >= 500.0).mean())
    assert slow_open >= 0.05
    # Closed loop: the one user waits out each stall in a single request and sends
    # nothing meanwhile, so the stall hides among many fast requests: at most 1% of them
    # are slow (how many fast ones there are depends on the machine's load).
    slow_closed = int((closed["latency_ms"] >= 500.0).sum())
    assert slow_closed <= 3
    assert len(closed) >= max(100, 100 * slow_closed), "too few closed-loop requests"
    assert closed_p99 < 500.0
    # The open-loop sends themselves stayed on time: the latency is the server's.
    assert float(np.percentile(opened["schedule_lag_ms"], 50)) < 20.0


def test_open_loop_records_lag_and_dropped_sends(
    run_locust: RunLocust, start_server: StartServer
) -> None:
    server = start_server(*STALL)
    result = run_locust(
        "chat",
        *("--host", server.url, "-u", "1", "-r", "1", "-t", "4s", *SMALL_LOAD),
        *("--arrival-rate", "40", "--arrival", "constant", "--max-inflight", "2"),
    )

    # Dropped sends are failed requests: Locust exits 1 as for any error.
    assert result.code == 1, result.output
    run = load_run(result.run_dir)
    df = with_request_metrics(run.requests)
    dropped = df[df["error"].str.startswith(DROPPED_PREFIX, na=False)]
    sent = df[df["sent_at"].notna()]
    # On a busy machine the stop can come before a just-spawned send ran: kept, as cancelled.
    unsent = df[df["error"] == UNSENT_ERROR]
    # During the stall two requests hang and every later slot finds the bound reached.
    assert len(dropped) >= 10
    assert run.meta["dropped"] == len(dropped)
    assert run.meta["generator"]["processes"][0]["dropped"] == len(dropped)
    assert len(dropped) + len(sent) + len(unsent) == len(df)
    assert unsent["sent_at"].isna().all() and (unsent["error_class"] == "cancelled").all()
    assert dropped["sent_at"].isna().all() and (dropped["status"] == 0).all()
    assert dropped["scheduled_at"].notna().all()
    assert sent["schedule_lag_ms"].notna().all()
    assert (sent["schedule_lag_ms"] >= 0).all()
    # Every slot of the schedule is accounted for: sent, dropped, or stopped before it left.
    slots = np.sort(df["scheduled_at"].to_numpy())
    np.testing.assert_allclose(np.diff(slots), 1.0 / 40, atol=1e-6)
    assert (dropped["error_class"] == "dropped").all()
    assert f"error dropped x{len(dropped)} (no response), e.g.: {DROPPED_PREFIX}" in result.output
    # Open loop keeps its schedule whatever the answers: no arrival waits for a back-off.
    assert (df["backoff_ms"] == 0).all()


# Alone: beside other test workers its sends spanned 1.6 and 1.8 s of the 3 s run at 10/s
# (>= 2.0 asked), twice in about fifteen runs of this file beside two others.
@pytest.mark.alone
@pytest.mark.parametrize("rate_rps", [10.0, 50.0])
def test_constant_arrival_rate_is_met(
    run_locust: RunLocust, reference_server: ServerProcess, rate_rps: float
) -> None:
    result = run_locust(
        "chat",
        *("--host", reference_server.url, "-u", "1", "-r", "1", "-t", "3s", *SMALL_LOAD),
        *("--arrival-rate", str(rate_rps), "--arrival", "constant"),
    )
    df, meta = measured_rows(result)

    assert df["ok"].all()
    profile = meta["load_profile"]
    assert (profile["mode"], profile["arrival"], profile["arrival_rate_rps"]) == (
        "open",
        "constant",
        rate_rps,
    )
    sent = np.sort(df["sent_at"].to_numpy())
    span_s = sent[-1] - sent[0]
    assert span_s >= 2.0
    # Sends follow one another at the rate: the typical gap between two of them, which a
    # few sends delayed by a busy machine do not move (the span from the first to the last
    # send does).
    assert float(np.median(np.diff(sent))) == pytest.approx(1.0 / rate_rps, rel=0.05)
    # On time: a loaded 2-core CI machine may delay a few sends, not the schedule.
    assert float(np.percentile(df["schedule_lag_ms"], 50)) < 20.0
    assert float(np.percentile(df["schedule_lag_ms"], 99)) < 250.0
    # scheduled_at is the schedule itself (exactly 1/rate apart), not the actual send time.
    slots = np.sort(df["scheduled_at"].to_numpy())
    np.testing.assert_allclose(np.diff(slots), 1.0 / rate_rps, atol=1e-6)
    assert (df["schedule_lag_ms"] > 0).all()
