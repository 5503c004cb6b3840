"""Prompt sources for the load generator: synthetic text, a JSONL file, or ShareGPT JSON.

    dataset = load_dataset("prompts.jsonl", input_len="fixed:128", output_len="uniform:64,256",
                           seed=0, chars_per_token=4.0, limit=500)
    for prompt in dataset.cycle(start=worker_index, step=worker_count):
        ...  # endless; workers with distinct `start` and the same `step` never share a prompt

Sources:
- ``"synthetic"``: `limit` (default 1000) prompts of plain words, lengths drawn from
  `input_len`, max_tokens from `output_len`, all reproducible from `seed`. Each starts with
  its own index ("17: ..."), so no two share a prefix a server's prefix cache could reuse.
- ``*.jsonl``: one object per line, ``{"prompt": str}`` or ``{"messages": [{"role", "content"},
  ...]}`` (the prompt text is the last user message), with optional ``"max_tokens"`` or
  ``"output_tokens"``; when neither is given, max_tokens is drawn from `output_len`.
- ``*.json`` in ShareGPT form, ``[{"conversations": [{"from": "human"|"gpt"|"system",
  "value": str}, ...]}, ...]``: the prompt is the first human turn, max_tokens the length of
  the gpt reply that follows it. Entries without such a pair, or with a prompt or reply under
  4 tokens, are skipped and counted in `Dataset.skipped`. Entries are numbered from 1.

Length specs, in tokens, each sample rounded and clipped to >= 1:
``fixed:N`` (or a bare ``N``), ``uniform:LO,HI`` (inclusive), ``normal:MEAN,STD``,
``lognormal:MEDIAN,SIGMA`` (sigma of the underlying normal).

Token counts are estimates: characters / `chars_per_token` (1.0 for the byte-level reference
server, about 4.0 for BPE tokenizers), unless a `sizer` (``--tokenizer``: the target's own
tokenizer, see ``loadtests.workloads.tokenizer``) sizes synthetic prompts exactly.
`input_len` only shapes synthetic prompts; it is validated for every source so that a typo
never goes unnoticed. Files are read as a stream
and reading stops once `limit` usable prompts are in hand.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO, Literal, NamedTuple, NoReturn, cast

import numpy as np
import numpy.typing as npt

from loadtests.errors import DatasetError
from loadtests.workloads.sharegpt import Messages, json_kind, read_sharegpt
from loadtests.workloads.tokenizer import Sizer
from loadtests.workloads.words import words_text

__all__ = [
    "Dataset",
    "LengthDist",
    "Prompt",
    "jsonl_objects",
    "load_dataset",
    "parse_length_dist",
]

_LengthKind = Literal["fixed", "uniform", "normal", "lognormal"]

DEFAULT_SYNTHETIC_COUNT = 1000
_SOURCES_HINT = 'give "synthetic", a .jsonl file or a ShareGPT .json file'
_LENGTH_FORMS = "use fixed:N, uniform:LO,HI, normal:MEAN,STD or lognormal:MEDIAN,SIGMA (tokens)"
_JSONL_HINT = (
    'each line must be {"prompt": "..."} or {"messages": [{"role": "user", "content": "..."}]}'
    ' with an optional "max_tokens"'
)


@dataclass(frozen=True, slots=True)
class Prompt:
    """One request's input. `messages` holds the conversation when the source had one."""

    text: str
    messages: Messages | None
    input_tokens_hint: int
    max_tokens: int


@dataclass(frozen=True, slots=True)
class LengthDist:
    """A token-length distribution. `a`, `b`: N; LO, HI; MEAN, STD; or MEDIAN, SIGMA."""

    kind: _LengthKind
    a: float
    b: float = 0.0

    @property
    def spec(self) -> str:
        """The canonical spec string, e.g. for run.json."""
        if self.kind == "fixed":
            return f"fixed:{self.a:g}"
        return f"{self.kind}:{self.a:g},{self.b:g}"

    def sample(self, rng: np.random.Generator, n: int) -> npt.NDArray[np.int64]:
        if self.kind == "fixed":
            return np.full(n, int(self.a), dtype=np.int64)
        if self.kind == "uniform":
            return rng.integers(int(self.a), int(self.b), size=n, endpoint=True, dtype=np.int64)
        if self.kind == "normal":
            raw = rng.normal(self.a, self.b, size=n)
        else:
            raw = rng.lognormal(math.log(self.a), self.b, size=n)
        return np.maximum(np.rint(raw), 1).astype(np.int64)


