"""Options of the SLA-constrained capacity search (``--capacity-search``); see
``loadtests.capacity.search`` for the search itself and ``sla.search`` for its policy."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from loadtests.errors import LoadSpecError
from loadtests.workloads.shapes import parse_duration_s
from sla.search import SearchSettings

# Set in the environment of each step's locust so that it runs the step, not a search.
STEP_ENV = "SLABENCH_CAPACITY_STEP"
# ...and, when the target is the bundled server the search started, this: the step then
# sizes prompts and names models as it would for a bundled server of its own.
BUNDLED_ENV = "SLABENCH_CAPACITY_BUNDLED"
# Set by a parent that judges the directory it passed with --run-dir (a capacity step, the
# pytest gate, which spells it out): the child writes exactly there or fails, never beside.
EXACT_RUN_DIR_ENV = "SLABENCH_EXACT_RUN_DIR"


def bundled_by_search() -> bool:
    """This locust is a step of a search whose parent started the bundled server."""
    return os.environ.get(BUNDLED_ENV) == "1"


def add_search_options(opt: Callable[..., None]) -> None:
    """Register the options through the ``opt(flag, env, **kw)`` helper of add_options."""
    opt(
        "--capacity-search",
        "CAPACITY_SEARCH",
        action="store_true",
        default=False,
        help="search the highest load that passes --sla: widen geometrically until a step "
        "fails, then bisect; writes capacity.json into the sweep directory (--run-dir)",
    )
    opt(
        "--search-mode",
        "SEARCH_MODE",
        choices=["rate", "concurrency"],
        default="rate",
        help="capacity search: open-loop arrival rate (req/s) or closed-loop users",
    )
    opt("--search-start", "SEARCH_START", default="1", help="capacity search: first load")
    opt("--search-factor", "SEARCH_FACTOR", default="2", help="capacity search: widening factor")
    opt(
        "--search-precision",
        "SEARCH_PRECISION",
        default="5%",
        help="capacity search: stop when the lowest failing load is within this of the "
        "highest passing one (5%% or 0.05)",
    )
    opt("--search-max", "SEARCH_MAX", default="0", help="capacity search: highest load (0 = none)")
    opt(
        "--search-budget",
        "SEARCH_BUDGET",
        default="30m",
        help="capacity search: time budget; it stops and reports what it established",
    )
    opt(
        "--step-time",
        "STEP_TIME",
        default="10s",
        help="capacity search: measured time of a step (bisection steps run longer when the "
        "SLA needs more samples)",
    )
    opt("--step-warmup", "STEP_WARMUP", default="3s", help="capacity search: warm-up of a step")
    opt(
        "--step-max-time",
        "STEP_MAX_TIME",
        default="2m",
        help="capacity search: longest measured time of one step segment",
    )
    opt(
        "--step-min-samples",
        "STEP_MIN_SAMPLES",
        type=int,
        default=0,
        help="capacity search: requests a bisection step needs (0 = what the SLA needs to pass)",
    )
    opt(
        "--step-extensions",
        "STEP_EXTENSIONS",
        type=int,
        default=2,
        help="capacity search: extra segments for an INCONCLUSIVE bisection step",
    )
    opt(
        "--step-retries",
        "STEP_RETRIES",
        type=int,
        default=1,
        help="capacity search: re-runs of a step that errored (target restarted, crash)",
    )
    opt(
        "--max-send-lag",
        "MAX_SEND_LAG",
        type=float,
        default=10.0,
        help="lateness of open-loop sends (ms) beyond which the load generator counts as "
        "saturated: at p90 in a capacity search step, at p99 in a --trace replay",
    )
    opt(
        "--max-backlog-growth",
        "MAX_BACKLOG_GROWTH",
        default="5%",
        help="capacity search: an open-loop step whose arrivals exceed its completions by "
        "more than this (and by more than chance) FAILS as not sustainable",
    )
    opt(
        "--cost-per-hour",
        "COST_PER_HOUR",
        type=float,
        default=0.0,
        help="price of the target per hour (e.g. the GPU instance's): cost per 1M output "
        "tokens and per 1k requests at capacity",
    )


@dataclass(frozen=True, slots=True)
class SearchOptions:
    settings: SearchSettings
    budget_s: float
    step_s: float
    step_warmup_s: float
    step_max_s: float
    min_samples: int  # 0: from the spec
    extensions: int
    retries: int
    cost_per_hour: float
    max_send_lag_ms: float
    max_backlog_growth: float

    @property
    def mode(self) -> Literal["rate", "concurrency"]:
        return self.settings.mode

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {
            "mode": s.mode,
            "start": s.start,
            "factor": s.factor,
            "precision": s.precision,
            "minimum": s.floor,
            "maximum": s.maximum if math.isfinite(s.maximum) else None,
            "budget_s": self.budget_s,
            "step_s": self.step_s,
            "step_warmup_s": self.step_warmup_s,
            "step_max_s": self.step_max_s,
            "min_samples": self.min_samples,
            "extensions": self.extensions,
            "retries": self.retries,
            "cost_per_hour": self.cost_per_hour or None,
            "max_send_lag_ms": self.max_send_lag_ms,
            "max_backlog_growth": self.max_backlog_growth,
        }

    @classmethod
    def from_namespace(cls, ns: Any) -> SearchOptions | None:
        """None unless --capacity-search was given (and this is not one of its steps)."""
        if not ns.capacity_search:
            return None
        _check_combination(ns)
        settings = _settings(ns)
        _check_step_limits(ns)
        step_s = _duration("--step-time", ns.step_time, positive=True)
        return cls(
            settings=settings,
            budget_s=_duration("--search-budget", ns.search_budget, positive=True),
            step_s=step_s,
            step_warmup_s=_duration("--step-warmup", ns.step_warmup),
            step_max_s=max(step_s, _duration("--step-max-time", ns.step_max_time, positive=True)),
            min_samples=ns.step_min_samples,
            extensions=ns.step_extensions,
            retries=ns.step_retries,
            cost_per_hour=ns.cost_per_hour,
            max_send_lag_ms=ns.max_send_lag,
            max_backlog_growth=_fraction("--max-backlog-growth", ns.max_backlog_growth),
        )


def _check_combination(ns: Any) -> None:
    """The options --capacity-search cannot run with."""
    if ns.arrival_rate or ns.shape:
        flag = "--arrival-rate" if ns.arrival_rate else "--shape"
        raise LoadSpecError(f"--capacity-search sets the load itself; drop {flag}")
    if not ns.sla:
        raise LoadSpecError("--capacity-search needs --sla FILE: the SLA defines capacity")
    if getattr(ns, "master", False) and not getattr(ns, "processes", None):
        raise LoadSpecError(
            "--capacity-search runs each step as a locust of its own; spread the load "
            "with --processes N on this machine, not --master/--worker"
        )


def _settings(ns: Any) -> SearchSettings:
    """The search policy's settings (sla.search), from the --search-* options."""
    maximum = _number("--search-max", ns.search_max, minimum=0.0)
    try:
        return SearchSettings(
            mode=ns.search_mode,
            start=_number("--search-start", ns.search_start, minimum=0.0, strict=True),
            factor=_number("--search-factor", ns.search_factor, minimum=1.0, strict=True),
            precision=_fraction("--search-precision", ns.search_precision),
            maximum=maximum if maximum > 0 else math.inf,
        )
    except ValueError as exc:
        raise LoadSpecError(f"--capacity-search: {exc}") from None


