"""The measurement contract and the SLA judge (pure: pandas/numpy/pyarrow/yaml only)."""

from __future__ import annotations

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

__all__ = [
    "CANCELLED_ERROR",
    "REQUESTS_SCHEMA",
    "REQUEST_COLUMNS",
    "SCHEMA_VERSION",
    "RequestRecord",
    "Run",
    "RunDirError",
    "itl_ms",
    "load_run",
    "measured",
    "measured_window_s",
    "strip_credentials",
    "throughput",
    "with_request_metrics",
    "write_json_atomic",
]
