"""For benchmarks/measurement_accuracy.py: measured chat streams plus background load.

``MeasuredChat``: ``SLABENCH_BENCH_MEASURED_USERS`` (8) streaming chat users against
``--host`` (the scripted server, which times its own sends), started
``SLABENCH_BENCH_STAGGER_S`` apart, each recording under its own endpoint label ("chat-0"
.. "chat-7"). Also used by benchmarks/floor.py.
``Background`` (only when ``SLABENCH_BENCH_BACKGROUND_USERS`` > 0): streaming completions
users against ``SLABENCH_BENCH_CANNED_URL`` (benchmarks/canned_server.py), together at
most ``SLABENCH_BENCH_BACKGROUND_RATE`` requests/s, to keep the generator busy; they are
recorded too, under the endpoint "completions".
"""

from __future__ import annotations

import itertools
import os
from dataclasses import replace

import gevent
from locust import constant_throughput

from loadtests.client.transport import Target, Transport
from loadtests.harness.state import run_state
from loadtests.harness.users import OpenAIChatUser, OpenAICompletionsUser

MEASURED_USERS = int(os.environ.get("SLABENCH_BENCH_MEASURED_USERS", "8"))
STAGGER_S = float(os.environ.get("SLABENCH_BENCH_STAGGER_S", "0.025"))
BACKGROUND_USERS = int(os.environ.get("SLABENCH_BENCH_BACKGROUND_USERS", "0"))
BACKGROUND_RATE = float(os.environ.get("SLABENCH_BENCH_BACKGROUND_RATE", "0"))
CANNED_URL = os.environ.get("SLABENCH_BENCH_CANNED_URL", "")
_slots = itertools.count()


class MeasuredChat(OpenAIChatUser):
    fixed_count = MEASURED_USERS
    slot = 0

    def on_start(self) -> None:
        super().on_start()
        self.slot = next(_slots)
        gevent.sleep(self.slot * STAGGER_S)

    def measured_request(self) -> None:
        """The base class's request, labelled with this user's slot ("chat-3"): each user
        has one connection, so the benchmark can pair its rows with the server's records
        of that connection, one by one."""
        state = run_state(self.environment)
        state.send(self.transport, replace(state.prepare(type(self)), endpoint=f"chat-{self.slot}"))


# Replaces the inherited task (a subclass's @task would run alongside it, not instead).
MeasuredChat.tasks = [MeasuredChat.measured_request]


if BACKGROUND_USERS > 0:

    class Background(OpenAICompletionsUser):
        fixed_count = BACKGROUND_USERS
        wait_time = constant_throughput(BACKGROUND_RATE / BACKGROUND_USERS)

        def on_start(self) -> None:
            state = run_state(self.environment)
            self.transport = Transport(
                Target.parse(CANNED_URL),
                concurrency=1,
                connect_timeout_s=10.0,
                network_timeout_s=state.options.idle_timeout_s + 5.0,
                headers={"Accept-Encoding": "identity", "Content-Type": "application/json"},
            )
            self.backoff = state.new_backoff()  # what the inherited request task waits by
