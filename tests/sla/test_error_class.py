"""Error classes: the closed vocabulary, bounded messages, and the classes of runs written
before the column existed (derived from status and error when they are read)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sla.files import error_class as ec
from sla.files.error_class import (
    ERROR_CLASSES,
    MAX_ERROR_CHARS,
    bound_error,
    derive_error_class,
    fill_error_classes,
    http_error_class,
)
from sla.files.jsonio import write_json_atomic
from sla.files.run import ADDED_COLUMNS, CANCELLED_ERROR, REQUESTS_SCHEMA, load_run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "schema1"

# Messages earlier releases wrote, with the class each stands for.
OLD_MESSAGES = [
    (0, "connection refused: is the target up?", ec.REFUSED),
    (0, "cannot resolve host: Name or service not known", ec.UNREACHABLE),
    (0, "timeout: connect or network timeout", ec.IDLE_TIMEOUT),
    (200, "timeout: no data for 30s", ec.IDLE_TIMEOUT),
    (200, "timeout: no complete answer in 300s", ec.TOTAL_TIMEOUT),
    (200, "connection error: connection closed before the body was complete", ec.CLOSED_MID_BODY),
    (0, "connection error: [Errno 104] Connection reset by peer", ec.RESET),
    (0, "connection error: [Errno 22] Invalid argument", ec.CONNECTION),
    (0, "HTTPConnectionClosed: connection closed.", ec.RESET),
    (0, "TLS certificate rejected: self-signed certificate (trust its CA...)", ec.TLS),
    (200, 'malformed SSE event: {"choices": 3}', ec.MALFORMED_SSE),
    (200, "stream error: CUDA out of memory (type=server_error, code=500)", ec.SERVER_ERROR_EVENT),
    (200, "stream ended before [DONE]", ec.STREAM_INCOMPLETE),
    (200, "malformed JSON body: b'<html>'", ec.MALFORMED_BODY),
    (200, "no outputs in answer", ec.MALFORMED_BODY),
    (429, "HTTP 429: Rate limit reached. Please try again in 0.031s.", ec.HTTP_429),
    (503, "HTTP 503: shutting down", ec.HTTP_5XX),
    (401, "HTTP 401: bad key", ec.HTTP_4XX),
    (
        0,
        "dropped: --max-inflight requests were already in flight at the scheduled time",
        ec.DROPPED,
    ),
    (0, CANCELLED_ERROR, ec.CANCELLED),
    (0, "KeyError: 'choices'", ec.CLIENT_ERROR),
]


@pytest.mark.parametrize(("status", "message", "expected"), OLD_MESSAGES)
def test_the_messages_of_earlier_releases_map_to_their_class(
    status: int, message: str, expected: str
) -> None:
    assert derive_error_class(status, message) == expected
    assert expected in ERROR_CLASSES


def test_a_status_alone_is_classed_and_a_success_has_no_class() -> None:
    assert derive_error_class(503, None) == ec.HTTP_5XX
    assert derive_error_class(302, "") == ec.HTTP_OTHER
    assert derive_error_class(200, None) is None
    assert [http_error_class(s) for s in (429, 404, 500, 599, 301)] == [
        ec.HTTP_429, ec.HTTP_4XX, ec.HTTP_5XX, ec.HTTP_5XX, ec.HTTP_OTHER,
    ]  # fmt: skip


def test_messages_are_one_bounded_line() -> None:
    long = "HTTP 500: " + "x\n  y\t" * 200
    bounded = bound_error(long)
    assert len(bounded) == MAX_ERROR_CHARS and bounded.endswith("...")
    assert "\n" not in bounded and "  " not in bounded
    assert bound_error("short\nmessage ") == "short message"


def test_fill_keeps_given_classes_and_derives_the_missing_ones() -> None:
    frame = pd.DataFrame(
        {
            "status": [200, 429, 0, 200, 500],
            "error": [None, "HTTP 429: slow down", "connection refused: x", None, None],
            "error_class": [None, "custom", None, None, None],
        }
    )
    assert fill_error_classes(frame).tolist() == [None, "custom", ec.REFUSED, None, ec.HTTP_5XX]
    # Without the column at all, every failure is derived.
    assert fill_error_classes(frame.drop(columns="error_class")).tolist()[1] == ec.HTTP_429


def test_a_run_without_the_new_columns_is_read_with_derived_classes(tmp_path: Path) -> None:
    # requests.parquet as the first schema-1 writers wrote it: no error_class, no backoff_ms.
    old_schema = pa.schema([f for f in REQUESTS_SCHEMA if f.name not in ADDED_COLUMNS])
    n = len(OLD_MESSAGES)
    columns = {
        "request_id": [f"r{i}" for i in range(n)],
        "worker": ["local"] * n,
        "endpoint": ["chat"] * n,
        "scheduled_at": [math.nan] * n,
        "sent_at": [1.0 + i for i in range(n)],
        "first_token_at": [math.nan] * n,
        "done_at": [1.5 + i for i in range(n)],
        "status": [status for status, _, _ in OLD_MESSAGES],
        "error": [message for _, message, _ in OLD_MESSAGES],
        "input_tokens": [8] * n,
        "output_tokens": [None] * n,
        "output_tokens_source": [None] * n,
        "chunk_count": [0] * n,
        "chunk_gaps_ms": [[]] * n,
    }
    pq.write_table(pa.table(columns, schema=old_schema), tmp_path / "requests.parquet")
    write_json_atomic(tmp_path / "run.json", {"schema_version": 1, "status": "complete"})
    requests = load_run(tmp_path).requests
    assert requests["error_class"].tolist() == [expected for _, _, expected in OLD_MESSAGES]
    assert requests["backoff_ms"].isna().all()  # unknown, not zero


def test_the_schema1_fixture_still_loads_with_classes() -> None:
    requests = load_run(FIXTURES / "chat-run").requests
    assert tuple(requests.columns[-len(ADDED_COLUMNS) :]) == ADDED_COLUMNS
    assert requests["session_id"].isna().all() and requests["turn"].isna().all()
    assert requests["first_output_at"].isna().all()  # not taken then: NaN, as no TTFT is
    failed = requests["error"].notna()
    assert requests.loc[failed, "error_class"].notna().all()
    assert requests.loc[~failed, "error_class"].isna().all()
    assert (requests.loc[requests["error"] == CANCELLED_ERROR, "error_class"] == ec.CANCELLED).all()


def test_the_docs_list_the_vocabulary_in_order() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "run-directory.md").read_text()
    section = page.split("## Error classes", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `(\w+)` \|", section, flags=re.M)
    assert listed == list(ERROR_CLASSES)
