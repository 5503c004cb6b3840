"""Continuous batching for text generation.

One scheduler task owns the decode batch. At every step boundary it drops finished,
cancelled and timed-out sequences, admits waiting requests into free KV-cache slots
(prefill, whose cost grows with the prompt tokens not found in the prefix cache, bounded by a
token budget per step), then
runs one decode step for every running sequence in a single batched forward. New requests
therefore join a running batch mid-generation instead of waiting for it to drain.

The prefix cache keeps the full blocks of each prompt after its prefill and, when a sequence
finishes (stop or length), those of its prompt + generated tokens, copied out of its slot
before the slot can be reused: a multi-turn chat's next prompt then reuses the reply too.

Model calls run on a dedicated thread so the event loop keeps streaming tokens meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from reference_server import prefix_cache, tokenizer
from reference_server.config import BatchingConfig, PrefixCacheConfig
from reference_server.errors import ApiError, Overloaded, RequestTimeout
from reference_server.faults import FaultInjector
from reference_server.metrics import ServerMetrics
from reference_server.models import CausalLM, KVCache
from reference_server.prefix_cache import Block, Lookup, PrefixCache
from reference_server.runtime import use_process_threads
from reference_server.sampling import sample_tokens
from reference_server.timings import SequenceStamps

log = logging.getLogger("reference_server")


@dataclass(frozen=True, slots=True)
class Finish:
    """Last item on a sequence's output queue."""

    reason: str  # "stop" (EOS), "length" (max_tokens) or "error"
    error: ApiError | None = None


@dataclass(eq=False)
class Sequence:
    prompt_ids: list[int]
    max_tokens: int
    min_tokens: int = 0
    ignore_eos: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    reasoning_tokens: int = 0  # the first this many generated tokens are reasoning
    arrived_at: float = field(default_factory=time.monotonic)
    out: asyncio.Queue[int | Finish] = field(default_factory=asyncio.Queue)
    slot: int = -1
    position: int = 0
    generated: int = 0
    last_token: int = 0
    last_token_at: float = 0.0
    cancelled: bool = False
    stopped: bool = False  # a stop string ended the answer: finish it as "stop" (cached)
    finished: bool = False
    generator: torch.Generator | None = None
    lookup: Lookup | None = None  # what the prefix cache held of the prompt at admission
    cached_tokens: int = 0  # prompt tokens taken from the prefix cache, not computed
    epoch: int = -1  # the prefix cache's epoch at admission: a reset since drops its blocks
    output_ids: list[int] = field(default_factory=list)  # the generated tokens, in order
    stamps: SequenceStamps = field(default_factory=SequenceStamps)  # for its server timings

    def __post_init__(self) -> None:
        if self.seed is not None:
            self.generator = torch.Generator().manual_seed(self.seed)


@dataclass(frozen=True, slots=True)
class _Retired:
    """A finished sequence's tokens whose keys and values are in ``slot``, and what the
    prefix cache held of them when it finished."""

    lookup: Lookup
    ids: list[int]
    slot: int


def _slot(seq: Sequence) -> int:
    return seq.slot