def parse_length_dist(spec: str) -> LengthDist:
    """Parses ``fixed:N``, ``uniform:LO,HI``, ``normal:MEAN,STD`` or ``lognormal:MEDIAN,SIGMA``."""
    kind, _, args = spec.strip().partition(":")
    if not args and kind.isdigit():
        kind, args = "fixed", kind
    parts = [p.strip() for p in args.split(",")] if args else []
    want = {"fixed": 1, "uniform": 2, "normal": 2, "lognormal": 2}.get(kind)
    if want is None:
        _bad_length(spec, f"unknown kind {kind!r}")
    if len(parts) != want:
        _bad_length(spec, f"{kind} takes {want} number{'s' if want > 1 else ''}")
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        _bad_length(spec, "not a number")
    if not all(math.isfinite(x) for x in nums):
        _bad_length(spec, "numbers must be finite")
    if kind in ("fixed", "uniform"):
        if not all(x.is_integer() and x >= 1 for x in nums):
            _bad_length(spec, "lengths must be whole numbers >= 1")
        if kind == "uniform" and nums[0] > nums[1]:
            _bad_length(spec, "LO must be <= HI")
    elif nums[0] <= 0 or nums[1] < 0:
        _bad_length(spec, "the first number must be > 0 and the second >= 0")
    return LengthDist(cast(_LengthKind, kind), *nums)


def _bad_length(spec: str, why: str) -> NoReturn:
    raise DatasetError(f"bad length spec {spec!r}: {why}; {_LENGTH_FORMS}")


class Dataset:
    """An immutable, non-empty sequence of prompts."""

    __slots__ = ("_prompts", "skipped", "source")

    def __init__(self, prompts: Sequence[Prompt], *, source: str, skipped: int = 0) -> None:
        if not prompts:
            raise DatasetError(f"dataset {source}: no prompts; {_SOURCES_HINT}")
        self._prompts = tuple(prompts)
        self.source = source
        self.skipped = skipped  # ShareGPT entries left out (no usable pair, or too short)

    def __len__(self) -> int:
        return len(self._prompts)

    def __getitem__(self, index: int) -> Prompt:
        return self._prompts[index]

    def __iter__(self) -> Iterator[Prompt]:
        return iter(self._prompts)

    def cycle(self, start: int = 0, step: int = 1) -> Iterator[Prompt]:
        """Endlessly yields prompts start, start+step, ... and wraps back to `start`.

        Worker i of n takes ``cycle(i, n)``: the workers' slices are disjoint and together
        cover the dataset (a worker beyond the dataset's size wraps to ``start % len``).
        """
        if start < 0 or step < 1:
            raise ValueError(f"cycle needs start >= 0 and step >= 1, got {start}, {step}")
        mine = self._prompts[start % len(self._prompts) :: step]
        while True:
            yield from mine


class _Draft(NamedTuple):
    text: str
    messages: Messages | None
    chars: int  # characters of everything sent, for the token estimate
    max_tokens: int | None


def load_dataset(
    source: str,
    *,
    input_len: str,
    output_len: str,
    seed: int,
    chars_per_token: float,
    limit: int | None = None,
    sizer: Sizer | None = None,
) -> Dataset:
    """Loads prompts from `source`; see the module docstring. Raises `DatasetError`.
    With `sizer` (a tokenizer), synthetic prompts are that many tokens exactly."""
    in_dist = _parse_option("input_len", input_len)
    out_dist = _parse_option("output_len", output_len)
    _check_args(chars_per_token=chars_per_token, limit=limit, seed=seed)
    in_rng, out_rng, text_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    if source == "synthetic":
        count = DEFAULT_SYNTHETIC_COUNT if limit is None else limit
        return _synthetic(
            count,
            in_dist.sample(in_rng, count),
            out_dist.sample(out_rng, count),
            text_rng,
            chars_per_token,
            sizer,
        )
    drafts, skipped = _read_drafts(source, limit, chars_per_token)
    drawn = iter(out_dist.sample(out_rng, sum(d.max_tokens is None for d in drafts)).tolist())
    prompts = [
        Prompt(
            d.text,
            d.messages,
            _tokens(d.chars, chars_per_token),
            next(drawn) if d.max_tokens is None else d.max_tokens,
        )
        for d in drafts
    ]
    return Dataset(prompts, source=source, skipped=skipped)


def _check_args(*, chars_per_token: float, limit: int | None, seed: int) -> None:
    if not (math.isfinite(chars_per_token) and chars_per_token > 0):
        raise DatasetError(f"chars_per_token must be > 0, got {chars_per_token}")
    if limit is not None and limit < 1:
        raise DatasetError(f"dataset limit must be >= 1, got {limit}")
    if seed < 0:
        raise DatasetError(f"dataset seed must be >= 0, got {seed}")


def _read_drafts(
    source: str, limit: int | None, chars_per_token: float
) -> tuple[list[_Draft], int]:
    """The prompts of a file source, by its suffix, and how many items were skipped."""
    suffix = Path(source).suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(Path(source), source, limit), 0
    if suffix == ".json":
        return _read_sharegpt(Path(source), source, limit, chars_per_token)
    raise DatasetError(f"dataset {source}: unknown kind of source; {_SOURCES_HINT}")


def _parse_option(name: str, spec: str) -> LengthDist:
    try:
        return parse_length_dist(spec)
    except DatasetError as exc:
        raise DatasetError(f"{name}: {exc}") from None


def _tokens(chars: int, chars_per_token: float) -> int:
    return max(1, round(chars / chars_per_token))


