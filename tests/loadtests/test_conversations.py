"""Multi-turn conversations on real objects: sources, think times, histories, the context
bound, the open-loop turn schedule and the options (``loadtests.workloads.conversations``,
``loadtests.workloads.conversation_files``, ``loadtests.harness.session_options``)."""

from __future__ import annotations

import argparse
import json
import random
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from loadtests.errors import DatasetError
from loadtests.harness.session_options import SessionOptions, add_session_options, bundled_context
from loadtests.workloads.conversation_files import ConversationSettings, load_conversations
from loadtests.workloads.conversations import (
    MESSAGE_TOKENS,
    ChatBody,
    Conversation,
    Session,
    SyntheticConversations,
    ThinkTime,
    Turn,
    parse_think_time,
)
from loadtests.workloads.datasets import parse_length_dist
from sla.errors import SlabenchError


def _settings(**kw: Any) -> ConversationSettings:
    values: dict[str, Any] = {
        "seed": 0,
        "input_len": parse_length_dist("uniform:8,32"),
        "output_len": parse_length_dist("fixed:16"),
        "turns": parse_length_dist("uniform:2,6"),
        "system_tokens": 50,
        "doc_len": parse_length_dist("fixed:40"),
        "chars_per_token": 1.0,
        "max_history_tokens": 0,
    }
    return ConversationSettings(**{**values, **kw})


def _synthetic(**kw: Any) -> SyntheticConversations:
    source = load_conversations("synthetic", _settings(**kw))
    assert isinstance(source, SyntheticConversations)
    return source


def _session(conv: Conversation, bound: int = 0, think: str = "fixed:0") -> Session:
    return Session(
        conv,
        "s1",
        body=ChatBody("m", stream=True, ignore_eos=True),
        chars_per_token=1.0,
        max_history_tokens=bound,
        think=parse_think_time(think),
        rng=random.Random(0),
    )


def _messages(body: bytes) -> list[tuple[str, str]]:
    doc = json.loads(body)
    assert doc["model"] == "m" and doc["stream"] is True and doc["ignore_eos"] is True
    return [(m["role"], m["content"]) for m in doc["messages"]]


# ---- sources ----------------------------------------------------------------------------


def test_synthetic_conversations_are_reproducible_from_the_seed_whoever_takes_them() -> None:
    a = list(islice(_synthetic().cycle(0, 1), 6))
    assert a == list(islice(_synthetic().cycle(0, 1), 6))
    assert a != list(islice(_synthetic(seed=1).cycle(0, 1), 6))
    # Two workers take disjoint conversations, each the same as in a one-process run.
    w0, w1 = (list(islice(_synthetic().cycle(i, 2), 3)) for i in (0, 1))
    assert w0 == a[0::2] and w1 == a[1::2]
    assert {len(c.turns) for c in a} <= {2, 3, 4, 5, 6} and len({len(c.turns) for c in a}) > 1
    for conv in a:
        assert all(t.max_tokens == 16 for t in conv.turns)


def test_every_conversation_shares_the_system_prompt_and_has_its_own_document() -> None:
    convs = list(islice(_synthetic().cycle(0, 1), 5))
    systems = {c.system for c in convs}
    assert len(systems) == 1 and len(next(iter(systems)) or "") == 50
    docs = [c.turns[0].user.split("\n\n")[0] for c in convs]
    assert len(set(docs)) == 5 and all(len(d) == 40 for d in docs)
    # The document opens the first message only; the later turns are messages alone.
    assert all("\n\n" not in t.user for c in convs for t in c.turns[1:])
    assert _synthetic(system_tokens=0, doc_len=None).conversation(0).system is None


