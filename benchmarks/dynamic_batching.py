"""Dynamic batching vs no batching (``--max-batch-size 1``) on the same models (a script).

    .venv/bin/python -m benchmarks.dynamic_batching [--rounds 5] [--concurrency 32]

Starts two reference servers with the same seeded models, one batching dynamically (up to
``--max-batch-size`` rows per forward, 2 ms queue delay) and one with
``--max-batch-size 1``, then drives each in turn with ``--concurrency`` closed-loop
clients (one request in flight each): KServe V2 infer on the MLP classifier (one FP32 row
per request, JSON tensors) and ``/v1/embeddings`` (one short text per request, base64
vectors as the openai client asks). Rounds alternate the two servers (and swap which goes
first) so that machine noise lands on both; each round prints requests/s of both, and the
summary their ratio per round (target: >= 4x at 32 clients), with the median over the
rounds in which the rest of the shared machine stayed quiet in both windows.

Sizes: the MLP is 256 -> 4096 -> 4096 -> 10 (17.8 M weights, 71 MB in fp32, far over the
caches), so that a batch-1 forward streams every weight from memory for one row
(weight-bound), which is what batching amortises. The encoder is 2 layers of width 512
(6.3 M weights) on 9-token inputs (8 bytes + BOS, a short query): at batch 1 its GEMMs
are 9 rows tall, so much of the batching gain is already there and the ratio is smaller.

``--torch-threads 1`` (default) on purpose: the machine has 2 cores, and the server's
event loop and this load generator need most of the second one. With 2 intra-op threads
the model would fight them for a core and every parallel region would wait for a
descheduled thread, which measures the OS scheduler rather than batching.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from benchmarks._harness import (
    TINY_LM,
    WINDOW_HEADERS,
    BenchmarkError,
    Window,
    add_batching_options,
    closed_loop,
    embeddings_send,
    kserve_send,
    print_header,
    print_table,
    ratio_line,
    run,
    servers,
    spread,
    window_cells,
)

TARGET_RATIO = 4.0
CONFIGS = ("batched", "batch=1")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="dynamic batching vs --max-batch-size 1")
    # 32 closed-loop clients and a 2 ms delay settle into two half-batches of 16 taking turns
    # (one fills while the other runs); 10 ms lets a batch fill to 32, as a Triton user tunes
    # max_queue_delay_microseconds for throughput.
    add_batching_options(
        p, rounds=5, concurrency=32, endpoints="kserve,embeddings", queue_delay_ms=10.0
    )
    return p


def _server_args(a: argparse.Namespace) -> dict[str, list[str]]:
    common = [
        *TINY_LM, "--torch-threads", str(a.torch_threads),
        "--mlp-hidden", str(a.mlp_hidden), "--mlp-layers", str(a.mlp_layers),
        "--mlp-in-features", str(a.mlp_in_features),
        "--embed-dim", str(a.embed_dim), "--embed-layers", str(a.embed_layers),
        "--max-queue-delay-ms", str(a.max_queue_delay_ms),
        "--max-queue-size", str(max(256, 2 * a.concurrency)),
    ]  # fmt: skip
    return {
        "batched": [*common, "--max-batch-size", str(a.max_batch_size)],
        "batch=1": [*common, "--max-batch-size", "1"],
    }


def _windows(windows: Sequence[Window], label: str) -> list[Window]:
    return [w for w in windows if w.label == label]


def _summary(windows: Sequence[Window], endpoints: Sequence[str]) -> bool:
    print("== summary: batched / batch=1 requests/s")
    met = True
    for endpoint in endpoints:
        batched, single = (_windows(windows, f"{endpoint} {c}") for c in CONFIGS)
        pairs = list(zip(batched, single, strict=True))
        ratios = [b.requests_per_s / s.requests_per_s for b, s in pairs]
        quiet = [b.quiet and s.quiet for b, s in pairs]
        met = ratio_line(endpoint, ratios, TARGET_RATIO, quiet) and met
        rates = [[w.requests_per_s for w in ws] for ws in (batched, single)]
        print(f"  batched req/s {spread(rates[0])}; batch=1 req/s {spread(rates[1])}")
    return met


async def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    a = parser.parse_args(argv)
    args = _server_args(a)
    sends = {
        "kserve": kserve_send("slabench-mlp", a.mlp_in_features),
        "embeddings": embeddings_send("slabench-embed", a.embed_input_bytes),
    }
    endpoints = [e for e in a.endpoints.split(",") if e]
    if not endpoints or set(endpoints) - set(sends):
        parser.error(f"--endpoints {a.endpoints!r}: choose from {', '.join(sends)}")
    print_header(
        "dynamic batching vs --max-batch-size 1",
        "benchmarks.dynamic_batching",
        args,
        [
            f"{a.concurrency} closed-loop clients; {a.rounds} rounds of {a.warmup_s:g}s warm-up "
            f"+ {a.measure_s:g}s measured per configuration, alternating",
            f"MLP {a.mlp_in_features} -> {a.mlp_hidden} x{a.mlp_layers - 1} -> 10; encoder "
            f"{a.embed_layers} layers x {a.embed_dim} on {a.embed_input_bytes + 1}-token inputs",
        ],
    )
    windows: list[Window] = []
    with servers(*args.values()) as started:
        by_config = dict(zip(CONFIGS, started, strict=True))
        for r in range(1, a.rounds + 1):
            rows = []
            for endpoint in endpoints:
                # Swap the order every round so that a drifting machine hits both alike.
                for config in CONFIGS if r % 2 else CONFIGS[::-1]:
                    w = await closed_loop(
                        by_config[config], sends[endpoint], label=f"{endpoint} {config}",
                        concurrency=a.concurrency, warmup_s=a.warmup_s, measure_s=a.measure_s,
                        batch_queue=endpoint,
                    )  # fmt: skip
                    windows.append(w)
                    rows.append([r, endpoint, config, *window_cells(w)])
            print_table(["round", "endpoint", "config", *WINDOW_HEADERS], rows)
    met = _summary(windows, endpoints)
    if any(w.errors for w in windows):
        raise BenchmarkError("some requests failed: the figures above are not trustworthy")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(run(main))
