"""Shared pieces of the reference-server benchmarks.

- ``servers``: start reference servers as subprocesses (``ServerProcess``), stop them after.
- ``kserve_send`` / ``embeddings_send`` / ``stream_send``: one request of each protocol.
- ``closed_loop``: N asyncio clients, each with one request in flight, measured over a
  window after a warm-up: requests, errors, streamed tokens, the server's mean batch size
  from /metrics, and the CPU spent by the server, by this load generator and by everything
  else on the machine (other people's jobs share it).
- ``print_header`` / ``print_table`` / ``ratio_line``: figures printed the same way
  everywhere; a ratio is given over all rounds and over the quiet ones (the rest of the
  machine kept fewer than ``QUIET_OTHER_CORES`` busy), since the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass

import aiohttp
import numpy as np
import psutil
from prometheus_client.parser import text_string_to_metric_families

from loadtests.bundled_server import ServerProcess, ServerStartError

# Every benchmark server also builds the models it does not exercise: keep those tiny.
TINY_LM = ("--lm-layers", "1", "--lm-dim", "64", "--lm-heads", "4", "--max-model-len", "128",
           "--max-num-seqs", "1")  # fmt: skip
TINY_EMBED = ("--embed-layers", "1", "--embed-dim", "64")
TINY_MLP = ("--mlp-hidden", "64", "--mlp-layers", "2", "--mlp-in-features", "16")
TOKEN_CHUNK = b'"finish_reason":null'  # text chunks only: the final chunk names its reason
# The machine is shared: a window counts as quiet when everything that is neither the
# server nor this load generator kept less than this many cores busy.
QUIET_OTHER_CORES = 0.25


class BenchmarkError(RuntimeError):
    """A request failed in a way that makes the figures meaningless."""


class Meter:
    """What the clients saw; counted only while ``measuring`` is set."""

    def __init__(self) -> None:
        self.measuring = False
        self.requests = 0
        self.errors = 0
        self.tokens = 0
        self.first_error = ""

    def add_tokens(self, count: int) -> None:
        if self.measuring:
            self.tokens += count


# One request: raises on failure, reports streamed tokens through the meter.
Send = Callable[[aiohttp.ClientSession, Meter], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Window:
    """One measured window of one configuration."""

    label: str
    requests: int
    errors: int
    tokens: int
    elapsed_s: float
    server_cpu_s: float
    client_cpu_s: float
    machine_cpu_s: float  # every process on the machine, these two included
    mean_batch: float  # from the server's batch-size histogram; nan when not asked for

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.elapsed_s

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.elapsed_s

    def cores(self) -> tuple[float, float, float]:
        """(server, load generator, everything else) in cores busy during the window."""
        others = self.machine_cpu_s - self.server_cpu_s - self.client_cpu_s
        t = self.elapsed_s
        return self.server_cpu_s / t, self.client_cpu_s / t, max(0.0, others / t)

    @property
    def quiet(self) -> bool:
        return self.cores()[2] < QUIET_OTHER_CORES


@contextlib.contextmanager
def servers(*arg_lists: Sequence[str]) -> Iterator[list[ServerProcess]]:
    """Start one server per argument list (all at once, so that rounds can alternate)."""
    started: list[ServerProcess] = []
    try:
        for args in arg_lists:
            started.append(ServerProcess(args=list(args), startup_timeout_s=180.0).start())
        yield started
    finally:
        for server in started:
            server.stop()


def server_command(args: Sequence[str]) -> str:
    return shlex.join(["python", "-m", "reference_server", "--port", "0", *args])


def kserve_send(model: str, features: int, seed: int = 0) -> Send:
    """One FP32 row per request as a KServe V2 JSON tensor (the body is built once)."""
    row = np.random.default_rng(seed).standard_normal(features).astype(np.float32)
    tensor = {"name": "INPUT0", "datatype": "FP32", "shape": [1, features], "data": row.tolist()}
    return _post(f"/v2/models/{model}/infer", json.dumps({"inputs": [tensor]}).encode())


def kserve_binary_send(model: str, features: int, seed: int = 0) -> Send:
    """The same row in Triton's binary tensor extension (what ``tritonclient`` sends by
    default): a JSON header, then the raw little-endian FP32 bytes; the output comes back
    as binary too."""
    row = np.random.default_rng(seed).standard_normal(features).astype("<f4").tobytes()
    spec = {"name": "INPUT0", "datatype": "FP32", "shape": [1, features],
            "parameters": {"binary_data_size": len(row)}}  # fmt: skip
    header = json.dumps(
        {"inputs": [spec], "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": True}}]}
    ).encode()
    headers = {"Inference-Header-Content-Length": str(len(header))}
    return _post(f"/v2/models/{model}/infer", header + row, headers)


def embeddings_send(model: str, input_bytes: int) -> Send:
    """One text per request; base64 vectors, as the official openai client asks for."""
    text = ("a short query about model serving " * 64)[:input_bytes]
    body = {"model": model, "input": text, "encoding_format": "base64"}
    return _post("/v1/embeddings", json.dumps(body).encode())


def _post(path: str, body: bytes, headers: Mapping[str, str] | None = None) -> Send:
    headers = headers or {"Content-Type": "application/json"}

    async def send(session: aiohttp.ClientSession, meter: Meter) -> None:
        async with session.post(path, data=body, headers=headers) as response:
            payload = await response.read()
            if response.status != 200:
                raise BenchmarkError(f"HTTP {response.status}: {payload[:200]!r}")

    return send


def stream_send(model: str, prompt: str, max_tokens: int) -> Send:
    """A streamed completion of exactly ``max_tokens`` tokens (``ignore_eos``)."""
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "ignore_eos": True,
            "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
    raw, headers = json.dumps(body).encode(), {"Content-Type": "application/json"}

    async def send(session: aiohttp.ClientSession, meter: Meter) -> None:
        async with session.post("/v1/completions", data=raw, headers=headers) as response:
            if response.status != 200:
                raise BenchmarkError(f"HTTP {response.status}: {(await response.read())[:200]!r}")
            tokens, done = 0, False
            async for line in response.content:
                if TOKEN_CHUNK in line:
                    tokens += 1
                    meter.add_tokens(1)
                elif line.startswith(b'data: {"error"'):
                    raise BenchmarkError(f"stream ended in an error: {line[:200]!r}")
                elif line.startswith(b"data: [DONE]"):
                    done = True
        if not done or tokens != max_tokens:
            raise BenchmarkError(f"stream held {tokens} tokens (done={done}); want {max_tokens}")

    return send


async def scrape(session: aiohttp.ClientSession) -> dict[tuple[str, str], float]:
    """Prometheus samples as {(name, queue or endpoint label), value}, summed over the rest."""
    async with session.get("/metrics") as response:
        text = await response.text()
    samples: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, s.labels.get("queue", s.labels.get("endpoint", "")))
            samples[key] = samples.get(key, 0.0) + s.value
    return samples


def mean_batch(
    before: dict[tuple[str, str], float], after: dict[tuple[str, str], float], queue: str
) -> float:
    """Mean batch size of one scheduler queue between two scrapes."""
    total, count = (
        after.get((f"slabench_batch_size_{part}", queue), 0.0)
        - before.get((f"slabench_batch_size_{part}", queue), 0.0)
        for part in ("sum", "count")
    )
    return total / count if count else float("nan")


async def wait_idle(session: aiohttp.ClientSession, timeout_s: float = 120.0) -> None:
    """Wait until the server has nothing in flight (cancelled clients leave some work)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        samples = await scrape(session)
        busy = samples.get(("slabench_inflight_requests", ""), 0.0)
        if busy + samples.get(("slabench_running_sequences", ""), 0.0) == 0:
            return
        await asyncio.sleep(0.05)
    raise BenchmarkError(f"the server was still busy {timeout_s:g}s after the clients stopped")


