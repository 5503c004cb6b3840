"""Part files: how a table recorded during a run lies on disk until the run is closed.

A recorder writes ``<name>.parts/part-00000.parquet``, ``part-00001.parquet``... as it goes
(each complete: written under a temporary name, then renamed), and merges them into
``<name>.parquet`` when the run closes. A run killed hard keeps its parts; the readers of
``sla.files.run`` (``requests.parts/``) and ``sla.files.server_metrics``
(``server_metrics.parts/``) read them in write order.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["part_path", "part_paths"]


def part_path(parts_dir: Path, index: int) -> Path:
    """The path of part number ``index`` (from 0) in ``parts_dir``."""
    return parts_dir / f"part-{index:05d}.parquet"


def part_paths(parts_dir: Path) -> list[Path]:
    """The complete part files of ``parts_dir`` in write order (tmp files are ignored);
    empty when the directory does not exist."""
    parts = [p for p in parts_dir.glob("part-*.parquet") if p.stem[5:].isdigit()]
    return sorted(parts, key=lambda p: int(p.stem[5:]))
