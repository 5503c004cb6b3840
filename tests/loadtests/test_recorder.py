from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from loadtests.recording.recorder import (
    RecordingError,
    RequestRecorder,
    finish_run_json,
    merge_parts,
    records_to_rows,
    start_run_json,
)
from sla.files.run import (
    REQUEST_COLUMNS,
    REQUESTS_SCHEMA,
    SCHEMA_VERSION,
    RequestRecord,
    RunDirError,
    load_run,
)

T0 = 1764400000.123456789


def _record(i: int) -> RequestRecord:
    return RequestRecord(
        request_id=f"r{i}",
        worker=f"w{i % 2}",
        endpoint="/v1/completions",
        scheduled_at=T0 + i * 0.001,
        sent_at=T0 + i * 0.001 + 1e-7,
        first_token_at=float("nan") if i % 3 == 0 else T0 + i * 0.001 + 0.02,
        done_at=T0 + i * 0.001 + 0.1,
        status=200 if i % 5 else 503,
        error=None if i % 5 else "HTTP 503",
        input_tokens=i,
        output_tokens=None if i % 7 == 0 else i % 11,
        output_tokens_source=None if i % 7 == 0 else "chunks",
        chunk_count=i % 4,
        chunk_gaps_ms=tuple(float(i + k) / 3 for k in range(i % 4)),
    )


def _start(run_dir: Path) -> None:
    start_run_json(run_dir, {"scenario": "test", "started_at": T0})


def test_several_flushes_merge_into_one_file_in_order(tmp_path: Path) -> None:
    _start(tmp_path)
    recorder = RequestRecorder(tmp_path, flush_rows=4)
    records = [_record(i) for i in range(11)]
    for rec in records:
        recorder.add(rec)

    assert len(list((tmp_path / "requests.parts").glob("part-*.parquet"))) == 2
    assert recorder.count == 11
    assert recorder.close() == 11

    assert not (tmp_path / "requests.parts").exists()
    assert pq.read_schema(tmp_path / "requests.parquet").equals(REQUESTS_SCHEMA)
    df = load_run(tmp_path).requests
    assert df["request_id"].tolist() == [r.request_id for r in records]
    for got, rec in zip(df["done_at"], records, strict=True):
        assert struct.pack("<d", got) == struct.pack("<d", rec.done_at)
    assert list(df["chunk_gaps_ms"].iloc[7]) == list(records[7].chunk_gaps_ms)
    assert df["output_tokens"].isna().tolist() == [r.output_tokens is None for r in records]


def test_add_rows_matches_add(tmp_path: Path) -> None:
    records = [_record(i) for i in range(9)]
    a, b = tmp_path / "a", tmp_path / "b"
    for run_dir in (a, b):
        _start(run_dir)
    by_record = RequestRecorder(a, flush_rows=4)
    for rec in records:
        by_record.add(rec)
    by_rows = RequestRecorder(b, flush_rows=4)
    by_rows.add_rows(records_to_rows(records[:3]))
    by_rows.add_rows([])
    by_rows.add_rows(records_to_rows(records[3:]))

    assert by_record.close() == by_rows.close() == 9
    assert load_run(a).requests.equals(load_run(b).requests)


def test_add_rows_rejects_short_rows(tmp_path: Path) -> None:
    recorder = RequestRecorder(tmp_path)
    with pytest.raises(ValueError, match=f"expected {len(REQUEST_COLUMNS)}"):
        recorder.add_rows([("r0", "w0")])
    assert recorder.count == 0


def test_killed_before_close_keeps_the_flushed_parts(tmp_path: Path) -> None:
    _start(tmp_path)
    recorder = RequestRecorder(tmp_path, flush_rows=3)
    for i in range(8):
        recorder.add(_record(i))
    # The process dies here: no close(); rows 6 and 7 are only in the lost buffer.

    run = load_run(tmp_path)

    assert run.from_parts
    assert run.requests["request_id"].tolist() == [f"r{i}" for i in range(6)]
    assert merge_parts(tmp_path / "requests.parts", tmp_path / "requests.parquet") == 6
    assert not load_run(tmp_path).from_parts


