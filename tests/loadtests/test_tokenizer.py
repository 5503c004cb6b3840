"""--tokenizer: a local tokenizer.json sizes synthetic prompts exactly in its tokens and counts
the output tokens of answers that report no usage. The tokenizer is trained here, on a few
sentences (a byte-level BPE, as GPT-2's, Llama 3's and Qwen's are): nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from loadtests.client.measure import _Ids, _streamed
from loadtests.client.openai_stream import StreamAccumulator
from loadtests.client.protocols import PreparedRequest
from loadtests.errors import DatasetError
from loadtests.workloads.datasets import load_dataset
from loadtests.workloads.tokenizer import TokenizerFile, load_tokenizer
from loadtests.workloads.words import WORDS


def train_tokenizer(directory: Path) -> Path:
    """A byte-level BPE tokenizer.json trained on sentences of the synthetic words."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    rng = np.random.default_rng(0)
    sentences = [" ".join(rng.choice(WORDS, 40).tolist()) for _ in range(60)]
    tok.train_from_iterator(sentences, trainer)
    path = directory / "tokenizer.json"
    tok.save(str(path))
    return path


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> TokenizerFile:
    return load_tokenizer(str(train_tokenizer(tmp_path_factory.mktemp("tok"))))


def test_a_directory_holding_tokenizer_json_loads_and_run_json_says_which(
    tmp_path: Path,
) -> None:
    path = train_tokenizer(tmp_path)
    tok = load_tokenizer(str(tmp_path))
    assert tok.describe() == {"path": str(path), "vocab_size": tok.vocab_size}
    assert 256 < tok.vocab_size <= 600
    assert tok.count(" the model") == 2


def test_a_missing_or_broken_tokenizer_is_one_line_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as missing:
        load_tokenizer(str(tmp_path / "nope"))
    assert str(missing.value).startswith(f"--tokenizer {tmp_path / 'nope'}: no such file; give")
    broken = tmp_path / "tokenizer.json"
    broken.write_text('{"version": "1.0", "model": 7}\n', encoding="utf-8")
    with pytest.raises(DatasetError) as bad:
        load_tokenizer(str(tmp_path))
    message = str(bad.value)
    assert message.startswith(f"--tokenizer {broken}: not a tokenizers tokenizer.json (")
    assert "\n" not in message and "local tokenizer.json" in message


def test_synthetic_prompts_are_exactly_their_length_in_the_tokenizers_tokens(
    tokenizer: TokenizerFile,
) -> None:
    dataset = load_dataset(
        "synthetic",
        input_len="uniform:1,300",
        output_len="fixed:8",
        seed=3,
        chars_per_token=4.0,
        limit=60,
        sizer=tokenizer,
    )
    counts = [tokenizer.count(p.text) for p in dataset]
    assert counts == [p.input_tokens_hint for p in dataset]
    # Distinct heads: no two prompts share even their first token's text.
    assert len({p.text.split(" ")[0] for p in dataset if p.input_tokens_hint > 3}) == len(
        [p for p in dataset if p.input_tokens_hint > 3]
    )


def test_a_stream_without_usage_counts_its_output_with_the_tokenizer(
    tokenizer: TokenizerFile,
) -> None:
    acc = StreamAccumulator()
    pieces = ["the", " model", " answer", "s simple"]
    events = [f'{{"choices":[{{"index":0,"text":"{p}"}}]}}' for p in pieces]
    acc.on_events([*events, "[DONE]"], 1.0)
    result = acc.finish(1.0, stream_ended=True)
    req = PreparedRequest("completions", "POST", "/v1/completions", b"{}", "openai_sse")
    ids = _Ids(req, "r-1", "local", 0.0, 0.5, None, tokenizer.count)

    counted = _streamed(ids, 200, None, result)
    plain = _streamed(_Ids(req, "r-2", "local", 0.0, 0.5), 200, None, result)

    assert (counted.output_tokens, counted.output_tokens_source) == (
        tokenizer.count("the model answers simple"),
        "tokenizer",
    )
    assert (plain.output_tokens, plain.output_tokens_source) == (4, "chunks")
