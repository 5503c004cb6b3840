"""The run directory: the contract between the load generator and everything that reads a run.

A run directory holds::

    run.json                 metadata; always carries ``schema_version``
    requests.parquet         one row per request (``REQUESTS_SCHEMA``)
    requests.parts/          part-NNNNN.parquet, present only while recording or after a hard kill
    server_metrics.parquet   optional Prometheus samples scraped from the target
    server_metrics.parts/    its parts, likewise (see ``sla.files.server_metrics``)

Timestamps are float64 seconds since the Unix epoch and are never rounded: every metric is
derived from them (see ``sla.metrics``), so a report can be rebuilt from the files alone.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sla.errors import SlabenchError
from sla.files.error_class import fill_error_classes
from sla.files.fields import Fields
from sla.files.jsonio import check_schema_version, read_json_object
from sla.files.parts import part_paths
from sla.files.server_metrics import read_server_metrics

SCHEMA_VERSION = 1

RUN_JSON = "run.json"
# run.json's times (seconds since the epoch; null or absent where unknown).
_TIME_FIELDS = ("started_at", "measured_from", "ended_at")
REQUESTS_FILE = "requests.parquet"
PARTS_DIR = "requests.parts"

# The error of a request cut off because the test ended: recorded (so that counts match what
# the target saw) but not a failure of the target, so not part of the measured window.
CANCELLED_ERROR = "cancelled: the test stopped while the request was in flight"
# ... and of an open-loop send whose greenlet the stop killed before it ran: never sent.
UNSENT_ERROR = "cancelled: the test stopped before the request was sent"
# Every error that marks a row as cancelled (no other text does).
CANCELLED_ERRORS = (CANCELLED_ERROR, UNSENT_ERROR)

REQUESTS_SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.string()),
        pa.field("worker", pa.string()),
        pa.field("endpoint", pa.string()),
        pa.field("scheduled_at", pa.float64()),  # NaN in closed-loop mode
        pa.field("sent_at", pa.float64()),  # NaN: open-loop send dropped at the in-flight bound
        pa.field("first_token_at", pa.float64()),  # NaN: no token arrived / not streaming
        pa.field("done_at", pa.float64()),
        pa.field("status", pa.int32()),  # HTTP status; 0 when no response
        pa.field("error", pa.string()),  # null when OK
        pa.field("input_tokens", pa.int32()),
        pa.field("output_tokens", pa.int32()),
        pa.field("output_tokens_source", pa.string()),  # "usage" | "chunks" | null
        pa.field("chunk_count", pa.int32()),
        pa.field("chunk_gaps_ms", pa.list_(pa.float64())),
        pa.field("error_class", pa.string()),  # null when OK; see sla.files.error_class
        pa.field("backoff_ms", pa.float64()),  # closed-loop wait after this request; 0 if none
        pa.field("session_id", pa.string()),  # the conversation a turn belongs to; null if none
        pa.field("turn", pa.int32()),  # 1 for a conversation's first request; null if none
        pa.field("cached_tokens", pa.int32()),  # usage.prompt_tokens_details; null: not said
        pa.field("reasoning_tokens", pa.int32()),  # usage.completion_tokens_details; null: not said
        pa.field("first_output_at", pa.float64()),  # first non-empty visible text; NaN: none
        # What the server said of its own time (ms; NaN: not said, never 0), and by which
        # convention (``SERVER_TIMING_SOURCES``; null: none). See loadtests.client.server_timings.
        pa.field("server_queue_ms", pa.float64()),
        pa.field("server_prefill_ms", pa.float64()),
        pa.field("server_decode_ms", pa.float64()),
        pa.field("server_total_ms", pa.float64()),
        pa.field("server_timing_source", pa.string()),
        # The load generator's own time: the last byte read to the record built (ms; NaN: none)
        pa.field("client_processing_ms", pa.float64()),
    ],
    metadata={"slabench.schema_version": str(SCHEMA_VERSION)},
)
REQUEST_COLUMNS: tuple[str, ...] = tuple(REQUESTS_SCHEMA.names)
# Columns added after schema 1 was first written: a file without them is read with the error
# class derived from status and error, and the others null (unknown; NaN for the float
# times in ``_NAN_COLUMNS``).
ADDED_COLUMNS = (
    "error_class",
    "backoff_ms",
    "session_id",
    "turn",
    "cached_tokens",
    "reasoning_tokens",
    "first_output_at",
    "server_queue_ms",
    "server_prefill_ms",
    "server_decode_ms",
    "server_total_ms",
    "server_timing_source",
    "client_processing_ms",
)
# Added float columns read as NaN, not null, from a file without them: a time not taken.
_NAN_COLUMNS = (
    "first_output_at",
    "server_queue_ms",
    "server_prefill_ms",
    "server_decode_ms",
    "server_total_ms",
    "client_processing_ms",
)
# The conventions a request's server timings were read in (``server_timing_source``).
SERVER_TIMING_SOURCES = ("server-timing", "timings", "llama.cpp", "tgi")
_NULLABLE_INT_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "turn",
    "cached_tokens",
    "reasoning_tokens",
)


class RunDirError(SlabenchError):
    """A run directory that cannot be read; str() is one line saying what and how to fix it."""


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as recorded; field order is the column order of ``REQUESTS_SCHEMA``."""

    request_id: str
    worker: str
    endpoint: str
    scheduled_at: float
    sent_at: float
    first_token_at: float
    done_at: float
    status: int
    error: str | None
    input_tokens: int | None
    output_tokens: int | None
    output_tokens_source: str | None
    chunk_count: int
    chunk_gaps_ms: Sequence[float]
    error_class: str | None = None  # one of sla.files.error_class.ERROR_CLASSES; None if OK
    backoff_ms: float = 0.0  # how long the closed-loop user waited after this request
    session_id: str | None = None  # the conversation (multi-turn session) it belongs to
    turn: int | None = None  # its turn in that conversation, from 1
    cached_tokens: int | None = None  # prompt tokens the server reused (its usage says)
    reasoning_tokens: int | None = None  # completion tokens that were reasoning (usage)
    first_output_at: float = math.nan  # first non-empty visible (non-reasoning) text
    server_queue_ms: float = math.nan  # the server's own account of the request (ms)
    server_prefill_ms: float = math.nan
    server_decode_ms: float = math.nan
    server_total_ms: float = math.nan
    server_timing_source: str | None = None  # one of SERVER_TIMING_SOURCES
    client_processing_ms: float = math.nan  # the last byte read to this record built


