"""How an https target's certificate is checked (``--insecure``, ``--ca-bundle``).

Plain data, free of gevent, so that the option parser can build it without importing the
client; ``loadtests.client.transport.tls_client_options`` turns it into geventhttpclient's
arguments."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tls:
    """By default a certificate must chain to a trusted CA (the system's, or only those of
    ``ca_bundle``) and name the host of --host; ``verify=False`` (--insecure) checks nothing."""

    verify: bool = True
    ca_bundle: str = ""
