"""Request bodies for each protocol, and how to read a non-streamed answer.

A ``RequestBuilder`` turns a dataset ``Prompt`` into a ``PreparedRequest`` (bytes ready to
send). Bodies are built before the send time so that JSON encoding never lands inside the
measured latency. Every prompt source passes through a builder once, so this is where the
run's prompt nonce (``loadtests.client.nonce``) goes: the builders of text take it as
``nonce`` and start the prompt (completions, embeddings, ``{{prompt}}``) or the first
message of a conversation (chat: the shared system prompt when there is one) with it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from loadtests.client.nonce import prefixed
from loadtests.client.openai_stream import MalformedUsage, usage_counts
from loadtests.workloads.datasets import Prompt
from sla.errors import SlabenchError
from sla.files.error_class import MALFORMED_BODY, http_error_class

Reader = Literal["openai_sse", "openai_json", "embeddings", "kserve", "json"]


class PayloadError(SlabenchError):
    """A payload template or tensor option that cannot be used."""


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    endpoint: str  # label in records and Locust stats
    method: str
    path: str
    body: bytes | None
    reader: Reader
    input_tokens_hint: int | None = None
    session_id: str | None = None  # a multi-turn conversation's turn: which conversation
    turn: int | None = None  # and which turn of it (from 1)


class RequestBuilder(Protocol):
    def build(self, prompt: Prompt) -> PreparedRequest: ...


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


_MEMO_BYTES = 32 * 1024 * 1024


class _Memo:
    """Prepared requests by prompt, up to a budget of body bytes. A run cycles through its
    dataset again and again: each body is encoded once, not once per request."""

    __slots__ = ("_bytes_left", "_requests")

    def __init__(self, budget_bytes: int = _MEMO_BYTES) -> None:
        self._requests: dict[Prompt, PreparedRequest] = {}
        self._bytes_left = budget_bytes

    def get(self, prompt: Prompt) -> PreparedRequest | None:
        return self._requests.get(prompt)

    def put(self, prompt: Prompt, req: PreparedRequest) -> PreparedRequest:
        size = len(req.body or b"")
        if size <= self._bytes_left:
            self._requests[prompt] = req
            self._bytes_left -= size
        return req


@dataclass(frozen=True, slots=True)
class OpenAIGeneration:
    """/v1/chat/completions (chat=True) or /v1/completions."""

    model: str
    chat: bool
    stream: bool
    ignore_eos: bool
    nonce: str = ""
    _memo: _Memo = field(default_factory=_Memo, init=False, repr=False, compare=False)

    def build(self, prompt: Prompt) -> PreparedRequest:
        return self._memo.get(prompt) or self._memo.put(prompt, self._build(prompt))

    def _build(self, prompt: Prompt) -> PreparedRequest:
        body: dict[str, Any] = {"model": self.model, "max_tokens": prompt.max_tokens}
        if self.chat:
            turns = prompt.messages or (("user", prompt.text),)
            body["messages"] = [
                {"role": r, "content": prefixed(self.nonce, c) if i == 0 else c}
                for i, (r, c) in enumerate(turns)
            ]
        else:
            body["prompt"] = prefixed(self.nonce, prompt.text)
        if self.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        if self.ignore_eos:
            body["ignore_eos"] = True  # vLLM/SGLang/TGI extension: exact output lengths
        return PreparedRequest(
            endpoint="chat" if self.chat else "completions",
            method="POST",
            path="/v1/chat/completions" if self.chat else "/v1/completions",
            body=_dumps(body),
            reader="openai_sse" if self.stream else "openai_json",
            input_tokens_hint=prompt.input_tokens_hint,
        )


@dataclass(frozen=True, slots=True)
class OpenAIEmbeddings:
    model: str
    nonce: str = ""
    _memo: _Memo = field(default_factory=_Memo, init=False, repr=False, compare=False)

    def build(self, prompt: Prompt) -> PreparedRequest:
        return self._memo.get(prompt) or self._memo.put(prompt, self._build(prompt))

    def _build(self, prompt: Prompt) -> PreparedRequest:
        text = prefixed(self.nonce, prompt.text)
        body = {"model": self.model, "input": text, "encoding_format": "float"}
        return PreparedRequest(
            "embeddings",
            "POST",
            "/v1/embeddings",
            _dumps(body),
            "embeddings",
            prompt.input_tokens_hint,
        )


@dataclass(frozen=True, slots=True)
class KServeInfer:
    """KServe V2 JSON tensor inference with seeded random FP32 data of a fixed shape."""

    model: str
    input_name: str
    shape: tuple[int, ...]
    seed: int = 0

    def build(self, prompt: Prompt) -> PreparedRequest:
        del prompt  # tensors do not come from the text dataset
        return PreparedRequest(
            "kserve", "POST", f"/v2/models/{self.model}/infer", self._body, "kserve", None
        )

    @property
    def _body(self) -> bytes:
        count = 1
        for dim in self.shape:
            count *= dim
        rng = random.Random(self.seed)
        data = [round(rng.uniform(-1.0, 1.0), 6) for _ in range(count)]
        tensor = {
            "name": self.input_name,
            "datatype": "FP32",
            "shape": list(self.shape),
            "data": data,
        }
        return _dumps({"inputs": [tensor]})


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.split(","))
    except ValueError:
        dims = ()
    if not dims or any(d < 1 for d in dims):
        raise PayloadError(f"--kserve-shape {text!r} must be positive integers like 1,256")
    return dims


@dataclass(frozen=True, slots=True)
class JsonTemplate:
    """Any HTTP/JSON endpoint: a template whose strings may hold ``{{prompt}}`` and
    ``{{max_tokens}}``; a string that is exactly ``"{{max_tokens}}"`` becomes a number."""

    template: Any
    method: str
    path: str
    name: str
    nonce: str = ""
    _memo: _Memo = field(default_factory=_Memo, init=False, repr=False, compare=False)

    @classmethod
    def load(cls, file: str, *, method: str, path: str, nonce: str = "") -> JsonTemplate:
        try:
            template = json.loads(Path(file).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PayloadError(f"--payload {file}: no such file") from None
        except (OSError, ValueError) as exc:
            raise PayloadError(f"--payload {file}: not a JSON file ({exc})") from None
        if not path.startswith("/"):
            raise PayloadError(f"--path {path!r} must start with '/'")
        return cls(template, method.upper(), path, name=path, nonce=nonce)

    def build(self, prompt: Prompt) -> PreparedRequest:
        return self._memo.get(prompt) or self._memo.put(prompt, self._build(prompt))

    def _build(self, prompt: Prompt) -> PreparedRequest:
        text = prefixed(self.nonce, prompt.text)
        body = _dumps(_fill(self.template, prompt, text))
        return PreparedRequest(
            self.name, self.method, self.path, body, "json", prompt.input_tokens_hint
        )


def _fill(node: Any, prompt: Prompt, text: str) -> Any:
    if isinstance(node, str):
        if node == "{{max_tokens}}":
            return prompt.max_tokens
        return node.replace("{{prompt}}", text).replace("{{max_tokens}}", str(prompt.max_tokens))
    if isinstance(node, list):
        return [_fill(v, prompt, text) for v in node]
    if isinstance(node, dict):
        return {k: _fill(v, prompt, text) for k, v in node.items()}
    return node


@dataclass(frozen=True, slots=True)
class Answer:
    """What a non-streamed body says about tokens and errors."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    error: str | None = None
    error_class: str | None = None  # sla.files.error_class; None when it succeeded
    text: str | None = None  # the generated text of an OpenAI answer (first choice)
    cached_tokens: int | None = None  # usage.prompt_tokens_details.cached_tokens
    reasoning_tokens: int | None = None  # usage.completion_tokens_details.reasoning_tokens
    timings: object = None  # the body's ``timings`` object (llama.cpp's), unread


