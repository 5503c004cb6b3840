"""Where a report's verdict comes from: ``verdict.json`` in the run directory, or a spec.

``verdict.json`` is what ``sla.verdict.write_verdict`` wrote (``Verdict.to_dict``); it is read
back into the same frozen ``Verdict`` so that a report renders the judgement that was made at
the end of the run, not a new one. Non-finite floats were written as null and come back NaN.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sla.records import Run
from sla.spec import load_spec
from sla.verdict import VERDICT_FILE, Counts, ObjectiveResult, Status, Verdict, evaluate

__all__ = ["ReportError", "load_verdict", "resolve_verdict", "verdict_from_dict"]

_READABLE_VERSION = 1


class ReportError(Exception):
    """A report that cannot be made; str() is one line saying what is wrong and the fix."""


def load_verdict(run_dir: str | os.PathLike[str]) -> Verdict | None:
    """The run's ``verdict.json`` as a ``Verdict``; None when the run was not judged."""
    path = Path(run_dir) / VERDICT_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path} is not readable JSON ({exc}); re-judge with --sla SPEC") from exc
    return verdict_from_dict(data, source=str(path))


def resolve_verdict(run: Run, sla_path: str | None) -> Verdict | None:
    """Judge ``run`` with the spec at ``sla_path`` when given, else read its verdict.json."""
    if sla_path is not None:
        return evaluate(load_spec(sla_path), run)
    return load_verdict(run.path)


def verdict_from_dict(data: object, source: str = "verdict.json") -> Verdict:
    """Rebuild a ``Verdict`` from ``Verdict.to_dict()`` output; ``ReportError`` if malformed."""
    if not isinstance(data, Mapping):
        raise ReportError(f"{source} must hold a JSON object; re-judge with --sla SPEC")
    version = data.get("schema_version", _READABLE_VERSION)
    if not isinstance(version, int) or version > _READABLE_VERSION:
        raise ReportError(
            f"{source} has verdict schema version {version!r}; this slabench reads up to "
            f"{_READABLE_VERSION}: upgrade slabench or re-judge with --sla SPEC"
        )
    try:
        counts = data["counts"]
        return Verdict(
            spec_name=str(data["spec_name"]),
            spec_source=str(data["spec_source"]),
            run_path=str(data["run_path"]),
            status=Status(data["status"]),
            saturated=bool(data["saturated"]),
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
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(
            f"{source} is not a slabench verdict (bad or missing {exc}); re-judge with --sla SPEC"
        ) from exc


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