def test_a_session_sends_its_whole_history_with_the_actual_replies() -> None:
    conv = Conversation(0, "be brief", (Turn("hello", 4), Turn("and then?", 8), Turn("bye", 2)))
    session = _session(conv)
    first = session.next_turn()
    assert first is not None and first.turn == 1
    assert _messages(first.body) == [("system", "be brief"), ("user", "hello")]
    assert json.loads(first.body)["max_tokens"] == 4
    session.reply("hi there")
    second = session.next_turn()
    assert second is not None and second.turn == 2
    assert _messages(second.body) == [
        ("system", "be brief"),
        ("user", "hello"),
        ("assistant", "hi there"),
        ("user", "and then?"),
    ]
    assert second.input_tokens_hint > first.input_tokens_hint
    session.reply('\u00e9t\u00e9 "quoted"')  # escaped JSON, counted in UTF-8 bytes
    third = session.next_turn()
    assert third is not None and _messages(third.body)[-2:] == [
        ("assistant", '\u00e9t\u00e9 "quoted"'),
        ("user", "bye"),
    ]
    session.reply("ok")
    assert session.next_turn() is None and not session.ended_by_context


def test_a_failed_turn_is_never_appended() -> None:
    conv = Conversation(0, None, (Turn("one", 4), Turn("two", 4)))
    session = _session(conv)
    first = session.next_turn()
    assert first is not None
    # The turn failed: no reply(); asking again sends the same history (nothing appended).
    again = session.next_turn()
    assert again is not None and again.body == first.body and session.turn == 0


def test_a_conversation_ends_before_its_history_would_overflow_the_context() -> None:
    conv = Conversation(0, None, tuple(Turn("x" * 20, 10) for _ in range(10)))
    per_turn = 2 * (20 + MESSAGE_TOKENS)  # each answered turn adds its message and reply
    bound = 16 + per_turn * 2 + 20 + MESSAGE_TOKENS + 10  # room for exactly three turns
    session = _session(conv, bound=bound)
    sent = 0
    while (turn := session.next_turn()) is not None:
        assert turn.input_tokens_hint + 10 <= bound
        session.reply("y" * 20)
        sent += 1
    assert sent == 3 and session.ended_by_context


def test_the_next_turn_is_due_at_the_replys_end_plus_a_think_time() -> None:
    conv = Conversation(0, None, (Turn("a", 1), Turn("b", 1)))
    assert _session(conv, think="fixed:2.5").next_scheduled_at(100.0) == 102.5
    draws = [_session(conv, think="uniform:1,3").next_scheduled_at(100.0) for _ in range(3)]
    assert all(101.0 <= d <= 103.0 for d in draws)


# ---- think times ------------------------------------------------------------------------


def test_think_time_forms() -> None:
    assert parse_think_time("2") == ThinkTime("fixed", 2.0)
    assert parse_think_time("fixed:0").sample(random.Random(0)) == 0.0
    rng = random.Random(1)
    uniform = [parse_think_time("uniform:1,5").sample(rng) for _ in range(200)]
    assert min(uniform) >= 1.0 and max(uniform) <= 5.0
    exp = [parse_think_time("exponential:2").sample(rng) for _ in range(4000)]
    assert 1.8 < sum(exp) / len(exp) < 2.2
    assert parse_think_time("uniform:1,5").spec == "uniform:1,5"


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("gamma:1", "unknown kind"),
        ("uniform:3", "takes 2 numbers"),
        ("uniform:5,1", "LO must be <= HI"),
        ("fixed:-1", ">= 0"),
        ("exponential:x", "not a number"),
    ],
)
def test_a_bad_think_time_is_one_line_with_the_forms(spec: str, why: str) -> None:
    with pytest.raises(SlabenchError) as caught:
        parse_think_time(spec)
    assert why in str(caught.value) and "exponential:MEAN" in str(caught.value)


# ---- files ------------------------------------------------------------------------------


