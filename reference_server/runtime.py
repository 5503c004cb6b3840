"""Device selection and the batch functions the dynamic batchers run on the model thread."""

from __future__ import annotations

import numpy as np
import torch

from reference_server.models import Encoder, MLPClassifier
from reference_server.tokenizer import PAD

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class DeviceError(ValueError):
    pass


def resolve_device(device: str, dtype: str) -> tuple[torch.device, torch.dtype]:
    """auto = CUDA when available; dtype auto = bfloat16 on CUDA, float32 on the CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    if device not in ("cpu", "cuda"):
        raise DeviceError(f"--device {device!r}: use auto, cpu or cuda")
    if dtype == "auto":
        dtype = "bfloat16" if device == "cuda" else "float32"
    if dtype not in _DTYPES:
        raise DeviceError(f"--dtype {dtype!r}: use auto, float32, bfloat16 or float16")
    if device == "cpu" and dtype == "float16":
        raise DeviceError("--dtype float16 is not supported on the CPU: use float32 or bfloat16")
    return torch.device(device), _DTYPES[dtype]


def use_process_threads() -> None:
    """Apply the process's torch thread count (``--torch-threads``) to the calling thread.

    PyTorch applies ``torch.set_num_threads`` to a new thread lazily, at its first parallel
    region. On a model thread whose first op is a GEMM (a Linear layer), MKL runs first and
    starts an OpenMP team of the machine's default size, ignoring ``--torch-threads``.
    Asking for the count runs that lazy initialisation; afterwards the call costs nothing.
    """
    torch.get_num_threads()


def embed_batch(encoder: Encoder, items: list[list[int]], device: torch.device) -> list[np.ndarray]:
    use_process_threads()
    width = max(len(ids) for ids in items)
    padded = torch.full((len(items), width), PAD, dtype=torch.long)
    for row, ids in enumerate(items):
        padded[row, : len(ids)] = torch.tensor(ids)
    vectors = encoder(padded.to(device)).cpu().numpy()
    return list(vectors)


def classify_batch(
    model: MLPClassifier, items: list[np.ndarray], device: torch.device, dtype: torch.dtype
) -> list[np.ndarray]:
    use_process_threads()
    stacked = torch.from_numpy(np.concatenate(items)).to(device=device, dtype=dtype)
    logits = model(stacked).cpu().numpy()
    bounds = np.cumsum([len(x) for x in items])[:-1]
    return np.split(logits, bounds)
