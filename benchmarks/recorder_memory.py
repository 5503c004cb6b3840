"""Memory and speed of ``RequestRecorder`` over a long run (a script, not a test).

    .venv/bin/python benchmarks/recorder_memory.py [--requests 1000000] [--gaps 16]

Records synthetic requests one by one through ``RequestRecorder.add`` (records are made on
the fly, so that only the recorder holds memory), then ``close()``. Prints the peak RSS
growth over the baseline, scaled to MB per million requests (target: < 150), the RSS
growth at each quarter of the run (bounded memory shows as a plateau), the wall times and
the bytes on disk.
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
import time
from pathlib import Path

import psutil

from loadtests.recording.recorder import RequestRecorder
from sla.files.run import RequestRecord

_MB = 1024 * 1024
_TARGET_MB_PER_MILLION = 150.0


def _record(i: int, gaps: int, rng: random.Random) -> RequestRecord:
    scheduled = 1764400000.0 + i * 0.0005 + rng.random() * 1e-4
    sent = scheduled + rng.random() * 1e-3
    first = sent + 0.02 + rng.random() * 0.05
    gaps_ms = tuple(rng.random() * 40.0 for _ in range(gaps))
    return RequestRecord(
        request_id=f"w3-{i}",
        worker="w3",
        endpoint="/v1/chat/completions",
        scheduled_at=scheduled,
        sent_at=sent,
        first_token_at=first,
        done_at=first + sum(gaps_ms) / 1000.0,
        status=200,
        error=None,
        input_tokens=128,
        output_tokens=gaps + 1,
        output_tokens_source="usage",
        chunk_count=gaps + 1,
        chunk_gaps_ms=gaps_ms,
    )


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def run(n_requests: int, gaps: int, flush_rows: int, run_dir: Path) -> None:
    proc = psutil.Process()
    rng = random.Random(7)
    _record(0, gaps, rng)  # warm imports and allocator before taking the baseline
    base_rss = proc.memory_info().rss
    quarters = {n_requests * q // 4 for q in (1, 2, 3)}
    recorder = RequestRecorder(run_dir, flush_rows=flush_rows)

    t0 = time.perf_counter()
    for i in range(n_requests):
        recorder.add(_record(i, gaps, rng))
        if i + 1 in quarters:
            growth_mb = (proc.memory_info().rss - base_rss) / _MB
            print(f"  after {i + 1:>9,} requests: RSS +{growth_mb:7.1f} MB")
    t_add = time.perf_counter() - t0
    parts_bytes = sum(p.stat().st_size for p in (run_dir / "requests.parts").iterdir())
    t1 = time.perf_counter()
    total = recorder.close()
    t_close = time.perf_counter() - t1

    assert total == n_requests, (total, n_requests)
    peak_mb = (_peak_rss_bytes() - base_rss) / _MB
    per_million_mb = peak_mb * 1_000_000 / n_requests
    file_bytes = (run_dir / "requests.parquet").stat().st_size
    print(f"requests: {n_requests:,} with {gaps} chunk gaps each, flush_rows={flush_rows:,}")
    print(f"peak RSS growth: {peak_mb:.1f} MB  =  {per_million_mb:.1f} MB per million requests")
    verdict = "OK" if per_million_mb < _TARGET_MB_PER_MILLION else "OVER TARGET"
    print(f"target < {_TARGET_MB_PER_MILLION:.0f} MB per million: {verdict}")
    print(
        f"wall: add {t_add:.1f} s ({t_add / n_requests * 1e6:.2f} us/request incl. building "
        f"the synthetic record), close/merge {t_close:.1f} s"
    )
    print(f"on disk: requests.parquet {file_bytes / _MB:.1f} MB ({file_bytes:,} bytes)")
    print(f"         parts before merge {parts_bytes / _MB:.1f} MB ({parts_bytes:,} bytes)")


def hot_path(gaps: int, flush_rows: int, run_dir: Path, n_flushes: int = 10) -> None:
    """Cost of ``add`` itself on a prebuilt record, and of the ``add`` that flushes a part."""
    rec = _record(0, gaps, random.Random(1))
    recorder = RequestRecorder(run_dir, flush_rows=flush_rows)
    add_s, flush_s = 0.0, []
    for _ in range(n_flushes):
        t0 = time.perf_counter()
        for _ in range(flush_rows - 1):
            recorder.add(rec)
        t1 = time.perf_counter()
        recorder.add(rec)  # this one writes the part
        flush_s.append(time.perf_counter() - t1)
        add_s += t1 - t0
    recorder.close()
    print(
        f"hot path: add() {add_s / (n_flushes * (flush_rows - 1)) * 1e9:.0f} ns/call; "
        f"the add() that flushes {flush_rows:,} rows: mean {sum(flush_s) / n_flushes * 1e3:.1f} ms,"
        f" max {max(flush_s) * 1e3:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--gaps", type=int, default=16)
    parser.add_argument("--flush-rows", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slabench-recorder-") as tmp:
        run(args.requests, args.gaps, args.flush_rows, Path(tmp) / "run")
        hot_path(args.gaps, args.flush_rows, Path(tmp) / "hot")


if __name__ == "__main__":
    main()
