"""A tiny target for the TLS and API-key tests: an ``http.server`` on 127.0.0.1 that answers
``/v1/models`` and non-streamed chat completions and keeps each POST's Authorization header;
over TLS with certificates made by the ``openssl`` command line (a CA, and server
certificates signed by it for the names a test picks).

    certs = make_certificates(tmp_path)  # certs.ca, certs.cert_for("127.0.0.1")
    with SmallTarget(certs.cert_for("other.example")) as server:
        run_locust("chat", "--host", server.url, "--no-stream", ...)

``SmallTarget(echo_key=True)`` answers every chat request HTTP 401 with an error message
that quotes the Authorization header it got (as some servers do).
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

MODEL = "tls-model"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class Certificates:
    folder: Path
    ca: Path

    def cert_for(self, name: str) -> tuple[Path, Path]:
        """A (certificate, key) pair signed by the CA whose only name is ``name`` (an IP
        address or a DNS name)."""
        stem = name.replace(".", "_")
        key, csr, cert = (self.folder / f"{stem}.{ext}" for ext in ("key", "csr", "pem"))
        kind = "IP" if name.replace(".", "").isdigit() else "DNS"
        ext = self.folder / f"{stem}.ext"
        ext.write_text(f"subjectAltName={kind}:{name}\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
                 "-subj", f"/CN={name}", cwd=self.folder)  # fmt: skip
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(self.ca), "-CAkey",
                 str(self.folder / "ca.key"), "-CAcreateserial", "-out", str(cert), "-days", "2",
                 "-extfile", str(ext), cwd=self.folder)  # fmt: skip
        return cert, key


def make_certificates(folder: Path) -> Certificates:
    """A fresh CA in ``folder`` (skips the test when there is no ``openssl`` command)."""
    if shutil.which("openssl") is None:
        pytest.skip("the TLS tests make their certificates with the openssl command line")
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.pem", "-days", "2", "-subj", "/CN=slabench test CA", cwd=folder)  # fmt: skip
    return Certificates(folder, folder / "ca.pem")


class JsonHandler(BaseHTTPRequestHandler):
    """Answers in JSON over keep-alive HTTP/1.1, quietly: the base of the tiny targets."""

    protocol_version = "HTTP/1.1"

    def answer_chat(self) -> None:
        """A non-streamed chat completion with its usage."""
        usage = {"prompt_tokens": 4, "completion_tokens": 2}
        self._answer(200, {"choices": [{"message": {"content": "ok"}}], "usage": usage})

    def _answer(self, status: int, doc: dict[str, Any]) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class _Handler(JsonHandler):
    def do_GET(self) -> None:
        self._answer(200 if self.path == "/v1/models" else 404, {"data": [{"id": MODEL}]})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server: Any = self.server
        authorization = self.headers.get("Authorization")
        server.authorizations.append(authorization)
        if server.echo_key:
            self._answer(401, {"error": {"message": f"invalid header {authorization!r}"}})
            return
        self.answer_chat()


class SmallTarget:
    """A server on 127.0.0.1 (a free port), HTTPS presenting ``cert`` if given; it keeps the
    Authorization header of every POST in ``authorizations``."""

    def __init__(self, cert: tuple[Path, Path] | None = None, *, echo_key: bool = False) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        scheme = "http"
        if cert is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*cert)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            scheme = "https"
        self.authorizations: list[str | None] = []
        self._server.authorizations = self.authorizations  # type: ignore[attr-defined]
        self._server.echo_key = echo_key  # type: ignore[attr-defined]
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> SmallTarget:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
