"""JSON files of a run or sweep directory: written atomically, read back as one object, and
their ``schema_version`` checked. Shared by every format module of ``sla.files``."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["check_schema_version", "read_json_object", "unique_temp", "write_json_atomic"]


def read_json_object(path: Path, error: type[Exception], hint: str = "") -> dict[str, Any]:
    """The JSON object in ``path``, or ``error`` with one line saying what is wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path} is not valid JSON ({exc}){hint}") from exc
    if not isinstance(data, dict):
        raise error(f"{path} must hold a JSON object, not {type(data).__name__}")
    return data


def check_schema_version(
    version: object, current: int, error: type[Exception], path: Path, uses: str
) -> None:
    """``version`` must be a whole number from 1 to ``current``; a newer one means the file
    was written by a newer slabench (``uses`` starts the message: "<dir> uses run")."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise error(f"{path} has no valid schema_version (got {version!r})")
    if version > current:
        raise error(
            f"{uses} schema version {version} but this slabench reads up to {current}; "
            "upgrade slabench to read it"
        )


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as JSON so that readers see the old file or the new one, never half.

    Non-finite floats become null (JSON has no NaN); paths and numpy scalars are converted.
    """
    target = Path(path)
    text = json.dumps(_finite(obj), indent=2, allow_nan=False, default=_json_default)
    fd, tmp = unique_temp(target)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def unique_temp(target: Path) -> tuple[int, Path]:
    """A new temporary file beside ``target`` (``.<name>.<random>.tmp``), created
    exclusively: no other process can have planted it, or a link in its place. Its mode is
    0644 (mkstemp's 0600 would make the renamed file private). Returns (fd, path)."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.fchmod(fd, 0o644)
    return fd, Path(name)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(value) for value in obj]
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "item"):  # numpy scalars
        return _finite(obj.item())
    if hasattr(obj, "tolist"):  # numpy arrays
        return _finite(obj.tolist())
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
