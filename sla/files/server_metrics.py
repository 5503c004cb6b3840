"""``server_metrics.parquet``: Prometheus samples scraped from the target during a run.

One row per sample: ``scraped_at`` (epoch s), ``name``, ``labels`` (a JSON object, keys
sorted), ``value`` and ``url`` (the scrape URL it came from, credentials stripped: a run may
scrape several, e.g. the target's ``/metrics`` and a DCGM exporter's). Files written before
``url`` existed read with ``url`` empty. The load generator's scraper writes the samples as
it goes to ``server_metrics.parts/part-NNNNN.parquet`` (see ``sla.files.parts``) and merges
them into ``server_metrics.parquet`` when the run closes. ``read_server_metrics`` reads the file, or
the parts of a run killed before it closed; there is neither when the target had no usable
``/metrics`` (or scraping was off). Runs of earlier releases wrote the file alone, in the
same format.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sla.files.parts import part_paths

__all__ = [
    "SERVER_METRICS_FILE",
    "SERVER_METRICS_PARTS_DIR",
    "SERVER_METRICS_SCHEMA",
    "read_server_metrics",
]

SERVER_METRICS_FILE = "server_metrics.parquet"
SERVER_METRICS_PARTS_DIR = "server_metrics.parts"
SERVER_METRICS_SCHEMA = pa.schema(
    [
        ("scraped_at", pa.float64()),
        ("name", pa.string()),
        ("labels", pa.string()),
        ("value", pa.float64()),
        ("url", pa.string()),
    ]
)


def read_server_metrics(run_dir: Path, error: type[Exception]) -> pd.DataFrame | None:
    """The samples of the run in ``run_dir`` as a frame: ``server_metrics.parquet``, else
    its complete parts (a run killed before it closed), else None. ``error`` (one line) when
    a file is not readable parquet."""
    file = run_dir / SERVER_METRICS_FILE
    if file.exists():
        return _read(file, error).to_pandas()
    parts = part_paths(run_dir / SERVER_METRICS_PARTS_DIR)
    if not parts:
        return None
    return pa.concat_tables([_read(p, error) for p in parts]).to_pandas()


def _read(path: Path, error: type[Exception]) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise error(f"{path} is not a readable parquet file ({exc})") from exc
    if "url" not in table.column_names:  # written before several scrape URLs
        table = table.append_column("url", pa.array([""] * table.num_rows, pa.string()))
    missing = [n for n in SERVER_METRICS_SCHEMA.names if n not in table.column_names]
    if missing:
        raise error(f"{path} lacks the columns {missing}; it was not written by slabench")
    try:
        return table.select(SERVER_METRICS_SCHEMA.names).cast(SERVER_METRICS_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise error(f"{path}: a column has the wrong type ({exc})") from exc
