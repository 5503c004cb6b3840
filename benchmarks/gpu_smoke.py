"""GPU smoke run of the reference server: CUDA, bfloat16, batching, generation (a script).

    .venv/bin/python -m benchmarks.gpu_smoke                  # on a machine with a CUDA GPU
    .venv/bin/python -m benchmarks.gpu_smoke --device cpu     # the same path on the CPU

Prints torch / CUDA versions and the GPU, starts the reference server with ``--device``
and ``--dtype`` (default ``cuda`` / ``bfloat16``), checks that its ready line reports that
device and dtype, then runs three short closed-loop bursts and prints their figures:
streamed generation (continuous batching, ``ignore_eos``, every stream must hold exactly
``--max-tokens`` tokens), embeddings and KServe V2 infer (dynamic batching). Every burst
must finish without errors and, with more than one client, run batches larger than one.
Exits 0 when every check passed, 1 otherwise, 2 when the device is not there.

On every device it then prints the server's own per-request timings (``Server-Timing``
header of ``--concurrency`` concurrent chat requests: p50 of queue, prefill, decode, total),
and its energy figures from ``/metrics``: the source (``nvml`` on CUDA, ``none`` on the CPU),
power after the generation burst, and the GPU energy over that burst divided by the tokens
generated meanwhile (J/token; warm-up included, as both deltas cover the same span).

Model sizes default per device: on CUDA large enough to give the GPU real work (LM 12 x
1024, encoder 4 x 768, MLP 1024 -> 8192 x2), on the CPU small enough for a quick run.
``--torch-threads`` applies to the CPU only (1 by default: the load generator shares the
machine); CUDA kernels do not use intra-op CPU threads.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import torch
from prometheus_client.parser import text_string_to_metric_families

from benchmarks._harness import (
    WINDOW_HEADERS,
    Window,
    closed_loop,
    embeddings_send,
    kserve_send,
    print_header,
    print_table,
    run,
    servers,
    stream_send,
    window_cells,
)
from loadtests.bundled_server import ServerProcess

READY_DEVICE = re.compile(r"ready at \S+ \(device=([^,]+), dtype=([^)]+)\)")
SIZES = {  # flag -> (cuda, cpu)
    "--lm-layers": (12, 2), "--lm-dim": (1024, 128), "--lm-heads": (16, 4),
    "--max-model-len": (1024, 256), "--embed-layers": (4, 1), "--embed-dim": (768, 128),
    "--mlp-hidden": (8192, 512), "--mlp-layers": (3, 3), "--mlp-in-features": (1024, 64),
}  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="GPU smoke run of the reference server")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], default="bfloat16")
    p.add_argument("--torch-threads", type=int, default=1, help="CPU only")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--warmup-s", type=float, default=1.0)
    p.add_argument("--measure-s", type=float, default=4.0)
    return p


def _versions() -> None:
    print(f"torch {torch.__version__}, built for CUDA {torch.version.cuda or '-'}", end="")
    if torch.backends.cudnn.is_available():
        print(f", cuDNN {torch.backends.cudnn.version()}", end="")
    print()
    for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        props = torch.cuda.get_device_properties(i)
        print(f"GPU {i}: {props.name}, {props.total_memory / 2**30:.0f} GiB, "
              f"compute capability {props.major}.{props.minor}")  # fmt: skip
    if not torch.cuda.is_available():
        print("no CUDA device is available to this process")


def _server_args(a: argparse.Namespace) -> list[str]:
    column = 0 if a.device == "cuda" else 1
    sizes = [str(v) for flag, pair in SIZES.items() for v in (flag, pair[column])]
    threads = ["--torch-threads", str(a.torch_threads)] if a.device == "cpu" else []
    return ["--device", a.device, "--dtype", a.dtype, *sizes, *threads,
            "--max-batch-size", "32", "--max-num-seqs", str(max(a.concurrency, 1)),
            "--max-tokens-limit", str(max(a.max_tokens, 16))]  # fmt: skip


def _check_ready_line(server: ServerProcess, device: str, dtype: str) -> list[str]:
    for line in server.output:
        if match := READY_DEVICE.search(line):
            print(f"ready line: {line.strip()}")
            if match.groups() != (device, dtype):
                return [f"server runs on {match.group(1)}/{match.group(2)}, not {device}/{dtype}"]
            return []
    return ["the ready line does not name the device and dtype"]


@dataclass(frozen=True, slots=True)
class Energy:
    """The server's energy figures at one scrape (summed over its GPUs)."""

    source: str
    joules: float
    watts: float
    tokens: float  # slabench_generation_tokens_total


