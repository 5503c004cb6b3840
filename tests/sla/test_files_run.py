from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sla.files.jsonio import write_json_atomic
from sla.files.run import (
    REQUEST_COLUMNS,
    REQUESTS_SCHEMA,
    SCHEMA_VERSION,
    RequestRecord,
    RunDirError,
    load_run,
    strip_credentials,
)

NAN = float("nan")
EXACT_T = 1764400000.123456789  # needs all 53 bits of mantissa; rounding would show


def _record(i: int, **changes: Any) -> RequestRecord:
    fields: dict[str, Any] = {
        "request_id": f"r{i}",
        "worker": "w0",
        "endpoint": "/v1/completions",
        "scheduled_at": EXACT_T + i,
        "sent_at": EXACT_T + i + 0.000001,
        "first_token_at": EXACT_T + i + 0.05,
        "done_at": EXACT_T + i + 0.25,
        "status": 200,
        "error": None,
        "input_tokens": 12,
        "output_tokens": 5,
        "output_tokens_source": "usage",
        "chunk_count": 5,
        "chunk_gaps_ms": (40.0, 50.5, 49.5, 60.0),
    }
    fields.update(changes)
    return RequestRecord(**fields)


def _write_run(run_dir: Path, records: list[RequestRecord], meta: dict[str, Any] | None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    if meta is not None:
        write_json_atomic(run_dir / "run.json", meta)
    columns = {name: [getattr(r, name) for r in records] for name in REQUEST_COLUMNS}
    pq.write_table(pa.table(columns, schema=REQUESTS_SCHEMA), run_dir / "requests.parquet")


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


def test_record_fields_are_the_schema_columns_in_order() -> None:
    assert tuple(RequestRecord.__dataclass_fields__) == REQUEST_COLUMNS
    assert REQUESTS_SCHEMA.field("chunk_gaps_ms").type == pa.list_(pa.float64())
    assert REQUESTS_SCHEMA.field("status").type == pa.int32()


def test_round_trip_keeps_floats_bit_for_bit(tmp_path: Path) -> None:
    records = [_record(0), _record(1, done_at=EXACT_T + 1e-6)]
    _write_run(tmp_path, records, {"schema_version": SCHEMA_VERSION, "scenario": "chat"})

    run = load_run(tmp_path)

    assert run.meta["scenario"] == "chat"
    assert run.server_metrics is None
    assert not run.from_parts
    df = run.requests
    assert list(df["request_id"]) == ["r0", "r1"]
    for column in ("scheduled_at", "sent_at", "first_token_at", "done_at"):
        for got, rec in zip(df[column], records, strict=True):
            assert _bits(got) == _bits(getattr(rec, column))
    assert _bits(df["scheduled_at"].iloc[0]) == _bits(1764400000.123456789)
    assert list(df["chunk_gaps_ms"].iloc[0]) == [40.0, 50.5, 49.5, 60.0]


def test_nan_and_none_survive(tmp_path: Path) -> None:
    closed_loop_error = _record(
        0,
        scheduled_at=NAN,
        first_token_at=NAN,
        status=0,
        error="ConnectionResetError",
        input_tokens=None,
        output_tokens=None,
        output_tokens_source=None,
        chunk_count=0,
        chunk_gaps_ms=(),
    )
    _write_run(tmp_path, [closed_loop_error, _record(1)], {"schema_version": 1})

    df = load_run(tmp_path).requests

    assert math.isnan(df["scheduled_at"].iloc[0])
    assert math.isnan(df["first_token_at"].iloc[0])
    assert df["error"].iloc[0] == "ConnectionResetError"
    assert df["error"].isna().tolist() == [False, True]
    assert df["output_tokens"].isna().tolist() == [True, False]
    assert df["output_tokens"].iloc[1] == 5
    assert df["output_tokens_source"].isna().tolist() == [True, False]
    assert list(df["chunk_gaps_ms"].iloc[0]) == []
    assert int(df["status"].iloc[0]) == 0


def test_server_metrics_are_loaded_when_present(tmp_path: Path) -> None:
    _write_run(tmp_path, [_record(0)], {"schema_version": 1})
    # As an earlier release wrote it: no url column.
    samples = pa.table(
        {"scraped_at": [EXACT_T], "name": ["queue_depth"], "labels": ["{}"], "value": [3.0]}
    )
    pq.write_table(samples, tmp_path / "server_metrics.parquet")

    run = load_run(tmp_path)

    assert run.server_metrics is not None
    assert run.server_metrics["value"].tolist() == [3.0]
    assert run.server_metrics["url"].tolist() == [""]
    # A file that is not slabench's is one line, not a KeyError.
    pq.write_table(pa.table({"t": [EXACT_T]}), tmp_path / "server_metrics.parquet")
    with pytest.raises(RunDirError, match="lacks the columns"):
        load_run(tmp_path)


def test_reads_unmerged_parts_of_a_killed_run(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "run.json", {"schema_version": 1})
    parts = tmp_path / "requests.parts"
    parts.mkdir()
    for n, ids in ((0, [0, 1]), (1, [2]), (10, [3])):  # numeric, not lexical, order
        rows = [_record(i) for i in ids]
        columns = {name: [getattr(r, name) for r in rows] for name in REQUEST_COLUMNS}
        pq.write_table(pa.table(columns, schema=REQUESTS_SCHEMA), parts / f"part-{n:05d}.parquet")
    (parts / ".part-00011.parquet.tmp").write_bytes(b"half a parquet file")

    run = load_run(tmp_path)

    assert run.from_parts
    assert run.requests["request_id"].tolist() == ["r0", "r1", "r2", "r3"]


def test_empty_parts_dir_is_an_empty_run(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "run.json", {"schema_version": 1})
    (tmp_path / "requests.parts").mkdir()

    df = load_run(tmp_path).requests

    assert len(df) == 0
    assert tuple(df.columns) == REQUEST_COLUMNS


def test_schema_version_too_new_is_a_clear_error(tmp_path: Path) -> None:
    _write_run(tmp_path, [_record(0)], {"schema_version": SCHEMA_VERSION + 1})

    with pytest.raises(RunDirError, match="upgrade slabench") as info:
        load_run(tmp_path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("no_dir", "does not exist"),
        ("a_file", "is not a directory"),
        ("no_meta", "run.json is missing"),
        ("bad_json", "not valid JSON"),
        ("no_version", "no valid schema_version"),
        ("no_requests", "neither requests.parquet"),
        ("corrupt_parquet", "not a readable parquet file"),
        ("wrong_columns", "lacks the columns"),
    ],
)
def test_broken_run_dirs_raise_one_line_errors(tmp_path: Path, setup: str, message: str) -> None:
    run_dir = tmp_path / "run"
    if setup == "a_file":
        run_dir.write_text("{}")
    elif setup != "no_dir":
        run_dir.mkdir()
    if setup not in ("no_dir", "a_file", "no_meta"):
        meta = {} if setup == "no_version" else {"schema_version": 1}
        write_json_atomic(run_dir / "run.json", meta)
    if setup == "bad_json":
        (run_dir / "run.json").write_text("{not json")
    if setup == "corrupt_parquet":
        (run_dir / "requests.parquet").write_bytes(b"PAR1 truncated")
    if setup == "wrong_columns":
        pq.write_table(pa.table({"request_id": ["a"]}), run_dir / "requests.parquet")

    with pytest.raises(RunDirError, match=message) as info:
        load_run(run_dir)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("measured_from", "yesterday", "measured_from must be a number, got 'yesterday'"),
        ("ended_at", "later", "ended_at must be a number, got 'later'"),
        ("started_at", True, "started_at must be a number, got True"),
        ("ended_at", [1.0], "ended_at must be a number, got [1.0]"),
        ("load_profile", "closed", "load_profile must be an object, got 'closed'"),
    ],
)
def test_a_malformed_run_json_field_is_one_line_naming_it(
    tmp_path: Path, field: str, value: object, message: str
) -> None:
    # Every window reads these as numbers: a string was a ValueError traceback, exit 1.
    meta = {"schema_version": SCHEMA_VERSION, "started_at": EXACT_T, field: value}
    _write_run(tmp_path, [_record(0)], meta)
    with pytest.raises(RunDirError) as info:
        load_run(tmp_path)
    assert str(info.value) == f"{tmp_path / 'run.json'}: {message}"


