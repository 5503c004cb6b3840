"""The bundled reference inference server: the system under test that ships with slabench.

PyTorch models built in code (seeded weights) behind aiohttp, with continuous batching for
generation, dynamic batching for embeddings and KServe V2 tensors, bounded queues, fault
injection, Prometheus metrics and graceful shutdown. It imports nothing of the suite.
"""

from __future__ import annotations

from reference_server.app import create_app, drain
from reference_server.config import (
    BatchingConfig,
    ClassifierConfig,
    EmbedderConfig,
    FaultConfig,
    LMConfig,
    ServerConfig,
)
from reference_server.version import __version__

__all__ = [
    "BatchingConfig",
    "ClassifierConfig",
    "EmbedderConfig",
    "FaultConfig",
    "LMConfig",
    "ServerConfig",
    "__version__",
    "create_app",
    "drain",
]