async def _client(session: aiohttp.ClientSession, send: Send, meter: Meter) -> None:
    while True:
        try:
            await send(session, meter)
        except (aiohttp.ClientError, TimeoutError, BenchmarkError) as exc:
            if meter.measuring:
                meter.errors += 1
                meter.first_error = meter.first_error or f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.01)  # never spin on a refusing server
            continue
        if meter.measuring:
            meter.requests += 1


def other_cores_during(fn: Callable[[], float]) -> tuple[float, float]:
    """Run ``fn`` in this process; return its result and the cores everything else on the
    machine kept busy meanwhile."""
    me = psutil.Process()
    cpu0, started = _cpu_s(me), time.perf_counter()
    result = fn()
    cpu1, elapsed = _cpu_s(me), time.perf_counter() - started
    mine, machine = (b - a for a, b in zip(cpu0, cpu1, strict=True))
    return result, max(0.0, (machine - mine) / elapsed)


def _cpu_s(*procs: psutil.Process) -> list[float]:
    machine = psutil.cpu_times()
    busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
    return [sum(p.cpu_times()[:2]) for p in procs] + [busy]


async def closed_loop(
    server: ServerProcess,
    send: Send,
    *,
    label: str,
    concurrency: int,
    warmup_s: float,
    measure_s: float,
    batch_queue: str | None = None,
) -> Window:
    """``concurrency`` clients send back to back; figures cover ``measure_s`` after warm-up."""
    connector = aiohttp.TCPConnector(limit=concurrency + 2)  # + the /metrics scrapes
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    meter, procs = Meter(), (psutil.Process(server.pid), psutil.Process())
    async with aiohttp.ClientSession(server.url, connector=connector, timeout=timeout) as session:
        tasks = [asyncio.create_task(_client(session, send, meter)) for _ in range(concurrency)]
        try:
            await asyncio.sleep(warmup_s)
            before = await scrape(session)
            cpu0, started = _cpu_s(*procs), time.perf_counter()
            meter.measuring = True
            await asyncio.sleep(measure_s)
            meter.measuring = False
            elapsed, cpu = time.perf_counter() - started, _cpu_s(*procs)
            after = await scrape(session)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await wait_idle(session)
    if meter.errors:
        print(f"  ! {label}: {meter.errors} failed requests, first: {meter.first_error}")
    batch = mean_batch(before, after, batch_queue) if batch_queue else float("nan")
    server_s, client_s, machine_s = (b - a for a, b in zip(cpu0, cpu, strict=True))
    return Window(label, meter.requests, meter.errors, meter.tokens, elapsed,
                  server_s, client_s, machine_s, batch)  # fmt: skip