async def _energy(server: ServerProcess) -> Energy:
    async with aiohttp.ClientSession(server.url) as session, session.get("/metrics") as resp:
        text = await resp.text()
    values = {"joules": 0.0, "watts": 0.0, "tokens": 0.0}
    source = "absent"  # a server without the slabench_energy_source metric
    names = {"slabench_gpu_energy_joules_total": "joules", "slabench_gpu_power_watts": "watts",
             "slabench_generation_tokens_total": "tokens"}  # fmt: skip
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "slabench_energy_source" and sample.value == 1:
                source = sample.labels["source"]
            elif sample.name in names:
                values[names[sample.name]] += sample.value
    return Energy(source, **values)


def _energy_lines(before: Energy, after: Energy) -> list[str]:
    if after.source != "nvml":
        return [f"energy: no energy source (slabench_energy_source: {after.source})"]
    joules, tokens = after.joules - before.joules, after.tokens - before.tokens
    per_token = f"{joules / tokens:.4g} J/token" if tokens else "no tokens generated"
    return [f"power: {after.watts:.1f} W after the generation burst",
            f"energy: {joules:.1f} J over the generation burst, {tokens:.0f} tokens: "
            f"{per_token}"]  # fmt: skip


async def _server_timings(server: ServerProcess, concurrency: int, max_tokens: int) -> str:
    """p50 of the Server-Timing components over ``concurrency`` concurrent chat requests."""
    body = {"model": "slabench-lm", "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": max_tokens, "ignore_eos": True}  # fmt: skip

    async def one(session: aiohttp.ClientSession) -> dict[str, float]:
        async with session.post("/v1/chat/completions", json=body) as resp:
            await resp.read()
            header = resp.headers.get("Server-Timing", "")
        parts = (m.strip().split(";dur=") for m in header.split(",") if ";dur=" in m)
        return {name: float(ms) for name, ms in parts}

    async with aiohttp.ClientSession(server.url) as session:
        answers = await asyncio.gather(*(one(session) for _ in range(max(concurrency, 1))))
    names = ("queue", "prefill", "decode", "total")
    if not all(set(names) <= set(a) for a in answers):
        return "server timings: FAILED, an answer without a full Server-Timing header"
    p50 = {n: statistics.median(a[n] for a in answers) for n in names}
    return f"server timings p50 over {len(answers)} requests: " + ", ".join(
        f"{n} {v:.1f} ms" for n, v in p50.items()
    )


def _check_window(w: Window, concurrency: int) -> list[str]:
    problems = []
    if w.errors or not w.requests:
        problems.append(f"{w.label}: {w.requests} requests, {w.errors} errors")
    if concurrency > 1 and not w.mean_batch > 1:
        problems.append(f"{w.label}: mean batch {w.mean_batch:.2f}, so nothing was batched")
    return problems


async def main(argv: Sequence[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    args = _server_args(a)
    print_header("GPU smoke run", "benchmarks.gpu_smoke", {a.device: args}, [])
    _versions()
    if a.device == "cuda" and not torch.cuda.is_available():
        print("no GPU: --device cuda needs a CUDA GPU; use --device cpu to try the script")
        return 2
    sizes = dict(zip(args[::2], args[1::2], strict=False))
    bursts = {
        "generation": stream_send("slabench-lm", "Tell me about GPUs." * 2, a.max_tokens),
        "embeddings": embeddings_send("slabench-embed", 64),
        "kserve": kserve_send("slabench-mlp", int(sizes["--mlp-in-features"])),
    }
    with servers(args) as (server,):
        problems = _check_ready_line(server, a.device, a.dtype)
        rows, windows, energy_lines = [], [], []
        for queue, send in bursts.items():
            before = await _energy(server)
            w = await closed_loop(
                server, send, label=queue, concurrency=a.concurrency,
                warmup_s=a.warmup_s, measure_s=a.measure_s, batch_queue=queue,
            )  # fmt: skip
            windows.append(w)
            problems += _check_window(w, a.concurrency)
            rows.append([queue, w.tokens_per_s, *window_cells(w)])
            if queue == "generation":
                energy_lines = _energy_lines(before, await _energy(server))
        timings = await _server_timings(server, a.concurrency, min(a.max_tokens, 32))
    print()
    print_table(["burst", "tokens/s", *WINDOW_HEADERS], rows)
    for line in [timings, *energy_lines]:
        print(line)
    if timings.startswith("server timings: FAILED"):
        problems.append("server timings missing")
    if a.device == "cuda" and not energy_lines[0].startswith("power"):
        problems.append(f"no energy figures on CUDA: {energy_lines[0]}")
    for problem in problems:
        print(f"FAILED: {problem}")
    print("gpu smoke: " + ("FAILED" if problems else "all checks passed"))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(run(main))
