from __future__ import annotations

import json
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loadtests.errors import DatasetError
from loadtests.workloads import sharegpt
from loadtests.workloads.datasets import (
    Dataset,
    LengthDist,
    Prompt,
    load_dataset,
    parse_length_dist,
)
from sla.errors import SlabenchError


def _load(source: str | Path, **kwargs: Any) -> Dataset:
    options: dict[str, Any] = {
        "input_len": "fixed:64",
        "output_len": "fixed:32",
        "seed": 0,
        "chars_per_token": 1.0,
    }
    return load_dataset(str(source), **{**options, **kwargs})


def _jsonl(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _sharegpt(tmp_path: Path, entries: Any) -> Path:
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(entries, indent=1), encoding="utf-8")
    return path


def _conv(*turns: tuple[str, str]) -> dict[str, Any]:
    return {"id": "x", "conversations": [{"from": who, "value": text} for who, text in turns]}


def _error(source: str | Path, **kwargs: Any) -> str:
    with pytest.raises(DatasetError) as caught:
        _load(source, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


# ---- length distributions ----------------------------------------------------------------


def test_fixed_and_bare_number_give_the_same_constant() -> None:
    rng = np.random.default_rng(0)
    assert parse_length_dist("fixed:128") == parse_length_dist(" 128 ") == LengthDist("fixed", 128)
    assert parse_length_dist("fixed:128").sample(rng, 5).tolist() == [128] * 5


def test_uniform_is_inclusive_of_both_ends() -> None:
    sample = parse_length_dist("uniform:3,5").sample(np.random.default_rng(1), 3000)
    assert set(sample.tolist()) == {3, 4, 5}
    assert sample.dtype == np.int64


def test_normal_has_its_mean_and_std_and_is_clipped_to_one() -> None:
    sample = parse_length_dist("normal:500,50").sample(np.random.default_rng(2), 20_000)
    assert abs(sample.mean() - 500) < 5 * 50 / np.sqrt(20_000)
    assert abs(sample.std() - 50) < 2
    wide = parse_length_dist("normal:1,100").sample(np.random.default_rng(3), 1000)
    assert wide.min() == 1
    assert (wide == 1).mean() > 0.4  # about half the normal mass lies below 1


def test_lognormal_has_its_median_and_sigma() -> None:
    sample = parse_length_dist("lognormal:128,0.5").sample(np.random.default_rng(4), 20_000)
    assert abs(np.median(sample) - 128) < 3
    assert abs(np.log(sample).std() - 0.5) < 0.02


def test_length_dist_spec_round_trips() -> None:
    for spec in ("fixed:7", "uniform:1,9", "normal:128,32", "lognormal:128,0.5"):
        assert parse_length_dist(spec).spec == spec


@pytest.mark.parametrize(
    "spec",
    [
        "normal:abc",
        "normal:1",
        "fixed:0",
        "fixed:1.5",
        "uniform:5,2",
        "gamma:1,2",
        "",
        "fixed:",
        "lognormal:0,1",
        "normal:nan,1",
        "normal:10,-1",
        "uniform:1,2,3",
    ],
)
def test_bad_length_specs_name_the_accepted_forms(spec: str) -> None:
    with pytest.raises(DatasetError) as caught:
        parse_length_dist(spec)
    message = str(caught.value)
    assert "\n" not in message
    assert repr(spec) in message
    assert "fixed:N, uniform:LO,HI, normal:MEAN,STD or lognormal:MEDIAN,SIGMA" in message


def test_load_dataset_says_which_length_option_is_bad() -> None:
    assert _error("synthetic", output_len="normal:abc").startswith("output_len: bad length spec")
    assert _error("synthetic", input_len="x").startswith("input_len: bad length spec")


# ---- synthetic -------------------------------------------------------------------------


def test_synthetic_defaults_to_1000_prompts_of_the_asked_lengths() -> None:
    data = _load("synthetic", input_len="uniform:10,300", output_len="fixed:17")
    assert len(data) == 1000
    for prompt in data:
        assert prompt.messages is None
        assert prompt.max_tokens == 17
        assert 10 <= prompt.input_tokens_hint <= 300
        assert len(prompt.text) == prompt.input_tokens_hint  # chars_per_token = 1.0
        assert prompt.text.isascii()


def test_synthetic_text_length_scales_with_chars_per_token() -> None:
    data = _load("synthetic", input_len="fixed:250", chars_per_token=4.0, limit=20)
    assert len(data) == 20
    assert {len(p.text) for p in data} == {1000}
    assert all(p.input_tokens_hint == 250 for p in data)


def test_synthetic_prompts_are_distinct_from_their_first_word() -> None:
    data = _load("synthetic", input_len="fixed:40", limit=500)
    first_words = [p.text.split()[0] for p in data]
    assert len(set(first_words)) == 500
    assert first_words[:3] == ["0:", "1:", "2:"]
    assert all(not p.text.endswith(" ") for p in data)


def test_synthetic_is_reproducible_from_the_seed() -> None:
    spec = {"input_len": "normal:100,30", "output_len": "lognormal:50,0.4", "limit": 50}
    first, again = _load("synthetic", seed=5, **spec), _load("synthetic", seed=5, **spec)
    other = _load("synthetic", seed=6, **spec)
    assert list(first) == list(again)
    assert [p.text for p in first] != [p.text for p in other]
    assert [p.max_tokens for p in first] != [p.max_tokens for p in other]


def test_changing_output_len_keeps_the_synthetic_prompts() -> None:
    short = _load("synthetic", output_len="fixed:8", input_len="uniform:5,50", limit=30)
    long = _load("synthetic", output_len="uniform:100,200", input_len="uniform:5,50", limit=30)
    assert [p.text for p in short] == [p.text for p in long]


def test_tiny_synthetic_prompts_keep_their_unique_head() -> None:
    data = _load("synthetic", input_len="fixed:1", limit=12)
    assert [p.text for p in data][:2] == ["0:", "1:"]
    assert len({p.text for p in data}) == 12


# ---- JSONL ---------------------------------------------------------------------------------


def test_jsonl_reads_prompts_messages_and_output_lengths(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path,
        '{"prompt": "abcdefgh", "max_tokens": 5}',
        "",
        "   ",
        '{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content":'
        ' "hi"}, {"role": "assistant", "content": "yo"}, {"role": "user", "content": "more"}],'
        ' "output_tokens": 9}',
        '{"prompt": "no length given", "extra": 1}',
    )
    data = _load(path, output_len="fixed:77", chars_per_token=2.0)
    assert list(data) == [
        Prompt("abcdefgh", None, 4, 5),
        Prompt(
            "more",
            (("system", "be brief"), ("user", "hi"), ("assistant", "yo"), ("user", "more")),
            8,  # 16 characters over all messages / 2
            9,
        ),
        Prompt("no length given", None, 8, 77),
    ]


def test_jsonl_limit_stops_reading_before_a_later_bad_line(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, '{"prompt": "a"}', '{"prompt": "b"}', "not json at all")
    assert [p.text for p in _load(path, limit=2)] == ["a", "b"]
    assert "line 3: not valid JSON" in _error(path)


def test_jsonl_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"prompt": "x"}\n')
    assert _load(path)[0].text == "x"


