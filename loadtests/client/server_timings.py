"""What a server says of its own time for one request, in the conventions servers use.

Four conventions, read into one ``ServerTimes`` (milliseconds; NaN where the server said
nothing, never 0) and named in ``requests.parquet``'s ``server_timing_source``:

- ``"timings"``: the bundled reference server's ``timings`` object, in the final chunk of a
  stream (the usage chunk when ``include_usage``): ``queue_ms``, ``prefill_ms``,
  ``decode_ms``, ``total_ms`` (``compute_ms`` of embeddings and KServe is not split: it is
  the server's "other" time, ``total - queue - prefill - decode``).
- ``"llama.cpp"``: llama.cpp's ``timings`` object (final chunk, or the body of a
  non-streamed answer): ``prompt_ms`` -> prefill, ``predicted_ms`` -> decode. llama.cpp has
  no queue or total figure, so these stay NaN.
- ``"server-timing"``: a W3C ``Server-Timing`` header (``name;dur=12.5;desc="..."``, several
  metrics per header, several headers). Names mapped (case-insensitive): ``queue``,
  ``queue_time``, ``queue-time`` -> queue; ``prefill``, ``prompt`` -> prefill; ``decode``,
  ``generation`` -> decode; ``total``, ``e2e``, ``app`` -> total. Other names are ignored;
  the first metric of a name wins; a ``dur`` that is not a non-negative number is ignored.
- ``"tgi"``: Hugging Face TGI's headers (whole milliseconds, as its router writes them with
  ``as_millis``), read when ``x-queue-time`` or ``x-inference-time`` is there: ``x-queue-time``
  -> queue, ``x-total-time`` (else ``x-compute-time``, which TGI and TEI set to the same
  total) -> total. ``x-inference-time`` is prefill and decode
  together and TGI does not split it (``x-time-per-token`` is that time over the generated
  tokens), so prefill and decode stay NaN and the inference time is the server's "other".

Headers are read only on answers that are not streamed: a header leaves before the body, so
on a stream it can only describe the time before the first byte. A ``timings`` object in the
body wins over headers (it was written last).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ServerTimes", "from_headers", "from_timings", "parse_server_timing"]

NAN = math.nan

# Entries of a header list (commas) and parameters of an entry (semicolons), quoted strings
# kept whole: a quoted desc may hold either; an unclosed quote runs to the end.
_ENTRIES = re.compile(r'(?:"(?:[^"\\]|\\.)*(?:"|$)|[^,"])+')
_PARAMS = re.compile(r'(?:"(?:[^"\\]|\\.)*(?:"|$)|[^;"])+')
_NAMES = {
    "queue": "queue",
    "queue_time": "queue",
    "queue-time": "queue",
    "prefill": "prefill",
    "prompt": "prefill",
    "decode": "decode",
    "generation": "decode",
    "total": "total",
    "e2e": "total",
    "app": "total",
}
_OURS = ("queue_ms", "prefill_ms", "decode_ms", "total_ms")


@dataclass(frozen=True, slots=True)
class ServerTimes:
    """One request's time inside the server (ms; NaN: not said) and the convention read."""

    source: str
    queue_ms: float = NAN
    prefill_ms: float = NAN
    decode_ms: float = NAN
    total_ms: float = NAN


HeaderGetter = Callable[[str], Any]  # a response's header by lower-case name: str, list or None


def _ms(value: object) -> float:
    """A duration: a non-negative finite number (int, float or numeric string), else NaN."""
    if isinstance(value, bool):
        return NAN
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return NAN
    if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0:
        return float(value)
    return NAN


def from_timings(obj: object) -> ServerTimes | None:
    """A ``timings`` object (ours or llama.cpp's); None when it says nothing of time."""
    if not isinstance(obj, dict):
        return None
    if any(key in obj for key in _OURS):
        times = ServerTimes(
            "timings",
            _ms(obj.get("queue_ms")),
            _ms(obj.get("prefill_ms")),
            _ms(obj.get("decode_ms")),
            _ms(obj.get("total_ms")),
        )
    else:
        times = ServerTimes(
            "llama.cpp",
            prefill_ms=_ms(obj.get("prompt_ms")),
            decode_ms=_ms(obj.get("predicted_ms")),
        )
    return times if _said(times) else None


def _said(times: ServerTimes) -> bool:
    return not all(
        math.isnan(x) for x in (times.queue_ms, times.prefill_ms, times.decode_ms, times.total_ms)
    )


def _values(raw: Any) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, (list, tuple)):
        return [v for v in raw if isinstance(v, str)]
    return [raw] if isinstance(raw, str) else []


def parse_server_timing(raw: Any) -> dict[str, float]:
    """Every metric with a valid ``dur`` in ``Server-Timing`` header value(s): name
    (lower case) -> ms. The first metric of a name wins; malformed entries are skipped."""
    out: dict[str, float] = {}
    for value in _values(raw):
        for entry in _ENTRIES.findall(value):
            params = _PARAMS.findall(entry)
            name = params[0].strip().lower() if params else ""
            if not name or "=" in name or name in out:
                continue
            for param in params[1:]:
                key, sep, val = param.partition("=")
                if sep and key.strip().lower() == "dur":
                    dur = _ms(val.strip().strip('"'))
                    if not math.isnan(dur):
                        out[name] = dur
                    break  # the first dur counts, valid or not
    return out


def from_headers(get: HeaderGetter) -> ServerTimes | None:
    """A non-streamed answer's timings from its headers (``Server-Timing`` first, else
    TGI's); None when neither says anything of time."""
    raw = get("server-timing")
    if raw is not None:
        parsed: dict[str, float] = {}
        for name, ms in parse_server_timing(raw).items():
            mapped = _NAMES.get(name)
            if mapped is not None and mapped not in parsed:
                parsed[mapped] = ms
        times = ServerTimes(
            "server-timing",
            parsed.get("queue", NAN),
            parsed.get("prefill", NAN),
            parsed.get("decode", NAN),
            parsed.get("total", NAN),
        )
        if _said(times):
            return times
    queue = _first(get("x-queue-time"))
    if math.isnan(queue) and get("x-inference-time") is None:
        return None  # not TGI: an x-compute-time alone may be in seconds (older HF APIs)
    total = _first(get("x-total-time"))
    if math.isnan(total):
        total = _first(get("x-compute-time"))
    if math.isnan(queue) and math.isnan(total):
        return None
    return ServerTimes("tgi", queue_ms=queue, total_ms=total)


def _first(raw: Any) -> float:
    values = _values(raw)
    return _ms(values[0]) if values else NAN
