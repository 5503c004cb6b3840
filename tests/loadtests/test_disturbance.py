"""The loop lag of a load-generator process, summarised and judged (``recording.disturbance``),
and the real monitors measuring it (``recording.monitors``): a gevent loop held up by a
blocking call is disturbed, an idle one is not. The monitors import gevent, so they run in
a subprocess (the pytest process stays unpatched and gevent-free)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from loadtests.recording.disturbance import (
    DEFAULT_MAX_LOOP_LAG_MS,
    DISTURBED_SHARE,
    merge_loop_lag,
    merge_machine_cpu,
    summarize_loop_lag,
    summarize_machine_cpu,
)

ROOT = Path(__file__).resolve().parents[2]


def test_the_late_share_weighs_a_stall_by_how_long_it_lasted() -> None:
    # 1 s watched at 20 ms: 49 punctual wake-ups and one 300 ms stall. A percentile of the
    # wake-ups hides it (p50 is 0); the time the loop was over 50 ms late does not.
    lags = [0.0] * 49 + [300.0]
    s = summarize_loop_lag(lags, 0.02, 50.0)
    assert s["samples"] == 50 and s["p50_ms"] == 0.0 and s["max_ms"] == 300.0
    assert s["late_share"] == pytest.approx(250.0 / (50 * 20.0 + 300.0), abs=1e-4)
    assert s["disturbed"] is True and s["bound_ms"] == 50.0


def test_lag_within_the_bound_never_disturbs() -> None:
    s = summarize_loop_lag([49.0] * 100, 0.02, 50.0)
    assert s["late_share"] == 0.0 and s["disturbed"] is False
    assert s["p99_ms"] == pytest.approx(49.0)


def test_the_share_must_exceed_one_percent() -> None:
    # 1000 wake-ups of 20 ms plus lag: 1% of that time over the bound is not yet disturbed.
    watched_ms = 1000 * 20.0
    over = DISTURBED_SHARE * watched_ms / (1 - DISTURBED_SHARE)  # lag over the bound
    just = summarize_loop_lag([0.0] * 999 + [50.0 + over * 0.99], 0.02, 50.0)
    past = summarize_loop_lag([0.0] * 999 + [50.0 + over * 1.05], 0.02, 50.0)
    assert just["disturbed"] is False and past["disturbed"] is True


def test_no_samples_is_not_disturbed() -> None:
    s = summarize_loop_lag([], 0.02, DEFAULT_MAX_LOOP_LAG_MS)
    assert s["samples"] == 0 and s["p99_ms"] is None and s["disturbed"] is False


def test_the_run_is_disturbed_when_any_process_was() -> None:
    calm = summarize_loop_lag([1.0] * 100, 0.02, 50.0)
    stalled = summarize_loop_lag([1.0] * 95 + [400.0] * 5, 0.02, 50.0)
    merged = merge_loop_lag([calm, stalled])
    assert merged is not None
    assert merged["disturbed"] is True and merged["processes"] == 2
    assert merged["samples"] == 200 and merged["max_ms"] == 400.0
    assert merged["late_share"] == stalled["late_share"]
    assert merge_loop_lag([calm, calm])["disturbed"] is False  # type: ignore[index]
    assert merge_loop_lag([{}, {}]) is None  # workers that measured nothing (older releases)


def test_machine_cpu_summary_and_merge() -> None:
    one = summarize_machine_cpu([10.0, 30.0], 2)
    assert one == {
        "samples": 2,
        "cores": 2,
        "others_mean_percent": 20.0,
        "others_max_percent": 30.0,
    }
    other = summarize_machine_cpu([50.0], 2)
    assert merge_machine_cpu([one, other]) == {
        "samples": 3,
        "cores": 2,
        "others_mean_percent": 50.0,
        "others_max_percent": 50.0,
    }
    assert summarize_machine_cpu([], 4)["others_mean_percent"] is None
    assert merge_machine_cpu([{}]) is None


MONITORS = textwrap.dedent(
    """
    import json, sys
    from gevent import monkey
    monkey.patch_all()
    import gevent
    from loadtests.client.clock import now
    from loadtests.recording.monitors import GeneratorMonitor

    block = monkey.get_original("time", "sleep")  # holds the whole loop, as CPU work would
    quiet = GeneratorMonitor()
    quiet.start()
    gevent.sleep(1.0)
    calm = quiet.stop(50.0)

    held = GeneratorMonitor()
    held.start()
    t0 = now()
    for _ in range(3):
        gevent.sleep(0.2)
        block(0.3)
    gevent.sleep(0.2)
    t_end = now()
    windowed = held.loop_lag.stop(50.0, since=t0 - 10.0, until=t0 - 5.0)  # before it all
    stalled = held.stop(50.0, since=t0, until=t_end)
    json.dump({"calm": calm, "stalled": stalled, "windowed": windowed}, sys.stdout)
    """
)


def test_real_monitors_tell_a_held_loop_from_a_quiet_one() -> None:
    done = subprocess.run(
        [sys.executable, "-c", MONITORS], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    calm, stalled = out["calm"], out["stalled"]
    assert stalled["loop_lag"]["disturbed"] is True, stalled
    # Three 300 ms holds: the monitor woke at least 250 ms late (it may have been due up to
    # 20 ms into a hold), and the loop was over 50 ms late for a good part of ~1.7 s.
    assert stalled["loop_lag"]["max_ms"] >= 250.0
    assert stalled["loop_lag"]["late_share"] >= 0.2
    assert stalled["loop_lag"]["samples"] >= 10
    # Nothing held the quiet loop: on a busy machine it may still be tens of ms late at
    # times, which is what the 50 ms bound and the 1% share leave room for.
    assert calm["loop_lag"]["samples"] >= 20 and calm["loop_lag"]["late_share"] < 0.2
    # ... and never woke more often than every 20 ms (the timer is reset at each wake-up).
    assert calm["loop_lag"]["samples"] <= 50
    # A window with no wake-ups in it has nothing to judge.
    assert out["windowed"]["samples"] == 0 and out["windowed"]["disturbed"] is False
    for summary in (calm, stalled):
        assert set(summary) == {"cpu", "loop_lag", "machine_cpu"}
        assert summary["machine_cpu"]["cores"] >= 1


def test_the_terminal_states_the_timing_error_the_loop_lag_implies() -> None:
    from loadtests.harness.terminal import timing_error_line
    from tests.sla.test_disturbed import CALM, generator

    line = timing_error_line(generator(CALM, [0.5] * 490 + [4.0] * 10))
    assert line == (
        "slabench: the load generator's event loop ran late by 4.00 ms at p99 (max 4.00 ms): "
        "its timestamps may be late by as much, so TTFT and latency may read up to 4.00 ms "
        "high at p99"
    )
    assert timing_error_line({"processes": [], "saturated": False}) is None  # an old run
    assert timing_error_line(None) is None
