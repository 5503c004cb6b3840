"""SLA specs: a YAML file of objectives, validated once into frozen dataclasses.

Usage::

    spec = load_spec("sla/examples/chat-interactive.yaml")   # raises SpecError on bad input

A spec file::

    name: chat-interactive
    confidence: 0.95            # optional, default 0.95
    warmup: 10s                 # optional: excluded in addition to the run's own warm-up
    filters: {endpoint: chat}   # optional: endpoint, scenario (a name or a list), turn
    per_request: {ttft_ms: 450, tpot_ms: 40}   # optional: what makes one request "good"
    objectives:
      - {metric: ttft_ms, stat: p99, max: 450}
      - {metric: ttft_ms, stat: p99, max: 200, where: {turn: ">1"}}   # later turns only
      - {metric: error_rate, max: 1%}
      - {metric: throughput_rps, min: 20}

Limits are in the metric's unit: ms for latencies (``"2s"``/``"450ms"`` strings also work),
requests or tokens per second for rates, a fraction for ``error_rate``/``goodput_ratio``
(``"1%"`` also works). Every mistake raises ``SpecError`` whose str() is one line naming the
file, the objective and the fix; so does a key given twice in one mapping (YAML would keep
the last silently, judging an SLA other than the one written).

``filters`` (the whole spec) and an objective's ``where`` (that objective only, on top of
``filters``) take the same keys: ``endpoint`` and ``scenario`` (a name or a list of names)
and ``turn`` (a multi-turn conversation's turn, from 1: a number, a comparison such as
``">1"``, ``">=2"``, ``"<=3"``, ``"!=1"``, or a list of them, all of which must hold). A row
without a turn (single-turn traffic) matches no ``turn`` condition, so an objective whose
filter keeps no row is INCONCLUSIVE ("no samples"), never a PASS.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from sla.errors import SlabenchError

# The one list of metric names. Latencies of a response in the order a request lives them
# (first token, between tokens, per token, end to end; the ones the figures draw), the first
# visible output (after any reasoning), then how late an open-loop send left.
RESPONSE_LATENCY_METRICS = ("ttft_ms", "itl_ms", "tpot_ms", "latency_ms")
# What the server said of its own time, and what the client saw beyond it (sla.metrics):
# NaN for a request whose server said nothing, so an objective on them without data is
# never a PASS.
SERVER_TIMING_METRICS = (
    "server_queue_ms",
    "server_prefill_ms",
    "server_decode_ms",
    "server_total_ms",
    "client_overhead_ms",
)
LATENCY_METRICS = (
    *RESPONSE_LATENCY_METRICS,
    "ttfot_ms",
    "schedule_lag_ms",
    *SERVER_TIMING_METRICS,
)
RATE_METRICS = ("throughput_rps", "output_tokens_per_s", "goodput_rps")
PROPORTION_METRICS = ("error_rate", "goodput_ratio")
# E2E latency first: the metric a spec is most often written against.
METRICS = ("latency_ms", *(m for m in LATENCY_METRICS if m != "latency_ms"))
METRICS += RATE_METRICS + PROPORTION_METRICS
# schedule_lag_ms is NaN in closed loop, which would make every request "not good".
PER_REQUEST_METRICS = ("latency_ms", "ttft_ms", "ttfot_ms", "tpot_ms", "itl_ms")
GOODPUT_METRICS = ("goodput_rps", "goodput_ratio")
STATS_HINT = "p50, p90, p99, p99.9 (any pNN[.N]), mean, max or min"

_TOP_KEYS = ("name", "description", "confidence", "warmup", "filters", "per_request", "objectives")
_OBJECTIVE_KEYS = ("metric", "stat", "max", "min", "where")
_FILTER_KEYS = ("endpoint", "scenario", "turn")
_TURN = re.compile(r"(==|!=|>=|<=|>|<|=)?\s*(\d+)")
_TURN_HINT = "a turn number or a comparison like '>1', '>=2', '<=3' or '!=1'"
_ALIASES = {
    "ttft": "ttft_ms",
    "ttfot": "ttfot_ms",
    "ttfo_ms": "ttfot_ms",
    "itl": "itl_ms",
    "tpot": "tpot_ms",
    "latency": "latency_ms",
    "e2e": "latency_ms",
    "e2e_latency": "latency_ms",
    "e2el_ms": "latency_ms",
    "queue_ms": "server_queue_ms",
    "server_queue": "server_queue_ms",
    "prefill_ms": "server_prefill_ms",
    "decode_ms": "server_decode_ms",
    "client_overhead": "client_overhead_ms",
    "rps": "throughput_rps",
    "throughput": "throughput_rps",
    "tokens_per_s": "output_tokens_per_s",
    "goodput": "goodput_rps",
    "errors": "error_rate",
}
_PERCENTILE = re.compile(r"p(\d+(?:\.\d+)?)")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)")
_DURATION_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class SpecError(SlabenchError):
    """An SLA spec that cannot be used; str() is one line: the file, the place, the fix."""


TurnCondition = tuple[str, int]  # (operator, turn): (">", 1) keeps turns after the first


@dataclass(frozen=True, slots=True)
class Filters:
    """Requests kept: endpoint label in ``endpoints``, run.json scenario in ``scenarios``
    (an empty tuple keeps everything) and a turn for which every condition of ``turns``
    holds (a row without a turn holds none)."""

    endpoints: tuple[str, ...] = ()
    scenarios: tuple[str, ...] = ()
    turns: tuple[TurnCondition, ...] = ()

    @property
    def text(self) -> str:
        """``"endpoint chat, turn>1"``: how labels name the filter."""
        parts = []
        if self.endpoints:
            parts.append("endpoint " + "|".join(self.endpoints))
        if self.scenarios:
            parts.append("scenario " + "|".join(self.scenarios))
        parts += ["turn" + ("=" if op == "==" else op) + str(n) for op, n in self.turns]
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Objective:
    """One objective: ``stat(metric) <= limit`` (op "max") or ``>= limit`` (op "min")."""

    index: int  # position in the file's objectives list (0-based, as in ``objectives[2]``)
    metric: str
    stat: str | None  # "p99", "p99.9", "mean", "max", "min"; None for rates and proportions
    op: Literal["max", "min"]
    limit: float
    where: Filters | None = None  # the requests this objective judges, within the spec's

    @property
    def percentile(self) -> float | None:
        """The percentile in percent (99.9 for "p99.9"), None unless a percentile stat."""
        return percentile_of(self.stat)

    @property
    def label(self) -> str:
        """``"p99 ttft_ms"``, ``"error_rate"``, ``"p99 ttft_ms [turn>1]"``: how messages and
        tables name the objective."""
        base = f"{self.stat} {self.metric}" if self.stat else self.metric
        return f"{base} [{self.where.text}]" if self.where is not None else base


@dataclass(frozen=True, slots=True)
class Spec:
    name: str
    objectives: tuple[Objective, ...]
    source: str = "<spec>"
    description: str = ""
    confidence: float = 0.95
    warmup_s: float = 0.0
    filters: Filters = Filters()
    per_request: tuple[tuple[str, float], ...] = ()  # (metric, max limit in ms)


def load_spec(path: str | os.PathLike[str]) -> Spec:
    """Read and validate an SLA spec file; raise ``SpecError`` (one line) on any problem."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SpecError(f"{file}: cannot read the SLA spec ({reason}); check the path") from exc
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no Python objects
    except _DuplicateKeyError as exc:
        raise SpecError(f"{file}: {exc}; YAML would silently use the last: write it once") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"{file}: not valid YAML ({_yaml_problem(exc)}); fix the syntax") from exc
    if not isinstance(data, Mapping):
        raise SpecError(f"{file}: must be a YAML mapping with an 'objectives' list")
    return parse_spec(data, source=str(file), default_name=file.stem)


