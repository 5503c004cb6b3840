"""The SLA gate as a project would write it (the README's GitHub Actions job runs this).

A short streamed-chat run on the bundled reference server, judged against the smoke SLA:
one test per objective. Sizes come from the ``sla_server_args`` ini setting.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from loadtests.gate.plugin import SlaObjective
from sla.files.run import Run


@pytest.fixture(scope="module")
def chat_run(sla_locust: Callable[..., Run]) -> Run:
    return sla_locust(
        "chat",
        users=4,
        run_time="6s",
        warmup="1s",
        extra=("--input-len", "fixed:32", "--output-len", "fixed:16"),
    )


@pytest.mark.e2e
@pytest.mark.sla_spec("sla/examples/smoke.yaml")
def test_chat_meets_the_smoke_sla(chat_run: Run, sla_objective: SlaObjective) -> None:
    sla_objective.check(chat_run)
