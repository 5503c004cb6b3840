"""``server_metrics.parquet``: Prometheus samples scraped from the target during a run.

One row per sample: ``scraped_at`` (epoch s), ``name``, ``labels`` (a JSON object, keys
sorted) and ``value``. Written by the load generator's scraper at the end of a run
(``write_server_metrics``), read with the run (``read_server_metrics``); the file is
absent when the target had no usable ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "SERVER_METRICS_FILE",
    "SERVER_METRICS_SCHEMA",
    "read_server_metrics",
    "write_server_metrics",
]

SERVER_METRICS_FILE = "server_metrics.parquet"
SERVER_METRICS_SCHEMA = pa.schema(
    [
        ("scraped_at", pa.float64()),
        ("name", pa.string()),
        ("labels", pa.string()),
        ("value", pa.float64()),
    ]
)


def write_server_metrics(
    path: Path,
    scraped_at: Sequence[float],
    names: Sequence[str],
    labels: Sequence[str],
    values: Sequence[float],
) -> None:
    """Write the scraped samples, one column per argument, to ``path``."""
    columns = [list(scraped_at), list(names), list(labels), list(values)]
    pq.write_table(pa.table(columns, schema=SERVER_METRICS_SCHEMA), path)


def read_server_metrics(path: Path, error: type[Exception]) -> pd.DataFrame | None:
    """The samples in ``path`` as a frame, None when the file is absent; ``error`` (one
    line) when it is not readable parquet."""
    if not path.exists():
        return None
    try:
        return pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowException) as exc:
        raise error(f"{path} is not a readable parquet file ({exc})") from exc