def test_a_jsonl_of_conversations(tmp_path: Path) -> None:
    path = tmp_path / "chats.jsonl"
    lines = [
        {"system": "sys", "turns": [{"user": "u1", "max_tokens": 5}, {"user": "u2"}]},
        {"turns": [{"user": "v1", "max_tokens": 7}]},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n", encoding="utf-8")
    source = load_conversations(str(path), _settings())
    first, second, again = islice(source.cycle(0, 1), 3)
    assert first.system == "sys" and [t.user for t in first.turns] == ["u1", "u2"]
    assert [t.max_tokens for t in first.turns] == [5, 16]  # missing: from --output-len
    assert second.system is None and second.turns == (Turn("v1", 7),) and again == first


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("{not json", "not valid JSON"),
        ("[1]", "expected a JSON object"),
        ('{"turns": []}', '"turns" must be a non-empty list'),
        ('{"turns": [{"user": ""}]}', 'turns[0]: needs a non-empty string "user"'),
        ('{"turns": [{"user": "a", "max_tokens": 0}]}', '"max_tokens" must be a whole number'),
        ('{"system": 3, "turns": [{"user": "a"}]}', '"system" must be a non-empty string'),
    ],
)
def test_a_bad_jsonl_line_names_the_file_the_line_and_the_fix(
    tmp_path: Path, line: str, why: str
) -> None:
    path = tmp_path / "chats.jsonl"
    path.write_text('{"turns": [{"user": "fine"}]}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        load_conversations(str(path), _settings())
    message = str(caught.value)
    assert f"{path} line 2" in message and why in message and "\n" not in message
    assert '{"turns": [{"user": "...", "max_tokens": 64}' in message or "got" in message


def test_sharegpt_gives_every_human_turn_with_its_replys_length(tmp_path: Path) -> None:
    def said(*turns: tuple[str, str]) -> dict[str, Any]:
        return {"conversations": [{"from": w, "value": v} for w, v in turns]}

    entries = [
        said(("system", "S"), ("human", "q1"), ("gpt", "a" * 12), ("human", "q2"),
             ("gpt", "b" * 20), ("human", "dangling")),
        said(("gpt", "no question first")),
    ]  # fmt: skip
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(entries), encoding="utf-8")
    source = load_conversations(str(path), _settings(chars_per_token=4.0))
    conv = next(source.cycle(0, 1))
    assert conv.system == "S" and conv.turns == (Turn("q1", 3), Turn("q2", 5))
    assert getattr(source, "skipped", None) == 1


def test_files_drop_conversations_whose_first_turn_cannot_fit(tmp_path: Path) -> None:
    path = tmp_path / "chats.jsonl"
    path.write_text(
        json.dumps({"turns": [{"user": "x" * 500, "max_tokens": 8}]})
        + "\n"
        + json.dumps({"turns": [{"user": "short", "max_tokens": 8}]})
        + "\n",
        encoding="utf-8",
    )
    source = load_conversations(str(path), _settings(max_history_tokens=200))
    assert [c.turns[0].user for c in islice(source.cycle(0, 1), 2)] == ["short", "short"]
    with pytest.raises(DatasetError, match="raise it or shorten"):
        load_conversations(str(path), _settings(max_history_tokens=40))


def test_synthetic_options_that_cannot_fit_a_first_turn_are_refused() -> None:
    with pytest.raises(DatasetError) as caught:
        load_conversations("synthetic", _settings(system_tokens=1000, max_history_tokens=1024))
    assert "--max-history-tokens is 1024" in str(caught.value)


# ---- options ----------------------------------------------------------------------------


def _options(*argv: str) -> SessionOptions:
    parser = argparse.ArgumentParser()

    def opt(flag: str, env: str, **kw: Any) -> None:
        parser.add_argument(flag, **kw)

    add_session_options(opt)
    return SessionOptions.from_namespace(parser.parse_args(list(argv)))


def test_session_options_and_the_bound_auto_means() -> None:
    options = _options("--turns", "uniform:2,8", "--think-time", "exponential:2",
                       "--doc-len", "fixed:300", "--system-prompt-len", "200")  # fmt: skip
    assert options.turns.spec == "uniform:2,8" and options.think.spec == "exponential:2"
    assert options.doc_len is not None and options.max_history_tokens is None
    settings = options.settings(seed=3, input_len="fixed:8", output_len="fixed:8",
                                chars_per_token=1.0, context_tokens=512)  # fmt: skip
    assert settings.max_history_tokens == 512 and settings.system_tokens == 200
    assert _options("--max-history-tokens", "0").max_history_tokens == 0
    assert _options().doc_len is None
    assert bundled_context("--max-model-len 4096 --lm-layers 2") == 4096
    assert bundled_context("--max-model-len=2048") == 2048 and bundled_context("") == 1024
    for argv in (("--max-history-tokens", "lots"), ("--turns", "fixed:0")):
        with pytest.raises(SlabenchError) as caught:
            _options(*argv)
        assert argv[0] in str(caught.value)