WINDOW_HEADERS = ("req/s", "mean batch", "server cores", "client cores", "other cores", "errors")


def window_cells(w: Window) -> list[object]:
    return [w.requests_per_s, w.mean_batch, *w.cores(), w.errors]


def print_header(
    title: str, module: str, server_args: Mapping[str, Sequence[str]], notes: Sequence[str]
) -> None:
    import torch  # deferred: only for the version line

    print(f"== {title}  ({time.strftime('%Y-%m-%d %H:%M')})")
    print(f"command: .venv/bin/python -m {module} {shlex.join(sys.argv[1:])}".rstrip())
    print(
        f"machine: {platform.machine()}, {psutil.cpu_count()} logical CPUs, "
        f"python {platform.python_version()}, torch {torch.__version__}"
    )
    for name, args in server_args.items():
        print(f"server {name}: {server_command(args)}")
    for note in notes:
        print(f"note: {note}")
    print(flush=True)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    print(flush=True)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def spread(values: Sequence[float]) -> str:
    """``median (min .., max ..)`` of a figure measured in several rounds."""
    return f"{statistics.median(values):.2f} (min {min(values):.2f}, max {max(values):.2f})"


def ratio_line(name: str, ratios: Sequence[float], target: float, quiet: Sequence[bool]) -> bool:
    """Print the per-round ratios against the target (quiet rounds marked ``q``), and the
    median of the quiet rounds alone; True when the median of all rounds meets it."""
    ok = statistics.median(ratios) >= target
    rounds = ", ".join(f"{r:.2f}{'q' if q else ''}" for r, q in zip(ratios, quiet, strict=True))
    verdict = "met" if ok else "MISSED"
    print(f"{name}: ratio {spread(ratios)}  per round [{rounds}]  target >= {target:g}: {verdict}")
    calm = [r for r, q in zip(ratios, quiet, strict=True) if q]
    print(
        f"  quiet rounds (other cores < {QUIET_OTHER_CORES:g} throughout): "
        + (f"{len(calm)}, ratio {spread(calm)}" if calm else "none")
    )
    return ok


def start_server(args: Sequence[str], startup_timeout_s: float = 180.0) -> ServerProcess | None:
    """The reference server started with ``args``; None, after one line on stderr, when it
    did not start (the caller exits 2: there is nothing to measure)."""
    try:
        return ServerProcess(args=list(args), startup_timeout_s=startup_timeout_s).start()
    except ServerStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def run(main: Callable[[], Coroutine[object, object, int]]) -> int:
    """Entry point of a benchmark script: its exit code, or 2 with one line on stderr when
    a server did not start or requests failed (the figures would mean nothing)."""
    try:
        return asyncio.run(main())
    except (BenchmarkError, ServerStartError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def add_batching_options(
    p: argparse.ArgumentParser,
    *,
    rounds: int,
    concurrency: int,
    endpoints: str,
    queue_delay_ms: float = 2.0,
) -> None:
    """The options the two dynamic-batching benchmarks share (model sizes, windows, batcher)."""
    p.add_argument("--rounds", type=int, default=rounds)
    p.add_argument("--concurrency", type=int, default=concurrency)
    p.add_argument("--warmup-s", type=float, default=1.0)
    p.add_argument("--measure-s", type=float, default=4.0)
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--max-queue-delay-ms", type=float, default=queue_delay_ms)
    p.add_argument("--mlp-hidden", type=int, default=4096)
    p.add_argument("--mlp-layers", type=int, default=3)
    p.add_argument("--mlp-in-features", type=int, default=256)
    p.add_argument("--embed-dim", type=int, default=512)
    p.add_argument("--embed-layers", type=int, default=2)
    p.add_argument("--embed-input-bytes", type=int, default=8, help="tokens = bytes + BOS")
    p.add_argument("--endpoints", default=endpoints, help="comma-separated")
