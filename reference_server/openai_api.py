"""OpenAI-compatible endpoints: /v1/completions, /v1/chat/completions, /v1/embeddings,
/v1/models. Streaming follows OpenAI's SSE format: ``data: {chunk}`` events, a final
``usage`` chunk when ``stream_options.include_usage`` is set, then ``data: [DONE]``."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import Any

import numpy as np
import orjson
from aiohttp import web

from reference_server import tokenizer
from reference_server.config import ServerConfig
from reference_server.errors import BadRequest, NotFound, RequestTimeout, Unavailable
from reference_server.generation import Finish, Sequence
from reference_server.middleware import STREAM_REASON
from reference_server.openai_requests import (
    GenerationParams,
    chat_prompt_ids,
    completion_prompt_ids,
    generation_params,
)
from reference_server.state import CONFIG, SCHEDULERS
from reference_server.streaming import StopMatcher, sse_event

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", get_model)


async def read_json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def _check_model(body: dict[str, Any], served: str) -> str:
    model = body.get("model", served)
    if not isinstance(model, str):
        raise BadRequest("'model' must be a string", param="model")
    if model != served:
        raise NotFound(
            f"model {model!r} does not exist; this endpoint serves {served!r}",
            param="model",
            code="model_not_found",
        )
    return model


def _model_cards(request: web.Request) -> list[dict[str, Any]]:
    config = request.app[CONFIG]
    return [
        {"id": name, "object": "model", "created": 0, "owned_by": "slabench"}
        for name in (config.lm.name, config.embedder.name)
    ]


async def list_models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": _model_cards(request)})


async def get_model(request: web.Request) -> web.Response:
    for card in _model_cards(request):
        if card["id"] == request.match_info["model"]:
            return web.json_response(card)
    raise NotFound(f"model {request.match_info['model']!r} does not exist", code="model_not_found")


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await read_json(request)
    return await _generate(request, body, (chat_prompt_ids(body),), chat=True)


async def completions(request: web.Request) -> web.StreamResponse:
    body = await read_json(request)
    return await _generate(request, body, completion_prompt_ids(body), chat=False)


async def _generate(
    request: web.Request, body: dict[str, Any], prompts: tuple[list[int], ...], *, chat: bool
) -> web.StreamResponse:
    config = request.app[CONFIG]
    model = _check_model(body, config.lm.name)
    params = generation_params(
        body,
        prompts,
        default_max_tokens=None if chat else 16,  # OpenAI's default for legacy completions
        max_tokens_limit=config.batching.max_tokens_limit,
        max_model_len=config.lm.max_model_len,
    )
    if params.stream and len(prompts) > 1:
        raise BadRequest("streaming takes one prompt per request", param="prompt")
    if len(prompts) > config.batching.max_waiting:
        raise BadRequest(
            f"{len(prompts)} prompts in one request; this server queues at most "
            f"{config.batching.max_waiting}",
            param="prompt",
        )
    engine = request.app[SCHEDULERS].generation
    seqs = [_sequence(p, params) for p in prompts]
    try:
        for seq in seqs:
            engine.submit(seq)
        head = _ChunkHead(chat=chat, model=model)
        if params.stream:
            return await _stream(request, seqs[0], params, head)
        results = [await _collect(seq, params) for seq in seqs]
        return web.json_response(head.full_response(results, seqs))
    finally:
        for seq in seqs:
            engine.cancel(seq)  # no-op for finished sequences; frees slots of abandoned ones


def _sequence(prompt: list[int], params: GenerationParams) -> Sequence:
    return Sequence(
        prompt_ids=prompt,
        max_tokens=params.max_tokens,
        min_tokens=params.min_tokens,
        ignore_eos=params.ignore_eos,
        temperature=params.temperature,
        top_p=params.top_p,
        seed=params.seed,
    )


async def _collect(seq: Sequence, params: GenerationParams) -> tuple[str, str]:
    matcher = StopMatcher(params.stop)
    parts: list[str] = []
    while True:
        item = await seq.out.get()
        if isinstance(item, Finish):
            _raise_for(item)
            return "".join(parts) + matcher.flush(), item.reason
        text, stopped = matcher.push(tokenizer.decode_token(item))
        parts.append(text)
        if stopped:
            seq.cancelled = True  # usage counts the tokens up to the stop string, no more
            return "".join(parts), "stop"


def _raise_for(finish: Finish) -> None:
    if finish.reason == "error":
        raise finish.error or Unavailable("generation was aborted")


class _ChunkHead:
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
            "usage": _usage(seqs),
        }


def _usage(seqs: list[Sequence]) -> dict[str, int]:
    prompt = sum(len(s.prompt_ids) for s in seqs)
    completion = sum(s.generated for s in seqs)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


async def _stream(
    request: web.Request, seq: Sequence, params: GenerationParams, head: _ChunkHead
) -> web.StreamResponse:
    first = await seq.out.get()  # errors before the first token still get a proper status
    if isinstance(first, Finish) and first.reason == "error":
        _raise_for(first)
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    try:
        await _write_stream(request, response, seq, first, params, head)
    except ConnectionResetError:
        request[STREAM_REASON] = "client_disconnected"  # the finally in _generate frees the slot
    return response


async def _write_stream(
    request: web.Request,
    response: web.StreamResponse,
    seq: Sequence,
    first: int | Finish,
    params: GenerationParams,
    head: _ChunkHead,
) -> None:
    if head.chat:
        await response.write(head.role_chunk())
    matcher = StopMatcher(params.stop)
    item: int | Finish = first
    while True:
        if isinstance(item, Finish):
            await _write_finish(request, response, head, matcher, item)
            break
        text, stopped = matcher.push(tokenizer.decode_token(item))
        if text:
            await response.write(head.text_chunk(text))
        if stopped:
            seq.cancelled = True  # usage counts the tokens up to the stop string, no more
            await response.write(head.final_chunk("stop"))
            break
        item = await seq.out.get()
    if params.include_usage:
        await response.write(head.usage_chunk(_usage([seq])))
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()


async def _write_finish(
    request: web.Request,
    response: web.StreamResponse,
    head: _ChunkHead,
    matcher: StopMatcher,
    finish: Finish,
) -> None:
    """The text held back by the stop matcher, then the final chunk or an error event."""
    tail = matcher.flush()
    if tail:
        await response.write(head.text_chunk(tail))
    if finish.reason != "error":
        await response.write(head.final_chunk(finish.reason))
        return
    error = finish.error or Unavailable("generation was aborted")
    request[STREAM_REASON] = error.reason
    await response.write(
        sse_event(
            {"error": {"message": error.message, "type": error.error_type, "code": error.status}}
        )
    )


def _embedding_request(
    body: dict[str, Any], config: ServerConfig
) -> tuple[str, list[list[int]], str]:
    """The model, the tokenized inputs and the encoding format of an embeddings request."""
    model = _check_model(body, config.embedder.name)
    inputs = _embedding_inputs(body.get("input"), config.embedder.max_input_len)
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise BadRequest("'encoding_format' must be 'float' or 'base64'", param="encoding_format")
    dims = body.get("dimensions")
    if dims is not None and dims != config.embedder.dim:
        raise BadRequest(
            f"'dimensions' must be {config.embedder.dim} for {model}", param="dimensions"
        )
    if len(inputs) > config.batching.max_queue_size:
        raise BadRequest(
            f"{len(inputs)} inputs in one request; this server queues at most "
            f"{config.batching.max_queue_size}",
            param="input",
        )
    return model, inputs, fmt


async def embeddings(request: web.Request) -> web.Response:
    body = await read_json(request)
    config = request.app[CONFIG]
    model, inputs, fmt = _embedding_request(body, config)
    batcher = request.app[SCHEDULERS].embeddings
    timeout = config.batching.request_timeout_s
    try:
        vectors = await asyncio.wait_for(
            asyncio.gather(*(batcher.submit(ids) for ids in inputs)), timeout
        )
    except TimeoutError:
        raise RequestTimeout(f"no answer in {timeout:g}s") from None
    data = [
        {"object": "embedding", "index": i, "embedding": _encode_vector(v, fmt)}
        for i, v in enumerate(vectors)
    ]
    tokens = sum(len(ids) for ids in inputs)
    return web.json_response(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def _encode_vector(vector: np.ndarray, fmt: str) -> list[float] | str:
    if fmt == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]


def _embedding_inputs(value: Any, max_len: int) -> list[list[int]]:
    if isinstance(value, str):
        items: list[list[int]] = [tokenizer.encode(value)]
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        items = [tokenizer.encode(v) for v in value]
    elif (
        isinstance(value, list)
        and value
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 256 for v in value)
    ):
        items = [[tokenizer.BOS, *value]]
    elif isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        items = [[tokenizer.BOS, *_byte_ids(v)] for v in value]
    else:
        raise BadRequest("'input' must be a string, a list of strings, or token ids", param="input")
    longest = max(len(i) for i in items)
    if longest > max_len:
        raise BadRequest(
            f"an input is {longest} tokens; the embedding model takes at most {max_len}",
            param="input",
        )
    return items


def _byte_ids(ids: list[Any]) -> list[int]:
    if not ids or not all(
        isinstance(t, int) and not isinstance(t, bool) and 0 <= t < 256 for t in ids
    ):
        raise BadRequest("token ids must be integers in [0, 255] (byte tokens)", param="input")
    return ids
