"""Closed-loop load shapes selected with ``--shape`` (steps, ramp, spike).

The syntax is in ``loadtests.workloads.shapes``; this is the thin Locust adapter around it.
"""

from __future__ import annotations

from locust import LoadTestShape

from loadtests.workloads.shapes import StagedShape


class ConfiguredShape(LoadTestShape):
    """Installed as ``environment.shape_class`` when ``--shape`` is given."""

    abstract = True  # never picked up from a locustfile by itself

    def __init__(self, spec: StagedShape) -> None:
        super().__init__()
        self.spec = spec

    def tick(self) -> tuple[int, float] | None:
        return self.spec.at(self.get_run_time())
