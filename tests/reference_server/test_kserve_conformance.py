"""Conformance of the KServe V2 endpoints, driven by Triton's own ``tritonclient.http``.

The client sends tensors with Triton's binary data extension by default; the JSON form
(``binary_data=False``) must give the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.server_process import ServerProcess

MODEL = "slabench-mlp"
FEATURES, CLASSES = 16, 10  # --mlp-in-features in SMALL_MODELS; the classifier's classes


@pytest.fixture(scope="module")
def client(reference_server: ServerProcess) -> Iterator[triton.InferenceServerClient]:
    c = triton.InferenceServerClient(url=reference_server.url.removeprefix("http://"))
    yield c
    c.close()


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, FEATURES)).astype(np.float32)


def infer(
    client: triton.InferenceServerClient, x: np.ndarray, *, binary: bool = True
) -> tuple[np.ndarray, dict[str, Any]]:
    """(output tensor, the response's JSON header)."""
    tensor = triton.InferInput("INPUT0", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    wanted = triton.InferRequestedOutput("OUTPUT0", binary_data=binary)
    result = client.infer(MODEL, [tensor], outputs=[wanted])
    out = result.as_numpy("OUTPUT0")
    assert out is not None
    return out, result.get_response()


def test_health_endpoints(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(MODEL)
    assert client.is_model_ready(MODEL, model_version="1")
    assert not client.is_model_ready("no-such-model")


def test_server_metadata(client: triton.InferenceServerClient) -> None:
    meta = client.get_server_metadata()
    assert meta["name"] and isinstance(meta["version"], str)
    assert "binary_tensor_data" in meta["extensions"]


def test_model_metadata_describes_the_tensors(client: triton.InferenceServerClient) -> None:
    meta = client.get_model_metadata(MODEL)
    assert meta["name"] == MODEL and "1" in meta["versions"]
    assert meta["inputs"] == [{"name": "INPUT0", "datatype": "FP32", "shape": [-1, FEATURES]}]
    assert meta["outputs"] == [{"name": "OUTPUT0", "datatype": "FP32", "shape": [-1, CLASSES]}]


def test_model_config_matches_metadata(client: triton.InferenceServerClient) -> None:
    config = client.get_model_config(MODEL)
    assert config["name"] == MODEL
    assert config["max_batch_size"] >= 1
    assert [(i["name"], i["data_type"], i["dims"]) for i in config["input"]] == [
        ("INPUT0", "TYPE_FP32", [FEATURES])
    ]
    assert [(o["name"], o["data_type"], o["dims"]) for o in config["output"]] == [
        ("OUTPUT0", "TYPE_FP32", [CLASSES])
    ]


def test_binary_and_json_tensors_give_the_same_output(
    client: triton.InferenceServerClient,
) -> None:
    x = rows(3)
    packed, packed_head = infer(client, x, binary=True)
    plain, plain_head = infer(client, x, binary=False)
    assert packed.shape == plain.shape == (3, CLASSES)
    assert packed.dtype == np.float32
    np.testing.assert_allclose(packed, plain, rtol=1e-6, atol=1e-9)
    [packed_out] = packed_head["outputs"]
    [plain_out] = plain_head["outputs"]
    assert packed_out["parameters"]["binary_data_size"] == 3 * CLASSES * 4
    assert "data" not in packed_out
    assert len(plain_out["data"]) == 3 * CLASSES
    assert plain_head["model_name"] == MODEL


def test_rows_give_the_same_output_alone_or_in_a_batch(
    client: triton.InferenceServerClient,
) -> None:
    x = rows(5, seed=1)
    batched, _ = infer(client, x)
    alone = np.concatenate([infer(client, x[i : i + 1])[0] for i in range(len(x))])
    assert batched.shape == (5, CLASSES)
    scale = float(np.abs(alone).max())
    np.testing.assert_allclose(batched, alone, rtol=1e-4, atol=1e-4 * scale)
    # Distinct rows give distinct outputs, so a row mix-up could not pass the check above.
    assert not np.allclose(batched[0], batched[1], rtol=1e-3, atol=1e-3 * scale)


def test_versioned_infer_and_unknown_version(client: triton.InferenceServerClient) -> None:
    x = rows(1, seed=2)
    tensor = triton.InferInput("INPUT0", [1, FEATURES], "FP32")
    tensor.set_data_from_numpy(x)
    result = client.infer(MODEL, [tensor], model_version="1")
    np.testing.assert_allclose(result.as_numpy("OUTPUT0"), infer(client, x)[0], rtol=1e-6)
    with pytest.raises(InferenceServerException) as caught:
        client.infer(MODEL, [tensor], model_version="7")
    assert caught.value.status() == "404"


def test_unknown_model_is_a_404_from_the_client(client: triton.InferenceServerClient) -> None:
    tensor = triton.InferInput("INPUT0", [1, FEATURES], "FP32")
    tensor.set_data_from_numpy(rows(1))
    with pytest.raises(InferenceServerException) as caught:
        client.infer("no-such-model", [tensor])
    assert caught.value.status() == "404"
    assert "no-such-model" in (caught.value.message() or "")
    with pytest.raises(InferenceServerException) as meta:
        client.get_model_metadata("no-such-model")
    assert meta.value.status() == "404"