def parse_spec(data: Mapping[str, Any], source: str = "<spec>", default_name: str = "") -> Spec:
    """Validate an already-parsed mapping; ``source`` names it in error messages."""
    _check_keys(data, _TOP_KEYS, source)
    name = _string(data.get("name", default_name or "sla"), source, "name")
    raw = data.get("objectives")
    if not isinstance(raw, list) or not raw:
        raise SpecError(f"{source}: needs 'objectives', a non-empty list of {{metric, max|min}}")
    per_request = _per_request(data.get("per_request"), source)
    objectives = tuple(_objective(item, i, source, bool(per_request)) for i, item in enumerate(raw))
    return Spec(
        name=name,
        objectives=objectives,
        source=source,
        description=_string(data.get("description", ""), source, "description"),
        confidence=_confidence(data.get("confidence", 0.95), source),
        warmup_s=_warmup(data.get("warmup", 0), source),
        filters=_filters(data.get("filters"), f"{source}: filters"),
        per_request=per_request,
    )


def parse_duration_s(value: object) -> float:
    """``10``, ``"10s"``, ``"500ms"``, ``"2m"``, ``"1h"`` -> seconds; ValueError otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value.strip())):
        seconds = float(match.group(1)) * _DURATION_S[match.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration like 10s, 500ms or 2m")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{value!r} is not a non-negative duration")
    return seconds


def percentile_of(stat: str | None) -> float | None:
    """``"p99.9"`` -> 99.9; None for anything that is not a ``pNN[.N]`` stat."""
    match = _PERCENTILE.fullmatch(stat or "")
    return float(match.group(1)) if match else None


def _objective(item: object, index: int, source: str, has_per_request: bool) -> Objective:
    where = f"{source}: objectives[{index}]"
    if not isinstance(item, Mapping):
        raise SpecError(f"{where} must be a mapping like {{metric: ttft_ms, stat: p99, max: 450}}")
    metric = item.get("metric")
    if not isinstance(metric, str) or not metric:
        raise SpecError(f"{where} needs 'metric', one of: {', '.join(METRICS)}")
    where = f"{where} ({metric})"
    _check_keys(item, _OBJECTIVE_KEYS, where)
    if metric not in METRICS:
        raise SpecError(f"{where}: unknown metric {metric!r}{_suggest(metric, METRICS)}")
    if metric in GOODPUT_METRICS and not has_per_request:
        raise SpecError(f"{where}: goodput needs a 'per_request' section, e.g. {{ttft_ms: 450}}")
    stat = _stat(item.get("stat"), metric, where)
    if ("max" in item) == ("min" in item):
        found = "both 'max' and 'min'" if "max" in item else "no limit"
        raise SpecError(f"{where}: has {found}; give exactly one of 'max: N' or 'min: N'")
    op: Literal["max", "min"] = "max" if "max" in item else "min"
    limit = _limit(item[op], metric, f"{where}: {op}")
    subset = _filters(item.get("where"), f"{where}: where")
    return Objective(index, metric, stat, op, limit, None if subset == Filters() else subset)


def _stat(stat: object, metric: str, where: str) -> str | None:
    if metric not in LATENCY_METRICS:
        if stat is not None:
            raise SpecError(f"{where}: {metric} is a single rate; remove 'stat: {stat}'")
        return None
    if stat is None:
        raise SpecError(f"{where}: needs 'stat', one of {STATS_HINT}")
    if not isinstance(stat, str):
        hint = f"; write 'p{stat}'" if isinstance(stat, int | float) else ""
        raise SpecError(f"{where}: stat must be a string like p99, not {stat!r}{hint}")
    text = stat.strip().lower()
    if text in ("mean", "max", "min"):
        return text
    match = _PERCENTILE.fullmatch(text)
    if match is None:
        raise SpecError(f"{where}: bad stat {stat!r}; use {STATS_HINT}")
    percent = float(match.group(1))
    if percent >= 100 or percent <= 0:
        fix = "stat: max" if percent >= 100 else "stat: min"
        digits = match.group(1)
        extra = f" (or p{digits[:2]}.{digits[2:]})" if percent > 100 and "." not in digits else ""
        raise SpecError(f"{where}: percentile {stat!r} is outside (0, 100); use {fix}{extra}")
    return text


def _limit(value: object, metric: str, where: str) -> float:
    number = _number(value, metric)
    if number is None:
        raise SpecError(f"{where} must be a number {_limit_example(metric)}, not {value!r}")
    if not math.isfinite(number) or number < 0:
        raise SpecError(f"{where} must be a finite number >= 0, not {value!r}")
    if metric in PROPORTION_METRICS and number > 1:
        raise SpecError(f"{where}: {metric} is a fraction in [0, 1]; write 0.01 or '1%'")
    return number


def _number(value: object, metric: str) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        return float(text)  # YAML 1.1 reads 1e3 as a string
    except ValueError:
        pass
    if metric in PROPORTION_METRICS and text.endswith("%"):
        try:
            return float(text[:-1]) / 100.0
        except ValueError:
            return None
    if metric in LATENCY_METRICS:
        try:
            return parse_duration_s(text) * 1000.0
        except ValueError:
            return None
    return None


def _limit_example(metric: str) -> str:
    if metric in LATENCY_METRICS:
        return "of milliseconds (e.g. 450 or '2s')"
    if metric in PROPORTION_METRICS:
        return "between 0 and 1 (e.g. 0.01 or '1%')"
    return "per second (e.g. 20)"


def _per_request(raw: object, source: str) -> tuple[tuple[str, float], ...]:
    if raw is None:
        return ()
    where = f"{source}: per_request"
    if not isinstance(raw, Mapping) or not raw:
        raise SpecError(f"{where} must be a mapping of metric to max ms, e.g. {{ttft_ms: 450}}")
    limits = []
    for metric, value in raw.items():
        if metric not in PER_REQUEST_METRICS:
            hint = _suggest(str(metric), PER_REQUEST_METRICS)
            raise SpecError(f"{where}: unknown per-request metric {metric!r}{hint}")
        limits.append((str(metric), _limit(value, str(metric), f"{where}.{metric}")))
    return tuple(limits)


def _filters(raw: object, where: str) -> Filters:
    """``filters`` (``where`` names it: "file: filters") or an objective's ``where``."""
    if raw is None:
        return Filters()
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where} must be a mapping like {{endpoint: chat}} or {{turn: '>1'}}")
    _check_keys(raw, _FILTER_KEYS, where)
    return Filters(
        endpoints=_names(raw.get("endpoint"), f"{where}.endpoint"),
        scenarios=_names(raw.get("scenario"), f"{where}.scenario"),
        turns=_turns(raw.get("turn"), f"{where}.turn"),
    )


