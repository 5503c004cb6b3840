"""Bad input gets a 4xx with one clear line in the protocol's error shape — never a 500.

Every case is sent once, as raw HTTP, to one dedicated server with small limits; the
answers and the ``/metrics`` text read right after them are shared by the tests below, so
the metric counts are exact whatever order the tests run in.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.reference_server.helpers import Answer, samples, send
from tests.server_process import SMALL_MODELS, ServerProcess

pytestmark = pytest.mark.e2e

MAX_BODY_BYTES, MAX_TOKENS_LIMIT, CONTEXT = 4096, 64, 256
LIMITS = (
    "--max-body-bytes", str(MAX_BODY_BYTES), "--max-tokens-limit", str(MAX_TOKENS_LIMIT),
    "--max-model-len", str(CONTEXT), "--drain-timeout", "1",
)  # fmt: skip
EMBED_MAX_INPUT = 512  # the embedder's fixed input length
FEATURES = 16  # --mlp-in-features in SMALL_MODELS

CHAT, COMPLETIONS, EMBEDDINGS = "/v1/chat/completions", "/v1/completions", "/v1/embeddings"
INFER, INFER_ROUTE = "/v2/models/slabench-mlp/infer", "/v2/models/{name}/infer"
HEADER_LENGTH = "Inference-Header-Content-Length"


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    path: str
    body: Any  # bytes go out as they are; anything else as JSON
    says: str  # a fragment the error message must contain
    status: int = 400
    param: str | None = None  # OpenAI paths only
    code: int | str | None = None  # OpenAI paths only; None: the status
    method: str = "POST"
    headers: tuple[tuple[str, str], ...] = ()
    endpoint: str = ""  # the metrics label; "" = the path
    reason: str = "bad_request"

    @property
    def payload(self) -> bytes:
        return self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode()

    @property
    def label(self) -> str:
        return self.endpoint or self.path


HI = [{"role": "user", "content": "hi"}]
TENSOR = {"name": "INPUT0", "datatype": "FP32", "shape": [1, FEATURES], "data": [0.5] * FEATURES}


def tensor(**changes: Any) -> dict[str, Any]:
    return {"inputs": [{**TENSOR, **changes}]}


def binary_request(declared_bytes: int, sent_bytes: int) -> bytes:
    params = {"binary_data_size": declared_bytes}
    head = json.dumps({"inputs": [{**tensor(data=None)["inputs"][0], "parameters": params}]})
    return head.encode() + b"\0" * sent_bytes


BINARY_SHORT = binary_request(FEATURES * 4, 10)
BINARY_HEAD = str(BINARY_SHORT.index(b"\0"))

CASES = (
    # --- malformed bodies
    Case("malformed-json", CHAT, b'{"messages": [', "not valid JSON"),
    Case("empty-body", COMPLETIONS, b"", "not valid JSON"),
    Case("invalid-utf8", CHAT, b"\xff\xfe{", "not valid JSON"),
    Case("body-is-a-list", CHAT, [{"messages": HI}], "JSON object"),
    # --- wrong types and values
    Case("messages-not-a-list", CHAT, {"messages": "hi"}, "'messages'", param="messages"),
    Case("messages-empty", CHAT, {"messages": []}, "non-empty", param="messages"),
    Case("message-without-role", CHAT, {"messages": [{"content": "hi"}]}, "role",
         param="messages[0]"),
    Case("temperature-hot", CHAT, {"messages": HI, "temperature": "hot"}, "'temperature'",
         param="temperature"),
    Case("temperature-too-high", CHAT, {"messages": HI, "temperature": 5}, "between",
         param="temperature"),
    Case("max-tokens-fraction", COMPLETIONS, {"prompt": "hi", "max_tokens": 1.5}, "integer",
         param="max_tokens"),
    Case("max-tokens-zero", COMPLETIONS, {"prompt": "hi", "max_tokens": 0}, "at least 1",
         param="max_tokens"),
    Case("stream-yes", CHAT, {"messages": HI, "stream": "yes"}, "true or false", param="stream"),
    Case("stop-a-number", COMPLETIONS, {"prompt": "hi", "stop": 5}, "'stop'", param="stop"),
    Case("prompt-an-object", COMPLETIONS, {"prompt": {"text": "hi"}}, "'prompt'",
         param="prompt"),
    Case("stream-options-a-string", CHAT, {"messages": HI, "stream_options": "usage"},
         "'stream_options'", param="stream_options"),
    # --- limits
    Case("max-tokens-above-limit", COMPLETIONS,
         {"prompt": "hi", "max_tokens": MAX_TOKENS_LIMIT + 1}, f"at most {MAX_TOKENS_LIMIT}",
         param="max_tokens"),
    Case("prompt-plus-max-tokens-beyond-context", COMPLETIONS,
         {"prompt": "x" * 200, "max_tokens": 60}, f"{CONTEXT}-token context", param="max_tokens"),
    Case("prompt-beyond-context", COMPLETIONS, {"prompt": "x" * 300, "max_tokens": 1},
         "context", param="prompt"),
    Case("chat-beyond-context", CHAT, {"messages": [{"role": "user", "content": "x" * 300}]},
         "context", param="messages"),
    Case("n-two", CHAT, {"messages": HI, "n": 2}, "n=1", param="n"),
    Case("min-tokens-above-max-tokens", COMPLETIONS,
         {"prompt": "hi", "max_tokens": 5, "min_tokens": 10}, "min_tokens", param="min_tokens"),
    Case("oversized-body", CHAT, {"messages": [{"role": "user", "content": "x" * 5000}]},
         "too large", status=413, reason="body_too_large"),
    # --- unknown models
    Case("unknown-chat-model", CHAT, {"model": "gpt-4o", "messages": HI}, "gpt-4o", status=404,
         param="model", code="model_not_found", reason="not_found"),
    Case("unknown-embedding-model", EMBEDDINGS, {"model": "ada", "input": "hi"}, "ada",
         status=404, param="model", code="model_not_found", reason="not_found"),
    # --- embeddings
    Case("embedding-input-a-number", EMBEDDINGS, {"input": 42}, "'input'", param="input"),
    Case("embedding-input-empty", EMBEDDINGS, {"input": []}, "'input'", param="input"),
    Case("embedding-input-too-long", EMBEDDINGS, {"input": "x" * 600},
         f"at most {EMBED_MAX_INPUT}", param="input"),
    Case("embedding-encoding-hex", EMBEDDINGS, {"input": "hi", "encoding_format": "hex"},
         "'encoding_format'", param="encoding_format"),
    # --- routing
    Case("unknown-route", "/v1/nothing-here", {}, "Not Found", status=404,
         endpoint="unmatched", reason="not_found"),
    Case("unknown-model-card", "/v1/models/gpt-4o", None, "gpt-4o", status=404, method="GET",
         code="model_not_found", endpoint="/v1/models/{model}", reason="not_found"),
    Case("wrong-method", CHAT, None, "Method Not Allowed", status=405, method="GET",
         endpoint="unmatched", reason="method_not_allowed"),
    # --- KServe V2
    Case("kserve-malformed-json", INFER, b'{"inputs": [', "not valid JSON", endpoint=INFER_ROUTE),
    Case("kserve-wrong-input-name", INFER, tensor(name="IMAGE"), "'IMAGE'",
         endpoint=INFER_ROUTE),
    Case("kserve-wrong-datatype", INFER, tensor(datatype="INT64"), "'INT64'",
         endpoint=INFER_ROUTE),
    Case("kserve-wrong-shape", INFER, tensor(shape=[1, FEATURES - 1]), "shape",
         endpoint=INFER_ROUTE),
    Case("kserve-data-count-off", INFER, tensor(shape=[2, FEATURES]), f"{FEATURES} values",
         endpoint=INFER_ROUTE),
    Case("kserve-data-not-numbers", INFER, tensor(data=["a"] * FEATURES), "numbers",
         endpoint=INFER_ROUTE),
    Case("kserve-unknown-output", INFER, {**tensor(), "outputs": [{"name": "LOGITS"}]},
         "'LOGITS'", endpoint=INFER_ROUTE),
    Case("kserve-header-length-past-body", INFER, tensor(), HEADER_LENGTH,
         headers=((HEADER_LENGTH, "99999"),), endpoint=INFER_ROUTE),
    Case("kserve-header-length-not-a-number", INFER, tensor(), HEADER_LENGTH,
         headers=((HEADER_LENGTH, "lots"),), endpoint=INFER_ROUTE),
    Case("kserve-binary-data-short", INFER, BINARY_SHORT, "binary",
         headers=((HEADER_LENGTH, BINARY_HEAD),), endpoint=INFER_ROUTE),
    Case("kserve-unknown-route", "/v2/nothing-here", None, "Not Found", status=404,
         method="GET", endpoint="unmatched", reason="not_found"),
    Case("kserve-unknown-model", "/v2/models/resnet/infer", tensor(), "'resnet'", status=404,
         endpoint=INFER_ROUTE, reason="not_found"),
)  # fmt: skip


def ask(url: str, case: Case) -> Answer:
    body = case.payload if case.method == "POST" else None
    return send(url, case.method, case.path, body, dict(case.headers))


@dataclass(frozen=True, slots=True)
class Sweep:
    answers: dict[str, Answer]
    metrics: str  # /metrics right after the last case


@pytest.fixture(scope="module")
def sweep() -> Iterator[Sweep]:
    with ServerProcess(args=[*SMALL_MODELS, *LIMITS]) as server:
        answers = {case.name: ask(server.url, case) for case in CASES}
        metrics = send(server.url, "GET", "/metrics").body.decode()
        yield Sweep(answers, metrics)


def test_cases_are_what_they_claim() -> None:
    assert len({c.name for c in CASES}) == len(CASES)
    # Only the oversized case may trip the body limit; it must really trip it.
    assert all((len(c.payload) > MAX_BODY_BYTES) == (c.status == 413) for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input_gets_a_clear_4xx(sweep: Sweep, case: Case) -> None:
    answer = sweep.answers[case.name]
    assert answer.status == case.status, answer.body[:300]
    assert answer.headers["content-type"].startswith("application/json")
    body = json.loads(answer.body)
    if case.path.startswith("/v2"):
        assert set(body) == {"error"} and isinstance(body["error"], str)
        message = body["error"]
    else:
        error = body["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == "invalid_request_error"
        assert error["param"] == case.param
        assert error["code"] == (case.code if case.code is not None else case.status)
        message = error["message"]
    assert case.says in message
    assert "\n" not in message and "Traceback" not in message


def requests_counted(metrics: str) -> Counter[tuple[str, str, str]]:
    counted: Counter[tuple[str, str, str]] = Counter()
    for s in samples(metrics, "slabench_requests_total"):
        if s.labels["endpoint"] != "/metrics":
            counted[s.labels["endpoint"], s.labels["status"], s.labels["reason"]] += int(s.value)
    return counted


def test_metrics_count_every_bad_request_as_4xx_and_none_as_5xx(sweep: Sweep) -> None:
    counted = requests_counted(sweep.metrics)
    expected = Counter((c.label, str(c.status), c.reason) for c in CASES)
    assert +counted == expected
    assert not [key for key in counted if key[1].startswith("5")]


def test_wrong_method_names_the_allowed_methods(sweep: Sweep) -> None:
    assert sweep.answers["wrong-method"].headers.get("allow") == "POST"


# --- inputs that once reached a 500, or a 429 that retrying could not fix ----------------


@pytest.fixture(scope="module")
def probe_server() -> Iterator[ServerProcess]:
    """Apart from the sweep's server, whose /metrics counts are checked exactly."""
    queues = ("--max-queue-size", "4", "--max-waiting", "4", "--drain-timeout", "1")
    with ServerProcess(args=[*SMALL_MODELS, *queues]) as server:
        yield server


