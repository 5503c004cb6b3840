"""Bounded-memory, crash-tolerant writing of one table of a run, in parts.

Shared by the request recorder (``requests.parts/``) and the Prometheus scraper
(``server_metrics.parts/``). Rows are buffered in per-column Python lists; every
``batch_rows`` rows are written to the part in progress (one row group, a couple of
milliseconds), a parquet file under a temporary name; at ``part_rows`` rows, or when the
owner calls ``finish_part()``, it is complete and renamed to ``part-NNNNN.parquet``
(``sla.files.parts``). Between calls the buffer holds fewer than ``batch_rows`` rows, so
memory is bounded by one batch whatever the run's length. A process killed hard loses at
most the rows of the part not yet renamed; the readers in ``sla.files`` read the complete
parts. ``close(target)`` merges the parts into ``target`` one part at a time.

A write that fails (disk full, file too large) raises ``RecordingError``, and so does every
later write: the rows not written stay buffered and counted (``count``), the complete parts
stay on disk and readable (``written`` rows).

So does a row that the schema cannot hold (a string or 3000000000 in an int32 column: a
bug of the caller, since the readers of answers check what they keep). It never fails the
rows beside it: the rows of its batch that convert are written and the part in progress is
completed, so everything recorded before it stays readable; the rows that do not convert
are left out and counted (``count``, not ``written``), and the error names the column and
the value.

Usage::

    parts = PartsWriter(run_dir / "x.parts", SCHEMA, noun="samples")
    parts.add_rows(rows)              # tuples in schema order
    parts.finish_part()               # make what was added survive a hard kill
    total = parts.close(run_dir / "x.parquet")   # merged, parts removed

Thread-safety: none. Call from gevent greenlets of one OS thread only; no method yields to
the hub, so a greenlet switch cannot split a row.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sla.errors import SlabenchError
from sla.files.jsonio import unique_temp
from sla.files.parts import part_path, part_paths

PART_COMPRESSION = "snappy"  # parts are written on the hot path: the fastest codec
FINAL_COMPRESSION = "zstd"  # the merge runs once, at the end: the smaller file


class RecordingError(SlabenchError):
    """A part could not be written (disk full, file too large, a row the schema cannot
    hold...)."""


# What pa.array raises for a value its type cannot hold: ArrowInvalid (a ValueError: '10',
# 3000000000 in an int32), ArrowTypeError (a TypeError: True in an int32), OverflowError
# (an int beyond 64 bits). pa.array does no IO, so no OSError is caught as one of these.
_CONVERSION_ERRORS = (pa.ArrowException, TypeError, ValueError, OverflowError)


class _Unconvertible(Exception):
    """A batch that holds values its schema cannot: which rows, and one of them described."""

    def __init__(self, rows: set[int], example: str) -> None:
        super().__init__(example)
        self.rows = rows


class PartsWriter:
    """Rows of ``schema`` written to ``parts_dir`` in bounded memory (see the module doc).

    ``noun`` names the rows in messages ("requests"); ``dictionary`` lists the
    low-cardinality columns worth dictionary-encoding; ``group_rows`` is the least number of
    rows of a row group of the merged file (parts are gathered until they reach it: that
    many rows in memory at the merge; 1 keeps each part a row group). ``parts_dir`` is
    created with the first part.
    """

    def __init__(
        self,
        parts_dir: Path,
        schema: pa.Schema,
        *,
        noun: str,
        part_rows: int,
        batch_rows: int,
        dictionary: Sequence[str] = (),
        group_rows: int = 1,
    ) -> None:
        if part_rows < 1 or batch_rows < 1:
            raise ValueError(
                f"part_rows and batch_rows must be >= 1, got {part_rows}, {batch_rows}"
            )
        self.parts_dir = Path(parts_dir)
        self._schema = schema
        self._noun = noun
        self._part_rows = part_rows
        self._batch_rows = min(batch_rows, part_rows)
        self._dictionary = list(dictionary)
        self._group_rows = group_rows
        # The buffer, one list per column: its owner may append to these lists directly
        # (then call ``added``), the fastest way on a hot path.
        self.columns: list[list[Any]] = [[] for _ in schema]
        self._buffered = 0  # rows in the lists
        self._in_part = 0  # rows written to the part in progress
        self._part: pq.ParquetWriter | None = None
        self._part_tmp: Path | None = None  # the part in progress, under a unique name
        self._written = 0  # rows in complete parts
        self._left_out = 0  # rows the schema could not hold (never written)
        self._n_parts = 0
        self._closed = False
        self._failed: RecordingError | None = None

    @property
    def failed(self) -> RecordingError | None:
        """The write error that stopped the writing, if one did."""
        return self._failed

    @property
    def count(self) -> int:
        """Rows added so far, written or not."""
        return self._written + self._in_part + self._buffered + self._left_out

    @property
    def written(self) -> int:
        """Rows in complete parts (or, once closed, in the merged file)."""
        return self._written

    @property
    def buffered(self) -> int:
        """Rows in memory, not yet written: fewer than ``batch_rows`` between calls."""
        return self._buffered

    def added(self, n: int = 1) -> None:
        """Count ``n`` rows just appended to ``columns``; writes a batch when one is full."""
        self._buffered += n
        if self._buffered >= self._batch_rows:
            self._write_batch()

    def add_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """Buffer rows given as tuples in schema order; writes when a batch is full."""
        if self._closed:
            raise RuntimeError("PartsWriter.add_rows() after close()")
        if not rows:
            return
        width = len(self.columns)
        bad = next((row for row in rows if len(row) != width), None)
        if bad is not None:
            raise ValueError(f"a row has {len(bad)} values, expected {width}")
        for column, values in zip(self.columns, zip(*rows, strict=True), strict=True):
            column.extend(values)
        self.added(len(rows))

    def finish_part(self) -> None:
        """Write the buffered rows and finish the part in progress as the next complete part
        file (no-op when nothing is buffered or in progress)."""
        self._write_batch(finish=True)

    def _write_batch(self, *, finish: bool = False) -> None:
        """Write the buffered rows to the part in progress (up to ``part_rows``); finish the
        part when it is full or ``finish`` is set. A row leaves the buffer only once it is
        written (or left out: the schema cannot hold it); a failed write raises
        ``RecordingError`` (and every later write too)."""
        if self._failed is not None:
            raise self._failed
        try:
            self._write_buffered(finish)
        except _Unconvertible as exc:
            self._failed = RecordingError(
                f"cannot write the {self._noun} to {self.parts_dir.parent}: {exc} "
                f"({self.count} {self._noun} recorded, the {self._written} in complete parts "
                f"kept, {len(exc.rows)} left out)"
            )
            raise self._failed from None
        except OSError as exc:  # pyarrow's IO errors are OSErrors too
            if self._part_tmp is not None:
                self._part_tmp.unlink(missing_ok=True)  # the part in progress is lost
            self._failed = RecordingError(
                f"cannot write the {self._noun} to {self.parts_dir.parent}: {exc} "
                f"({self.count} {self._noun} recorded, the {self._written} in complete "
                "parts kept)"
            )
            raise self._failed from exc

    def _write_buffered(self, finish: bool) -> None:
        while self._buffered:
            take = min(self._buffered, self._part_rows - self._in_part)
            if take == self._buffered:
                columns = self.columns
            else:  # a large add_rows() overfilled this part: the rest goes to the next one
                columns = [values[:take] for values in self.columns]
            try:
                batch = self._batch(columns)
            except _Unconvertible as exc:
                self._keep_convertible(columns, take, exc.rows)
                raise
            self._part_writer().write_batch(batch)
            self._taken(take)
            self._in_part += take
            if self._in_part >= self._part_rows:
                self._finish_part()
        if finish and self._part is not None:
            self._finish_part()

    def _taken(self, take: int) -> None:
        """The first ``take`` buffered rows leave the buffer."""
        if take == self._buffered:
            self.columns = [[] for _ in self._schema]
        else:
            self.columns = [values[take:] for values in self.columns]
        self._buffered -= take

    def _keep_convertible(self, columns: list[list[Any]], take: int, bad: set[int]) -> None:
        """A batch of ``take`` rows held ``bad`` ones: write the others and complete the part
        in progress, so that one bad row loses no row beside it; the bad ones are left out."""
        keep = [i for i in range(take) if i not in bad]
        batch = None
        if keep:
            try:
                batch = self._batch([[values[i] for i in keep] for values in columns])
            except _Unconvertible:  # each value converts alone, so this is not expected
                keep = []
        if batch is not None:
            self._part_writer().write_batch(batch)  # an OSError leaves the rows buffered
        self._taken(take)
        self._in_part += len(keep)
        self._left_out += take - len(keep)
        if self._part is not None:
            self._finish_part()

    def _batch(self, columns: list[list[Any]]) -> pa.RecordBatch:
        try:
            arrays = [
                pa.array(values, type=field.type)
                for values, field in zip(columns, self._schema, strict=True)
            ]
        except _CONVERSION_ERRORS:
            raise self._unconvertible(columns) from None
        return pa.RecordBatch.from_arrays(arrays, schema=self._schema)

    def _unconvertible(self, columns: list[list[Any]]) -> _Unconvertible:
        """Which rows of ``columns`` hold a value its column's type cannot, value by value
        (only after a batch failed: the hot path converts whole columns)."""
        bad: set[int] = set()
        example = ""
        for values, field in zip(columns, self._schema, strict=True):
            try:
                pa.array(values, type=field.type)
                continue
            except _CONVERSION_ERRORS:
                pass  # this column holds one: find it
            for i, value in enumerate(values):
                try:
                    pa.array([value], type=field.type)
                except _CONVERSION_ERRORS:
                    bad.add(i)
                    example = example or _describe(field, value)
        return _Unconvertible(bad, example or "a batch the schema cannot hold")

    def _part_writer(self) -> pq.ParquetWriter:
        if self._part is None:
            self.parts_dir.mkdir(parents=True, exist_ok=True)
            self._part_tmp = temp_path(part_path(self.parts_dir, self._n_parts))
            self._part = pq.ParquetWriter(
                self._part_tmp,
                self._schema,
                use_dictionary=self._dictionary,
                compression=PART_COMPRESSION,
            )
        return self._part

    def _finish_part(self) -> None:
        assert self._part is not None and self._part_tmp is not None
        self._part.close()
        self._part = None
        os.replace(self._part_tmp, part_path(self.parts_dir, self._n_parts))  # never half
        self._part_tmp = None
        self._n_parts += 1
        self._written += self._in_part
        self._in_part = 0

    def close(self, target: Path) -> int:
        """Finish the last part, merge the parts into ``target``, remove them; return the
        count. Idempotent: a second call returns the same count and writes nothing."""
        if self._closed:
            return self.count
        self.finish_part()
        try:
            merge_parts(self.parts_dir, target, self._schema, self._dictionary, self._group_rows)
        except OSError as exc:
            self._failed = RecordingError(
                f"cannot merge the {self._noun} of {self.parts_dir.parent}: {exc} "
                "(its parts are kept)"
            )
            raise self._failed from exc
        self._closed = True
        return self.count


def merge_parts(
    parts_dir: Path,
    target: Path,
    schema: pa.Schema,
    dictionary: Sequence[str] = (),
    group_rows: int = 1,
) -> int:
    """Stream the parts of ``parts_dir`` into ``target``; return rows. Parts are read one
    at a time and written as row groups of at least ``group_rows`` rows (1: each part one
    row group), so memory holds one part, or ``group_rows`` rows.

    ``target`` appears atomically and complete (empty when there are no parts);
    ``parts_dir`` is removed afterwards. Also usable to finish a run whose recorder was
    killed before ``close()``.
    """
    tmp = temp_path(target)
    rows = 0
    try:
        with pq.ParquetWriter(
            tmp, schema, use_dictionary=list(dictionary), compression=FINAL_COMPRESSION
        ) as writer:
            group: list[pa.Table] = []
            in_group = 0
            for part in part_paths(parts_dir):
                # One thread, no pre-buffering: decoding in parallel bought no speed here but
                # kept per-thread allocator caches alive, which raised the peak RSS by ~25 MB.
                group.append(pq.ParquetFile(part, pre_buffer=False).read(use_threads=False))
                in_group += group[-1].num_rows
                if in_group >= group_rows:
                    _write_group(writer, group)
                    rows += in_group
                    group, in_group = [], 0
            _write_group(writer, group)
            rows += in_group
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)  # the parts stay: the readers read them
        raise
    if parts_dir.exists():
        shutil.rmtree(parts_dir)
    return rows


def _write_group(writer: pq.ParquetWriter, tables: list[pa.Table]) -> None:
    """``tables`` (parts written in small row groups) as one row group of the result."""
    if tables:
        table = pa.concat_tables(tables)
        writer.write_table(table, row_group_size=max(1, table.num_rows))


def _describe(field: pa.Field, value: object) -> str:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:60] + "..."
    return (
        f"a row's {field.name} is {shown} ({type(value).__name__}), which {field.type} cannot hold"
    )


def temp_path(target: Path) -> Path:
    """A new, exclusively created temporary file beside ``target`` (see ``unique_temp``)."""
    fd, tmp = unique_temp(target)
    os.close(fd)
    return tmp
