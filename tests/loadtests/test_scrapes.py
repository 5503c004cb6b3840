"""The scraped server metrics go to disk as the run goes: bounded memory (one batch), parts a
hard kill leaves readable, one file at the end, and a failed write said once, not fatal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loadtests.recording.parts import PartsWriter
from loadtests.recording.scrapes import ScrapeRecorder
from sla.errors import SlabenchError
from sla.files.parts import part_paths
from sla.files.server_metrics import (
    SERVER_METRICS_FILE,
    SERVER_METRICS_PARTS_DIR,
    SERVER_METRICS_SCHEMA,
    read_server_metrics,
)

T0 = 1764400000.25
SCHEMA = pa.schema([("i", pa.int64()), ("name", pa.string())])


def scrape_text(n: int) -> str:
    """A /metrics page as the reference server writes one: a counter, a gauge, a histogram
    (7 samples in all), its values changing with ``n``."""
    return f"""# HELP req_total Requests.
# TYPE req_total counter
req_total{{endpoint="/v1/chat/completions",status="200"}} {3 * n}
req_total{{endpoint="/v1/completions",status="200"}} {n}
# TYPE queue_depth gauge
queue_depth {n % 4}
# TYPE batch_size histogram
batch_size_bucket{{le="1.0"}} {n}
batch_size_bucket{{le="+Inf"}} {2 * n}
batch_size_sum {5.5 * n}
batch_size_count {2 * n}
"""


SAMPLES_PER_SCRAPE = 7


def test_the_buffer_never_holds_more_than_a_batch(tmp_path: Path) -> None:
    """Rows in memory stay under ``batch_rows`` after every call, however the rows come
    (one at a time or in lumps larger than a part); the rest is on disk, in order."""
    writer = PartsWriter(tmp_path / "x.parts", SCHEMA, noun="rows", part_rows=120, batch_rows=25)
    sizes = [1, 7, 24, 25, 26, 3, 130, 0, 59, 250, 2, 1]
    added = 0
    for size in sizes:
        writer.add_rows([(added + k, f"n{(added + k) % 3}") for k in range(size)])
        added += size
        assert writer.buffered < 25, (size, writer.buffered)
        assert writer.count == added
        on_disk = sum(pq.read_metadata(p).num_rows for p in part_paths(writer.parts_dir))
        assert on_disk == writer.written  # complete parts hold exactly what is counted
    assert writer.written == 480  # four parts of 120; the part in progress is not counted
    assert writer.close(tmp_path / "x.parquet") == added
    assert pq.read_table(tmp_path / "x.parquet")["i"].to_pylist() == list(range(added))
    assert pq.read_metadata(tmp_path / "x.parquet").num_row_groups == 5  # a part each
    assert not writer.parts_dir.exists()


def test_scrapes_reach_disk_in_parts_and_close_into_one_file(tmp_path: Path) -> None:
    """Every third scrape completes a part: a process killed after it (no close) leaves
    every sample of those scrapes readable. The buffer stays under a batch; close() merges
    the parts into server_metrics.parquet, the same samples in the same order."""
    samples = ScrapeRecorder(tmp_path, scrapes_per_part=3, batch_rows=10)
    for n in range(1, 11):
        assert samples.record(T0 + n, scrape_text(n))
        assert samples.parts.buffered < 10
        kept = read_server_metrics(tmp_path, SlabenchError)  # as a reader after a SIGKILL
        flushed = n - n % 3
        if flushed == 0:
            assert kept is None
            continue
        assert kept is not None
        assert len(kept) == flushed * SAMPLES_PER_SCRAPE
        assert sorted(kept["scraped_at"].unique()) == [T0 + k for k in range(1, flushed + 1)]
    assert len(part_paths(tmp_path / SERVER_METRICS_PARTS_DIR)) == 3

    samples.close()

    assert not (tmp_path / SERVER_METRICS_PARTS_DIR).exists()
    assert pq.read_schema(tmp_path / SERVER_METRICS_FILE).equals(SERVER_METRICS_SCHEMA)
    assert pq.read_metadata(tmp_path / SERVER_METRICS_FILE).num_row_groups == 1  # 4 parts
    got = read_server_metrics(tmp_path, SlabenchError)
    assert got is not None and len(got) == 10 * SAMPLES_PER_SCRAPE
    assert got["scraped_at"].is_monotonic_increasing
    last = got[got["scraped_at"] == T0 + 10].set_index(["name", "labels"])["value"]
    assert last[("req_total", '{"endpoint": "/v1/chat/completions", "status": "200"}')] == 30
    assert last[("batch_size_sum", "{}")] == 55.0
    assert samples.summary() == {"scrapes": 10, "samples": 70, "samples_not_written": 0}


def test_nothing_scraped_writes_nothing_and_a_bad_page_adds_nothing(tmp_path: Path) -> None:
    samples = ScrapeRecorder(tmp_path, scrapes_per_part=1)
    with pytest.raises(ValueError):
        samples.record(T0, scrape_text(1) + "queue_depth not-a-number\n")
    samples.close()
    assert samples.summary() == {"scrapes": 0, "samples": 0, "samples_not_written": 0}
    assert list(tmp_path.iterdir()) == []
    assert read_server_metrics(tmp_path, SlabenchError) is None


def test_a_run_of_an_earlier_release_still_reads(tmp_path: Path) -> None:
    """The single file an earlier release wrote at the end (default writer options), before
    samples kept their scrape URL: they read with ``url`` empty."""
    frame = pd.DataFrame(
        {
            "scraped_at": [T0, T0 + 2],
            "name": ["q", "q"],
            "labels": ["{}", "{}"],
            "value": [1.0, 4.0],
        }
    )
    pq.write_table(
        pa.Table.from_pandas(frame, schema=pa.schema(list(SERVER_METRICS_SCHEMA)[:4])),
        tmp_path / SERVER_METRICS_FILE,
    )
    got = read_server_metrics(tmp_path, SlabenchError)
    assert got is not None and got["value"].tolist() == [1.0, 4.0]
    assert got["url"].tolist() == ["", ""]


FILE_TOO_LARGE = """
import json, logging, resource, signal, sys
from pathlib import Path
from loadtests.recording.scrapes import ScrapeRecorder
from tests.loadtests.test_scrapes import T0, scrape_text

