"""Bounded-memory, crash-tolerant writer of ``requests.parquet`` and ``run.json``.

Rows are buffered in per-column Python lists; every ``flush_rows`` rows make a part,
``requests.parts/part-NNNNN.parquet``, a complete parquet file written under a temporary
name and renamed into place. A process killed hard loses at most the rows of the part not
yet renamed, and ``sla.files.run.load_run`` still reads the parts. ``close()`` merges the
parts into ``requests.parquet`` one part at a time, so memory stays bounded by one part
however many millions of requests a run records.

The part in progress is written ``batch_rows`` rows at a time (one row group each): each
write blocks the calling thread for a couple of milliseconds instead of tens of milliseconds
for a whole part at once, a pause that every stream in flight would see in its timings.

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
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sla.errors import SlabenchError
from sla.files.jsonio import unique_temp, write_json_atomic
from sla.files.run import (
    PARTS_DIR,
    REQUEST_COLUMNS,
    REQUESTS_FILE,
    REQUESTS_SCHEMA,
    RUN_JSON,
    SCHEMA_VERSION,
    RequestRecord,
    RunDirError,
    part_paths,
    strip_credentials,
)

_N_COLUMNS = len(REQUEST_COLUMNS)
_URL_KEYS = ("target_url", "host")
_ROW_OF = attrgetter(*REQUEST_COLUMNS)
# Dictionary-encode only the low-cardinality strings: on unique floats and ids a dictionary is
# wasted work, and it made each flush use ~4x the memory and ~3x the time.
_DICTIONARY_COLUMNS = ["worker", "endpoint", "error", "output_tokens_source"]
_BATCH_ROWS = 2_000
_PART_COMPRESSION = "snappy"  # parts are written on the hot path: the fastest codec
_FINAL_COMPRESSION = "zstd"  # the merge runs once, at the end: the smaller file


class RecordingError(SlabenchError):
    """A part could not be written (disk full, file too large...): the run must stop."""


class RequestRecorder:
    """Collects ``RequestRecord`` rows and writes them to ``run_dir`` in bounded memory."""

    def __init__(
        self, run_dir: Path, *, flush_rows: int = 20_000, batch_rows: int = _BATCH_ROWS
    ) -> None:
        if flush_rows < 1 or batch_rows < 1:
            raise ValueError(
                f"flush_rows and batch_rows must be >= 1, got {flush_rows}, {batch_rows}"
            )
        self._run_dir = Path(run_dir)
        self._parts_dir = self._run_dir / PARTS_DIR
        if (self._run_dir / REQUESTS_FILE).exists() or self._parts_dir.exists():
            raise RunDirError(
                f"{self._run_dir} already holds recorded requests; use a fresh run directory"
            )
        self._parts_dir.mkdir(parents=True)
        self._flush_rows = flush_rows
        self._batch_rows = min(batch_rows, flush_rows)
        self._columns: list[list[Any]] = [[] for _ in range(_N_COLUMNS)]
        self._buffered = 0  # rows in the lists
        self._in_part = 0  # rows written to the part in progress
        self._part: pq.ParquetWriter | None = None
        self._part_tmp: Path | None = None  # the part in progress, under a unique name
        self._flushed = 0  # rows in complete parts
        self._n_parts = 0
        self._closed = False
        self._failed: RecordingError | None = None

    @property
    def failed(self) -> RecordingError | None:
        """The write error that stopped the recording, if one did."""
        return self._failed

    @property
    def count(self) -> int:
        """Rows recorded so far, written or still buffered."""
        return self._flushed + self._in_part + self._buffered

    def add(self, rec: RequestRecord) -> None:
        """Buffer one request; writes every ``batch_rows`` rows to the part in progress,
        which is complete (renamed into place) at ``flush_rows``."""
        if self._closed:
            raise RuntimeError("RequestRecorder.add() after close()")
        # Unrolled on purpose: this runs once per request on the load generator's hot path.
        c = self._columns
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
        self._buffered += 1
        if self._buffered >= self._batch_rows:
            self._write_batch()

    def add_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """Buffer rows given as tuples in ``REQUEST_COLUMNS`` order (batches from workers)."""
        if self._closed:
            raise RuntimeError("RequestRecorder.add_rows() after close()")
        if not rows:
            return
        bad = next((row for row in rows if len(row) != _N_COLUMNS), None)
        if bad is not None:
            raise ValueError(f"a request row has {len(bad)} values, expected {_N_COLUMNS}")
        for column, values in zip(self._columns, zip(*rows, strict=True), strict=True):
            column.extend(values)
        self._buffered += len(rows)
        if self._buffered >= self._batch_rows:
            self._write_batch()

    def flush(self) -> None:
        """Write the buffered rows and finish the part in progress as the next complete part
        file (no-op when nothing is buffered or in progress)."""
        self._write_batch(finish=True)

    def _write_batch(self, *, finish: bool = False) -> None:
        """Write the buffered rows to the part in progress (up to ``flush_rows``); finish
        the part when it is full or ``finish`` is set. A row leaves the buffer only once it
        is written; a failed write raises ``RecordingError`` (and every later write too)."""
        if self._failed is not None:
            raise self._failed
        try:
            self._write_buffered(finish)
        except OSError as exc:  # pyarrow's IO errors are OSErrors too
            if self._part_tmp is not None:
                self._part_tmp.unlink(missing_ok=True)  # the part in progress is lost
            self._failed = RecordingError(
                f"cannot write the requests to {self._run_dir}: {exc} ({self.count} requests "
                f"recorded, the {self._flushed} in complete parts kept)"
            )
            raise self._failed from exc

    def _write_buffered(self, finish: bool) -> None:
        while self._buffered:
            take = min(self._buffered, self._flush_rows - self._in_part)
            if take == self._buffered:
                columns = self._columns
            else:  # add_rows() overfilled this part: the rest goes to the next one
                columns = [values[:take] for values in self._columns]
            self._part_writer().write_batch(_batch(columns))
            if take == self._buffered:
                self._columns = [[] for _ in range(_N_COLUMNS)]
            else:
                self._columns = [values[take:] for values in self._columns]
            self._buffered -= take
            self._in_part += take
            if self._in_part >= self._flush_rows:
                self._finish_part()
        if finish and self._part is not None:
            self._finish_part()

    def _part_path(self) -> Path:
        return self._parts_dir / f"part-{self._n_parts:05d}.parquet"

    def _part_writer(self) -> pq.ParquetWriter:
        if self._part is None:
            self._part_tmp = _temp_path(self._part_path())
            self._part = pq.ParquetWriter(
                self._part_tmp,
                REQUESTS_SCHEMA,
                use_dictionary=_DICTIONARY_COLUMNS,
                compression=_PART_COMPRESSION,
            )
        return self._part

    def _finish_part(self) -> None:
        assert self._part is not None
        self._part.close()
        self._part = None
        assert self._part_tmp is not None
        os.replace(self._part_tmp, self._part_path())  # never seen half-written
        self._part_tmp = None
        self._n_parts += 1
        self._flushed += self._in_part
        self._in_part = 0

    def close(self) -> int:
        """Flush, merge the parts into ``requests.parquet``, remove the parts; return the count.

        Idempotent: a second call returns the same count and writes nothing.
        """
        if self._closed:
            return self.count
        self.flush()
        try:
            merge_parts(self._parts_dir, self._run_dir / REQUESTS_FILE)
        except OSError as exc:
            self._failed = RecordingError(
                f"cannot merge the requests of {self._run_dir}: {exc} (its parts are kept)"
            )
            raise self._failed from exc
        self._closed = True
        return self.count


def _batch(columns: list[list[Any]]) -> pa.RecordBatch:
    arrays = [
        pa.array(values, type=field.type)
        for values, field in zip(columns, REQUESTS_SCHEMA, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=REQUESTS_SCHEMA)


def merge_parts(parts_dir: Path, target: Path) -> int:
    """Stream the parts of ``parts_dir`` into ``target`` one part at a time; return rows.

    ``target`` appears atomically and complete; ``parts_dir`` is removed afterwards. Also
    usable to finish a run whose recorder was killed before ``close()``.
    """
    tmp = _temp_path(target)
    rows = 0
    try:
        with pq.ParquetWriter(
            tmp, REQUESTS_SCHEMA, use_dictionary=_DICTIONARY_COLUMNS, compression=_FINAL_COMPRESSION
        ) as writer:
            for part in part_paths(parts_dir):
                # One thread, no pre-buffering: decoding in parallel bought no speed here but
                # kept per-thread allocator caches alive, which raised the peak RSS by ~25 MB.
                # A part (written in small row groups) becomes one row group of the result.
                table = pq.ParquetFile(part, pre_buffer=False).read(use_threads=False)
                writer.write_table(table, row_group_size=max(1, table.num_rows))
                rows += table.num_rows
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)  # the parts stay: load_run reads them
        raise
    shutil.rmtree(parts_dir)
    return rows


def _temp_path(target: Path) -> Path:
    """A new, exclusively created temporary file beside ``target`` (see ``unique_temp``)."""
    fd, tmp = unique_temp(target)
    os.close(fd)
    return tmp


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
