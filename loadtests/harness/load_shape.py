"""Closed-loop load shapes selected with ``--shape`` (steps, ramp, spike).

The syntax is in ``loadtests.workloads.shapes``; this is the thin Locust adapter around it.
"""

from __future__ import annotations

from collections.abc import Callable

from locust import LoadTestShape

from loadtests.client.clock import now
from loadtests.workloads.shapes import StagedShape, run_time_s


class ConfiguredShape(LoadTestShape):
    """Installed as ``environment.shape_class`` when ``--shape`` is given.

    The stages count from the run's ``started_at`` (``started_at()``, on slabench's clock;
    None before the run has begun), the zero that run.json, the records and the reports
    share. Locust's own clock for a shape starts at its first tick, which is what starts the
    test: the run's start work (a garbage collection, the run directory, the monitors) comes
    after it (53-120 ms with three test workers on two cores, more than 0.2 s once), and
    every stage would begin that much early."""

    abstract = True  # never picked up from a locustfile by itself

    def __init__(self, spec: StagedShape, started_at: Callable[[], float | None]) -> None:
        super().__init__()
        self.spec = spec
        self._started_at = started_at
        self._reset_at = now()

    def reset_time(self) -> None:
        super().reset_time()
        self._reset_at = now()

    def tick(self) -> tuple[int, float] | None:
        return self.spec.at(run_time_s(now(), self._started_at(), self._reset_at))
