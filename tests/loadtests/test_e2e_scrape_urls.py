"""Several ``--scrape-url``: a real Locust run against the session's reference server scrapes
its ``/metrics`` under two URLs, and the run directory keeps both (each sample with its URL,
run.json ``server_metrics.targets``), and the terminal reads the server's timing
families (its prefill and decode histograms among them) and its own word that it has no
energy source (a CPU server)."""

from __future__ import annotations

import json

import pandas as pd

from tests.loadtests.conftest import SMALL_LOAD, RunLocust
from tests.server_process import ServerProcess


def test_two_scrape_urls_are_both_scraped_and_recorded(
    run_locust: RunLocust, reference_server: ServerProcess
) -> None:
    first = f"{reference_server.url}/metrics"
    second = f"{reference_server.url}/metrics?exporter=second"
    result = run_locust(
        "chat", "--host", reference_server.url, "-u", "1", "-t", "1s", *SMALL_LOAD,
        "--scrape-url", first, "--scrape-url", second, "--scrape-interval", "0.5",
    )  # fmt: skip
    assert result.code == 0, result.output
    samples = pd.read_parquet(result.run_dir / "server_metrics.parquet")
    assert set(samples["url"]) == {first, second}
    for url in (first, second):  # each URL's own scrapes carry the server's families
        names = set(samples.loc[samples["url"] == url, "name"])
        assert {"slabench_energy_source", "slabench_request_latency_seconds_count"} <= names
    scraped = json.loads((result.run_dir / "run.json").read_text())["server_metrics"]
    targets = {t["url"]: t for t in scraped["targets"]}
    assert targets.keys() == {first, second}, scraped
    assert all(t["scrapes"] >= 1 and t["problem"] is None for t in targets.values()), scraped
    assert "prefill: slabench_request_prefill_time_seconds" in result.output
    assert "decode: slabench_request_decode_time_seconds" in result.output
    assert "no energy source: the target reports none" in result.output