@dataclass(frozen=True, slots=True, eq=False)
class Run:
    """A loaded run. ``from_parts`` is True when the run was never closed (killed hard)."""

    path: Path
    meta: dict[str, Any]
    requests: pd.DataFrame
    server_metrics: pd.DataFrame | None
    from_parts: bool = False

    @property
    def saturated(self) -> bool:
        """run.json ``generator.saturated``: the load generator could not deliver the load
        asked of it, so the run's timings are not trustworthy."""
        generator = self.meta.get("generator")
        return bool(isinstance(generator, dict) and generator.get("saturated"))

    @property
    def disturbed(self) -> tuple[str, ...]:
        """Why the load generator was disturbed (empty when it was not): the one test of
        disturbance. A process whose event loop ran later than ``--max-loop-lag`` for too
        much of the measured window (run.json ``generator.processes[].loop_lag.disturbed``)
        stamped its requests late by as much, so the run's timings are not trustworthy.
        Such a run is never a PASS. Runs recorded before the loop lag was measured have no
        such field and are not disturbed."""
        return disturbance_reasons(self.meta.get("generator"))

    @property
    def incomplete(self) -> tuple[str, ...]:
        """Why the run lacks data it should hold (empty when complete): the one test of
        completeness. A run read back from ``requests.parts/`` (never closed), a run.json
        ``status`` other than "complete", and workers that never handed over their records
        (``generator.missing_workers``) each add a reason. Such a run is never a PASS."""
        reasons = []
        if self.from_parts:
            reasons.append(f"it was never closed (read back from {PARTS_DIR}/)")
        status = self.meta.get("status")
        if status is None:
            reasons.append('run.json has no status (a complete run says "complete")')
        elif status != "complete":
            reasons.append(f'run.json status is "{status}", not "complete"')
        generator = self.meta.get("generator")
        missing = generator.get("missing_workers") if isinstance(generator, dict) else None
        if missing:
            names = ", ".join(str(m) for m in missing)
            reasons.append(f"workers never handed over their records: {names}")
        return tuple(reasons)