lines = []
class Keep(logging.Handler):
    def emit(self, record): lines.append(record.getMessage())
logging.getLogger("slabench").addHandler(Keep())

run_dir = Path(sys.argv[1])
samples = ScrapeRecorder(run_dir, scrapes_per_part=2, batch_rows=1_000)
for n in (1, 2):
    assert samples.record(T0 + n, scrape_text(n))  # one complete part
part = next((run_dir / "server_metrics.parts").glob("part-*.parquet"))
limit = part.stat().st_size // 2  # a file limit (RLIMIT_FSIZE): the next part cannot fit
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
results = [samples.record(T0 + n, scrape_text(n)) for n in range(3, 9)]
samples.close()
print(json.dumps({"results": results, "lines": lines, "summary": samples.summary()}))
"""


def test_a_failed_write_is_said_once_and_what_was_written_stays_readable(
    tmp_path: Path,
) -> None:
    """A file size limit (RLIMIT_FSIZE) hit by the second part: one warning naming the run
    directory and the OS error, every later scrape refused quietly, the samples not written
    counted, the complete part kept and readable (close() does not merge after a failure)."""
    run_dir = tmp_path / "run"
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", FILE_TOO_LARGE, str(run_dir)],
        capture_output=True, text=True, timeout=60, cwd=repo,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    first_failed = out["results"].index(False)
    assert out["results"] == [True] * first_failed + [False] * (6 - first_failed)
    assert first_failed <= 1  # the part of scrapes 3 and 4 could not be finished
    [line] = out["lines"]
    assert line.startswith(f"cannot write the server-metrics samples to {run_dir}: ")
    assert "File too large" in line and line.endswith("the run goes on without them")
    assert out["summary"]["samples"] == 2 * SAMPLES_PER_SCRAPE
    assert out["summary"]["samples_not_written"] == (first_failed + 1) * SAMPLES_PER_SCRAPE
    assert not (run_dir / SERVER_METRICS_FILE).exists()
    kept = read_server_metrics(run_dir, SlabenchError)
    assert kept is not None and sorted(kept["scraped_at"].unique()) == [T0 + 1, T0 + 2]
