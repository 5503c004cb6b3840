"""The per-interval decomposition of a server that reports only Prometheus, against
exposition text whose sums and counts are known: vLLM's histograms (seconds), Triton's µs
counters, the reference server's ``slabench_*``; a family a server lacks is named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loadtests.recording.scrapes import ScrapeRecorder
from sla.errors import SlabenchError
from sla.files.server_metrics import read_server_metrics
from sla.server_intervals import decompose

T0 = 1764400000.0


def scraped(tmp_path: Path, *pages: tuple[float, str, str]) -> pd.DataFrame:
    """The samples of ``(scraped_at, url, text)`` scrapes, written and read as a run's."""
    recorder = ScrapeRecorder(tmp_path)
    for at, url, text in pages:
        recorder.record(at, text, url)
    recorder.close()
    samples = read_server_metrics(tmp_path, SlabenchError)
    assert samples is not None
    return samples


def histogram(name: str, total: float, count: int, labels: str = "") -> str:
    return (
        f"# TYPE {name} histogram\n"
        f'{name}_bucket{{{labels}{"," if labels else ""}le="+Inf"}} {count}\n'
        f"{name}_sum{{{labels}}} {total}\n{name}_count{{{labels}}} {count}\n"
    )


def vllm_page(scale: int) -> str:
    """vLLM's timing histograms after ``scale`` rounds of 4 requests (two models)."""
    page = ""
    for model in ("a", "b"):
        labels = f'model_name="{model}"'
        page += histogram("vllm:request_queue_time_seconds", 0.2 * scale, 2 * scale, labels)
        page += histogram("vllm:request_prefill_time_seconds", 0.1 * scale, 2 * scale, labels)
        page += histogram("vllm:request_decode_time_seconds", 1.0 * scale, 2 * scale, labels)
        page += histogram("vllm:time_to_first_token_seconds", 0.3 * scale, 2 * scale, labels)
        page += histogram("vllm:e2e_request_latency_seconds", 1.4 * scale, 2 * scale, labels)
    return page


def client_rows(
    done_at: list[float], ttft_ms: list[float], latency_ms: list[float]
) -> pd.DataFrame:
    n = len(done_at)
    return pd.DataFrame(
        {
            "done_at": done_at,
            "ok": [True] * n,
            "ttft_ms": ttft_ms,
            "latency_ms": latency_ms,
            "tpot_ms": [np.nan] * n,
        }
    )


def test_vllm_histograms_give_each_intervals_means_beside_the_clients(tmp_path: Path) -> None:
    """Scrapes at 0, 2 and 4 s: the second interval's increases are twice the first's, so
    every mean is the same (queue 100 ms, prefill 50 ms ...); the client's means are over the
    requests that ended in each interval. ``tpot`` is missing and named, never skipped."""
    url = "http://h:8000/metrics"
    samples = scraped(
        tmp_path, (T0, url, vllm_page(1)), (T0 + 2, url, vllm_page(2)), (T0 + 4, url, vllm_page(4))
    )
    rows = client_rows([T0 + 1, T0 + 1.5, T0 + 3], [300.0, 340.0, 310.0], [1500.0, 1700.0, 1600.0])
    d = decompose(samples, rows)
    assert d.server == "vLLM"
    assert "queue: vllm:request_queue_time_seconds" in d.found
    assert d.missing == (
        "tpot: vllm:request_time_per_output_token_seconds or "
        "vllm:time_per_output_token_seconds or vllm:inter_token_latency_seconds",
    )
    assert "missing tpot" in d.describe()
    f = d.frame
    assert f["start"].tolist() == [T0, T0 + 2] and f["end"].tolist() == [T0 + 2, T0 + 4]
    for column, ms in (
        ("server_queue_ms", 100.0),
        ("server_prefill_ms", 50.0),
        ("server_decode_ms", 500.0),
        ("server_ttft_ms", 150.0),
        ("server_e2e_ms", 700.0),
    ):
        assert f[column].to_numpy() == pytest.approx([ms, ms], rel=1e-12), column
    assert f["requests"].tolist() == [2, 1]
    assert f["client_ttft_ms"].tolist() == [320.0, 310.0]
    assert f["client_e2e_ms"].tolist() == [1600.0, 1600.0]


TRITON_DOC_PAGE = """# HELP nv_inference_request_success Number of successful inference requests
# TYPE nv_inference_request_success counter
nv_inference_request_success{{model="m",version="1"}} {n}
# TYPE nv_inference_request_failure counter
nv_inference_request_failure{{model="m",version="1"}} 3
# TYPE nv_inference_queue_duration_us counter
nv_inference_queue_duration_us{{model="m",version="1"}} {queue}
# TYPE nv_inference_compute_input_duration_us counter
nv_inference_compute_input_duration_us{{model="m",version="1"}} {inp}
# TYPE nv_inference_compute_infer_duration_us counter
nv_inference_compute_infer_duration_us{{model="m",version="1"}} {infer}
# TYPE nv_inference_compute_output_duration_us counter
nv_inference_compute_output_duration_us{{model="m",version="1"}} {out}
# TYPE nv_inference_request_duration_us counter
nv_inference_request_duration_us{{model="m",version="1"}} {total}
"""


def test_triton_counters_are_microseconds_over_successful_requests(tmp_path: Path) -> None:
    """Triton's documented µs counters on its own port: 161 -> 261 requests, 10,000 µs more
    queue (100 µs = 0.1 ms each), compute = input + infer + output; a restart (counters
    lower than before) counts the new values whole."""
    url = "http://h:8002/metrics"
    first = TRITON_DOC_PAGE.format(n=161, queue=11110, inp=1000, infer=5000, out=500, total=9e4)
    second = TRITON_DOC_PAGE.format(
        n=261, queue=21110, inp=3000, infer=25000, out=1500, total=2.9e5
    )
    restarted = TRITON_DOC_PAGE.format(n=50, queue=500, inp=50, infer=400, out=50, total=5000)
    samples = scraped(tmp_path, (T0, url, first), (T0 + 2, url, second), (T0 + 4, url, restarted))
    d = decompose(samples, client_rows([], [], []))
    assert d.server == "Triton" and d.missing == ()
    f = d.frame
    assert f["server_queue_ms"].tolist() == pytest.approx([0.1, 0.01])
    assert f["server_compute_ms"].tolist() == pytest.approx([0.23, 0.01])
    assert f["server_e2e_ms"].tolist() == pytest.approx([2.0, 0.1])
    assert f["requests"].tolist() == [0, 0] and np.isnan(f["client_ttft_ms"]).all()


def test_the_reference_servers_families_and_no_known_server(tmp_path: Path) -> None:
    url = "http://h/metrics"
    page = (
        "".join(
            histogram(f"slabench_{n}", 0.5 * k, 10 * k)
            for n in ("queue_time_seconds", "request_latency_seconds")
        )
        for k in (1, 3)
    )
    samples = scraped(tmp_path, (T0, url, next(page)), (T0 + 1, url, next(page)))
    d = decompose(samples, client_rows([], [], []))
    assert d.server == "slabench reference server"
    assert d.frame["server_queue_ms"].tolist() == [50.0]
    assert d.missing == (
        "prefill: slabench_request_prefill_time_seconds",
        "decode: slabench_request_decode_time_seconds",
        "ttft: slabench_time_to_first_token_seconds",
        "tpot: slabench_inter_token_latency_seconds",
    )
    other = scraped(tmp_path / "x", (T0, url, "# TYPE up gauge\nup 1\n"))
    assert (
        decompose(other, client_rows([], [], []))
        .describe()
        .startswith("no server timing families scraped")
    )