def _malformed(error: str) -> Answer:
    return Answer(error=error, error_class=MALFORMED_BODY)


def read_answer(reader: Reader, status: int, body: bytes) -> Answer:
    """Interpret a complete body. Never raises: a surprise becomes an error string.

    An OpenAI answer's ``usage`` is read by ``openai_stream.usage_counts``: a count that is
    not a non-negative integer the run directory holds makes the answer malformed (its
    message names the field and the value), as in a stream."""
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        doc = None
        if 200 <= status < 300 and reader != "json":
            return _malformed(f"malformed JSON body: {body[:80]!r}")
    if not 200 <= status < 300:
        return Answer(
            error=f"HTTP {status}: {_error_text(doc, body)}", error_class=http_error_class(status)
        )
    if not isinstance(doc, dict):
        return Answer() if reader == "json" else _malformed("response is not a JSON object")
    if reader == "json":  # any endpoint: its body is not ours to read
        return Answer()
    if reader == "kserve":
        return Answer() if doc.get("outputs") else _malformed("no outputs in answer")
    try:
        prompt_tokens, completion_tokens, cached, reasoning = usage_counts(doc.get("usage"))
    except MalformedUsage as exc:
        return _malformed(str(exc))
    if reader == "embeddings":
        if not doc.get("data"):
            error = "no embeddings in answer"
            return Answer(prompt_tokens, error=error, error_class=MALFORMED_BODY)
        return Answer(prompt_tokens)
    return Answer(  # openai_json (and openai_sse answered in one body)
        prompt_tokens,
        completion_tokens,
        text=_answer_text(doc),
        cached_tokens=cached,
        reasoning_tokens=reasoning,
        timings=doc.get("timings"),
    )


def _answer_text(doc: dict[str, Any]) -> str | None:
    """The first choice's text: ``message.content`` (chat) or ``text`` (completions)."""
    choices = doc.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    if not isinstance(first, dict):
        return None
    message = first.get("message")
    text = message.get("content") if isinstance(message, dict) else first.get("text")
    return text if isinstance(text, str) else None


def _error_text(doc: Any, body: bytes) -> str:
    if isinstance(doc, dict):
        err = doc.get("error", doc.get("message", doc.get("detail")))
        if isinstance(err, dict):
            err = err.get("message", err)
        if err is not None:
            return " ".join(str(err).split())[:300]
    text = body[:300].decode("utf-8", errors="replace")
    return " ".join(text.split()) or "(empty body)"