def test_write_json_atomic_replaces_and_nulls_nan(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    write_json_atomic(target, {"a": 1})
    write_json_atomic(target, {"a": 2, "cpu": NAN, "dir": tmp_path, "xs": (1.5, float("inf"))})

    assert json.loads(target.read_text()) == {
        "a": 2,
        "cpu": None,
        "dir": str(tmp_path),
        "xs": [1.5, None],
    }
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("https://alice:s3cr3t@api.example.com/v1", "https://api.example.com/v1"),
        ("https://tok@api.example.com:8443/", "https://api.example.com:8443/"),
        (
            "https://h/v1?model=m&api_key=abc&apikey=d&token=e&x=1",
            "https://h/v1?model=m&api_key=REDACTED&apikey=REDACTED&token=REDACTED&x=1",
        ),
        (
            "https://u:p@h/p?Password=x&client_secret=y&X-Amz-Signature=z&q=a%20b#frag",
            "https://h/p?Password=REDACTED&client_secret=REDACTED&X-Amz-Signature=REDACTED"
            "&q=a%20b#frag",
        ),
        ("https://h/?access_token=e", "https://h/?access_token=REDACTED"),
    ],
)
def test_strip_credentials(url: str, expected: str) -> None:
    assert strip_credentials(url) == expected