def test_jsonl_missing_lengths_are_sampled_reproducibly(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, *(f'{{"prompt": "p{i}"}}' for i in range(40)))
    first = [p.max_tokens for p in _load(path, output_len="uniform:1,1000", seed=3)]
    again = [p.max_tokens for p in _load(path, output_len="uniform:1,1000", seed=3)]
    assert first == again
    assert len(set(first)) > 20


def test_jsonl_invalid_json_names_file_line_and_fix(tmp_path: Path) -> None:
    lines = ['{"prompt": "ok"}'] * 6 + ['{"prompt": "a" "b"}']
    path = _jsonl(tmp_path, *lines)
    assert _error(path) == (
        f"dataset {path} line 7: not valid JSON (Expecting ',' delimiter); each line must be"
        ' {"prompt": "..."} or {"messages": [{"role": "user", "content": "..."}]} with an'
        ' optional "max_tokens"'
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("[1, 2]", "line 1: expected a JSON object, got [1, 2]"),
        ('{"prompt": 42}', 'line 1: "prompt" must be a non-empty string, got 42'),
        ('{"prompt": ""}', 'line 1: "prompt" must be a non-empty string'),
        ('{"text": "hi"}', 'line 1: needs exactly one of "prompt" or "messages"'),
        ('{"prompt": "a", "messages": []}', 'needs exactly one of "prompt" or "messages"'),
        ('{"messages": []}', '"messages" must be a non-empty list'),
        ('{"messages": [{"role": "user"}]}', 'messages[0] needs string "role" and "content"'),
        ('{"messages": [{"role": "system", "content": "s"}]}', 'no message with role "user"'),
        ('{"prompt": "a", "max_tokens": "12"}', '"max_tokens" must be a whole number >= 1, got'),
        ('{"prompt": "a", "max_tokens": 0}', '"max_tokens" must be a whole number >= 1, got 0'),
        ('{"prompt": "a", "max_tokens": true}', '"max_tokens" must be a whole number >= 1'),
        ('{"prompt": "a", "output_tokens": 2.5}', '"output_tokens" must be a whole number'),
    ],
)
def test_jsonl_bad_lines_are_one_line_errors(tmp_path: Path, line: str, expected: str) -> None:
    path = _jsonl(tmp_path, line)
    message = _error(path)
    assert message.startswith(f"dataset {path} ")
    assert expected in message


