"""What a failed connection amounts to: its class (``sla.files.error_class``) and one line.

Pure (no gevent), so that the mapping can be tested on plain exceptions. The transport
raises ``ConnectTimeout`` for a connect that timed out and ``MalformedResponse`` for bytes
that are not HTTP, so that neither is mistaken for silence or a reset.
"""

from __future__ import annotations

import errno
import socket
import ssl

from sla.files import error_class as ec

__all__ = ["ConnectTimeout", "MalformedResponse", "connection_failure", "tls_rejection"]

_UNREACHABLE_ERRNOS = frozenset(
    {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN, errno.EADDRNOTAVAIL}
)
_RESET_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})
CLOSED_MID_BODY = "connection closed before the body was complete"


class ConnectTimeout(TimeoutError):
    """No connection within the connect timeout (the host drops packets, or is gone)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"no connection within {timeout_s:g}s (connect timeout)")


class MalformedResponse(ConnectionError):
    """The target sent bytes that are not an HTTP response (or broke its framing)."""


def connection_failure(exc: OSError, *, answered: bool) -> tuple[str, str]:
    """The class and the one-line message of a failed connection. ``answered``: the
    response headers had arrived (a failure then is in the body)."""
    if isinstance(exc, ConnectTimeout):
        return ec.UNREACHABLE, f"unreachable: {exc}"
    if isinstance(exc, ConnectionRefusedError):
        return ec.REFUSED, "connection refused: is the target up?"
    if isinstance(exc, socket.gaierror):
        return ec.UNREACHABLE, f"cannot resolve host: {exc.strerror or exc}"
    if exc.errno in _UNREACHABLE_ERRNOS:
        return ec.UNREACHABLE, f"unreachable: {exc.strerror or exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ec.TLS, tls_rejection(exc)
    if isinstance(exc, ssl.SSLError):
        return ec.TLS, f"TLS error: {_text(exc)}"
    if isinstance(exc, MalformedResponse):
        return ec.MALFORMED_BODY, f"malformed HTTP response: {_text(exc)}"
    if isinstance(exc, socket.timeout | TimeoutError):
        # The connection's own timeout while waiting for the answer's headers (the idle
        # timeout covers the body): the target accepted the request and went silent.
        return ec.IDLE_TIMEOUT, "timeout: no data before the answer's headers (network timeout)"
    if answered:
        text = _text(exc)
        detail = "" if text == CLOSED_MID_BODY else f" ({text})"
        return ec.CLOSED_MID_BODY, CLOSED_MID_BODY + detail
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError) or (
        exc.errno in _RESET_ERRNOS
    ):
        return ec.RESET, f"connection reset before the answer: {_text(exc)}"
    return ec.CONNECTION, f"connection error: {_text(exc)}"


def tls_rejection(exc: ssl.SSLCertVerificationError) -> str:
    """One line for a target whose certificate failed the check (no host or CA detail lost)."""
    reason = " ".join(str(exc.verify_message or exc.reason or exc).split())[:200]
    return (
        f"TLS certificate rejected: {reason} (trust its CA with --ca-bundle; "
        "--insecure skips the check)"
    )


def _text(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__