def test_empty_run_writes_a_valid_empty_file(tmp_path: Path) -> None:
    _start(tmp_path)
    recorder = RequestRecorder(tmp_path)

    assert recorder.close() == 0

    assert pq.read_schema(tmp_path / "requests.parquet").equals(REQUESTS_SCHEMA)
    df = load_run(tmp_path).requests
    assert len(df) == 0
    assert tuple(df.columns) == tuple(REQUESTS_SCHEMA.names)


def test_close_is_idempotent_and_final(tmp_path: Path) -> None:
    _start(tmp_path)
    recorder = RequestRecorder(tmp_path, flush_rows=2)
    for i in range(3):
        recorder.add(_record(i))

    assert recorder.close() == 3
    mtime = (tmp_path / "requests.parquet").stat().st_mtime_ns
    assert recorder.close() == 3
    assert (tmp_path / "requests.parquet").stat().st_mtime_ns == mtime
    with pytest.raises(RuntimeError, match="after close"):
        recorder.add(_record(3))


def test_refuses_a_run_dir_that_already_has_requests(tmp_path: Path) -> None:
    RequestRecorder(tmp_path).close()

    with pytest.raises(RunDirError, match="fresh run directory"):
        RequestRecorder(tmp_path)


def test_run_json_start_and_finish(tmp_path: Path) -> None:
    run_dir = tmp_path / "new" / "run"
    start_run_json(
        run_dir,
        {"schema_version": 99, "target_url": "https://u:pw@h/v1?api_key=k", "users": 4},
    )
    finish_run_json(run_dir, {"ended_at": T0 + 60, "cpu_percent": float("nan")})

    meta = json.loads((run_dir / "run.json").read_text())
    assert meta == {
        "schema_version": SCHEMA_VERSION,
        "target_url": "https://h/v1?api_key=REDACTED",
        "users": 4,
        "ended_at": T0 + 60,
        "cpu_percent": None,
    }
    with pytest.raises(RunDirError, match="start_run_json"):
        finish_run_json(tmp_path / "missing", {"ended_at": 1.0})


def test_rows_written_in_batches_within_a_part_keep_their_order(tmp_path: Path) -> None:
    _start(tmp_path)
    recorder = RequestRecorder(tmp_path, flush_rows=10, batch_rows=3)
    records = [_record(i) for i in range(25)]
    for rec in records:
        recorder.add(rec)
    parts = sorted((tmp_path / "requests.parts").glob("part-*.parquet"))
    assert len(parts) == 2  # two complete parts of 10; the third is still open
    assert [pq.ParquetFile(p).metadata.num_row_groups for p in parts] == [4, 4]  # 3+3+3+1
    assert recorder.close() == 25
    df = load_run(tmp_path).requests
    assert df["request_id"].tolist() == [r.request_id for r in records]


def test_a_row_the_schema_cannot_hold_stops_the_recording_and_loses_no_other_row(
    tmp_path: Path,
) -> None:
    """A bad value (a string, 3000000000, true in an int32 column) is a RecordingError naming
    the column and the value, raised by the write of its batch and by every later one (a
    flush, the close), never pyarrow's error again and again: the rows of its batch that
    convert are written with the part in progress, complete; the bad one is left out and
    counted."""
    _start(tmp_path)
    recorder = RequestRecorder(tmp_path, flush_rows=100, batch_rows=4)
    records = [_record(i) for i in range(1, 9)]
    records[5] = replace(records[5], input_tokens="10")  # type: ignore[arg-type]
    records[6] = replace(records[6], output_tokens=3_000_000_000)
    for rec in records[:7]:
        recorder.add(rec)  # a batch of 4 written, 3 buffered
    with pytest.raises(RecordingError) as failed:
        recorder.add(records[7])  # the second batch is full: its write fails

    message = str(failed.value)
    assert message.startswith(f"cannot write the requests to {tmp_path}: ")
    assert "a row's input_tokens is '10' (str), which int32 cannot hold" in message
    assert message.endswith("(8 requests recorded, the 6 in complete parts kept, 2 left out)")
    assert recorder.failed is failed.value
    assert (recorder.count, recorder.written) == (8, 6)
    for again in (recorder.flush, recorder.close):
        with pytest.raises(RecordingError) as later:
            again()
        assert later.value is failed.value
    run = load_run(tmp_path)  # one complete part: every row but the two bad ones
    assert run.from_parts
    kept = [r.request_id for r in records[:5]] + [records[7].request_id]
    assert run.requests["request_id"].tolist() == kept


