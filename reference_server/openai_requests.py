"""Validation of OpenAI-compatible request bodies into frozen, typed requests.

The body read as a JSON object (``read_json``), the model it names (``check_model``) and
every rule that can reject a completion or chat request live here (those of an embeddings
request are in ``openai_embeddings``) and raise ``BadRequest``, or ``NotFound`` for a model,
naming the offending parameter, so handlers only deal with valid input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from reference_server import tokenizer
from reference_server.errors import BadRequest, NotFound


async def read_json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def check_model(body: dict[str, Any], served: str) -> str:
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


@dataclass(frozen=True, slots=True)
class GenerationParams:
    prompts: tuple[list[int], ...]  # token ids, BOS included
    max_tokens: int
    min_tokens: int
    ignore_eos: bool
    temperature: float
    top_p: float
    seed: int | None
    stream: bool
    include_usage: bool
    stop: tuple[str, ...]
    reasoning_tokens: int  # the first this many generated tokens are reasoning (chat only)


def _number(body: dict[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"'{key}' must be a number", param=key)
    if not lo <= value <= hi:
        raise BadRequest(f"'{key}' must be between {lo:g} and {hi:g}, got {value}", param=key)
    return float(value)


def _integer(
    body: dict[str, Any], key: str, default: int | None, lo: int, hi: int | None = None
) -> int | None:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"'{key}' must be an integer", param=key)
    if value < lo:
        raise BadRequest(f"'{key}' must be at least {lo}, got {value}", param=key)
    if hi is not None and value > hi:
        raise BadRequest(f"'{key}' must be at most {hi}, got {value}", param=key)
    return value


def _flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest(f"'{key}' must be true or false", param=key)
    return value


def _content(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content parts: [{"type": "text", "text": "..."}]
        texts = [p.get("text") for p in value if isinstance(p, dict) and p.get("type") == "text"]
        if len(texts) == len(value) and all(isinstance(t, str) for t in texts):
            return "".join(texts)  # type: ignore[arg-type]
    raise BadRequest(f"{where}.content must be a string or a list of text parts", param=where)


def _too_long(chars: int, max_model_len: int, param: str) -> BadRequest:
    # A byte tokenizer gives at least one token per character: no need to encode to know.
    return BadRequest(
        f"prompt is over {chars} tokens; this model's context is {max_model_len} tokens",
        param=param,
    )


def chat_prompt_ids(body: dict[str, Any], *, max_model_len: int) -> list[int]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list", param="messages")
    if len(messages) >= max_model_len:  # every turn costs at least one token
        raise _too_long(len(messages), max_model_len, "messages")
    turns, chars = [], 0
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise BadRequest(f"{where} must be an object with a string 'role'", param=where)
        turn = (m["role"], _content(m.get("content", ""), where))
        chars += len(turn[0]) + len(turn[1])
        if chars >= max_model_len:
            raise _too_long(chars, max_model_len, "messages")
        turns.append(turn)
    return tokenizer.encode(tokenizer.chat_prompt(turns))


def completion_prompt_ids(
    body: dict[str, Any], *, max_prompts: int, max_model_len: int
) -> tuple[list[int], ...]:
    """The prompts' token ids; counts and lengths are checked before anything is encoded."""
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        prompt = [prompt]
    elif isinstance(prompt, list) and len(prompt) > max_prompts and _is_many(prompt):
        raise BadRequest(
            f"{len(prompt)} prompts in one request; this server queues at most {max_prompts}",
            param="prompt",
        )
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, str) for p in prompt):
            longest = max(len(p) for p in prompt)
            if longest >= max_model_len:
                raise _too_long(longest, max_model_len, "prompt")
            return tuple(tokenizer.encode(p) for p in prompt)
        if all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            return (_checked_ids(prompt),)
        if all(isinstance(p, list) for p in prompt):
            return tuple(_checked_ids(p) for p in prompt)
    raise BadRequest("'prompt' must be a string, a list of strings, or token ids", param="prompt")


def _is_many(items: list[Any]) -> bool:
    """Whether a list is several inputs (strings, token lists) rather than one list of ids."""
    return bool(items) and isinstance(items[0], str | list)


