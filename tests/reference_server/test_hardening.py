"""Hostile input probed as an attacker would: each case once reached a 500 (issue 12).

One admin-enabled server with small models serves the whole module; each test sends raw
HTTP with ``http.client`` so that bodies and headers go out exactly as written.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from reference_server.cli import ConfigError, config_from_args, parser
from reference_server.faults import parse_latency
from tests.reference_server.helpers import Answer, samples, send
from tests.server_process import SMALL_MODELS, ServerProcess

FEATURES = 16  # --mlp-in-features in SMALL_MODELS
INFER, ADMIN = "/v2/models/slabench-mlp/infer", "/admin/faults"
HEADER_LENGTH = "Inference-Header-Content-Length"
MAX_LATENCY_MS = 3_600_000  # faults.MAX_LATENCY_MS, an hour


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(args=[*SMALL_MODELS, "--enable-admin", "--drain-timeout", "1"]) as s:
        yield s


def post(server: ServerProcess, path: str, body: bytes, **headers: str) -> Answer:
    return send(server.url, "POST", path, body, headers)


def five_hundreds(server: ServerProcess) -> float:
    text = send(server.url, "GET", "/metrics").body.decode()
    return sum(
        s.value
        for s in samples(text, "slabench_requests_total")
        if s.labels["status"].startswith("5")
    )


def tensor(**changes: Any) -> bytes:
    spec = {"name": "INPUT0", "datatype": "FP32", "shape": [1, FEATURES], **changes}
    return json.dumps({"inputs": [spec]}).encode()


def test_kserve_datatype_that_is_a_list_is_a_400(server: ServerProcess) -> None:
    answer = post(server, INFER, tensor(datatype=[], data=[0.5] * FEATURES))
    assert answer.status == 400, answer.body
    assert "datatype" in json.loads(answer.body)["error"]


def test_kserve_binary_data_size_as_a_float_is_a_400(server: ServerProcess) -> None:
    size = FEATURES * 4
    head = tensor(parameters={"binary_data_size": float(size)})
    answer = post(server, INFER, head + b"\0" * size, **{HEADER_LENGTH: str(len(head))})
    assert answer.status == 400, answer.body
    assert "binary_data_size" in json.loads(answer.body)["error"]


@pytest.mark.parametrize(
    "body",
    [b'{"seed": Infinity}', b'{"error_rate": NaN}', b"[" * 100_000 + b"]" * 100_000],
    ids=["seed-infinity", "error-rate-nan", "100k-nested-brackets"],
)
def test_admin_body_that_json_cannot_hold_is_a_400(server: ServerProcess, body: bytes) -> None:
    answer = post(server, ADMIN, body)
    assert answer.status == 400, answer.body
    assert send(server.url, "GET", ADMIN).status == 200


def test_admin_refuses_a_latency_that_would_overflow(server: ServerProcess) -> None:
    answer = post(server, ADMIN, b'{"latency": "lognormal:1,1000"}')
    assert answer.status == 400, answer.body
    assert "SIGMA" in json.loads(answer.body)["error"]["message"]


def test_none_of_the_probes_was_a_500(server: ServerProcess) -> None:
    for body in (tensor(datatype=[]), b'{"seed": Infinity}', b"[" * 100_000):
        post(server, INFER if b"inputs" in body else ADMIN, body)
    assert five_hundreds(server) == 0


def test_latency_samples_stay_finite_and_bounded() -> None:
    rng = random.Random(0)
    for spec in ("lognormal:1,10", f"lognormal:{MAX_LATENCY_MS:g},10", "exp:3600000"):
        sample = parse_latency(spec)
        assert all(0 <= sample(rng) <= MAX_LATENCY_MS / 1000 for _ in range(20_000)), spec
    with pytest.raises(ValueError, match="SIGMA"):
        parse_latency("lognormal:1,1000")


# --- the admin endpoint trusts no web page ---------------------------------------------------

EVIL = "http://evil.example"


def error_rate(server: ServerProcess) -> float:
    rate: float = json.loads(send(server.url, "GET", ADMIN).body)["error_rate"]
    return rate


def test_admin_refuses_a_cross_origin_text_plain_post(server: ServerProcess) -> None:
    # What any web page can send without a CORS preflight.
    answer = post(
        server, ADMIN, b'{"error_rate": 1}', Origin=EVIL, **{"Content-Type": "text/plain"}
    )
    assert answer.status == 403, answer.body
    answer = post(server, ADMIN, b'{"error_rate": 1}', **{"Content-Type": "text/plain"})
    assert answer.status == 415, answer.body
    assert error_rate(server) == 0.0


def test_admin_refuses_a_dns_rebound_host(server: ServerProcess) -> None:
    # A rebinding page reaches 127.0.0.1 but its requests carry its own host name.
    port = server.url.rsplit(":", 1)[1]
    answer = post(server, ADMIN, b'{"error_rate": 1}', Host=f"evil.example:{port}")
    assert answer.status == 403, answer.body
    assert send(server.url, "GET", ADMIN, headers={"Host": "evil.example"}).status == 403
    assert post(server, ADMIN, b"{}", Host=f"localhost:{port}").status == 200
    assert error_rate(server) == 0.0


def test_admin_token_is_required_when_set() -> None:
    token = "s3cret-token"
    with ServerProcess(args=[*SMALL_MODELS, "--enable-admin", "--admin-token", token]) as s:
        assert send(s.url, "GET", ADMIN).status == 401
        wrong = {"Authorization": "Bearer nope"}
        assert post(s, ADMIN, b'{"error_rate": 1}', **wrong).status == 401
        right = {"Authorization": f"Bearer {token}"}
        answer = post(s, ADMIN, b'{"error_rate": 1}', **right)
        assert answer.status == 200, answer.body
        assert json.loads(send(s.url, "GET", ADMIN, headers=right).body)["error_rate"] == 1


def test_admin_off_loopback_needs_a_token() -> None:
    args = parser().parse_args(["--enable-admin", "--host", "0.0.0.0"])
    with pytest.raises(ConfigError, match="--admin-token"):
        config_from_args(args)
    for ok in (["--host", "0.0.0.0", "--admin-token", "t"], ["--host", "::1"], []):
        config_from_args(parser().parse_args(["--enable-admin", *ok]))


# --- bounded work per request ------------------------------------------------------------------

COMPLETIONS, CHAT, EMBEDDINGS = "/v1/completions", "/v1/chat/completions", "/v1/embeddings"


def openai_error(answer: Answer) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(answer.body)["error"]
    return error


@pytest.mark.parametrize(
    ("stop", "says"),
    [(["a"] * 5, "at most 4"), (["a"] * 200_000, "at most 4"), (["x" * 257], "256 characters")],
    ids=["five-stops", "200k-stops", "stop-too-long"],
)
def test_stop_list_is_bounded_like_openai(
    server: ServerProcess, stop: list[str], says: str
) -> None:
    body = {"prompt": "hi", "max_tokens": 4, "stop": stop}
    answer = post(server, COMPLETIONS, json.dumps(body).encode())
    assert answer.status == 400, answer.body[:300]
    assert openai_error(answer)["param"] == "stop" and says in openai_error(answer)["message"]
    ok = {"prompt": "hi", "max_tokens": 4, "stop": ["a", "b", "c", "x" * 256]}
    assert post(server, COMPLETIONS, json.dumps(ok).encode()).status == 200


@pytest.mark.parametrize(
    ("path", "param", "body"),
    [
        (COMPLETIONS, "prompt", {"prompt": ["hi"] * 100_000, "max_tokens": 1}),
        (EMBEDDINGS, "input", {"input": ["hi"] * 100_000}),
        (CHAT, "messages", {"messages": [{"role": "user", "content": ""}] * 100_000}),
    ],
    ids=["100k-prompts", "100k-embedding-inputs", "100k-chat-messages"],
)
def test_counts_are_checked_before_encoding(
    server: ServerProcess, path: str, param: str, body: dict[str, Any]
) -> None:
    answer = post(server, path, json.dumps(body).encode())
    assert answer.status == 400, answer.body[:300]
    error = openai_error(answer)
    assert error["param"] == param and "100000" in error["message"], error


def test_a_single_token_id_prompt_longer_than_the_queue_is_one_prompt(
    server: ServerProcess,
) -> None:
    ids = [104] * 300  # one prompt of 300 byte tokens, more than --max-waiting's 256
    answer = post(server, COMPLETIONS, json.dumps({"prompt": ids, "max_tokens": 1}).encode())
    assert answer.status == 200, answer.body[:300]
    answer = post(server, EMBEDDINGS, json.dumps({"input": ids}).encode())
    assert answer.status == 200, answer.body[:300]
