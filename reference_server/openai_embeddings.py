"""The OpenAI-compatible ``/v1/embeddings`` route: its inputs (text, token ids, or lists of
either) checked and tokenized, batched through the embeddings scheduler, and each vector
returned as floats or base64 (little-endian float32), OpenAI's two encodings."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import numpy as np
from aiohttp import web

from reference_server import tokenizer
from reference_server.config import ServerConfig
from reference_server.errors import BadRequest, RequestTimeout
from reference_server.openai_requests import check_model, read_json
from reference_server.state import CONFIG, SCHEDULERS
from reference_server.timings import HEADER, BatchStamp, batch_timings, request_clock


async def embeddings(request: web.Request) -> web.Response:
    body = await read_json(request)
    config = request.app[CONFIG]
    model, inputs, fmt = _embedding_request(body, config)
    batcher = request.app[SCHEDULERS].embeddings
    timeout = config.batching.request_timeout_s
    stamps = [BatchStamp() for _ in inputs]
    try:
        vectors = await asyncio.wait_for(
            asyncio.gather(
                *(batcher.submit(ids, stamp=s) for ids, s in zip(inputs, stamps, strict=True))
            ),
            timeout,
        )
    except TimeoutError:
        raise RequestTimeout(f"no answer in {timeout:g}s") from None
    data = [
        {"object": "embedding", "index": i, "embedding": _encode_vector(v, fmt)}
        for i, v in enumerate(vectors)
    ]
    tokens = sum(len(ids) for ids in inputs)
    response = web.json_response(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )
    response.headers[HEADER] = batch_timings(request_clock(), stamps).header()
    return response


def _embedding_request(
    body: dict[str, Any], config: ServerConfig
) -> tuple[str, list[list[int]], str]:
    """The model, the tokenized inputs and the encoding format of an embeddings request."""
    model = check_model(body, config.embedder.name)
    raw: Any = body.get("input")
    count = len(raw) if isinstance(raw, list) and raw and isinstance(raw[0], str | list) else 1
    if count > config.batching.max_queue_size:  # before encoding
        raise BadRequest(
            f"{count} inputs in one request; this server queues at most "
            f"{config.batching.max_queue_size}",
            param="input",
        )
    inputs = _embedding_inputs(raw, config.embedder.max_input_len)
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise BadRequest("'encoding_format' must be 'float' or 'base64'", param="encoding_format")
    dims = body.get("dimensions")
    if dims is not None and dims != config.embedder.dim:
        raise BadRequest(
            f"'dimensions' must be {config.embedder.dim} for {model}", param="dimensions"
        )
    return model, inputs, fmt


def _encode_vector(vector: np.ndarray, fmt: str) -> list[float] | str:
    if fmt == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]


def _embedding_inputs(value: Any, max_len: int) -> list[list[int]]:
    texts = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    chars = max((len(t) for t in texts if isinstance(t, str)), default=0)
    if chars >= max_len:  # at least one token per character: no need to encode to know
        raise BadRequest(
            f"an input is over {chars} tokens; the embedding model takes at most {max_len}",
            param="input",
        )
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
