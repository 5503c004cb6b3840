"""Bounded-memory, crash-tolerant writer of ``requests.parquet`` and ``run.json``.

Rows are buffered in per-column Python lists; every ``flush_rows`` rows, and at every
``flush()`` (which ``loadtests.harness.rundir.RunSession`` calls each ``--flush-interval``),
make a part,
``requests.parts/part-NNNNN.parquet``, a complete parquet file written under a temporary
name and renamed into place. A process killed hard loses at most the rows of the part not
yet renamed, and ``sla.files.run.load_run`` still reads the parts. ``close()`` merges the
parts into ``requests.parquet`` one part at a time, so memory stays bounded by one part
however many millions of requests a run records. The parts are written by
``loadtests.recording.parts.PartsWriter``, which the Prometheus scraper uses too.

The part in progress is written ``batch_rows`` rows at a time (one row group each): each
write blocks the calling thread for a couple of milliseconds instead of tens of milliseconds
for a whole part at once, a pause that every stream in flight would see in its timings.

A failed write (disk full, file too large) raises ``RecordingError`` from ``add``,
``add_rows``, ``flush`` or ``close``, and so does every later write: the rows not written
stay counted (``count``) and the complete parts readable (``written`` rows). So does a row
that ``REQUESTS_SCHEMA`` cannot hold (the readers of answers check every count they keep, so
this is a bug, not a target's fault): the other rows of its batch are written and their
part completed; it alone is left out, counted (see ``loadtests.recording.parts``).

Thread-safety: ``add``/``add_rows`` take no lock. Call them from gevent greenlets of one OS
thread only (as Locust does); they never yield to the hub, so a greenlet switch cannot split
a row.

Usage::

    recorder = RequestRecorder(run_dir)
    recorder.add(record)            # per request, from the Locust process
    recorder.add_rows(batch)        # tuples in REQUEST_COLUMNS order, from remote workers
    total = recorder.close()        # requests.parquet written, parts removed
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any

from loadtests.recording import parts
from loadtests.recording.parts import PartsWriter, RecordingError
from sla.files.jsonio import write_json_atomic
from sla.files.run import (
    PARTS_DIR,
    REQUEST_COLUMNS,
    REQUESTS_FILE,
    REQUESTS_SCHEMA,
    RUN_JSON,
    SCHEMA_VERSION,
    RequestRecord,
    RunDirError,
    strip_credentials,
)

__all__ = [
    "RecordingError",
    "RequestRecorder",
    "finish_run_json",
    "merge_parts",
    "records_to_rows",
    "start_run_json",
]

_URL_KEYS = ("target_url", "host")
_ROW_OF = attrgetter(*REQUEST_COLUMNS)
# Dictionary-encode only the low-cardinality strings: on unique floats and ids a dictionary is
# wasted work, and it made each flush use ~4x the memory and ~3x the time.
_DICTIONARY_COLUMNS = [
    "worker",
    "endpoint",
    "error",
    "output_tokens_source",
    "error_class",
    "session_id",
    "server_timing_source",
]
_BATCH_ROWS = 2_000


class RequestRecorder:
    """Collects ``RequestRecord`` rows and writes them to ``run_dir`` in bounded memory."""

    def __init__(
        self, run_dir: Path, *, flush_rows: int = 20_000, batch_rows: int = _BATCH_ROWS
    ) -> None:
        self._run_dir = Path(run_dir)
        parts_dir = self._run_dir / PARTS_DIR
        if (self._run_dir / REQUESTS_FILE).exists() or parts_dir.exists():
            raise RunDirError(
                f"{self._run_dir} already holds recorded requests; use a fresh run directory"
            )
        self._parts = PartsWriter(
            parts_dir,
            REQUESTS_SCHEMA,
            noun="requests",
            part_rows=flush_rows,
            batch_rows=batch_rows,
            dictionary=_DICTIONARY_COLUMNS,
        )
        parts_dir.mkdir(parents=True)  # a run killed before its first part still loads
        self._closed = False

    @property
    def failed(self) -> RecordingError | None:
        """The write error that stopped the recording, if one did."""
        return self._parts.failed

    @property
    def count(self) -> int:
        """Rows recorded so far, written or still buffered."""
        return self._parts.count

    @property
    def written(self) -> int:
        """Rows in complete parts (all of them once closed): what a reader finds on disk."""
        return self._parts.written

    def add(self, rec: RequestRecord) -> None:
        """Buffer one request; writes every ``batch_rows`` rows to the part in progress,
        which is complete (renamed into place) at ``flush_rows``."""
        if self._closed:
            raise RuntimeError("RequestRecorder.add() after close()")
        # Unrolled on purpose: this runs once per request on the load generator's hot path.
        c = self._parts.columns
        c[0].append(rec.request_id)
        c[1].append(rec.worker)
        c[2].append(rec.endpoint)
        c[3].append(rec.scheduled_at)
        c[4].append(rec.sent_at)
        c[5].append(rec.first_token_at)
        c[6].append(rec.done_at)
        c[7].append(rec.status)
        c[8].append(rec.error)
        c[9].append(rec.input_tokens)
        c[10].append(rec.output_tokens)
        c[11].append(rec.output_tokens_source)
        c[12].append(rec.chunk_count)
        c[13].append(rec.chunk_gaps_ms)
        c[14].append(rec.error_class)
        c[15].append(rec.backoff_ms)
        c[16].append(rec.session_id)
        c[17].append(rec.turn)
        c[18].append(rec.cached_tokens)
        c[19].append(rec.reasoning_tokens)
        c[20].append(rec.first_output_at)
        c[21].append(rec.server_queue_ms)
        c[22].append(rec.server_prefill_ms)
        c[23].append(rec.server_decode_ms)
        c[24].append(rec.server_total_ms)
        c[25].append(rec.server_timing_source)
        c[26].append(rec.client_processing_ms)
        self._parts.added()

    def add_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """Buffer rows given as tuples in ``REQUEST_COLUMNS`` order (batches from workers)."""
        if self._closed:
            raise RuntimeError("RequestRecorder.add_rows() after close()")
        self._parts.add_rows(rows)

    def flush(self) -> None:
        """Write the buffered rows and finish the part in progress as the next complete part
        file (no-op when nothing is buffered or in progress)."""
        self._parts.finish_part()

    def close(self) -> int:
        """Flush, merge the parts into ``requests.parquet``, remove the parts; return the count.

        Idempotent: a second call returns the same count and writes nothing.
        """
        count = self._parts.close(self._run_dir / REQUESTS_FILE)
        self._closed = True
        return count


def merge_parts(parts_dir: Path, target: Path) -> int:
    """Merge the request parts of ``parts_dir`` into ``target`` (``parts.merge_parts``):
    finishes a run whose recorder was killed before ``close()``."""
    return parts.merge_parts(parts_dir, target, REQUESTS_SCHEMA, _DICTIONARY_COLUMNS)


def start_run_json(run_dir: Path, meta: Mapping[str, Any]) -> dict[str, Any]:
    """Create ``run_dir/run.json`` from ``meta``; return what was written.

    ``schema_version`` is always set to the version this code writes, and the URLs under
    ``target_url``/``host`` lose their credentials, whatever the caller passed.
    """
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    written = {**meta, "schema_version": SCHEMA_VERSION}
    _strip_urls(written)
    write_json_atomic(Path(run_dir) / RUN_JSON, written)
    return written


def finish_run_json(run_dir: Path, updates: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` into an existing ``run.json`` (atomically); return the result."""
    path = Path(run_dir) / RUN_JSON
    try:
        current = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunDirError(f"cannot update {path} ({exc}); call start_run_json first") from exc
    merged = {**current, **updates, "schema_version": current.get("schema_version")}
    _strip_urls(merged)
    write_json_atomic(path, merged)
    return merged


def _strip_urls(meta: dict[str, Any]) -> None:
    for key in _URL_KEYS:
        if isinstance(meta.get(key), str):
            meta[key] = strip_credentials(meta[key])


def records_to_rows(records: Iterable[RequestRecord]) -> list[tuple[Any, ...]]:
    """Tuples in ``REQUEST_COLUMNS`` order, the wire form for ``add_rows`` (workers -> master)."""
    return [_ROW_OF(rec) for rec in records]
