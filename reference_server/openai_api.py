"""OpenAI-compatible endpoints: /v1/completions, /v1/chat/completions, /v1/models (and the
route of /v1/embeddings, served by ``openai_embeddings``). Streaming follows OpenAI's SSE
format: ``data: {chunk}`` events, a final ``usage`` chunk when
``stream_options.include_usage`` is set, then ``data: [DONE]``; the JSON of chunks and
responses is ``openai_responses``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from reference_server import tokenizer
from reference_server.errors import BadRequest, NotFound, Unavailable
from reference_server.generation import Finish, Sequence
from reference_server.middleware import STREAM_REASON
from reference_server.openai_embeddings import embeddings
from reference_server.openai_requests import (
    GenerationParams,
    chat_prompt_ids,
    check_model,
    completion_prompt_ids,
    generation_params,
    read_json,
)
from reference_server.openai_responses import Answer, ChunkHead, usage
from reference_server.state import CONFIG, SCHEDULERS
from reference_server.streaming import StopMatcher, sse_event
from reference_server.timings import HEADER, ServerTimings, generation_timings, request_clock

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", get_model)


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
    prompt = chat_prompt_ids(body, max_model_len=request.app[CONFIG].lm.max_model_len)
    return await _generate(request, body, (prompt,), chat=True)


async def completions(request: web.Request) -> web.StreamResponse:
    body = await read_json(request)
    config = request.app[CONFIG]
    prompts = completion_prompt_ids(
        body, max_prompts=config.batching.max_waiting, max_model_len=config.lm.max_model_len
    )
    return await _generate(request, body, prompts, chat=False)


async def _generate(
    request: web.Request, body: dict[str, Any], prompts: tuple[list[int], ...], *, chat: bool
) -> web.StreamResponse:
    config = request.app[CONFIG]
    model = check_model(body, config.lm.name)
    params = generation_params(
        body,
        prompts,
        default_max_tokens=None if chat else 16,  # OpenAI's default for legacy completions
        max_tokens_limit=config.batching.max_tokens_limit,
        max_model_len=config.lm.max_model_len,
        default_reasoning_tokens=config.reasoning.tokens if chat else None,
    )
    if params.stream and len(prompts) > 1:
        raise BadRequest("streaming takes one prompt per request", param="prompt")
    engine = request.app[SCHEDULERS].generation
    seqs = [_sequence(p, params) for p in prompts]
    try:
        for seq in seqs:
            engine.submit(seq)
        head = ChunkHead(chat=chat, model=model, reasoning_field=config.reasoning.field)
        if params.stream:
            return await _stream(request, seqs[0], params, head)
        results = [await _collect(seq, params) for seq in seqs]
        response = web.json_response(head.full_response(results, seqs))
        response.headers[HEADER] = _timings(request, seqs).header()
        return response
    finally:
        for seq in seqs:
            engine.cancel(seq)  # no-op for finished sequences; frees slots of abandoned ones


def _timings(request: web.Request, seqs: list[Sequence]) -> ServerTimings:
    return generation_timings(
        request_clock(),
        [s.stamps for s in seqs],
        prompt_tokens=sum(len(s.prompt_ids) for s in seqs),
        cached_tokens=sum(s.cached_tokens for s in seqs),
        generated_tokens=sum(s.generated for s in seqs),
    )


def _sequence(prompt: list[int], params: GenerationParams) -> Sequence:
    return Sequence(
        prompt_ids=prompt,
        max_tokens=params.max_tokens,
        min_tokens=params.min_tokens,
        ignore_eos=params.ignore_eos,
        temperature=params.temperature,
        top_p=params.top_p,
        seed=params.seed,
        reasoning_tokens=params.reasoning_tokens,
    )


async def _collect(seq: Sequence, params: GenerationParams) -> Answer:
    matcher = StopMatcher(params.stop)
    reasoning: list[str] = []
    parts: list[str] = []
    while True:
        item = await seq.out.get()
        if isinstance(item, Finish):
            _raise_for(item)
            return Answer("".join(reasoning), "".join(parts) + matcher.flush(), item.reason)
        if len(reasoning) < seq.reasoning_tokens:  # stop strings apply to the answer only
            reasoning.append(tokenizer.decode_token(item))
            continue
        text, stopped = matcher.push(tokenizer.decode_token(item))
        parts.append(text)
        if stopped:
            seq.stopped = True  # usage counts the tokens up to the stop string, no more
            return Answer("".join(reasoning), "".join(parts), "stop")


def _raise_for(finish: Finish) -> None:
    if finish.reason == "error":
        raise finish.error or Unavailable("generation was aborted")


async def _stream(
    request: web.Request, seq: Sequence, params: GenerationParams, head: ChunkHead
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
    head: ChunkHead,
) -> None:
    if head.chat:
        await response.write(head.role_chunk())
    matcher = StopMatcher(params.stop)
    item: int | Finish = first
    reasoning = 0  # reasoning tokens sent so far

    def timings() -> dict[str, Any]:  # built when its chunk is: total runs to that moment
        return _timings(request, [seq]).as_json()

    final_timings = None if params.include_usage else timings  # else in the usage chunk
    while True:
        if isinstance(item, Finish):
            await _write_finish(request, response, head, matcher, item, final_timings)
            break
        if reasoning < seq.reasoning_tokens:  # stop strings apply to the answer only
            reasoning += 1
            await response.write(head.reasoning_chunk(tokenizer.decode_token(item)))
            item = await seq.out.get()
            continue
        text, stopped = matcher.push(tokenizer.decode_token(item))
        if text:
            await response.write(head.text_chunk(text))
        if stopped:
            seq.stopped = True  # usage counts the tokens up to the stop string, no more
            await response.write(head.final_chunk("stop", final_timings and final_timings()))
            break
        item = await seq.out.get()
    if params.include_usage:
        await response.write(head.usage_chunk(usage([seq]), timings()))
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()


async def _write_finish(
    request: web.Request,
    response: web.StreamResponse,
    head: ChunkHead,
    matcher: StopMatcher,
    finish: Finish,
    timings: Callable[[], dict[str, Any]] | None,
) -> None:
    """The text held back by the stop matcher, then the final chunk (with the server's
    ``timings`` when given) or an error event."""
    tail = matcher.flush()
    if tail:
        await response.write(head.text_chunk(tail))
    if finish.reason != "error":
        await response.write(head.final_chunk(finish.reason, timings and timings()))
        return
    error = finish.error or Unavailable("generation was aborted")
    request[STREAM_REASON] = error.reason
    await response.write(
        sse_event(
            {"error": {"message": error.message, "type": error.error_type, "code": error.status}}
        )
    )
