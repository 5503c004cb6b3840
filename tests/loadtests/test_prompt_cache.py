"""Runs that do not share cached prefixes (the prompt nonce), the prefix-cache reset, and
the warning about requests that are not the size asked for."""

from __future__ import annotations

import json
import socket

import pandas as pd
import pytest

from loadtests.client.nonce import (
    MAX_NONCE_CHARS,
    draw_nonce,
    parse_prompt_nonce,
    prompt_word,
)
from loadtests.client.prefix_cache import reset_prefix_cache
from loadtests.client.protocols import JsonTemplate, OpenAIEmbeddings, OpenAIGeneration
from loadtests.client.tls import Tls
from loadtests.client.transport import Target, Transport
from loadtests.errors import LoadSpecError
from loadtests.workloads.datasets import Prompt
from reports.sizes import size_mismatches
from tests.loadtests.small_target import SmallTarget

SYSTEM = "You are a careful assistant. " * 4
CHATS = [Prompt("", (("system", SYSTEM), ("user", f"question {i}")), 40, 8) for i in range(3)]


def _messages(builder: OpenAIGeneration, prompt: Prompt) -> list[dict[str, str]]:
    body = builder.build(prompt).body
    assert body is not None
    return list(json.loads(body)["messages"])


def test_runs_differ_a_given_nonce_reproduces_and_a_run_keeps_its_shared_prefix() -> None:
    one, two = draw_nonce(), draw_nonce()
    assert one != two and len(one) == MAX_NONCE_CHARS
    word = prompt_word(one, SYSTEM)
    # With the reference server's <|user|> tag (8 tokens) in front, under one 16-token block.
    assert len("<|user|>") + len(word) + 1 < 16
    # Prompts that differ early get different words; those that start alike keep sharing.
    assert prompt_word(one, "17: the river") != prompt_word(one, "18: the river")
    assert prompt_word(one, "x" * 32 + "a") == prompt_word(one, "x" * 32 + "b")
    assert prompt_word(two, SYSTEM) != word
    run1 = OpenAIGeneration("m", chat=True, stream=True, ignore_eos=False, nonce=one)
    run2 = OpenAIGeneration("m", chat=True, stream=True, ignore_eos=False, nonce=two)
    again = OpenAIGeneration("m", chat=True, stream=True, ignore_eos=False, nonce=one)
    # Two runs' prompts differ from their first character on.
    assert run1.build(CHATS[0]).body != run2.build(CHATS[0]).body
    assert _messages(run1, CHATS[0])[0]["content"] == f"{word} {SYSTEM}"
    # The same nonce sends the same bytes; the memo keeps one body per prompt.
    assert again.build(CHATS[1]).body == run1.build(CHATS[1]).body
    assert run1.build(CHATS[1]) is run1.build(CHATS[1])
    # Within a run the system prompt stays one shared prefix; later messages are untouched.
    firsts = {_messages(run1, p)[0]["content"] for p in CHATS}
    assert firsts == {f"{word} {SYSTEM}"}
    assert _messages(run1, CHATS[2])[1]["content"] == "question 2"
    # "none": prompts as they are.
    bare = OpenAIGeneration("m", chat=False, stream=False, ignore_eos=False, nonce="")
    body = bare.build(Prompt("hello", None, 1, 4)).body
    assert body is not None and json.loads(body)["prompt"] == "hello"
    completions = OpenAIGeneration("m", chat=False, stream=False, ignore_eos=False, nonce=one)
    body = completions.build(Prompt("hello", None, 1, 4)).body
    assert body is not None and json.loads(body)["prompt"] == f"{prompt_word(one, 'hello')} hello"
    body = OpenAIEmbeddings("e", nonce=one).build(Prompt("hi", None, 1, 1)).body
    assert body is not None and json.loads(body)["input"] == f"{prompt_word(one, 'hi')} hi"
    template = JsonTemplate({"text": "{{prompt}}!"}, "POST", "/x", "x", nonce=one)
    body = template.build(Prompt("hi", None, 1, 1)).body
    assert body is not None and json.loads(body)["text"] == f"{prompt_word(one, 'hi')} hi!"


def test_prompt_nonce_option_values() -> None:
    assert parse_prompt_nonce("") is None  # draw one per run
    assert parse_prompt_nonce("none") == ""
    assert parse_prompt_nonce("a1b2c3d4e5f6") == "a1b2c3d4e5f6"
    for bad in ("with space", "x" * (MAX_NONCE_CHARS + 1), "é"):
        with pytest.raises(LoadSpecError, match=r"--prompt-nonce .* must be 1 to 12"):
            parse_prompt_nonce(bad)


def _transport(url: str, headers: dict[str, str] | None = None) -> Transport:
    return Transport(
        Target.parse(url),
        concurrency=1,
        connect_timeout_s=5.0,
        network_timeout_s=10.0,
        headers=headers or {},
        tls=Tls(verify=True, ca_bundle=""),
    )


def test_reset_prefix_cache_says_what_happened() -> None:
    key = {"Authorization": "Bearer k"}
    with SmallTarget() as server:
        transport = _transport(server.url, key)
        assert reset_prefix_cache(transport) == {"ok": True, "status": 200}
        transport.close()
        assert server.authorizations == ["Bearer k"]
    with SmallTarget(echo_key=True) as server:  # answers 401
        transport = _transport(server.url)
        assert reset_prefix_cache(transport) == {"ok": False, "status": 401, "error": "HTTP 401"}
        transport.close()
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    transport = _transport(f"http://127.0.0.1:{port}")
    outcome = reset_prefix_cache(transport)
    transport.close()
    assert outcome["ok"] is False and outcome["status"] is None and outcome["error"]


def _rows(input_tokens: int, output_tokens: int, n: int = 5) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "input_tokens": [input_tokens] * n,
            "output_tokens": [output_tokens] * n,
            "output_tokens_source": ["usage"] * n,
        }
    )


def test_sizes_the_server_did_not_get_are_named_with_the_fix() -> None:
    requested = {"input_tokens": 131.0, "output_tokens": 64, "exact_output": False}
    meta = {"requested": {**requested, "chars_per_token": 4.0}}
    # vLLM with a tokenizer of about 1 character per token; a mock that ignores max_tokens.
    lines = size_mismatches(meta, _rows(406, 64))
    assert len(lines) == 1 and "median of 406 prompt tokens, 131 were asked for" in lines[0]
    assert "--tokenizer PATH" in lines[0] and "--chars-per-token" in lines[0]
    assert size_mismatches(meta, _rows(150, 60)) == ()  # a chat template's tokens are slack
    assert size_mismatches(meta, _rows(131, 18)) == ()  # stopped early: allowed
    exact = {"requested": {**requested, "exact_output": True}}
    (line,) = size_mismatches(exact, _rows(131, 18))
    assert "median of 18 output tokens, exactly 64 were asked for" in line
    (line,) = size_mismatches(meta, _rows(131, 80))
    assert "at most 64" in line
    assert size_mismatches({}, _rows(406, 80)) == ()  # older runs recorded no request sizes