class GenerationEngine:
    def __init__(
        self,
        model: CausalLM,
        cache: KVCache,
        limits: BatchingConfig,
        metrics: ServerMetrics,
        faults: FaultInjector,
        prefix: PrefixCacheConfig | None = None,
    ) -> None:
        self._model = model
        self._cache = cache
        self._limits = limits
        self._metrics = metrics
        self._faults = faults
        self.prefix_cache = PrefixCache(prefix or PrefixCacheConfig())
        self._device = cache.k.device
        self._free_slots = list(range(limits.max_num_seqs))
        self._waiting: collections.deque[Sequence] = collections.deque()
        self._running: list[Sequence] = []
        # Finished sequences whose new full blocks are to be copied out of their (freed) slot
        # before the next admission can look them up or reuse the slot.
        self._retiring: list[_Retired] = []
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="generation", initializer=use_process_threads
        )

    @property
    def active(self) -> int:
        return len(self._waiting) + len(self._running)

    def submit(self, seq: Sequence) -> None:
        if len(self._waiting) >= self._limits.max_waiting:
            raise Overloaded("generation queue is full; retry later")
        self._waiting.append(seq)
        self._metrics.waiting.set(len(self._waiting))
        self._wake.set()

    def cancel(self, seq: Sequence) -> None:
        """The client went away: free its slot at the next step boundary."""
        seq.cancelled = True

    def abort_all(self, error: ApiError) -> None:
        for seq in [*self._waiting, *self._running]:
            self._finish(seq, Finish("error", error))
        self._waiting.clear()
        self._sync_gauges()

    def reset_prefix_cache(self) -> None:
        self.prefix_cache.reset()
        self._sync_cache_gauges()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._waiting and not self._running:
                self._wake.clear()
                await self._wake.wait()
            await self._faults.wait_if_stalled()
            self._expire(time.monotonic())
            if self._retiring:
                await self._keep_finished_blocks(loop)
            # Slot order: a full (or compactly filled) batch is then one ascending run of
            # slots, which CausalLM.decode attends to in place instead of gathering.
            decodes = sorted(self._running, key=_slot)
            prefills = self._admit()
            if not prefills and not decodes:
                continue
            try:
                tokens, computed = await loop.run_in_executor(
                    self._executor, self._step, prefills, decodes
                )
            except Exception:
                # One failed step (say, CUDA out of memory) fails its sequences, not the engine.
                self._fail_step(prefills + decodes)
                continue
            self._keep_blocks(prefills, computed)
            now, size = time.monotonic(), len(tokens)
            for seq in prefills:
                seq.stamps.first_token_at, seq.stamps.prefill_batch = now, len(prefills)
                self._metrics.prefill_time.observe(now - seq.stamps.admitted_at)
            for seq in decodes:
                stamps = seq.stamps
                stamps.decode_steps += 1
                stamps.decode_batch_sum += size
                if size > stamps.decode_batch_max:
                    stamps.decode_batch_max = size
            for seq, token in zip(prefills + decodes, tokens, strict=True):
                self._emit(seq, token, now)
            if self._retiring:
                await self._keep_finished_blocks(loop)
            self._metrics.batch_size.labels("generation").observe(len(tokens))
            self._sync_gauges()
            await self._faults.token_delay()

    def _fail_step(self, seqs: list[Sequence]) -> None:
        log.exception("generation step failed; failing its %d sequences", len(seqs))
        error = ApiError("model step failed; see the server log")
        for seq in seqs:
            self._finish(seq, Finish("error", error))
        self._sync_gauges()

    def _expire(self, now: float) -> None:
        timeout = self._limits.request_timeout_s
        for seq in [*self._waiting, *self._running]:
            if seq.stopped:
                self._retire(seq)
                self._finish(seq, Finish("stop"))
            elif seq.cancelled:
                self._finish(seq, Finish("error"))
            elif now - seq.arrived_at > timeout:
                self._finish(seq, Finish("error", RequestTimeout(f"no answer in {timeout:g}s")))
        self._waiting = collections.deque(s for s in self._waiting if not s.finished)

    def _admit(self) -> list[Sequence]:
        admitted: list[Sequence] = []
        budget = self._limits.max_prefill_tokens
        cache = self.prefix_cache
        while self._waiting and self._free_slots:
            head = self._waiting[0]
            lookup = cache.lookup(head.prompt_ids)
            cached = lookup.cached_tokens(len(head.prompt_ids), cache.block_size)
            cost = len(head.prompt_ids) - cached  # only what prefill computes
            if admitted and cost > budget:
                break  # the first admission always goes through, so long prompts cannot starve
            seq = self._waiting.popleft()
            seq.lookup, seq.cached_tokens, seq.epoch = lookup, cached, lookup.epoch
            budget -= cost
            if cache.enabled:
                self._metrics.prefix_cache_queries.inc(len(seq.prompt_ids))
                self._metrics.prefix_cache_hits.inc(cached)
            seq.slot = self._free_slots.pop(0)
            self._running.append(seq)
            admitted.append(seq)
            self._metrics.prompt_tokens.inc(len(seq.prompt_ids))
            seq.stamps.admitted_at = now = time.monotonic()
            self._metrics.queue_time.labels("generation").observe(now - seq.arrived_at)
        return admitted

    def _step(
        self, prefills: list[Sequence], decodes: list[Sequence]
    ) -> tuple[list[int], list[list[Block]]]:
        """Runs on the model thread: prefill new sequences (after their cached prefix),
        decode the running ones. Returns the tokens, and each prefill's newly computed full
        blocks for the prefix cache."""
        rows, computed = [], []
        block_size = self.prefix_cache.block_size
        for s in prefills:
            lookup = s.lookup or Lookup((), (), -1)
            prefix_cache.copy_in(lookup.hits, s.slot, self._cache, block_size)
            ids = torch.tensor(s.prompt_ids, device=self._device)
            rows.append(self._model.prefill(ids, s.slot, self._cache, start=s.cached_tokens))
            computed.append(
                prefix_cache.copy_out(lookup, s.prompt_ids, s.slot, self._cache, block_size)
            )
        if decodes:
            as_tensor = lambda values: torch.tensor(values, device=self._device)  # noqa: E731
            rows.append(
                self._model.decode(
                    as_tensor([s.last_token for s in decodes]),
                    as_tensor([s.slot for s in decodes]),
                    as_tensor([s.position for s in decodes]),
                    self._cache,
                )
            )
        logits = torch.cat([r.reshape(-1, r.shape[-1]) for r in rows]).float().cpu()
        seqs = prefills + decodes
        tokens = sample_tokens(
            logits,
            temperatures=[s.temperature for s in seqs],
            top_ps=[s.top_p for s in seqs],
            # no EOS before min_tokens, nor before the reasoning asked for is complete
            allow_eos=[
                not s.ignore_eos and s.generated >= max(s.min_tokens, s.reasoning_tokens)
                for s in seqs
            ],
            generators=[s.generator for s in seqs],
        )
        return tokens, computed

    def _keep_blocks(self, prefills: list[Sequence], computed: list[list[Block]]) -> None:
        for seq, blocks in zip(prefills, computed, strict=True):
            if seq.lookup is not None:
                self.prefix_cache.insert(seq.lookup, blocks)
                seq.lookup = None  # its blocks may be evicted now; do not hold them
        self._sync_cache_gauges()

    def _emit(self, seq: Sequence, token: int, now: float) -> None:
        seq.position = len(seq.prompt_ids) + seq.generated
        if seq.finished:
            return
        if seq.stopped:  # a complete answer, even if its client has gone since
            self._retire(seq)
            self._finish(seq, Finish("stop"))
            return
        if seq.cancelled:
            self._finish(seq, Finish("error"))
            return
        if token == tokenizer.EOS:
            self._retire(seq)
            self._finish(seq, Finish("stop"))
            return
        if seq.generated == 0:
            self._metrics.ttft.observe(now - seq.arrived_at)
        else:
            self._metrics.itl.observe(now - seq.last_token_at)
        seq.generated += 1
        seq.last_token, seq.last_token_at = token, now
        seq.stamps.last_token_at = now
        seq.output_ids.append(token)
        self._metrics.generated_tokens.inc()
        seq.out.put_nowait(token)
        if seq.generated >= seq.max_tokens:
            self._retire(seq)
            self._finish(seq, Finish("length"))

    def _retire(self, seq: Sequence) -> None:
        """A sequence finishing normally (EOS, max_tokens, a stop string): queue the copy of
        its full blocks not yet cached.

        Its slot holds the keys and values of ``seq.position`` tokens: the prompt and every
        generated token fed back so far (never the last one sampled, unless that was EOS,
        which is not a token of the answer)."""
        cache = self.prefix_cache
        if not cache.enabled or seq.epoch != cache.epoch or seq.slot < 0:
            return
        ids = seq.prompt_ids + seq.output_ids[: seq.position - len(seq.prompt_ids)]
        # The cached part of a chain is a run from its head (its tail is evicted first), so
        # the blocks after the lookup's hits are the ones to copy.
        lookup = cache.lookup(ids)
        if len(lookup.hits) < len(lookup.keys):
            self._retiring.append(_Retired(lookup, ids, seq.slot))

    async def _keep_finished_blocks(self, loop: asyncio.AbstractEventLoop) -> None:
        retired, self._retiring = self._retiring, []
        try:
            computed = await loop.run_in_executor(self._executor, self._copy_out, retired)
        except Exception:  # the answers are complete: only the caching of them is lost
            log.exception("copying %d finished sequences' blocks failed", len(retired))
            return
        for r, blocks in zip(retired, computed, strict=True):
            self.prefix_cache.insert(r.lookup, blocks)  # dropped if reset meanwhile
        self._sync_cache_gauges()

    def _copy_out(self, retired: list[_Retired]) -> list[list[Block]]:
        """Runs on the model thread, before any later prefill can write to these slots."""
        size = self.prefix_cache.block_size
        return [prefix_cache.copy_out(r.lookup, r.ids, r.slot, self._cache, size) for r in retired]

    def _finish(self, seq: Sequence, finish: Finish) -> None:
        if seq.finished:
            return
        seq.finished = True
        stamps = seq.stamps
        if finish.reason != "error" and stamps.first_token_at:
            self._metrics.decode_time.observe(
                max(0.0, stamps.last_token_at - stamps.first_token_at)
            )
        if seq.slot >= 0:
            self._running.remove(seq)
            self._free_slots.append(seq.slot)
            self._free_slots.sort()  # lowest slots first keeps the active set compact
            seq.slot = -1
        seq.out.put_nowait(finish)

    def _sync_cache_gauges(self) -> None:
        self._metrics.prefix_cache_blocks.set(len(self.prefix_cache))
        self._metrics.prefix_cache_bytes.set(self.prefix_cache.nbytes)

    def _sync_gauges(self) -> None:
        self._metrics.running.set(len(self._running))
        self._metrics.waiting.set(len(self._waiting))