def _synthetic(
    count: int,
    in_tokens: npt.NDArray[np.int64],
    out_tokens: npt.NDArray[np.int64],
    rng: np.random.Generator,
    chars_per_token: float,
    sizer: Sizer | None = None,
) -> Dataset:
    prompts = []
    for i in range(count):
        if sizer is not None:
            text = sizer.sized(f"{i}:", int(in_tokens[i]), rng).text
        else:
            text = _synthetic_text(i, max(1, round(int(in_tokens[i]) * chars_per_token)), rng)
        prompts.append(Prompt(text, None, int(in_tokens[i]), int(out_tokens[i])))
    return Dataset(prompts, source="synthetic")


def _synthetic_text(index: int, n_chars: int, rng: np.random.Generator) -> str:
    """Exactly `n_chars` characters of words after a unique "index:" head (longer if that is)."""
    return words_text(f"{index}:", n_chars, rng)


def _read_jsonl(path: Path, name: str, limit: int | None) -> list[_Draft]:
    with _open(path, name) as fh:
        drafts = list(islice(_jsonl_drafts(fh, name), limit))
    if not drafts:
        raise DatasetError(f"dataset {name}: the file has no prompts; {_JSONL_HINT}")
    return drafts


def _jsonl_drafts(fh: BinaryIO, name: str) -> Iterator[_Draft]:
    for where, obj in jsonl_objects(fh, f"dataset {name}", _JSONL_HINT):
        yield _jsonl_draft(obj, where)


def jsonl_objects(fh: BinaryIO, label: str, hint: str) -> Iterator[tuple[str, Any]]:
    """Each non-blank line of a JSONL file, parsed, with where it is (``"<label> line N"``).
    Lines are decoded one by one (not by a text wrapper) so errors name the exact line; a
    line that is not UTF-8 or not JSON is a ``DatasetError`` ending in ``hint``."""
    for lineno, raw in enumerate(fh, 1):
        where = f"{label} line {lineno}"
        try:
            line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError:
            raise DatasetError(f"{where}: not UTF-8 text; save the file as UTF-8") from None
        if not line.strip():
            continue
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: not valid JSON ({exc.msg}); {hint}") from None
        except RecursionError:
            raise DatasetError(f"{where}: JSON nested too deeply; {hint}") from None


def _jsonl_draft(obj: Any, where: str) -> _Draft:
    if not isinstance(obj, dict):
        raise DatasetError(f"{where}: expected a JSON object, got {json_kind(obj)}; {_JSONL_HINT}")
    if ("prompt" in obj) == ("messages" in obj):
        raise DatasetError(f'{where}: needs exactly one of "prompt" or "messages"; {_JSONL_HINT}')
    max_tokens = _max_tokens(obj, where)
    if "prompt" in obj:
        text = obj["prompt"]
        if not isinstance(text, str) or not text:
            raise DatasetError(
                f'{where}: "prompt" must be a non-empty string, got {json_kind(text)}'
            )
        return _Draft(text, None, len(text), max_tokens)
    messages = _messages(obj["messages"], where)
    user_texts = [content for role, content in messages if role == "user"]
    if not user_texts:
        raise DatasetError(f'{where}: "messages" has no message with role "user"; {_JSONL_HINT}')
    return _Draft(user_texts[-1], messages, sum(len(c) for _, c in messages), max_tokens)


def _messages(value: Any, where: str) -> Messages:
    if not isinstance(value, list) or not value:
        raise DatasetError(f'{where}: "messages" must be a non-empty list; {_JSONL_HINT}')
    pairs = []
    for i, msg in enumerate(value):
        if not (
            isinstance(msg, dict)
            and isinstance(msg.get("role"), str)
            and isinstance(msg.get("content"), str)
        ):
            raise DatasetError(
                f'{where}: messages[{i}] needs string "role" and "content"; {_JSONL_HINT}'
            )
        pairs.append((msg["role"], msg["content"]))
    return tuple(pairs)


def _max_tokens(obj: dict[str, Any], where: str) -> int | None:
    for key in ("max_tokens", "output_tokens"):
        value = obj.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DatasetError(
                f'{where}: "{key}" must be a whole number >= 1, got {json_kind(value)}'
            )
        return value
    return None


def _open(path: Path, name: str) -> BinaryIO:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise DatasetError(f"dataset {name}: file not found; {_SOURCES_HINT}") from None
    except OSError as exc:
        raise DatasetError(f"dataset {name}: cannot read it ({exc.strerror})") from None


def _read_sharegpt(
    path: Path, name: str, limit: int | None, chars_per_token: float
) -> tuple[list[_Draft], int]:
    with _open(path, name) as raw:
        pairs, skipped = read_sharegpt(raw, name, limit, chars_per_token)
    drafts = [
        _Draft(
            messages[-1][1],
            messages,
            sum(len(content) for _, content in messages),
            _tokens(reply_chars, chars_per_token),
        )
        for messages, reply_chars in pairs
    ]
    return drafts, skipped