def test_jsonl_error_counts_blank_lines(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, "", '{"prompt": "a"}', "", "{bad")
    assert f"dataset {path} line 4: not valid JSON" in _error(path)


def test_jsonl_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"prompt": "a"}\n{"prompt": "caf\xe9"}\n')
    assert _error(path) == f"dataset {path} line 2: not UTF-8 text; save the file as UTF-8"


def test_empty_and_blank_jsonl_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert f"dataset {empty}: the file has no prompts" in _error(empty)
    blank = _jsonl(tmp_path, "", "  ")
    assert "the file has no prompts" in _error(blank)


def test_missing_file_directory_and_unknown_source(tmp_path: Path) -> None:
    assert _error(tmp_path / "nope.jsonl") == (
        f'dataset {tmp_path / "nope.jsonl"}: file not found; give "synthetic", a .jsonl file or'
        " a ShareGPT .json file"
    )
    folder = tmp_path / "dir.jsonl"
    folder.mkdir()
    assert f"dataset {folder}: cannot read it" in _error(folder)
    assert "unknown kind of source" in _error(tmp_path / "prompts.csv")
    assert "unknown kind of source" in _error("synthetc")


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ({"chars_per_token": 0.0}, "chars_per_token must be > 0"),
        ({"chars_per_token": float("nan")}, "chars_per_token must be > 0"),
        ({"limit": 0}, "dataset limit must be >= 1, got 0"),
        ({"seed": -1}, "dataset seed must be >= 0, got -1"),
    ],
)
def test_bad_options(option: dict[str, Any], expected: str) -> None:
    assert expected in _error("synthetic", **option)


# ---- ShareGPT ------------------------------------------------------------------------------


def test_sharegpt_takes_the_first_human_turn_and_its_reply(tmp_path: Path) -> None:
    path = _sharegpt(
        tmp_path,
        [
            _conv(("human", "What is a queue?"), ("gpt", "A" * 40), ("human", "later")),
            _conv(("system", "Be terse."), ("human", "Name a river."), ("gpt", "The Nile....")),
        ],
    )
    data = _load(path, chars_per_token=2.0, output_len="fixed:999")
    assert list(data) == [
        Prompt("What is a queue?", (("user", "What is a queue?"),), 8, 20),
        Prompt(
            "Name a river.",
            (("system", "Be terse."), ("user", "Name a river.")),
            11,  # 22 characters over both turns / 2
            6,  # 12 characters of reply / 2
        ),
    ]
    assert data.skipped == 0


def test_sharegpt_skips_and_counts_unusable_entries(tmp_path: Path) -> None:
    good = _conv(("human", "tell me more"), ("gpt", "certainly, here"))
    entries = [
        _conv(("gpt", "hello there"), ("gpt", "anyone")),  # no human turn
        _conv(("human", "question alone")),  # no reply
        _conv(("human", "first"), ("human", "second one")),  # reply is not from gpt
        {"conversations": []},
        _conv(("human", "hi"), ("gpt", "a long enough reply")),  # prompt under 4 tokens
        _conv(("human", "a long enough prompt"), ("gpt", "ok")),  # reply under 4 tokens
        good,
    ]
    data = _load(_sharegpt(tmp_path, entries))
    assert [p.text for p in data] == ["tell me more"]
    assert data.skipped == 6


def test_sharegpt_with_nothing_usable_reports_the_counts(tmp_path: Path) -> None:
    path = _sharegpt(
        tmp_path, [_conv(("gpt", "hello there")), _conv(("human", "hi"), ("gpt", "yo"))]
    )
    assert _error(path).startswith(
        f"dataset {path}: no usable entries (1 without a human turn followed by a gpt reply,"
        " 1 under 4 tokens);"
    )
    assert "no usable entries (0 without" in _error(_sharegpt(tmp_path, []))


