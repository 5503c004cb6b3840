"""The measurement contract and the SLA judge (pure: pandas/numpy/pyarrow/yaml only).

- ``sla.records``: the run directory (schema, ``load_run``).
- ``sla.metrics``: metric definitions computed from the records.
- ``sla.spec``: SLA spec files; ``sla.verdict``: ``evaluate(spec, run) -> Verdict``;
  ``sla.compare``: a candidate run against a baseline. ``python -m sla check|compare``.
"""

from __future__ import annotations

from sla.compare import Comparison, compare, format_comparison, parse_max_regression
from sla.metrics import itl_ms, measured, measured_window_s, throughput, with_request_metrics
from sla.records import (
    CANCELLED_ERROR,
    REQUEST_COLUMNS,
    REQUESTS_SCHEMA,
    SCHEMA_VERSION,
    RequestRecord,
    Run,
    RunDirError,
    load_run,
    strip_credentials,
    write_json_atomic,
)
from sla.spec import Objective, Spec, SpecError, load_spec, parse_spec
from sla.table import format_table
from sla.verdict import (
    EXIT_FAIL,
    EXIT_INCONCLUSIVE,
    EXIT_PASS,
    EXIT_SATURATED,
    EXIT_USAGE,
    ObjectiveResult,
    Status,
    Verdict,
    evaluate,
    exit_code,
    write_verdict,
)

__all__ = [
    "CANCELLED_ERROR",
    "EXIT_FAIL",
    "EXIT_INCONCLUSIVE",
    "EXIT_PASS",
    "EXIT_SATURATED",
    "EXIT_USAGE",
    "REQUESTS_SCHEMA",
    "REQUEST_COLUMNS",
    "SCHEMA_VERSION",
    "Comparison",
    "Objective",
    "ObjectiveResult",
    "RequestRecord",
    "Run",
    "RunDirError",
    "Spec",
    "SpecError",
    "Status",
    "Verdict",
    "compare",
    "evaluate",
    "exit_code",
    "format_comparison",
    "format_table",
    "itl_ms",
    "load_run",
    "load_spec",
    "measured",
    "measured_window_s",
    "parse_max_regression",
    "parse_spec",
    "strip_credentials",
    "throughput",
    "with_request_metrics",
    "write_json_atomic",
    "write_verdict",
]