def _turns(raw: object, where: str) -> tuple[TurnCondition, ...]:
    if raw is None:
        return ()
    values = raw if isinstance(raw, list) and raw else [raw]
    return tuple(_turn(value, where) for value in values)


def _turn(value: object, where: str) -> TurnCondition:
    if isinstance(value, int) and not isinstance(value, bool):
        op, number = "==", value
    elif isinstance(value, str) and (match := _TURN.fullmatch(value.strip())):
        op, number = match.group(1) or "==", int(match.group(2))
        op = "==" if op == "=" else op
    else:
        raise SpecError(f"{where}: bad condition {value!r}; write {_TURN_HINT}")
    if number < 1:
        raise SpecError(f"{where}: turns count from 1, not {number}; write {_TURN_HINT}")
    return op, number


def _names(raw: object, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    values = [raw] if isinstance(raw, str) else raw
    if (
        not isinstance(values, list)
        or not values
        or not all(isinstance(v, str) and v for v in values)
    ):
        raise SpecError(f"{where} must be a name or a list of names, not {raw!r}")
    return tuple(values)


def _confidence(raw: object, source: str) -> float:
    if isinstance(raw, int | float) and not isinstance(raw, bool) and 0.5 < raw < 1:
        return float(raw)
    raise SpecError(f"{source}: confidence must be a number in (0.5, 1) like 0.95, not {raw!r}")


def _warmup(raw: object, source: str) -> float:
    try:
        return parse_duration_s(raw)
    except ValueError as exc:
        raise SpecError(f"{source}: warmup: {exc}") from exc


def _string(raw: object, source: str, key: str) -> str:
    if not isinstance(raw, str):
        raise SpecError(f"{source}: {key} must be a string, not {raw!r}")
    return raw


def _check_keys(data: Mapping[Any, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in allowed:
            raise SpecError(f"{where}: unknown key {key!r}{_suggest(str(key), allowed)}")


def _suggest(name: str, valid: tuple[str, ...]) -> str:
    alias = _ALIASES.get(name.lower())
    if alias in valid:
        return f"; did you mean {alias!r}?"
    close = difflib.get_close_matches(name.lower(), valid, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f" (valid: {', '.join(valid)})"


class _DuplicateKeyError(yaml.YAMLError):
    """A key given twice in one mapping; str() says which and on which lines."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping, at any depth. PyYAML
    keeps the last silently, so ``{max: 10, max: 10000}`` or a second ``objectives:``
    would judge an SLA other than the one a reader sees written. Keys merged in with
    ``<<`` may still be overridden: only the mapping's own keys are compared."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        lines: dict[object, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                first = lines.get(key)
            except TypeError:
                continue  # an unhashable key: the base class says so
            if first is not None:
                where = f"line {line}" if first == line else f"lines {first} and {line}"
                raise _DuplicateKeyError(f"duplicate key {key!r} ({where})")
            lines[key] = line
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return str(problem)
