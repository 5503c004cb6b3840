"""Why a request failed, as one word: the ``error_class`` column of ``requests.parquet``.

The raw ``error`` text of a request says exactly what happened, but it is not a good key to
count by: a server's error text often embeds a number or the event it choked on ("try
again in 0.03s", a malformed event's JSON), so one cause becomes hundreds of reasons. The
class is a closed vocabulary, set by the load generator where the failure happens; the
terminal summary, ``verdict.json`` and the report group failures by it, and keep one raw
message per class as its example.

A successful request (2xx and no ``error``) has no class (null). Runs written before the
column existed have their classes derived from ``status`` and ``error`` when they are read
(``derive_error_class``), and so are rows a writer left without one.

Every ``error`` text is one line of at most ``MAX_ERROR_CHARS`` characters (``bound_error``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "CANCELLED",
    "CLIENT_ERROR",
    "CLOSED_MID_BODY",
    "CONNECTION",
    "DROPPED",
    "ERROR_CLASSES",
    "HTTP_4XX",
    "HTTP_5XX",
    "HTTP_429",
    "HTTP_OTHER",
    "IDLE_TIMEOUT",
    "MALFORMED_BODY",
    "MALFORMED_SSE",
    "MAX_ERROR_CHARS",
    "REFUSED",
    "RESET",
    "SERVER_ERROR_EVENT",
    "STREAM_INCOMPLETE",
    "TLS",
    "TOTAL_TIMEOUT",
    "UNREACHABLE",
    "bound_error",
    "derive_error_class",
    "fill_error_classes",
    "http_error_class",
]

HTTP_429 = "http_429"
HTTP_4XX = "http_4xx"
HTTP_5XX = "http_5xx"
HTTP_OTHER = "http_other"
REFUSED = "refused"
UNREACHABLE = "unreachable"
RESET = "reset"
TLS = "tls"
CONNECTION = "connection"
CLOSED_MID_BODY = "closed_mid_body"
IDLE_TIMEOUT = "idle_timeout"
TOTAL_TIMEOUT = "total_timeout"
MALFORMED_SSE = "malformed_sse"
MALFORMED_BODY = "malformed_body"
STREAM_INCOMPLETE = "stream_incomplete"
SERVER_ERROR_EVENT = "server_error_event"
DROPPED = "dropped"
CANCELLED = "cancelled"
CLIENT_ERROR = "client_error"

# The vocabulary, in the order the docs list it (docs/run-directory.md keeps the same table).
ERROR_CLASSES: dict[str, str] = {
    HTTP_429: "answered 429 Too Many Requests (rate limited)",
    HTTP_4XX: "answered another 4xx status (bad request, auth, not found...)",
    HTTP_5XX: "answered a 5xx status (server error, 503 unavailable...)",
    HTTP_OTHER: "answered a status that is neither 2xx, 4xx nor 5xx (a redirect...)",
    REFUSED: "the connection was refused: nothing listens there (the target is down)",
    UNREACHABLE: "no connection: the host does not resolve, has no route, or the connect timed out",
    RESET: "the connection was reset or closed before any answer came",
    TLS: "the TLS handshake failed (certificate rejected, protocol error)",
    CONNECTION: "another connection error before any answer",
    CLOSED_MID_BODY: "the connection closed after the headers, before the body was complete",
    IDLE_TIMEOUT: "the target went silent: no data for --idle-timeout (or no answer headers)",
    TOTAL_TIMEOUT: "the answer took longer than --request-timeout",
    MALFORMED_SSE: "a stream event that is not the JSON chunk the protocol says",
    MALFORMED_BODY: "an answer that is not valid HTTP, or not the JSON the protocol needs",
    STREAM_INCOMPLETE: "the stream ended cleanly but without [DONE]",
    SERVER_ERROR_EVENT: "the server reported an error inside the stream",
    DROPPED: "open loop: never sent, --max-inflight requests were in flight",
    CANCELLED: "cut off by the end of the test (not a failure of the target)",
    CLIENT_ERROR: "an unexpected error inside the load generator",
}

MAX_ERROR_CHARS = 300
_ELLIPSIS = "..."

# How the messages of this and earlier releases begin, for runs written without a class.
_PREFIXES: tuple[tuple[str, str], ...] = (
    ("cancelled:", CANCELLED),
    ("dropped:", DROPPED),
    ("connection refused", REFUSED),
    ("cannot resolve host", UNREACHABLE),
    ("unreachable:", UNREACHABLE),
    ("connection reset", RESET),
    ("HTTPConnectionClosed", RESET),
    ("connection closed before the body was complete", CLOSED_MID_BODY),
    ("connection error: connection closed before the body was complete", CLOSED_MID_BODY),
    ("malformed HTTP response", MALFORMED_BODY),
    ("connection error: malformed HTTP response", MALFORMED_BODY),
    ("HTTPParseError", MALFORMED_BODY),
    ("timeout: no data", IDLE_TIMEOUT),
    # Earlier releases could not tell a connect timeout from silence before the headers.
    ("timeout: connect or network timeout", IDLE_TIMEOUT),
    ("timeout: no complete answer", TOTAL_TIMEOUT),
    ("TLS ", TLS),
    ("malformed SSE event", MALFORMED_SSE),
    ("stream error:", SERVER_ERROR_EVENT),
    ("stream ended before [DONE]", STREAM_INCOMPLETE),
    ("malformed JSON body", MALFORMED_BODY),
    ("response is not a JSON object", MALFORMED_BODY),
    ("no embeddings in answer", MALFORMED_BODY),
    ("no outputs in answer", MALFORMED_BODY),
)
_RESET_WORDS = ("Connection reset", "Broken pipe", "Connection aborted")


def bound_error(text: str) -> str:
    """``text`` on one line (runs of whitespace become one space), at most
    ``MAX_ERROR_CHARS`` characters (a longer one ends in "...")."""
    line = " ".join(text.split())
    if len(line) <= MAX_ERROR_CHARS:
        return line
    return line[: MAX_ERROR_CHARS - len(_ELLIPSIS)] + _ELLIPSIS


def http_error_class(status: int) -> str:
    """The class of an answer with a status that is not 2xx."""
    if status == 429:
        return HTTP_429
    if 400 <= status < 500:
        return HTTP_4XX
    if 500 <= status < 600:
        return HTTP_5XX
    return HTTP_OTHER


def derive_error_class(status: int, error: str | None) -> str | None:
    """The class of a row from its status and error text (None: it succeeded). Used for
    rows written without a class; the load generator's own messages map to the class it
    sets, and a message nobody wrote is a ``client_error``."""
    answered = status != 0 and not 200 <= status < 300
    if not error:
        return http_error_class(status) if answered else None
    for prefix, error_class in _PREFIXES[:2]:  # cancelled and dropped whatever the status
        if error.startswith(prefix):
            return error_class
    if answered:
        return http_error_class(status)
    for prefix, error_class in _PREFIXES[2:]:
        if error.startswith(prefix):
            return error_class
    if error.startswith("connection error:"):
        return RESET if any(w in error for w in _RESET_WORDS) else CONNECTION
    return CLIENT_ERROR


def fill_error_classes(requests: pd.DataFrame) -> pd.Series:
    """The class of every row of a requests frame: its ``error_class`` where it names one
    (the column may be absent), else derived from its ``status`` and ``error``; None for a
    row that succeeded. Only the failed rows without a class are looked at, each distinct
    (status, error) pair once."""
    if "error_class" in requests.columns:
        out = requests["error_class"].astype(object).where(requests["error_class"].notna(), None)
    else:
        out = pd.Series([None] * len(requests), index=requests.index, dtype=object)
    codes = pd.to_numeric(requests["status"]).to_numpy(dtype=np.float64, na_value=0.0)
    errors = requests["error"].astype(object)
    has_error = errors.notna().to_numpy(dtype=bool)
    failed = has_error | ~((codes >= 200) & (codes < 300))
    todo = np.flatnonzero(failed & out.isna().to_numpy(dtype=bool))
    if not len(todo):
        return out
    texts = [text if isinstance(text, str) else None for text in errors.iloc[todo].tolist()]
    keys = list(zip(codes[todo].astype(np.int64).tolist(), texts, strict=True))
    derived = {key: derive_error_class(*key) for key in set(keys)}
    out = out.copy()
    out.iloc[todo] = [derived[key] for key in keys]
    return out
