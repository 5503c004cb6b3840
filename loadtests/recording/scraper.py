"""The Prometheus scrape loops of a run: one greenlet per scrape URL (the target's
``/metrics``, and any other ``--scrape-url``, e.g. a DCGM exporter's ``:9400/metrics``),
every sample written with the URL it came from (``recording.scrapes.ScrapeRecorder``).

KServe V2 servers serve their metrics on a port of their own (Triton 8002, MLServer 8082), so
the default ``<host>/metrics`` answers 404 there. When the default URL (no ``--scrape-url``)
answers 404, the same host's ``probe_ports`` are tried in turn and the first that serves
Prometheus text is scraped instead; one line says what was found. A URL whose first scrape
fails is given up with one line saying that no server metrics come from it, and why.

Usage::

    scraper = MetricsScraper(urls, 2.0, run_dir, tls=tls, probe_ports=KSERVE_METRICS_PORTS)
    scraper.start()
    summary = scraper.stop()    # run.json ``server_metrics``
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import gevent
from geventhttpclient import HTTPClient

from loadtests.client.clock import now
from loadtests.client.tls import Tls
from loadtests.client.transport import tls_client_options
from loadtests.recording.scrapes import ScrapeRecorder
from sla.files.run import strip_credentials

__all__ = ["KSERVE_METRICS_PORTS", "MetricsScraper", "probe_urls"]

log = logging.getLogger("slabench")

KSERVE_METRICS_PORTS = (8002, 8082)  # Triton's --metrics-port, MLServer's metrics_port


def probe_urls(url: str, ports: Sequence[int]) -> list[str]:
    """``url`` with each of ``ports`` on the same host, path ``/metrics``."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return [urlunsplit((parts.scheme, f"{host}:{port}", "/metrics", "", "")) for port in ports]


class _Target:
    """One scrape URL: how many scrapes it gave, and why it stopped giving them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.shown = strip_credentials(url)
        self.scrapes = 0
        self.problem: str | None = None
        self.probed: str | None = None  # what probing the KServe ports found


class MetricsScraper:
    """Scrapes each of ``urls`` every ``interval_s`` into ``run_dir`` as it goes."""

    def __init__(
        self,
        urls: Sequence[str],
        interval_s: float,
        run_dir: Path,
        *,
        tls: Tls | None = None,
        probe_ports: Sequence[int] = (),
    ) -> None:
        self._targets = [_Target(u) for u in urls]
        self._tls = tls or Tls()
        self._interval_s = interval_s
        self._probe_ports = tuple(probe_ports)
        self._samples = ScrapeRecorder(run_dir)
        self._greenlets: list[gevent.Greenlet[Any, None]] = []

    @property
    def scrapes(self) -> int:
        return self._samples.scrapes

    @property
    def problem(self) -> str | None:
        """Why samples are missing: a write that failed, else the scrapes that did."""
        failed = "; ".join(t.problem for t in self._targets if t.problem)
        return self._samples.problem or failed or None

    def start(self) -> None:
        self._greenlets = [gevent.spawn(self._loop, t) for t in self._targets]

    def _client(self, url: str) -> HTTPClient:
        return HTTPClient.from_url(
            url, connection_timeout=5, network_timeout=5, **tls_client_options(self._tls)
        )

    def _loop(self, target: _Target) -> None:
        client = self._client(target.url)
        try:
            status = self._scrape_once(client, target)
            if status == 404 and self._probe_ports:
                client.close()
                client = self._probe(target)
                status = 200 if target.scrapes else status
            if not target.scrapes:
                log.warning(
                    "no server metrics will be collected from %s: %s", target.shown, target.problem
                )
                return
            while self._samples.problem is None:
                gevent.sleep(self._interval_s)
                self._scrape_once(client, target)
        finally:
            client.close()

    def _probe(self, target: _Target) -> HTTPClient:
        """Try the KServe V2 metrics ports of the target's host; the client of the first
        that serves Prometheus text (then ``target`` scrapes there), else of the last."""
        tried = probe_urls(target.url, self._probe_ports)
        first_url, first = target.url, target.shown
        for url in tried:
            client = self._client(url)
            target.url, target.shown = url, strip_credentials(url)
            if self._scrape_once(client, target) == 200 and target.scrapes:
                target.problem = None
                target.probed = f"{first} answered HTTP 404; found metrics at {target.shown}"
                log.warning("server metrics: %s (a KServe V2 metrics port)", target.probed)
                return client
            client.close()
        ports = ", ".join(str(p) for p in self._probe_ports)
        target.probed = f"{first} answered HTTP 404, and no metrics on port {ports} either"
        target.problem = f"{target.probed}; give --scrape-url"
        # Named by the URL it was given, not by the last port tried.
        target.url, target.shown = first_url, first
        return self._client(first_url)

    def _scrape_once(self, client: HTTPClient, target: _Target) -> int:
        """One scrape: its HTTP status (0: no answer, or not Prometheus text)."""
        try:
            response = client.get(_request_uri(target.url))
            body = response.read()
            if response.status_code != 200:
                target.problem = f"{target.shown} answered HTTP {response.status_code}"
                return int(response.status_code)
            text = body.decode("utf-8", errors="replace")
            # ValueError when the body is not Prometheus text: nothing of it is recorded
            # Parsed family by family, with the loop's other work run between them.
            if self._samples.record(now(), text, target.shown, pause=_yield):
                target.scrapes += 1
            return 200
        except (OSError, ValueError, gevent.Timeout) as exc:
            target.problem = f"{target.shown}: {type(exc).__name__}: {exc}"
            return 0

    def _final_scrape(self, target: _Target) -> None:
        """A scrape with short timeouts: a target that died at the end delays the stop by
        at most a few seconds."""
        client = HTTPClient.from_url(
            target.url, connection_timeout=2, network_timeout=2, **tls_client_options(self._tls)
        )
        try:
            with gevent.Timeout(5, False):
                self._scrape_once(client, target)
        finally:
            client.close()

    def stop(self) -> dict[str, Any]:
        """Stop scraping and close ``server_metrics.parquet``; return run.json's summary:
        the first URL's (``url``) as before, and each URL's (``targets``)."""
        gevent.killall(self._greenlets, block=True)
        # One last scrape at the stop: a run shorter than the interval still gets an
        # interval to decompose (start to end), and labelled families observed during it.
        for target in self._targets:
            if target.scrapes and target.problem is None and self._samples.problem is None:
                self._final_scrape(target)
        self._samples.close()
        targets = [
            {"url": t.shown, "scrapes": t.scrapes, "problem": t.problem, "probed": t.probed}
            for t in self._targets
        ]
        first = self._targets[0].shown if self._targets else ""
        return {
            "url": first,
            **self._samples.summary(),
            "problem": self.problem,
            "targets": targets,
        }


def _yield() -> None:
    gevent.sleep(0)


def _request_uri(url: str) -> str:
    rest = url.split("://", 1)[-1]
    slash = rest.find("/")
    return rest[slash:] if slash >= 0 else "/"
