"""The JSON of completion and chat responses: the streamed chunks, pre-rendered around each
piece of text (``ChunkHead``: chunks are the hot path), the full response and ``usage``."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from reference_server.generation import Sequence
from reference_server.streaming import sse_event


class ChunkHead:
    """Pre-rendered JSON around each streamed piece of text: chunks are the hot path."""

    def __init__(self, *, chat: bool, model: str) -> None:
        self.chat = chat
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        self.created = int(time.time())
        self.model = model
        obj = "chat.completion.chunk" if chat else "text_completion"
        self._prefix = (
            f'{{"id":"{self.id}","object":"{obj}","created":{self.created},'
            f'"model":{json.dumps(model)},"choices":[{{"index":0,'
        )

    def _chunk(self, payload: str, finish_reason: str | None) -> bytes:
        reason = "null" if finish_reason is None else f'"{finish_reason}"'
        tail = f',"logprobs":null,"finish_reason":{reason}}}]}}\n\n'
        return f"data: {self._prefix}{payload}{tail}".encode()

    def text_chunk(self, text: str) -> bytes:
        quoted = json.dumps(text)
        return self._chunk(
            f'"delta":{{"content":{quoted}}}' if self.chat else f'"text":{quoted}', None
        )

    def role_chunk(self) -> bytes:
        return self._chunk('"delta":{"role":"assistant","content":""}', None)

    def final_chunk(self, reason: str) -> bytes:
        return self._chunk('"delta":{}' if self.chat else '"text":""', reason)

    def usage_chunk(self, usage: dict[str, int]) -> bytes:
        obj = "chat.completion.chunk" if self.chat else "text_completion"
        chunk = {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage,
        }
        return sse_event(chunk)

    def full_response(self, results: list[tuple[str, str]], seqs: list[Sequence]) -> dict[str, Any]:
        choices: list[dict[str, Any]] = []
        for i, (text, reason) in enumerate(results):
            if self.chat:
                choices.append(
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": text},
                        "logprobs": None,
                        "finish_reason": reason,
                    }
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


def usage(seqs: list[Sequence]) -> dict[str, int]:
    prompt = sum(len(s.prompt_ids) for s in seqs)
    completion = sum(s.generated for s in seqs)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