def _check_step_limits(ns: Any) -> None:
    """Step counts, --max-send-lag and --cost-per-hour in their ranges."""
    for flag, value in (
        ("--step-min-samples", ns.step_min_samples),
        ("--step-extensions", ns.step_extensions),
        ("--step-retries", ns.step_retries),
    ):
        if value < 0:
            raise LoadSpecError(f"{flag} {value} must be >= 0")
    if not (math.isfinite(ns.max_send_lag) and ns.max_send_lag > 0):
        raise LoadSpecError(f"--max-send-lag {ns.max_send_lag} must be > 0 milliseconds")
    if not (math.isfinite(ns.cost_per_hour) and ns.cost_per_hour >= 0):
        raise LoadSpecError(f"--cost-per-hour {ns.cost_per_hour} must be a price >= 0")


def _number(flag: str, text: str, *, minimum: float, strict: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        relation = ">" if strict else ">="
        raise LoadSpecError(f"{flag} {text!r} must be a number {relation} {minimum:g}")
    return value


def _fraction(flag: str, text: str) -> float:
    raw = text.strip()
    scale = 100.0 if raw.endswith("%") else 1.0
    value = _number(flag, raw.rstrip("%"), minimum=0.0, strict=True) / scale
    if value >= 1.0:
        raise LoadSpecError(f"{flag} {text!r} must be below 100% (e.g. 5% or 0.05)")
    return value


def _duration(flag: str, text: str, *, positive: bool = False) -> float:
    try:
        seconds = parse_duration_s(text)
    except ValueError:
        seconds = -1.0
    if seconds < 0 or (positive and seconds == 0):
        raise LoadSpecError(f"{flag} {text!r} must be a duration like 10s, 2m or 5")
    return seconds