def test_a_row_the_schema_cannot_hold_found_at_the_close(tmp_path: Path) -> None:
    _start(tmp_path)
    recorder = RequestRecorder(tmp_path)
    recorder.add(_record(1))
    recorder.add_rows(records_to_rows([replace(_record(2), cached_tokens=True)]))
    with pytest.raises(RecordingError, match=r"cached_tokens is True \(bool\), which int32"):
        recorder.close()
    assert load_run(tmp_path).requests["request_id"].tolist() == ["r1"]


FULL_DISK = """
import json, resource, signal, sys
from pathlib import Path
from loadtests.recording.recorder import RequestRecorder
from tests.loadtests.test_recorder import _record, _start

run_dir = Path(sys.argv[1])
recorder = RequestRecorder(run_dir, flush_rows=200, batch_rows=50)
_start(run_dir)
for i in range(200):
    recorder.add(_record(i))  # one complete part
part = next((run_dir / "requests.parts").glob("part-*.parquet"))
limit = part.stat().st_size // 2  # a file limit (RLIMIT_FSIZE): the next part cannot fit
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
added, error = 200, None
for i in range(200, 5_000):
    try:
        recorder.add(_record(i))
        added += 1
    except Exception as exc:  # RecordingError
        added += 1  # buffered, not written
        error = str(exc)
        break
again = None
try:
    recorder.add(_record(99_999))
except Exception as exc:
    added += 1  # kept too
    again = str(exc)
print(json.dumps({"added": added, "count": recorder.count, "error": error, "again": again}))
"""


def test_a_failed_write_keeps_its_rows_counted_and_what_was_written_readable(
    tmp_path: Path,
) -> None:
    """A full disk (RLIMIT_FSIZE here): the rows not written stay buffered and counted, the
    error names the run directory and the OS error, and the complete parts load."""
    run_dir = tmp_path / "run"
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(run_dir)],
        capture_output=True, text=True, timeout=60, cwd=repo,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["error"] is not None, out
    assert out["count"] == out["added"]  # nothing vanished
    assert str(run_dir) in out["error"] and "File too large" in out["error"]
    assert out["again"] == out["error"]  # it stays stopped
    run = load_run(run_dir)  # the complete parts, read back
    assert run.from_parts
    assert len(run.requests) == 200 < out["added"]
    assert list(run.requests["request_id"]) == [f"r{i}" for i in range(len(run.requests))]


def test_temporary_files_have_unique_names_and_follow_no_planted_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Links planted at the names a writer used to pick (``.run.json.<pid>.tmp``,
    ``.part-00000.parquet.tmp``, ``.requests.parquet.tmp``) are not written through."""
    run_dir = tmp_path / "run"
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    recorder = RequestRecorder(run_dir, flush_rows=10, batch_rows=5)
    parts = run_dir / "requests.parts"
    planted = [
        run_dir / f".run.json.{os.getpid()}.tmp",
        parts / ".part-00000.parquet.tmp",
        run_dir / ".requests.parquet.tmp",
    ]
    for link in planted:
        link.symlink_to(victim)
    _start(run_dir)
    for i in range(25):
        recorder.add(_record(i))
    assert recorder.close() == 25
    finish_run_json(run_dir, {"ended_at": T0 + 1})
    assert victim.read_text() == "keep me"
    assert len(load_run(run_dir).requests) == 25
    # A write that fails leaves no temporary file behind.
    monkeypatch.setattr(os, "replace", _refuse)
    with pytest.raises(OSError, match="refused"):
        finish_run_json(run_dir, {"ended_at": T0 + 2})
    assert sorted(p.name for p in run_dir.glob(".*.tmp") if not p.is_symlink()) == []


def _refuse(*_: object) -> None:
    raise OSError("refused")
