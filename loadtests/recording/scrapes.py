"""The scraped Prometheus samples of a run, written as they come: ``server_metrics.parts/``,
then ``server_metrics.parquet`` (``sla.files.server_metrics``).

Each scrape's text becomes rows ``(scraped_at, name, labels_json, value)`` handed to a
``PartsWriter``: a batch is written every ``batch_rows`` samples, and a part is complete
every ``scrapes_per_part`` scrapes (or ``part_rows`` samples), so a process killed hard
keeps every sample but those of its last few scrapes, and memory holds one batch and one
scrape however long the run. ``close()`` merges the parts into ``server_metrics.parquet``.

A write that fails is not the end of the run: the request records are the measurement, the
server's samples only its context. The failure is said once, as a warning (``cannot write
the server-metrics samples to <run dir>: <OS error> ...``); recording stops, what was written
stays readable, and ``summary()`` (run.json ``server_metrics``) counts the samples not
written while the scraper puts the line in its ``problem``. If the disk is full, the request
recorder's next write fails too, and that one stops the run.

Usage::

    samples = ScrapeRecorder(run_dir)
    samples.record(now(), text, url)  # one scrape's body and its URL; False once writing failed
    samples.record(now(), text, url, pause=lambda: gevent.sleep(0))  # yield between families
    samples.close()                 # merged (if anything was scraped), parts removed
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from loadtests.recording.parts import PartsWriter, RecordingError
from sla.files.server_metrics import (
    SERVER_METRICS_FILE,
    SERVER_METRICS_PARTS_DIR,
    SERVER_METRICS_SCHEMA,
)

log = logging.getLogger("slabench")

NOUN = "server-metrics samples"
SCRAPES_PER_PART = 5  # a hard kill loses at most the samples of the last 5 scrapes
# Every column repeats: the names and label sets every scrape, the time within a scrape,
# many values from one scrape to the next.
_DICTIONARY_COLUMNS = SERVER_METRICS_SCHEMA.names


class ScrapeRecorder:
    """Writes the samples of each scrape to ``run_dir`` in bounded memory."""

    def __init__(
        self,
        run_dir: Path,
        *,
        scrapes_per_part: int = SCRAPES_PER_PART,
        part_rows: int = 100_000,
        batch_rows: int = 5_000,
    ) -> None:
        if scrapes_per_part < 1:
            raise ValueError(f"scrapes_per_part must be >= 1, got {scrapes_per_part}")
        self._run_dir = Path(run_dir)
        self._parts = PartsWriter(
            self._run_dir / SERVER_METRICS_PARTS_DIR,
            SERVER_METRICS_SCHEMA,
            noun=NOUN,
            part_rows=part_rows,
            batch_rows=batch_rows,
            dictionary=_DICTIONARY_COLUMNS,
            group_rows=part_rows,  # parts of 5 scrapes are small: gather them at the merge
        )
        self._scrapes_per_part = scrapes_per_part
        self.scrapes = 0
        self.problem: str | None = None  # the write failure, once there is one

    @property
    def parts(self) -> PartsWriter:
        """The writer underneath (its ``buffered``, ``written`` and ``count``)."""
        return self._parts

    def record(
        self,
        scraped_at: float,
        text: str,
        url: str = "",
        *,
        pause: Callable[[], None] | None = None,
    ) -> bool:
        """Add the samples of one scrape (Prometheus text format); False when they cannot be
        written (said once, then every later scrape is refused). ``ValueError`` when the
        text is not Prometheus text: then nothing of it is added.

        ``pause`` is called after each metric family is parsed (the scraper passes a yield
        to the event loop): a vLLM-sized page (~100 KB) takes ~35 ms of pure-Python parsing,
        a pause every stream in flight would otherwise see in its timestamps."""
        if self._parts.failed is not None:
            return False
        rows: list[tuple[float, str, str, float, str]] = []
        for family in text_string_to_metric_families(text):
            rows += [
                (scraped_at, s.name, json.dumps(s.labels, sort_keys=True), float(s.value), url)
                for s in family.samples
            ]
            if pause is not None:
                pause()
        self.scrapes += 1
        try:
            self._parts.add_rows(rows)
            if self.scrapes % self._scrapes_per_part == 0:
                self._parts.finish_part()
        except RecordingError as exc:
            self._failed(exc)
            return False
        return True

    def close(self) -> None:
        """Merge what was scraped into ``server_metrics.parquet`` (no file when nothing was
        scraped). After a failed write the complete parts stay as they are: readable."""
        if self.scrapes == 0 or self._parts.failed is not None:
            return
        try:
            self._parts.close(self._run_dir / SERVER_METRICS_FILE)
        except RecordingError as exc:
            self._failed(exc)

    def _failed(self, exc: RecordingError) -> None:
        self.problem = str(exc)
        log.warning("%s; the run goes on without them", exc)

    def summary(self) -> dict[str, Any]:
        """For run.json ``server_metrics``: scrapes, samples on disk, samples not written."""
        return {
            "scrapes": self.scrapes,
            "samples": self._parts.written,
            "samples_not_written": self._parts.count - self._parts.written,
        }
