"""Timestamped request traces, read as a stream: which request is due when, and its sizes.

    trace = open_trace(TraceSpec("mooncake.jsonl", speedup=10.0, start_s=60, duration_s=300))
    trace.rows                     # requests in the window (the whole file is checked first)
    for row in trace.iter_rows():  # again, from the file: memory does not grow with it
        ...  # send at t0 + row.offset_s, max_tokens = row.output_tokens

Formats, told apart by content (a JSON object per line, or a CSV header):
- **Mooncake** JSONL: ``timestamp`` (ms), ``input_length``, ``output_length`` (tokens),
  ``hash_ids`` (a list of integers, one per block of prompt tokens; optional), and an
  optional ``session_id``.
- **Azure** LLM inference trace CSV: ``TIMESTAMP`` (a date and time, e.g.
  ``2023-11-16 18:15:46.6805900``), ``ContextTokens``, ``GeneratedTokens``.
- **BurstGPT** CSV: ``Timestamp`` (seconds), ``Request tokens``, ``Response tokens``; its
  other columns (``Model``, ``Total tokens``, ``Log Type``...) are ignored.

Trace time 0 is the first row's time. The window holds the rows at ``start_s <= t <
start_s + duration_s`` (trace seconds); a row is due ``(t - start_s) / speedup`` seconds
into the replay. Times must not decrease from row to row: a trace out of order is refused
(sort it by time), since replaying it sorted would change what it recorded. Rows with 0
input or output tokens (BurstGPT's failed requests) are skipped and counted. Any other bad
row is refused with one line naming the file, the line and the fix.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NoReturn

from loadtests.errors import DatasetError

__all__ = ["Trace", "TraceRow", "TraceSpec", "for_worker", "open_trace"]

TraceFormat = Literal["mooncake", "azure", "burstgpt"]
_SIZE_SAMPLE = 100_000
_AZURE = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
_BURSTGPT = ("Timestamp", "Request tokens", "Response tokens")
_FORMATS_HINT = (
    "give a Mooncake JSONL trace (timestamp, input_length, output_length, hash_ids), an Azure "
    "LLM trace CSV (TIMESTAMP, ContextTokens, GeneratedTokens) or a BurstGPT CSV (Timestamp, "
    "Request tokens, Response tokens)"
)


@dataclass(frozen=True, slots=True)
class TraceSpec:
    """What to replay: the file, its speed-up and its window (trace seconds; None: to the end)."""

    path: str
    speedup: float = 1.0
    start_s: float = 0.0
    duration_s: float | None = None
    block_size: int = 512


@dataclass(frozen=True, slots=True)
class TraceRow:
    """One request of a trace. ``index``: its place in the window (from 0); ``line``: in the
    file (from 1, unique: it names the row's own text); ``offset_s``: due this long after
    the replay's start."""

    index: int
    line: int
    offset_s: float
    input_tokens: int
    output_tokens: int
    hash_ids: tuple[int, ...] = ()
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class _Raw:
    line: int
    t_s: float  # the trace's own clock (seconds; ms / 1000 for Mooncake)
    input_tokens: int
    output_tokens: int
    hash_ids: tuple[int, ...] = ()
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class Trace:
    """A trace file checked over its window: its format, rows and skipped rows."""

    spec: TraceSpec
    format: TraceFormat
    rows: int
    skipped: int
    span_s: float  # trace seconds from the window's start to its last row
    # The median input and output tokens of the window's first rows (up to _SIZE_SAMPLE).
    median_sizes: tuple[float, float] = (0.0, 0.0)

    def iter_rows(self) -> Iterator[TraceRow]:
        """The window's rows, read again from the file."""
        return _window(self.spec, self.format)

    def describe(self) -> dict[str, Any]:
        s = self.spec
        return {
            "path": s.path,
            "format": self.format,
            "rows": self.rows,
            "skipped": self.skipped,
            "start_s": s.start_s,
            "duration_s": s.duration_s,
            "span_s": self.span_s,
            "speedup": s.speedup,
            "replay_s": self.span_s / s.speedup,
            "block_size": s.block_size,
        }


def open_trace(spec: TraceSpec) -> Trace:
    """Detect the format and check the window's rows (one pass, constant memory)."""
    fmt = detect_format(spec.path)
    rows, last, skipped = 0, 0.0, [0]
    inputs: list[int] = []
    outputs: list[int] = []
    for row in _window(spec, fmt, skipped):
        rows += 1
        last = row.offset_s * spec.speedup
        if rows <= _SIZE_SAMPLE:
            inputs.append(row.input_tokens)
            outputs.append(row.output_tokens)
    if rows == 0:
        raise DatasetError(
            f"trace {spec.path}: no requests in the window (--trace-start {spec.start_s:g}, "
            f"--trace-duration {spec.duration_s if spec.duration_s is not None else 'all'}); "
            "widen the window or check the file"
        )
    sizes = (statistics.median(inputs), statistics.median(outputs))
    return Trace(spec, fmt, rows, skipped[0], last, sizes)


def for_worker(rows: Iterator[TraceRow], index: int, count: int) -> Iterator[TraceRow]:
    """Worker ``index`` of ``count``'s rows: every ``count``-th, from its own index on."""
    return (row for row in rows if row.index % count == index)


def detect_format(path: str) -> TraceFormat:
    with _open(path) as fh:
        for line in fh:
            if line.strip():
                break
        else:
            _bad(path, None, f"the file is empty; {_FORMATS_HINT}")
    if line.lstrip().startswith("{"):
        return "mooncake"
    header = next(csv.reader([line]))
    names = {h.strip() for h in header}
    if set(_AZURE) <= names:
        return "azure"
    if set(_BURSTGPT) <= names:
        return "burstgpt"
    _bad(path, 1, f"unknown trace format (columns: {', '.join(header)[:120]}); {_FORMATS_HINT}")


def _open(path: str) -> io.TextIOWrapper:
    try:
        return open(path, encoding="utf-8-sig", newline="")  # the caller closes it
    except FileNotFoundError:
        _bad(path, None, f"file not found; {_FORMATS_HINT}")
    except OSError as exc:
        _bad(path, None, f"cannot read it ({exc.strerror})")


def _bad(path: str, line: int | None, why: str) -> NoReturn:
    where = f"trace {path}" + (f" line {line}" if line is not None else "")
    raise DatasetError(f"{where}: {why}")


def _window(
    spec: TraceSpec, fmt: TraceFormat, skipped: list[int] | None = None
) -> Iterator[TraceRow]:
    end = math.inf if spec.duration_s is None else spec.start_s + spec.duration_s
    first: float | None = None
    previous = -math.inf
    index = 0
    with _open(spec.path) as fh:
        for raw in _raws(spec.path, fmt, fh):
            if raw.t_s < previous:
                _bad(
                    spec.path,
                    raw.line,
                    f"its time is before the previous row's ({raw.t_s:g} s < {previous:g} s); "
                    "sort the trace by time",
                )
            previous = raw.t_s
            first = raw.t_s if first is None else first
            t = raw.t_s - first
            if t >= end:
                return
            if raw.input_tokens == 0 or raw.output_tokens == 0:
                if skipped is not None and t >= spec.start_s:
                    skipped[0] += 1
                continue
            if t < spec.start_s:
                continue
            yield TraceRow(
                index,
                raw.line,
                (t - spec.start_s) / spec.speedup,
                raw.input_tokens,
                raw.output_tokens,
                raw.hash_ids,
                raw.session_id,
            )
            index += 1


def _raws(path: str, fmt: TraceFormat, fh: io.TextIOWrapper) -> Iterator[_Raw]:
    if fmt == "mooncake":
        return _mooncake(path, fh)
    return _csv_rows(path, fmt, fh)


def _mooncake(path: str, fh: io.TextIOWrapper) -> Iterator[_Raw]:
    for lineno, line in enumerate(fh, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            _bad(path, lineno, f"not valid JSON ({exc.msg}); each line must be one JSON object")
        if not isinstance(obj, dict):
            _bad(path, lineno, "expected a JSON object per line")
        ts = obj.get("timestamp")
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not ts >= 0:
            _bad(path, lineno, '"timestamp" must be a number of milliseconds >= 0')
        hash_ids = obj.get("hash_ids", [])
        if not isinstance(hash_ids, list) or not all(
            isinstance(h, int) and not isinstance(h, bool) for h in hash_ids
        ):
            _bad(path, lineno, '"hash_ids" must be a list of integers')
        session = obj.get("session_id")
        yield _Raw(
            lineno,
            float(ts) / 1000.0,
            _count(path, lineno, "input_length", obj.get("input_length")),
            _count(path, lineno, "output_length", obj.get("output_length")),
            tuple(hash_ids),
            None if session is None else str(session),
        )


def _count(path: str, line: int, name: str, value: Any) -> int:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        _bad(path, line, f'"{name}" must be a whole number of tokens >= 0, got {value!r}')
    return value


def _csv_rows(path: str, fmt: TraceFormat, fh: io.TextIOWrapper) -> Iterator[_Raw]:
    reader = csv.reader(fh)
    header = [h.strip() for h in next(reader)]
    t_col, in_col, out_col = _AZURE if fmt == "azure" else _BURSTGPT
    at = {name: header.index(name) for name in (t_col, in_col, out_col)}
    for values in reader:
        lineno = reader.line_num
        if not values or not any(v.strip() for v in values):
            continue
        if len(values) < len(header):
            _bad(path, lineno, f"{len(values)} columns where the header has {len(header)}")
        text = values[at[t_col]].strip()
        yield _Raw(
            lineno,
            _azure_time(path, lineno, text) if fmt == "azure" else _seconds(path, lineno, text),
            _count(path, lineno, in_col, values[at[in_col]]),
            _count(path, lineno, out_col, values[at[out_col]]),
        )


def _azure_time(path: str, line: int, text: str) -> float:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        _bad(path, line, f"TIMESTAMP {text[:40]!r} is not a date and time like 2023-11-16 18:15:46")
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()  # no local clock changes


def _seconds(path: str, line: int, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        _bad(path, line, f"Timestamp {text[:40]!r} must be a number of seconds >= 0")
    return value