def test_sharegpt_limit_stops_before_a_broken_tail(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    entry = json.dumps(_conv(("human", "abcdefgh"), ("gpt", "ijklmnop")))
    path.write_text(f"[{entry}, {entry}, {entry}, {{broken")
    assert len(_load(path, limit=3)) == 3
    assert f"dataset {path} entry 4: not valid JSON" in _error(path)


def test_sharegpt_reads_the_same_across_any_chunking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = [
        _conv(("human", f"prompt number {i} " + "é" * i), ("gpt", "reply " * (i + 1)))
        for i in range(30)
    ]
    path = _sharegpt(tmp_path, entries)
    whole = list(_load(path))
    for chunk_chars in (1, 3, 17):
        monkeypatch.setattr(sharegpt, "_CHUNK_CHARS", chunk_chars)
        assert list(_load(path)) == whole
    assert len(whole) == 30


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "expected a JSON list, found an empty file"),
        ("  \n", "expected a JSON list, found an empty file"),
        ('{"conversations": []}', "expected a JSON list, found an object"),
        ("[1]", "entry 1: expected an object with a conversations list"),
        ('[{"id": 1}]', "entry 1: expected an object with a conversations list"),
        ('[{"conversations": [{"from": "human"}]}]', 'conversations[0] needs string "from"'),
        ('[{"conversations": [{"from": "robot", "value": "x"}]}]', 'has "from": "robot"'),
        ('[{"conversations": []},]', "entry 2: not valid JSON (Expecting value)"),
        ('[{"conversations": []} {"conversations": []}]', "entry 1: expected ',' or ']'"),
        ('[{"conversations": []},', "entry 2: the file ends inside the list"),
        ('[{"conversations": []}', "entry 1: the file ends inside the list"),
        ('[{"conversations": [', "entry 1: not valid JSON"),
    ],
)
def test_sharegpt_bad_files_are_one_line_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "data.json"
    path.write_text(text)
    message = _error(path)
    assert message.startswith(f"dataset {path}")
    assert expected in message


def test_sharegpt_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.json"
    path.write_bytes(b'[{"conversations": [{"from": "human", "value": "caf\xe9"}]}]')
    assert "not UTF-8 text; save the file as UTF-8" in _error(path)


# ---- Dataset -------------------------------------------------------------------------------


def _numbered(n: int) -> Dataset:
    return Dataset([Prompt(str(i), None, 1, 1) for i in range(n)], source="test")


def test_cycle_wraps_forever() -> None:
    assert [p.text for p in islice(_numbered(3).cycle(), 7)] == list("0120120")


def test_cycle_slices_are_disjoint_and_cover_the_dataset() -> None:
    data = _numbered(10)
    slices = [[p.text for p in islice(data.cycle(i, 3), 4)] for i in range(3)]
    assert slices == [["0", "3", "6", "9"], ["1", "4", "7", "1"], ["2", "5", "8", "2"]]
    firsts = {p.text for i in range(3) for p in islice(data.cycle(i, 3), len(range(i, 10, 3)))}
    assert firsts == {str(i) for i in range(10)}


def test_cycle_with_more_workers_than_prompts_still_yields() -> None:
    assert [p.text for p in islice(_numbered(2).cycle(5, 8), 3)] == ["1", "1", "1"]


def test_cycle_rejects_bad_arguments_and_dataset_must_not_be_empty() -> None:
    with pytest.raises(ValueError, match="step >= 1"):
        next(_numbered(2).cycle(0, 0))
    with pytest.raises(ValueError, match="start >= 0"):
        next(_numbered(2).cycle(-1))
    with pytest.raises(DatasetError, match="no prompts"):
        Dataset([], source="x")


def test_errors_are_slabench_and_value_errors() -> None:
    with pytest.raises(SlabenchError):
        parse_length_dist("bad")
    with pytest.raises(ValueError):
        parse_length_dist("bad")


def test_jsonl_nested_too_deeply_is_a_one_line_error(tmp_path: Path) -> None:
    path = _jsonl(tmp_path, '{"prompt": "a"}', "[" * 100_000 + "]" * 100_000)
    assert f"dataset {path} line 2: JSON nested too deeply" in _error(path)


def test_sharegpt_nested_too_deeply_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" + "[" * 100_000 + "]" * 100_000 + "]", encoding="utf-8")
    assert "JSON nested too deeply" in _error(path)
