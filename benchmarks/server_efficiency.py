"""Server efficiency: throughput through HTTP at saturation vs the bare model (a script).

    .venv/bin/python -m benchmarks.server_efficiency [--rounds 4] [--concurrency 64]

One reference server batches dynamically (``--max-batch-size 32``). ``--concurrency``
closed-loop clients (64 = two full batches, so that one batch waits while the other
runs) saturate it with one-row requests: KServe V2 infer on the MLP with JSON tensors,
the same with Triton's binary tensor extension (``tritonclient``'s default; no float
parsing), then ``/v1/embeddings``. The server's mean batch size over the window comes
from its /metrics histogram. Then, in this process, the same model class with the same sizes, seed
and torch threads runs its forward in a loop at that batch size (rounded), on a tensor
that is already built: no HTTP, no JSON, no queue. Efficiency = HTTP requests/s divided
by bare-forward rows/s (target: >= 80%). Rounds alternate the two measurements.

The serving path needs more than one core (model thread, event loop, load generator)
where the bare loop needs one, so other people's jobs on this shared machine cost the
HTTP side more: the summary also gives the median over quiet rounds (the rest of the
machine under 0.25 cores during both measurements).

Sizes are those of ``benchmarks.dynamic_batching`` (MLP 256 -> 4096 -> 4096 -> 10,
encoder 2 x 512 on 9-token inputs): large enough that compute is real, so that the
figure says how much of the model's throughput the serving path keeps.

``--torch-threads 1`` for both the server and the bare loop: the machine has 2 cores, and
the server's event loop plus this load generator need the second one. The bare loop gets
the same single intra-op thread, so that the comparison is model for model.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from benchmarks._harness import (
    QUIET_OTHER_CORES,
    TINY_LM,
    WINDOW_HEADERS,
    BenchmarkError,
    Send,
    Window,
    add_batching_options,
    closed_loop,
    embeddings_send,
    kserve_binary_send,
    kserve_send,
    other_cores_during,
    print_header,
    print_table,
    ratio_line,
    run,
    servers,
    window_cells,
)
from loadtests.bundled_server import ServerProcess
from reference_server import tokenizer
from reference_server.config import ClassifierConfig, EmbedderConfig
from reference_server.models import Encoder, MLPClassifier

TARGET = 0.80


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="HTTP throughput at saturation vs bare forward")
    add_batching_options(p, rounds=4, concurrency=64, endpoints="kserve,kserve-binary,embeddings")
    return p


def _server_args(a: argparse.Namespace) -> list[str]:
    return [
        *TINY_LM, "--torch-threads", str(a.torch_threads),
        "--mlp-hidden", str(a.mlp_hidden), "--mlp-layers", str(a.mlp_layers),
        "--mlp-in-features", str(a.mlp_in_features),
        "--embed-dim", str(a.embed_dim), "--embed-layers", str(a.embed_layers),
        "--max-batch-size", str(a.max_batch_size),
        "--max-queue-delay-ms", str(a.max_queue_delay_ms),
        "--max-queue-size", str(max(256, 2 * a.concurrency)),
    ]  # fmt: skip


def bare_step(a: argparse.Namespace, endpoint: str, batch: int) -> Callable[[], object]:
    """One forward of the served model on a prepared batch. The model is built as the
    server builds it (cli seed 0: the MLP gets seed 2, the encoder seed 1)."""
    if endpoint.startswith("kserve"):
        cfg = ClassifierConfig(
            in_features=a.mlp_in_features, hidden=a.mlp_hidden, layers=a.mlp_layers, seed=2
        )
        mlp = MLPClassifier(cfg).eval()
        x = torch.randn(batch, cfg.in_features, generator=torch.Generator().manual_seed(0))
        return lambda: mlp(x)
    encoder = Encoder(EmbedderConfig(layers=a.embed_layers, dim=a.embed_dim, seed=1)).eval()
    text = ("a short query about model serving " * 64)[: a.embed_input_bytes]
    ids = torch.tensor(tokenizer.encode(text)).repeat(batch, 1)
    return lambda: encoder(ids)


def rows_per_s(step: Callable[[], object], batch: int, warmup_s: float, measure_s: float) -> float:
    deadline = time.perf_counter() + warmup_s
    while time.perf_counter() < deadline:
        step()
    started, done = time.perf_counter(), 0
    while time.perf_counter() - started < measure_s:
        step()
        done += batch
    return done / (time.perf_counter() - started)


@dataclass(frozen=True, slots=True)
class Round:
    endpoint: str
    http: Window
    bare_batch: int
    bare_rows_per_s: float
    bare_other_cores: float

    @property
    def efficiency(self) -> float:
        return self.http.requests_per_s / self.bare_rows_per_s

    @property
    def quiet(self) -> bool:
        return self.http.quiet and self.bare_other_cores < QUIET_OTHER_CORES

    def cells(self) -> list[object]:
        return [self.endpoint, *window_cells(self.http), self.bare_batch,
                self.bare_rows_per_s, self.bare_other_cores, self.efficiency]  # fmt: skip


async def measure(a: argparse.Namespace, server: ServerProcess, endpoint: str, send: Send) -> Round:
    """HTTP at saturation, then the bare forward at the batch size the server used."""
    w = await closed_loop(
        server, send, label=endpoint, concurrency=a.concurrency, warmup_s=a.warmup_s,
        measure_s=a.measure_s, batch_queue=endpoint.removesuffix("-binary"),
    )  # fmt: skip
    if w.errors:
        raise BenchmarkError(f"{endpoint}: requests failed; no efficiency figure")
    batch = max(1, round(w.mean_batch))
    step = bare_step(a, endpoint, batch)
    bare, others = other_cores_during(
        lambda: rows_per_s(step, batch, min(a.warmup_s, 1.0), a.measure_s)
    )
    return Round(endpoint, w, batch, bare, others)


def _summary(rounds: Sequence[Round], endpoints: Sequence[str]) -> bool:
    print("== summary: HTTP requests/s / bare-forward rows/s at the batch size the server used")
    met = True
    for e in endpoints:
        mine = [r for r in rounds if r.endpoint == e]
        efficiency = [r.efficiency for r in mine]
        met = ratio_line(e, efficiency, TARGET, [r.quiet for r in mine]) and met
    return met


async def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    a = parser.parse_args(argv)
    torch.set_num_threads(a.torch_threads)
    args = _server_args(a)
    sends = {
        "kserve": kserve_send("slabench-mlp", a.mlp_in_features),
        "kserve-binary": kserve_binary_send("slabench-mlp", a.mlp_in_features),
        "embeddings": embeddings_send("slabench-embed", a.embed_input_bytes),
    }
    endpoints = [e for e in a.endpoints.split(",") if e]
    if not endpoints or set(endpoints) - set(sends):
        parser.error(f"--endpoints {a.endpoints!r}: choose from {', '.join(sends)}")
    print_header(
        "server efficiency: HTTP at saturation vs bare forward at the same batch size",
        "benchmarks.server_efficiency",
        {"dynamic batching": args},
        [
            f"{a.concurrency} closed-loop clients, one row per request; {a.rounds} rounds of "
            f"{a.warmup_s:g}s warm-up + {a.measure_s:g}s measured, HTTP and bare alternating",
            f"bare forward: same model class, sizes and seed, torch threads {a.torch_threads}, "
            "in this process while the server idles",
        ],
    )
    headers = ["endpoint", *WINDOW_HEADERS, "bare batch", "bare rows/s", "bare other cores",
               "efficiency"]  # fmt: skip
    rounds: list[Round] = []
    with servers(args) as (server,):
        for r in range(1, a.rounds + 1):
            done = [await measure(a, server, e, sends[e]) for e in endpoints]
            rounds += done
            print(f"round {r}")
            print_table(headers, [x.cells() for x in done])
    return 0 if _summary(rounds, endpoints) else 1


if __name__ == "__main__":
    raise SystemExit(run(main))
