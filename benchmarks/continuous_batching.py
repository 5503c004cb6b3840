"""Continuous batching vs one sequence at a time, 16 streaming clients (a script).

    .venv/bin/python -m benchmarks.continuous_batching [--rounds 4] [--concurrency 16]

Starts two reference servers with the same seeded LM: one decodes up to ``--max-num-seqs``
sequences together (16), the other one at a time (``--max-num-seqs 1``). Each is driven
in turn by ``--concurrency`` closed-loop clients streaming ``/v1/completions`` (SSE, the
usage chunk on, ``ignore_eos`` so that every answer is exactly ``--max-tokens`` tokens, the
default temperature 1.0). Tokens are counted as chunks arrive during the measured window;
every finished stream must hold exactly ``--max-tokens`` tokens. Rounds alternate the two
servers; each prints output tokens/s of both and their ratio (target: >= 3x); the
summary adds the median over the rounds in which the rest of the machine stayed quiet.

Sizes: the LM is 8 layers of width 512 (25 M weights, 100 MB in fp32), so that a batch-1
decode step reads every weight from memory to make one token (weight-bound), which is what
decoding 16 sequences together amortises. Prompts are 32 bytes, answers 64 tokens.

``--torch-threads 1`` (default) on purpose: the machine has 2 cores, and the server's
event loop (one SSE chunk per token per stream) and this load generator need most of the
second one; a second intra-op thread would fight them for it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from benchmarks._harness import (
    TINY_EMBED,
    TINY_MLP,
    WINDOW_HEADERS,
    BenchmarkError,
    Window,
    closed_loop,
    print_header,
    print_table,
    ratio_line,
    run,
    servers,
    spread,
    stream_send,
    window_cells,
)

TARGET_RATIO = 3.0
CONFIGS = ("continuous", "one-at-a-time")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="continuous batching vs one sequence at a time")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--max-num-seqs", type=int, default=16)
    p.add_argument("--warmup-s", type=float, default=2.0)
    p.add_argument("--measure-s", type=float, default=6.0)
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--lm-layers", type=int, default=8)
    p.add_argument("--lm-dim", type=int, default=512)
    p.add_argument("--lm-heads", type=int, default=8)
    p.add_argument("--max-model-len", type=int, default=512)
    p.add_argument("--prompt-bytes", type=int, default=32)
    p.add_argument("--max-tokens", type=int, default=64)
    return p


def _server_args(a: argparse.Namespace) -> dict[str, list[str]]:
    common = [
        *TINY_EMBED, *TINY_MLP, "--torch-threads", str(a.torch_threads),
        "--lm-layers", str(a.lm_layers), "--lm-dim", str(a.lm_dim),
        "--lm-heads", str(a.lm_heads), "--max-model-len", str(a.max_model_len),
    ]  # fmt: skip
    return {
        "continuous": [*common, "--max-num-seqs", str(a.max_num_seqs)],
        "one-at-a-time": [*common, "--max-num-seqs", "1"],
    }


def _summary(windows: Sequence[Window]) -> bool:
    pairs = list(zip(*([w for w in windows if w.label == c] for c in CONFIGS), strict=True))
    batched, single = ([w.tokens_per_s for w in ws] for ws in zip(*pairs, strict=True))
    ratios = [b / s for b, s in zip(batched, single, strict=True)]
    print("== summary: continuous / one-at-a-time output tokens/s")
    ok = ratio_line("generation", ratios, TARGET_RATIO, [a.quiet and b.quiet for a, b in pairs])
    print(f"  continuous tokens/s {spread(batched)}; one-at-a-time tokens/s {spread(single)}")
    return ok


async def main(argv: Sequence[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    args = _server_args(a)
    prompt = ("Tell me about continuous batching. " * 64)[: a.prompt_bytes]
    send = stream_send("slabench-lm", prompt, a.max_tokens)
    print_header(
        f"continuous batching (--max-num-seqs {a.max_num_seqs}) vs one at a time",
        "benchmarks.continuous_batching",
        args,
        [
            f"{a.concurrency} streaming clients; {a.rounds} rounds of {a.warmup_s:g}s warm-up "
            f"+ {a.measure_s:g}s measured per configuration, alternating",
            f"LM {a.lm_layers} layers x {a.lm_dim} wide, {a.lm_heads} heads; prompt "
            f"{a.prompt_bytes + 1} tokens, {a.max_tokens} output tokens, ignore_eos",
            "mean batch counts prefills too (a step that admits k prompts runs k more rows)",
        ],
    )
    windows: list[Window] = []
    with servers(*args.values()) as started:
        by_config = dict(zip(CONFIGS, started, strict=True))
        for r in range(1, a.rounds + 1):
            rows = []
            # Swap the order every round so that a drifting machine hits both alike.
            for config in CONFIGS if r % 2 else CONFIGS[::-1]:
                w = await closed_loop(
                    by_config[config], send, label=config, concurrency=a.concurrency,
                    warmup_s=a.warmup_s, measure_s=a.measure_s, batch_queue="generation",
                )  # fmt: skip
                windows.append(w)
                rows.append([r, config, w.tokens_per_s, *window_cells(w)])
            print_table(["round", "config", "tokens/s", *WINDOW_HEADERS], rows)
    ok = _summary(windows)
    if any(w.errors for w in windows):
        raise BenchmarkError("some requests failed: the figures above are not trustworthy")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(run(main))
