"""Small pure pieces of the server: fault rules, stop strings and the validation of
OpenAI request bodies."""

from __future__ import annotations

import dataclasses
import random
import statistics
from typing import Any

import pytest

from reference_server import faults, tokenizer
from reference_server.config import FaultConfig
from reference_server.errors import BadRequest
from reference_server.faults import FaultInjector, from_mapping, parse_latency
from reference_server.openai_requests import GenerationParams, generation_params
from reference_server.streaming import StopMatcher

# --- faults ------------------------------------------------------------------------------


def samples_ms(spec: str, n: int = 4001) -> list[float]:
    draw, rng = parse_latency(spec), random.Random(7)
    return [draw(rng) * 1000.0 for _ in range(n)]


def test_parse_latency_forms_are_milliseconds_in_seconds_out() -> None:
    assert samples_ms("fixed:200", 3) == [pytest.approx(200.0)] * 3
    uniform = samples_ms("uniform:10,20")
    assert min(uniform) >= 10.0 and max(uniform) <= 20.0 and len(set(uniform)) > 100
    assert min(samples_ms("normal:5,50")) == 0.0  # clamped: a delay is never negative
    assert statistics.mean(samples_ms("normal:100,10")) == pytest.approx(100.0, rel=0.02)
    assert statistics.median(samples_ms("lognormal:80,0.5")) == pytest.approx(80.0, rel=0.05)
    assert statistics.mean(samples_ms("exp:30", 20000)) == pytest.approx(30.0, rel=0.05)
    assert samples_ms("exp:0", 3) == [0.0] * 3


@pytest.mark.parametrize(
    "spec",
    ["", "fixed", "fixed:", "fixed:abc", "fixed:1,2", "uniform:5", "gamma:1,2", "fixed:-5"],
)
def test_parse_latency_rejects_bad_specs_naming_the_forms(spec: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_latency(spec)
    assert "fixed:MS" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("spec", ["fixed:nan", "fixed:inf", "uniform:0,inf"])
def test_parse_latency_rejects_non_finite_values(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_latency(spec)


def test_from_mapping_applies_changes_without_touching_the_base() -> None:
    base = FaultConfig(error_rate=0.1)
    changed = from_mapping(base, {"latency": "fixed:5", "error_rate": 1, "seed": 3.0})
    assert changed == dataclasses.replace(base, latency="fixed:5", error_rate=1, seed=3)
    assert isinstance(changed.seed, int)
    assert base.error_rate == 0.1 and base.latency is None
    assert from_mapping(changed, {"latency": None}).latency is None
    assert from_mapping(base, {}) == base


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"error_rat": 0.5}, "unknown fault 'error_rat'"),
        ({"error_rate": "0.5"}, "must be a number"),
        ({"error_rate": True}, "must be a number"),
        ({"error_rate": 1.5}, "between 0 and 1"),
        ({"latency": 50}, "latency must be a string"),
        ({"latency": "fixed:x"}, "numbers expected"),
        ({"slow_start_s": -1}, "slow_start_s must be a finite number >= 0"),
        ({"stall_every_s": 1, "stall_duration_s": 1}, "shorter than stall_every_s"),
    ],
)
def test_from_mapping_rejects_bad_changes(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        from_mapping(FaultConfig(), changes)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_stall_sits_at_the_end_of_each_period() -> None:
    clock = FakeClock(100.0)
    injector = FaultInjector(FaultConfig(stall_every_s=1.0, stall_duration_s=0.25), clock=clock)
    expected = {0.0: 0.0, 0.5: 0.0, 0.74: 0.0, 0.75: 0.25, 0.9: 0.1, 1.0: 0.0, 2.8: 0.2}
    for offset, remaining in expected.items():
        clock.now = 100.0 + offset
        assert injector.stall_remaining_s() == pytest.approx(remaining, abs=1e-9), offset


def test_no_stall_configured_means_no_stall_and_slow_start_follows_the_clock() -> None:
    clock = FakeClock(5.0)
    injector = FaultInjector(FaultConfig(slow_start_s=2.0), clock=clock)
    assert injector.starting()
    clock.now = 6.99
    assert injector.stall_remaining_s() == 0.0 and injector.starting()
    clock.now = 7.0
    assert not injector.starting()


def test_error_rate_is_seeded_and_a_new_config_reseeds() -> None:
    def draws(injector: FaultInjector) -> list[bool]:
        return [injector.should_fail() for _ in range(200)]

    config = FaultConfig(error_rate=0.3, seed=11)
    first = draws(FaultInjector(config))
    assert first == draws(FaultInjector(config))
    assert 30 <= sum(first) <= 90  # Binomial(200, 0.3): mean 60, sd 6.5
    assert not any(draws(FaultInjector(FaultConfig(error_rate=0.0))))
    assert all(draws(FaultInjector(FaultConfig(error_rate=1.0))))
    injector = FaultInjector(FaultConfig())
    injector.config = config
    assert draws(injector) == first
    assert injector.added_latency_s() == 0.0


def test_fault_config_validation_is_shared_with_the_command_line() -> None:
    with pytest.raises(ValueError, match="shorter than stall_every_s"):
        faults.validate(FaultConfig(stall_every_s=0.5, stall_duration_s=1.0))
    with pytest.raises(ValueError, match="error_rate"):
        FaultInjector(FaultConfig(error_rate=-0.1))


# --- stop strings ------------------------------------------------------------------------


def run_matcher(stops: tuple[str, ...], pieces: list[str]) -> tuple[str, bool]:
    matcher, out = StopMatcher(stops), []
    for piece in pieces:
        text, stopped = matcher.push(piece)
        out.append(text)
        if stopped:
            return "".join(out), True
    return "".join(out) + matcher.flush(), False


def test_stop_string_split_across_pushes_is_cut_and_never_leaks() -> None:
    matcher = StopMatcher(("END",))
    assert matcher.push("abcE") == ("ab", False)
    assert matcher.push("N") == ("c", False)
    assert matcher.push("Dxyz") == ("", True)


def test_a_false_start_of_a_stop_string_is_released() -> None:
    assert run_matcher(("END",), ["EN", "X", "EN"]) == ("ENXEN", False)
    assert run_matcher(("END",), ["E", "N", "E", "N", "D", "!"]) == ("EN", True)


def test_earliest_of_several_stop_strings_wins() -> None:
    assert run_matcher(("world", "lo"), ["hel", "lo wor", "ld"]) == ("hel", True)
    assert run_matcher((), ["a", "b"]) == ("ab", False)


def test_any_split_of_a_text_gives_the_text_up_to_the_first_stop() -> None:
    rng = random.Random(3)
    text = "the answer is 42 ### and then ## more ### text"
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(text)), rng.randint(0, 12)))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert run_matcher(("###",), pieces) == ("the answer is 42 ", True)
        assert run_matcher(("nowhere",), pieces) == (text, False)