def disturbance_reasons(generator: object) -> tuple[str, ...]:
    """Why the load generator was disturbed (run.json ``generator``): one reason per process
    whose ``loop_lag`` says ``disturbed``, with its figures; empty when none was (and for
    runs recorded before the loop lag was measured)."""
    if not isinstance(generator, dict):
        return ()
    processes = generator.get("processes")
    reasons = [
        _disturbed_process(p)
        for p in (processes if isinstance(processes, list) else [])
        if isinstance(p, dict)
        and isinstance(p.get("loop_lag"), dict)
        and p["loop_lag"].get("disturbed")
    ]
    if not reasons and generator.get("disturbed"):
        reasons.append("run.json generator.disturbed is set")
    return tuple(reasons)


def loop_lag_error_ms(generator: object) -> tuple[float, float] | None:
    """How late the run's timestamps may be: (p99, max) in ms of its event-loop lag
    (run.json ``generator.loop_lag``, the worst process's). A read that completed while the
    loop was running late is stamped late by as much, so TTFT and E2E latency may read that
    much high. None for runs recorded before the loop lag was measured."""
    lag = generator.get("loop_lag") if isinstance(generator, dict) else None
    if not isinstance(lag, dict):
        return None
    p99, high = lag.get("p99_ms"), lag.get("max_ms")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (p99, high))
    return (float(p99), float(high)) if numbers else None  # type: ignore[arg-type]


def _disturbed_process(process: dict[str, Any]) -> str:
    lag = process["loop_lag"]
    worker = process.get("worker")
    name = "the load generator" if worker in (None, "local") else str(worker)
    text = (
        f"{name}'s event loop ran more than {_ms(lag.get('bound_ms'))} (--max-loop-lag) late "
        f"for {_percent(lag.get('late_share'))} of the measured time (lag p99 "
        f"{_ms(lag.get('p99_ms'))}, max {_ms(lag.get('max_ms'))})"
    )
    machine = process.get("machine_cpu")
    if isinstance(machine, dict) and isinstance(machine.get("others_mean_percent"), int | float):
        text += (
            f"; other processes used {machine['others_mean_percent']:.0f}% of the machine's "
            f"{machine.get('cores', '?')} cores"
        )
    return text


def _ms(value: object) -> str:
    return f"{value:.0f} ms" if isinstance(value, int | float) else "? ms"


def _percent(value: object) -> str:
    return f"{value:.1%}" if isinstance(value, int | float) else "?%"


def load_run(run_dir: str | os.PathLike[str]) -> Run:
    """Read a run directory; raise ``RunDirError`` when it is missing, corrupt or too new."""
    path = Path(run_dir)
    if not path.is_dir():
        problem = "is not a directory" if path.exists() else "does not exist"
        raise RunDirError(f"run directory {path} {problem}; pass the directory of a run")
    meta = _read_meta(path)
    table, from_parts = _read_requests(path)
    server_metrics = read_server_metrics(path, RunDirError)
    return Run(path, meta, requests_frame(table), server_metrics, from_parts)


def requests_frame(table: pa.Table) -> pd.DataFrame:
    """Convert a requests table to pandas, keeping float64 timestamps exact.

    The gap lists stay Arrow-backed (``pd.ArrowDtype``) so that a million rows do not become
    a million numpy objects; token counts become nullable ``Int32``.
    """
    df = table.to_pandas(
        types_mapper=lambda t: pd.ArrowDtype(t) if pa.types.is_list(t) else None,
    )
    for name in _NULLABLE_INT_COLUMNS:
        if name in df.columns:
            df[name] = df[name].astype("Int32")
    return df


def empty_requests_table() -> pa.Table:
    """A requests table with the schema and no rows."""
    return REQUESTS_SCHEMA.empty_table()


def _read_meta(path: Path) -> dict[str, Any]:
    meta_path = path / RUN_JSON
    if not meta_path.exists():
        raise RunDirError(f"{meta_path} is missing; {path} is not a complete slabench run")
    meta = read_json_object(meta_path, RunDirError, "; re-run the test")
    check_schema_version(
        meta.get("schema_version"), SCHEMA_VERSION, RunDirError, meta_path, f"{path} uses run"
    )
    # Checked once here, where the file comes in: every window (sla.reading) and report
    # reads these as numbers and the load profile as an object.
    fields = Fields(meta, RunDirError, f"{meta_path}: ")
    for key in _TIME_FIELDS:
        fields.opt_number(key)
    fields.obj("load_profile")
    return meta