def _checked_ids(ids: list[Any]) -> list[int]:
    if not ids or not all(
        isinstance(t, int) and not isinstance(t, bool) and 0 <= t < 256 for t in ids
    ):
        raise BadRequest("token ids must be integers in [0, 255] (byte tokens)", param="prompt")
    return [tokenizer.BOS, *ids]


MAX_STOP_SEQUENCES = 4  # as OpenAI: "up to 4 sequences"
MAX_STOP_CHARS = 256  # each; the matcher's work per token grows with it


def _stop(body: dict[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = [stop]
    if isinstance(stop, list) and len(stop) > MAX_STOP_SEQUENCES:
        raise BadRequest(
            f"'stop' holds {len(stop)} sequences; at most {MAX_STOP_SEQUENCES} are allowed",
            param="stop",
        )
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise BadRequest("'stop' must be a string or a list of non-empty strings", param="stop")
    if max(len(s) for s in stop) > MAX_STOP_CHARS if stop else False:
        raise BadRequest(
            f"each 'stop' sequence must be at most {MAX_STOP_CHARS} characters", param="stop"
        )
    return tuple(stop)


def _max_tokens(
    body: dict[str, Any],
    prompts: tuple[list[int], ...],
    *,
    default_max_tokens: int | None,
    max_tokens_limit: int,
    max_model_len: int,
) -> int:
    """The request's token budget: within the server's limit and the room the context leaves."""
    longest = max(len(p) for p in prompts)
    room = max_model_len - longest
    if room < 1:
        raise BadRequest(
            f"prompt is {longest} tokens; this model's context is {max_model_len} tokens",
            param="messages" if "messages" in body else "prompt",
        )
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = _integer(body, key, default_max_tokens, 1)
    if max_tokens is None:
        max_tokens = min(max_tokens_limit, room)
    if max_tokens > max_tokens_limit:
        raise BadRequest(
            f"'{key}' is {max_tokens}; this server allows at most {max_tokens_limit}", param=key
        )
    if max_tokens > room:
        raise BadRequest(
            f"'{key}' is {max_tokens} but only {room} tokens fit after the {longest}-token "
            f"prompt in the {max_model_len}-token context",
            param=key,
        )
    return max_tokens


def _reasoning_tokens(body: dict[str, Any], default: int | None, max_tokens_limit: int) -> int:
    """A reference-server extension: ``reasoning_tokens`` generated before the answer.

    ``default`` is None where reasoning is not served (/v1/completions has no separate
    field for it), and there a request asking for some is refused."""
    asked = _integer(body, "reasoning_tokens", None, 0, max_tokens_limit)
    if default is None:
        if asked:
            raise BadRequest(
                "'reasoning_tokens' is served by /v1/chat/completions only",
                param="reasoning_tokens",
            )
        return 0
    return default if asked is None else asked


def generation_params(
    body: dict[str, Any],
    prompts: tuple[list[int], ...],
    *,
    default_max_tokens: int | None,
    max_tokens_limit: int,
    max_model_len: int,
    default_reasoning_tokens: int | None = None,
) -> GenerationParams:
    max_tokens = _max_tokens(
        body,
        prompts,
        default_max_tokens=default_max_tokens,
        max_tokens_limit=max_tokens_limit,
        max_model_len=max_model_len,
    )
    min_tokens = _integer(body, "min_tokens", 0, 0) or 0
    if min_tokens > max_tokens:
        raise BadRequest("'min_tokens' must not exceed max_tokens", param="min_tokens")
    if _integer(body, "n", 1, 1) != 1:
        raise BadRequest("only n=1 is supported", param="n")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise BadRequest("'stream_options' must be an object", param="stream_options")
    return GenerationParams(
        prompts=prompts,
        max_tokens=max_tokens,
        min_tokens=min_tokens,
        ignore_eos=_flag(body, "ignore_eos"),
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 1e-9, 1.0),
        seed=_integer(body, "seed", None, -(2**63), 2**64 - 1),  # torch's seed range
        stream=_flag(body, "stream"),
        include_usage=bool(options and _flag(options, "include_usage")),
        stop=_stop(body),
        reasoning_tokens=_reasoning_tokens(body, default_reasoning_tokens, max_tokens_limit),
    )
