"""The JSON of completion and chat responses: the streamed chunks, pre-rendered around each
piece of text (``ChunkHead``: chunks are the hot path), the full response and ``usage``."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from reference_server.generation import Sequence
from reference_server.streaming import sse_event


@dataclass(frozen=True, slots=True)
class Answer:
    """One choice of a non-streamed answer."""

    reasoning: str
    text: str
    finish_reason: str


class ChunkHead:
    """Pre-rendered JSON around each streamed piece of text: chunks are the hot path."""

    def __init__(self, *, chat: bool, model: str, reasoning_field: str = "reasoning") -> None:
        self.chat = chat
        self.reasoning_field = reasoning_field
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        self.created = int(time.time())
        self.model = model
        obj = "chat.completion.chunk" if chat else "text_completion"
        self._prefix = (
            f'{{"id":"{self.id}","object":"{obj}","created":{self.created},'
            f'"model":{json.dumps(model)},"choices":[{{"index":0,'
        )

    def _chunk(self, payload: str, finish_reason: str | None, extra: str = "") -> bytes:
        reason = "null" if finish_reason is None else f'"{finish_reason}"'
        tail = f',"logprobs":null,"finish_reason":{reason}}}]{extra}}}\n\n'
        return f"data: {self._prefix}{payload}{tail}".encode()

    def text_chunk(self, text: str) -> bytes:
        quoted = json.dumps(text)
        return self._chunk(
            f'"delta":{{"content":{quoted}}}' if self.chat else f'"text":{quoted}', None
        )

    def reasoning_chunk(self, text: str) -> bytes:
        return self._chunk(f'"delta":{{"{self.reasoning_field}":{json.dumps(text)}}}', None)

    def role_chunk(self) -> bytes:
        return self._chunk('"delta":{"role":"assistant","content":""}', None)

    def final_chunk(self, reason: str, timings: dict[str, Any] | None = None) -> bytes:
        """The chunk with the finish reason; ``timings`` (the server's, when no usage chunk
        follows) as a top-level field next to ``choices``."""
        extra = "" if timings is None else ',"timings":' + json.dumps(timings)
        return self._chunk('"delta":{}' if self.chat else '"text":""', reason, extra)

    def usage_chunk(self, usage: dict[str, Any], timings: dict[str, Any] | None = None) -> bytes:
        obj = "chat.completion.chunk" if self.chat else "text_completion"
        chunk = {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage,
        }
        if timings is not None:
            chunk["timings"] = timings
        return sse_event(chunk)

    def full_response(self, results: list[Answer], seqs: list[Sequence]) -> dict[str, Any]:
        choices: list[dict[str, Any]] = []
        for i, (answer, seq) in enumerate(zip(results, seqs, strict=True)):
            text, reason = answer.text, answer.finish_reason
            if self.chat:
                message = {"role": "assistant", "content": text}
                if seq.reasoning_tokens:
                    message[self.reasoning_field] = answer.reasoning
                choices.append(
                    {"index": i, "message": message, "logprobs": None, "finish_reason": reason}
                )
            else:
                choices.append(
                    {"index": i, "text": text, "logprobs": None, "finish_reason": reason}
                )
        return {
            "id": self.id,
            "object": "chat.completion" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": usage(seqs),
        }


def usage(seqs: list[Sequence]) -> dict[str, Any]:
    """OpenAI's usage; completion tokens include the reasoning tokens, as OpenAI counts."""
    prompt = sum(len(s.prompt_ids) for s in seqs)
    completion = sum(s.generated for s in seqs)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": sum(s.cached_tokens for s in seqs)},
        "completion_tokens_details": {
            "reasoning_tokens": sum(min(s.generated, s.reasoning_tokens) for s in seqs)
        },
    }
