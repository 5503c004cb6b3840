"""The API key: sent only to the origin it was given for, and never recorded.

The key is given together with ``--host`` (or for the bundled server's URL); that
origin (scheme, host, port) is fixed when the run state is built. Locust's web UI can point
the run at another host afterwards: transports for any other origin carry no
``Authorization`` header, and a warning line says so once per origin. Error texts a server
sends back (which may echo the header) are redacted before they are recorded, so the key
reaches neither ``requests.parquet``, nor the terminal, nor the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

REDACTED = "REDACTED"
# A key cut off by an error text's length bound still leaks its start; a tail of the text
# this long that begins the key is redacted too (shorter ones would match ordinary words).
_MIN_PARTIAL = 8

Origin = tuple[str, str, int]


def origin(url: str) -> Origin | None:
    """(scheme, host, port) of ``url``, default ports filled in; None if it has none."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        return None
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or (443 if scheme == "https" else 80)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """``--api-key`` and the one origin it may be sent to (None: nowhere)."""

    key: str
    origin: Origin | None

    @classmethod
    def for_host(cls, key: str, host: str | None) -> ApiKey:
        return cls(key, origin(host or "") if key else None)

    def headers_for(self, url: str) -> dict[str, str]:
        """The Authorization header for a request to ``url``: only at the key's origin."""
        if self.key and self.origin is not None and origin(url) == self.origin:
            return {"Authorization": f"Bearer {self.key}"}
        return {}

    def withheld_from(self, url: str) -> bool:
        """There is a key, and ``url`` is not where it may go."""
        return bool(self.key) and not self.headers_for(url)

    def redact(self, text: str) -> str:
        """``text`` without the key, nor a tail of it that a length bound cut short."""
        if not self.key:
            return text
        text = text.replace(self.key, REDACTED)
        for n in range(min(len(self.key) - 1, len(text)), _MIN_PARTIAL - 1, -1):
            if text.endswith(self.key[:n]):
                return text[:-n] + REDACTED
        return text