# --- OpenAI request validation -------------------------------------------------------------

PROMPT = (tokenizer.encode("hello"),)  # 6 tokens with BOS


def params(body: dict[str, Any], **limits: Any) -> GenerationParams:
    options: dict[str, Any] = {
        "default_max_tokens": None,
        "max_tokens_limit": 100,
        "max_model_len": 64,
        **limits,
    }
    return generation_params(body, PROMPT, **options)


def test_defaults_fill_what_the_body_leaves_out() -> None:
    p = params({})
    assert (p.max_tokens, p.min_tokens, p.temperature, p.top_p) == (58, 0, 1.0, 1.0)
    assert (p.seed, p.stream, p.include_usage, p.ignore_eos, p.stop) == (
        None,
        False,
        False,
        False,
        (),
    )
    assert params({}, default_max_tokens=16).max_tokens == 16
    assert params({}, max_tokens_limit=10).max_tokens == 10


def test_valid_body_is_read_as_given() -> None:
    p = params(
        {
            "max_completion_tokens": 20,
            "max_tokens": 99,
            "min_tokens": 5,
            "ignore_eos": True,
            "temperature": 0,
            "top_p": 0.5,
            "seed": -3,
            "stream": True,
            "stream_options": {"include_usage": True},
            "stop": "##",
            "n": 1,
        }
    )
    assert (p.max_tokens, p.min_tokens, p.ignore_eos, p.temperature, p.top_p) == (
        20,
        5,
        True,
        0.0,
        0.5,
    )
    assert (p.seed, p.stream, p.include_usage, p.stop) == (-3, True, True, ("##",))
    assert params({"stop": ["a", "bc"]}).stop == ("a", "bc")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"max_tokens": 101}, "max_tokens"),  # above the server limit
        ({"max_tokens": 59}, "max_tokens"),  # does not fit after the prompt
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"max_tokens": "5"}, "max_tokens"),
        ({"max_tokens": 5.0}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"max_tokens": 5, "min_tokens": 6}, "min_tokens"),
        ({"min_tokens": -1}, "min_tokens"),
        ({"n": 2}, "n"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.1}, "top_p"),
        ({"seed": "1"}, "seed"),
        ({"stream": "yes"}, "stream"),
        ({"ignore_eos": 1}, "ignore_eos"),
        ({"stream_options": "usage"}, "stream_options"),
        ({"stop": ""}, "stop"),
        ({"stop": ["ok", 3]}, "stop"),
        ({"stop": 5}, "stop"),
    ],
)
def test_invalid_values_are_rejected_naming_the_parameter(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as err:
        params(body)
    assert err.value.status == 400
    assert err.value.param == param
    assert err.value.message and "\n" not in err.value.message


def test_a_prompt_that_fills_the_context_is_rejected() -> None:
    long_prompt = (tokenizer.encode("x" * 63),)  # 64 tokens with BOS
    with pytest.raises(BadRequest, match="context is 64 tokens") as err:
        generation_params(
            {"prompt": "..."},
            long_prompt,
            default_max_tokens=None,
            max_tokens_limit=100,
            max_model_len=64,
        )
    assert err.value.param == "prompt"
    with pytest.raises(BadRequest) as chat_err:
        generation_params(
            {"messages": []},
            long_prompt,
            default_max_tokens=None,
            max_tokens_limit=100,
            max_model_len=64,
        )
    assert chat_err.value.param == "messages"


def test_the_longest_prompt_of_a_batch_sets_the_room_for_max_tokens() -> None:
    prompts = (tokenizer.encode("hi"), tokenizer.encode("x" * 40))  # 3 and 41 tokens
    ok = generation_params(
        {"max_tokens": 23}, prompts, default_max_tokens=None, max_tokens_limit=100, max_model_len=64
    )
    assert ok.max_tokens == 23
    with pytest.raises(BadRequest, match="only 23 tokens fit"):
        generation_params(
            {"max_tokens": 24},
            prompts,
            default_max_tokens=None,
            max_tokens_limit=100,
            max_model_len=64,
        )
