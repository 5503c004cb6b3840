"""The measurement contract and the SLA judge (pure: pandas/numpy/pyarrow/yaml only).

- ``sla.errors``: ``SlabenchError``, the one base of user errors, and ``report_error``.
- ``sla.files``: one module per file format, reader and writer together: ``run``
  (run.json, requests.parquet, its parts), ``server_metrics``, ``verdict``, ``capacity``.
- ``sla.metrics``: metric definitions computed from the records; ``sla.reading``: the one
  reading of a run (its measured window and per-request metrics, derived once).
- ``sla.spec``: SLA spec files; ``sla.verdict``: ``evaluate(spec, run) -> Verdict``, judged
  on ``sla.samples`` objective by objective (``sla.objectives``);
  ``sla.table``/``sla.fmt``: how verdicts and numbers print; ``sla.compare``: a candidate
  run against a baseline; ``sla.capacity``/``sla.search``: capacity policy.
  ``python -m sla check|compare``.
"""

from __future__ import annotations

from sla.compare import Comparison, compare, format_comparison, parse_max_regression
from sla.errors import SlabenchError, report_error
from sla.files.jsonio import write_json_atomic
from sla.files.run import (
    CANCELLED_ERROR,
    CANCELLED_ERRORS,
    REQUEST_COLUMNS,
    REQUESTS_SCHEMA,
    SCHEMA_VERSION,
    RequestRecord,
    Run,
    RunDirError,
    load_run,
    strip_credentials,
)
from sla.files.verdict import load_verdict, write_verdict
from sla.metrics import itl_ms, throughput, with_request_metrics
from sla.objectives import ObjectiveResult, Status
from sla.reading import Reading, read_run
from sla.spec import Objective, Spec, SpecError, load_spec, parse_spec
from sla.table import format_table
from sla.verdict import (
    EXIT_FAIL,
    EXIT_INCONCLUSIVE,
    EXIT_PASS,
    EXIT_SATURATED,
    EXIT_USAGE,
    Verdict,
    evaluate,
    exit_code,
)

__all__ = [
    "CANCELLED_ERROR",
    "CANCELLED_ERRORS",
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
    "Reading",
    "RequestRecord",
    "Run",
    "RunDirError",
    "SlabenchError",
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
    "load_verdict",
    "parse_max_regression",
    "parse_spec",
    "read_run",
    "report_error",
    "strip_credentials",
    "throughput",
    "with_request_metrics",
    "write_json_atomic",
    "write_verdict",
]