def _read_requests(path: Path) -> tuple[pa.Table, bool]:
    file = path / REQUESTS_FILE
    if file.exists():
        return _conform(_read_parquet(file), file), False
    parts_dir = path / PARTS_DIR
    if not parts_dir.is_dir():
        raise RunDirError(f"{path} has neither {REQUESTS_FILE} nor {PARTS_DIR}/; no requests")
    tables = [_conform(_read_parquet(p), p) for p in part_paths(parts_dir)]
    if not tables:
        return empty_requests_table(), True
    return pa.concat_tables(tables), True


def _read_parquet(file: Path) -> pa.Table:
    try:
        return pq.read_table(file)
    except (OSError, pa.ArrowException) as exc:
        raise RunDirError(f"{file} is not a readable parquet file ({exc})") from exc


def _conform(table: pa.Table, file: Path) -> pa.Table:
    """Cast to ``REQUESTS_SCHEMA`` (extra columns are kept), or say which column is wrong.
    The ``ADDED_COLUMNS`` of a file written before them are filled in; so is the class of a
    failed row that has none."""
    missing = [n for n in REQUEST_COLUMNS if n not in table.column_names and n not in ADDED_COLUMNS]
    if missing:
        raise RunDirError(f"{file} lacks the columns {missing}; it was not written by slabench")
    table = _with_added_columns(table)
    for field in REQUESTS_SCHEMA:
        index = table.column_names.index(field.name)
        column = table.column(index)
        if column.type != field.type:
            try:
                column = column.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise RunDirError(
                    f"{file}: column {field.name} has type {column.type}, expected {field.type}"
                ) from exc
            table = table.set_column(index, field.name, column)
    return table


def _with_added_columns(table: pa.Table) -> pa.Table:
    """``table`` in ``REQUEST_COLUMNS`` order (extra columns after), ``error_class`` complete
    and the other ``ADDED_COLUMNS`` present (null when the file has none: unknown)."""
    if "error_class" not in table.column_names:
        classes = fill_error_classes(table.select(["status", "error"]).to_pandas())
        table = table.append_column(
            REQUESTS_SCHEMA.field("error_class"), pa.array(classes, pa.string())
        )
    else:
        table = _fill_missing_classes(table)
    for name in ADDED_COLUMNS[1:]:
        if name not in table.column_names:
            field = REQUESTS_SCHEMA.field(name)
            if name in _NAN_COLUMNS:  # a time not taken is NaN, as first_token_at's
                column = pa.array(np.full(table.num_rows, np.nan), pa.float64())
            else:
                column = pa.nulls(table.num_rows, field.type)
            table = table.append_column(field, column)
    extra = [name for name in table.column_names if name not in REQUEST_COLUMNS]
    return table.select([*REQUEST_COLUMNS, *extra])


def _fill_missing_classes(table: pa.Table) -> pa.Table:
    """The class of every failed row that has none, derived from its status and error."""
    status, error_class = table.column("status"), table.column("error_class")
    answered_ok = pc.and_(pc.greater_equal(status, 200), pc.less(status, 300))
    failed = pc.or_(pc.is_valid(table.column("error")), pc.invert(answered_ok))
    if not pc.any(pc.and_(failed, pc.is_null(error_class))).as_py():
        return table  # the usual case: the writer classed every failure
    frame = table.select(["status", "error", "error_class"]).to_pandas()
    classes = pa.array(fill_error_classes(frame), pa.string())
    index = table.column_names.index("error_class")
    return table.set_column(index, REQUESTS_SCHEMA.field("error_class"), classes)


_SECRET_PARAM = re.compile(r"key|token|password|passwd|secret|signature|auth", re.IGNORECASE)


def strip_credentials(url: str) -> str:
    """Drop ``user:password@`` and replace secret-looking query values by ``REDACTED``.

    Parameters whose name contains key, token, password, passwd, secret, signature or auth
    (``api_key``, ``apikey``, ``access_token``, ``X-Amz-Signature``...) are redacted; every
    other part of the URL is kept byte for byte.
    """
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = "&".join(_redact_param(p) for p in parts.query.split("&")) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _redact_param(param: str) -> str:
    name, sep, _ = param.partition("=")
    if sep and _SECRET_PARAM.search(unquote(name)):
        return f"{name}=REDACTED"
    return param
