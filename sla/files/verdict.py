"""``verdict.json``: the judgement of a run against an SLA spec, written next to the run.

``write_verdict`` writes a ``sla.verdict.Verdict`` (every field, plus ``schema_version``
and the ``exit_code`` it leads to); ``load_verdict`` reads it back into the same frozen
``Verdict``, so that a report renders the judgement that was made at the end of the run,
not a new one. ``incomplete`` (why the run lacks data) and ``disturbed`` (why the load
generator was disturbed) are lists of strings, absent in files written before they existed,
which read back as a complete, undisturbed run; ``stopped_early`` says why
``--sla-stop-early`` ended the run ("" or absent: it ran its course). ``errors_by_class``
is an object, error class -> count of the judged failures, the most frequent first
(absent in older files: empty). A saturated run's ``status`` reads back INCONCLUSIVE where
an older file says PASS: it is never a PASS (``sla.verdict``), and its ``exit_code`` was 4
already. Non-finite floats are written as null and come back NaN. A malformed file raises
``RunDirError`` (one line).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sla.files.jsonio import check_schema_version, write_json_atomic
from sla.files.run import RunDirError
from sla.objectives import ObjectiveResult, Status
from sla.verdict import Counts, Verdict, exit_code, overall_status

__all__ = [
    "VERDICT_FILE",
    "VERDICT_SCHEMA_VERSION",
    "load_verdict",
    "verdict_from_dict",
    "verdict_to_dict",
    "write_verdict",
]

VERDICT_FILE = "verdict.json"
VERDICT_SCHEMA_VERSION = 1
_HINT = "re-judge with --sla SPEC"


def verdict_to_dict(verdict: Verdict) -> dict[str, Any]:
    """What ``verdict.json`` holds."""
    data = asdict(verdict)
    data["errors_by_class"] = dict(verdict.errors_by_class)
    data["schema_version"] = VERDICT_SCHEMA_VERSION
    data["exit_code"] = exit_code(verdict)
    return data


def write_verdict(run_dir: str | os.PathLike[str], verdict: Verdict) -> Path:
    """Write ``verdict.json`` into the run directory atomically; return its path."""
    path = Path(run_dir) / VERDICT_FILE
    write_json_atomic(path, verdict_to_dict(verdict))
    return path


def load_verdict(run_dir: str | os.PathLike[str]) -> Verdict | None:
    """The run's ``verdict.json`` as a ``Verdict``; None when the run was not judged."""
    path = Path(run_dir) / VERDICT_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{path} is not readable JSON ({exc}); {_HINT}") from exc
    return verdict_from_dict(data, source=str(path))


def verdict_from_dict(data: object, source: str = VERDICT_FILE) -> Verdict:
    """Rebuild a ``Verdict`` from ``verdict_to_dict`` output; ``RunDirError`` if malformed."""
    if not isinstance(data, Mapping):
        raise RunDirError(f"{source} must hold a JSON object; {_HINT}")
    version = data.get("schema_version", VERDICT_SCHEMA_VERSION)
    check_schema_version(
        version, VERDICT_SCHEMA_VERSION, RunDirError, Path(source), f"{source} has verdict"
    )
    try:
        return _verdict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise RunDirError(
            f"{source} is not a slabench verdict (bad or missing {exc}); {_HINT}"
        ) from exc


def _verdict(data: Mapping[str, Any]) -> Verdict:
    counts = data["counts"]
    saturated = bool(data["saturated"])
    return Verdict(
        spec_name=str(data["spec_name"]),
        spec_source=str(data["spec_source"]),
        run_path=str(data["run_path"]),
        status=overall_status({Status(data["status"])}, untrusted=saturated),
        saturated=saturated,
        confidence=float(data["confidence"]),
        window_s=_optional_float(data.get("window_s")),
        counts=Counts(
            recorded=int(counts["recorded"]),
            measured=int(counts["measured"]),
            ok=int(counts["ok"]),
            failed=int(counts["failed"]),
            good=None if counts.get("good") is None else int(counts["good"]),
        ),
        objectives=tuple(_objective(item) for item in data["objectives"]),
        incomplete=tuple(str(reason) for reason in data.get("incomplete") or ()),
        errors_by_class=tuple(
            (str(name), int(n)) for name, n in dict(data.get("errors_by_class") or {}).items()
        ),
        disturbed=tuple(str(reason) for reason in data.get("disturbed") or ()),
        stopped_early=str(data.get("stopped_early") or ""),
    )


def _objective(item: Mapping[str, Any]) -> ObjectiveResult:
    return ObjectiveResult(
        index=int(item["index"]),
        metric=str(item["metric"]),
        stat=None if item.get("stat") is None else str(item["stat"]),
        op=str(item["op"]),
        limit=_float(item["limit"]),
        observed=_float(item.get("observed")),
        margin=_float(item.get("margin")),
        margin_rel=_float(item.get("margin_rel")),
        n=int(item["n"]),
        ci_low=_optional_float(item.get("ci_low")),
        ci_high=_optional_float(item.get("ci_high")),
        status=Status(item["status"]),
        message=str(item["message"]),
        where=str(item.get("where") or ""),
    )


def _float(value: object) -> float:
    """A JSON number, or NaN for the null that stands for a non-finite float."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"number expected, got {value!r}")
    return float(value)


def _optional_float(value: object) -> float | None:
    return None if value is None else _float(value)