def error_json(answer: Answer) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(answer.body)["error"]
    return error


def test_seed_out_of_range_is_a_400(probe_server: ServerProcess) -> None:
    body = {"prompt": "hi", "max_tokens": 2, "seed": 2**64}
    answer = send(probe_server.url, "POST", COMPLETIONS, json.dumps(body).encode())
    assert answer.status == 400, answer.body
    assert error_json(answer)["param"] == "seed"


def test_deeply_nested_json_is_a_400(probe_server: ServerProcess) -> None:
    answer = send(probe_server.url, "POST", CHAT, b"[" * 3000 + b"]" * 3000)
    assert answer.status == 400, answer.body


@pytest.mark.parametrize(
    ("path", "param", "body"),
    [
        (EMBEDDINGS, "input", {"input": [f"text {i}" for i in range(5)]}),
        (COMPLETIONS, "prompt", {"prompt": [f"text {i}" for i in range(5)], "max_tokens": 2}),
    ],
    ids=["embeddings", "completions"],
)
def test_more_inputs_than_queue_slots_is_not_a_429(
    probe_server: ServerProcess, path: str, param: str, body: dict[str, Any]
) -> None:
    answer = send(probe_server.url, "POST", path, json.dumps(body).encode())  # queues hold 4
    assert answer.status != 429
    assert answer.status == 200 or (
        answer.status == 400 and error_json(answer)["param"] == param
    ), answer.body
