"""The prompt of each trace row, so that the trace's shared prefixes are shared for real.

    prompts = TracePrompts(sizer, block_size=512, seed=0)
    prompt = prompts.prompt(row)   # row.input_tokens tokens, max_tokens = row.output_tokens

Mooncake traces give each row the ids of its blocks of ``block_size`` prompt tokens: equal
ids mean equal content. Each id becomes one block of text of exactly ``block_size`` tokens
(with a tokenizer; else ``block_size`` x chars-per-token characters): it starts with the id
(``"17:"``), so blocks of distinct ids share no prefix, goes on with words drawn from a
generator seeded by the run's seed and the id, and ends with a newline. A row's prompt is its
blocks' texts in order, the last one cut to fit ``input_tokens``; when the blocks are fewer
than the row's length, the rest is text of the row's own (``"row 12:"``, 12 its line in the
file). Rows without ``hash_ids`` (Azure, BurstGPT) are text of their own only, so no two share
a prefix.

Blocks are made when a row first needs them and kept in a cache bounded in bytes (least
recently used out first); a block made again is the same text, so the bound changes speed,
never content.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from loadtests.workloads.datasets import Prompt
from loadtests.workloads.tokenizer import SizedText, Sizer
from loadtests.workloads.traces import TraceRow

__all__ = ["TracePrompts"]

_CACHE_BYTES = 64 * 1024 * 1024
_BLOCK, _ROW = 0, 1  # the two seed streams: blocks by id, rows by line


class TracePrompts:
    __slots__ = ("_block_size", "_blocks", "_budget", "_bytes", "_seed", "_sizer")

    def __init__(
        self, sizer: Sizer, block_size: int, seed: int, cache_bytes: int = _CACHE_BYTES
    ) -> None:
        self._sizer = sizer
        self._block_size = block_size
        self._seed = seed
        self._blocks: OrderedDict[int, SizedText] = OrderedDict()
        self._bytes = 0
        self._budget = cache_bytes

    def prompt(self, row: TraceRow) -> Prompt:
        left = row.input_tokens
        parts = []
        for block_id in row.hash_ids:
            if left <= 0:
                break
            take = min(left, self._block_size)
            parts.append(self.block(block_id).prefix(take))
            left -= take
        if left > 0:
            rng = np.random.default_rng((self._seed, _ROW, row.line))
            parts.append(self._sizer.sized(f"row {row.line}:", left, rng).text)
        return Prompt("".join(parts), None, row.input_tokens, row.output_tokens)

    def block(self, block_id: int) -> SizedText:
        """The text of block ``block_id`` (made once, then from the cache while it fits)."""
        block = self._blocks.get(block_id)
        if block is not None:
            self._blocks.move_to_end(block_id)
            return block
        # SeedSequence takes non-negative integers: a negative id gets a stream of its own.
        rng = np.random.default_rng((self._seed, _BLOCK, abs(block_id), int(block_id < 0)))
        block = self._sizer.sized(f"{block_id}:", self._block_size, rng, end="\n")
        self._blocks[block_id] = block
        self._bytes += _size(block)
        while self._bytes > self._budget and len(self._blocks) > 1:
            _, old = self._blocks.popitem(last=False)
            self._bytes -= _size(old)
        return block


def _size(block: SizedText) -> int:
    return len(block.text) + (4 * len(block.cuts) if block.cuts is not None else 0)
