from __future__ import annotations

from pathlib import Path

import pytest

import sla
from sla.spec import METRICS, Filters, Objective, SpecError, load_spec, parse_duration_s

EXAMPLES = sorted((Path(sla.__file__).parent / "examples").glob("*.yaml"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "my-sla.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_example_loads() -> None:
    names = {p.stem for p in EXAMPLES}
    assert {"chat-interactive", "chat-standard", "embeddings", "kserve", "smoke"} <= names
    for path in EXAMPLES:
        spec = load_spec(path)
        assert spec.name == path.stem
        assert spec.objectives


def test_mlperf_examples_carry_the_published_limits() -> None:
    limits = {
        "chat-interactive": {"ttft_ms": 450.0, "tpot_ms": 40.0},
        "chat-standard": {"ttft_ms": 2000.0, "tpot_ms": 200.0},
    }
    for name, expected in limits.items():
        spec = load_spec(Path(sla.__file__).parent / "examples" / f"{name}.yaml")
        p99 = {o.metric: o.limit for o in spec.objectives if o.stat == "p99" and o.op == "max"}
        assert p99 == expected
        assert dict(spec.per_request) == expected


def test_a_full_spec_parses_into_frozen_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
name: chat-interactive
description: limits
confidence: 0.9
warmup: 10s
filters: {endpoint: chat, scenario: [chat, mixed]}
per_request: {ttft_ms: 450, tpot_ms: 40}
objectives:
  - {metric: ttft_ms, stat: p99, max: 450}
  - {metric: latency_ms, stat: P99.9, max: 2s}
  - {metric: itl_ms, stat: mean, max: 30}
  - {metric: error_rate, max: 1%}
  - {metric: goodput_ratio, min: 0.95}
  - {metric: throughput_rps, min: 20}
""",
    )
    spec = load_spec(path)
    assert spec.name == "chat-interactive"
    assert spec.source == str(path)
    assert spec.confidence == 0.9
    assert spec.warmup_s == 10.0
    assert spec.filters == Filters(endpoints=("chat",), scenarios=("chat", "mixed"))
    assert spec.per_request == (("ttft_ms", 450.0), ("tpot_ms", 40.0))
    first, second, third, errors, goodput, rps = spec.objectives
    assert first == Objective(index=0, metric="ttft_ms", stat="p99", op="max", limit=450.0)
    assert first.percentile == 99.0 and first.label == "p99 ttft_ms"
    assert second.stat == "p99.9" and second.percentile == 99.9 and second.limit == 2000.0
    assert third.percentile is None
    assert errors.limit == pytest.approx(0.01) and errors.stat is None
    assert errors.label == "error_rate"
    assert goodput.op == "min"
    assert rps.limit == 20.0 and rps.index == 5
    with pytest.raises(AttributeError):
        first.limit = 1.0  # type: ignore[misc]


def test_limits_in_other_notations(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "objectives:\n"
        "  - {metric: latency_ms, stat: p99, max: 1e3}\n"  # YAML 1.1: the string '1e3'
        "  - {metric: latency_ms, stat: p99, max: 500ms}\n"
        "  - {metric: goodput_ratio, min: 99.5%}\n"
        "per_request: {latency_ms: 1.5s}\n",
    )
    spec = load_spec(path)
    assert [o.limit for o in spec.objectives] == [1000.0, 500.0, pytest.approx(0.995)]
    assert spec.per_request == (("latency_ms", 1500.0),)


def test_defaults(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, "objectives: [{metric: error_rate, max: 0}]"))
    assert spec.name == "my-sla"  # the file name
    assert spec.confidence == 0.95
    assert spec.warmup_s == 0.0
    assert spec.filters == Filters()
    assert spec.per_request == ()


@pytest.mark.parametrize(
    ("objective", "expected"),
    [
        (
            "{metric: ttft, stat: p99, max: 450}",
            "objectives[0] (ttft): unknown metric 'ttft'; did you mean 'ttft_ms'?",
        ),
        (
            "{metric: tpot_msec, stat: p99, max: 4}",
            "unknown metric 'tpot_msec'; did you mean 'tpot_ms'?",
        ),
        ("{metric: error_ratio, max: 0.1}", "did you mean 'error_rate'?"),
        (
            "{metric: ttft_ms, stat: p100, max: 450}",
            "percentile 'p100' is outside (0, 100); use stat: max",
        ),
        ("{metric: ttft_ms, stat: p999, max: 450}", "use stat: max (or p99.9)"),
        ("{metric: ttft_ms, stat: p0, max: 450}", "use stat: min"),
        ("{metric: ttft_ms, stat: q99, max: 450}", "bad stat 'q99'; use p50, p90, p99, p99.9"),
        (
            "{metric: ttft_ms, stat: 99, max: 450}",
            "stat must be a string like p99, not 99; write 'p99'",
        ),
        ("{metric: ttft_ms, max: 450}", "objectives[0] (ttft_ms): needs 'stat', one of p50"),
        ("{metric: ttft_ms, stat: p99}", "has no limit; give exactly one of 'max: N' or 'min: N'"),
        (
            "{metric: ttft_ms, stat: p99, max: 4, min: 1}",
            "has both 'max' and 'min'; give exactly one",
        ),
        (
            "{metric: ttft_ms, stat: p99, max: fast}",
            "max must be a number of milliseconds (e.g. 450 or '2s'), not 'fast'",
        ),
        ("{metric: ttft_ms, stat: p99, max: true}", "max must be a number"),
        ("{metric: ttft_ms, stat: p99, max: -1}", "must be a finite number >= 0"),
        ("{metric: error_rate, max: 5}", "error_rate is a fraction in [0, 1]; write 0.01 or '1%'"),
        (
            "{metric: throughput_rps, stat: p99, min: 5}",
            "throughput_rps is a single rate; remove 'stat: p99'",
        ),
        (
            "{metric: ttft_ms, stat: p99, maximum: 450}",
            "unknown key 'maximum'; did you mean 'max'?",
        ),
        ("{metric: goodput_ratio, min: 0.9}", "goodput needs a 'per_request' section"),
        ("{stat: p99, max: 1}", "objectives[0] needs 'metric', one of: latency_ms"),
        ("p99 ttft_ms <= 450", "objectives[0] must be a mapping like {metric: ttft_ms"),
    ],
)
def test_objective_errors_are_one_line_naming_file_objective_and_fix(
    tmp_path: Path, objective: str, expected: str
) -> None:
    path = write(tmp_path, f"objectives:\n  - {objective}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: objectives[0]")
    assert expected in message


def test_the_index_names_the_bad_objective(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "objectives:\n"
        "  - {metric: ttft_ms, stat: p99, max: 1}\n"
        "  - {metric: itl, stat: p9, max: 1}\n",
    )
    with pytest.raises(
        SpecError, match=r"objectives\[1\] \(itl\): unknown metric 'itl'; did you mean 'itl_ms'\?"
    ):
        load_spec(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("objectives: [\n", "not valid YAML (line"),
        ("- just\n- a list\n", "must be a YAML mapping with an 'objectives' list"),
        ("name: x\n", "needs 'objectives', a non-empty list"),
        ("objectives: []\n", "needs 'objectives', a non-empty list"),
        (
            "objective: [{metric: error_rate, max: 0}]\n",
            "unknown key 'objective'; did you mean 'objectives'?",
        ),
        (
            "confidence: 95\nobjectives: [{metric: error_rate, max: 0}]\n",
            "confidence must be a number in (0.5, 1) like 0.95, not 95",
        ),
        (
            "warmup: soon\nobjectives: [{metric: error_rate, max: 0}]\n",
            "warmup: 'soon' is not a duration like 10s",
        ),
        (
            "filters: {endpoints: chat}\nobjectives: [{metric: error_rate, max: 0}]\n",
            "filters: unknown key 'endpoints'; did you mean 'endpoint'?",
        ),
        (
            "filters: {endpoint: 3}\nobjectives: [{metric: error_rate, max: 0}]\n",
            "filters.endpoint must be a name or a list of names",
        ),
        (
            "per_request: {ttft: 4}\nobjectives: [{metric: error_rate, max: 0}]\n",
            "per_request: unknown per-request metric 'ttft'; did you mean 'ttft_ms'?",
        ),
        (
            "per_request: {ttft_ms: slow}\nobjectives: [{metric: error_rate, max: 0}]\n",
            "per_request.ttft_ms must be a number",
        ),
        ("name: [x]\nobjectives: [{metric: error_rate, max: 0}]\n", "name must be a string"),
        (
            "filters: {endpoint: []}\nobjectives: [{metric: error_rate, max: 0}]\n",
            "filters.endpoint must be a name or a list of names",
        ),
        # A key given twice, at any depth: PyYAML would keep the last silently, and the SLA
        # judged would not be the one written.
        (
            "name: x\nobjectives:\n  - {metric: ttft_ms, stat: p50, max: 10}\n"
            "objectives:\n  - {metric: latency_ms, stat: p50, max: 5s}\n",
            "duplicate key 'objectives' (lines 2 and 4)",
        ),
        (
            "objectives:\n  - {metric: ttft_ms, stat: p50, max: 10, max: 10000}\n",
            "duplicate key 'max' (line 2)",
        ),
        (
            "objectives:\n  - metric: ttft_ms\n    stat: p50\n    max: 10\n"
            "    where: {endpoint: chat, endpoint: completions}\n",
            "duplicate key 'endpoint' (line 5)",
        ),
    ],
)
def test_spec_level_errors_are_one_line_naming_the_file(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_a_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"nope\.yaml: cannot read the SLA spec \(No such file"):
        load_spec(tmp_path / "nope.yaml")


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    path = write(tmp_path, "objectives: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(path)


def test_keys_merged_from_an_anchor_may_be_overridden(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "objectives:\n"
        "  - &p99 {metric: ttft_ms, stat: p99, max: 450}\n"
        "  - {<<: *p99, max: 200, where: {turn: '>1'}}\n",
    )
    first, later = load_spec(path).objectives
    assert (first.limit, later.limit) == (450.0, 200.0)
    assert later.metric == "ttft_ms" and later.stat == "p99"


def test_suggestion_falls_back_to_the_valid_names(tmp_path: Path) -> None:
    path = write(tmp_path, "objectives: [{metric: zzz, max: 1}]\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert f"(valid: {', '.join(METRICS)})" in str(info.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (10, 10.0),
        (2.5, 2.5),
        ("10s", 10.0),
        ("500ms", 0.5),
        ("2m", 120.0),
        ("1h", 3600.0),
        (".5s", 0.5),
    ],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["10", "ten s", "-1s", -1, True, None, "5d"])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration_s(text)
