"""Automatic prefix caching (as vLLM's APC): the keys and values of full blocks of tokens,
kept after a prompt's prefill and after a sequence finishes (its prompt and generated tokens,
so that a multi-turn chat's next turn reuses the reply too), and copied into the slot of a
later request whose prompt starts the same.

A block is ``block_size`` consecutive tokens starting at a multiple of ``block_size``. Its
key chains the key of the block before it with its own token ids (blake2b), so a block
matches only when the whole prefix before it matches too; each entry also keeps its parent
key and token ids and a lookup compares them, so even a hash collision cannot hand a request
another prompt's keys and values.

The cache is a bounded LRU over bytes of KV. Entries are only read and changed on the event
loop's thread (lookups at admission and at a finish, inserts after the model thread copied
the blocks out); the model thread only copies tensors in and out. A request's blocks are
touched last-block first, so that its first block is the most recently used: the tail of a
prefix is evicted before its head, as in vLLM (a head evicted first would leave its tail
unreachable).
"""

from __future__ import annotations

import collections
import hashlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from reference_server.config import PrefixCacheConfig
from reference_server.models import KVCache

_ROOT = b""  # the parent key of a prompt's first block


@dataclass(frozen=True, slots=True)
class Block:
    """The keys and values of one block: ``[layers, heads, block_size, head_dim]`` each."""

    key: bytes
    parent: bytes
    tokens: tuple[int, ...]
    k: torch.Tensor
    v: torch.Tensor

    @property
    def nbytes(self) -> int:
        return self.k.nbytes + self.v.nbytes


@dataclass(frozen=True, slots=True)
class Lookup:
    """What the cache holds of one prompt: the chain keys of all its full blocks, and the
    blocks found (a run from the first)."""

    keys: tuple[bytes, ...]
    hits: tuple[Block, ...]
    epoch: int  # the cache's epoch when looked up: blocks computed before a reset are dropped

    def cached_tokens(self, prompt_len: int, block_size: int) -> int:
        """Prompt tokens taken from the cache: always leaves the last one to compute (its
        logits give the first output token), as vLLM does."""
        return min(len(self.hits) * block_size, prompt_len - 1)


def block_keys(ids: Sequence[int], block_size: int) -> tuple[bytes, ...]:
    """The chain key of every full block of ``ids``."""
    keys: list[bytes] = []
    parent = _ROOT
    for start in range(0, len(ids) - block_size + 1, block_size):
        tokens = array("H", ids[start : start + block_size]).tobytes()
        parent = hashlib.blake2b(parent + tokens, digest_size=16).digest()
        keys.append(parent)
    return tuple(keys)


class PrefixCache:
    def __init__(self, config: PrefixCacheConfig) -> None:
        self.config = config
        self.block_size = config.block_size
        self._blocks: collections.OrderedDict[bytes, Block] = collections.OrderedDict()
        self.nbytes = 0
        self.epoch = 0

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def __len__(self) -> int:
        return len(self._blocks)

    def lookup(self, ids: Sequence[int]) -> Lookup:
        if not self.enabled:
            return Lookup((), (), self.epoch)
        keys = block_keys(ids, self.block_size)
        hits: list[Block] = []
        parent = _ROOT
        for i, key in enumerate(keys):
            block = self._blocks.get(key)
            start = i * self.block_size
            if (
                block is None
                or block.parent != parent
                or block.tokens != tuple(ids[start : start + self.block_size])
            ):
                break
            hits.append(block)
            parent = key
        self._touch(hits)
        return Lookup(keys, tuple(hits), self.epoch)

    def insert(self, lookup: Lookup, new: Sequence[Block]) -> None:
        """Add the blocks computed for a prompt, or for a finished sequence's prompt and
        output (those its lookup missed); dropped if the cache was reset since the lookup."""
        if not self.enabled or lookup.epoch != self.epoch:
            return
        for block in new:
            if block.key not in self._blocks:
                self._blocks[block.key] = block
                self.nbytes += block.nbytes
        self._touch([*lookup.hits, *new])
        while self.nbytes > self.config.memory_bytes and self._blocks:
            _, evicted = self._blocks.popitem(last=False)
            self.nbytes -= evicted.nbytes

    def reset(self) -> None:
        """Empty the cache; blocks being computed now are dropped when they arrive."""
        self._blocks.clear()
        self.nbytes = 0
        self.epoch += 1

    def _touch(self, blocks: Sequence[Block]) -> None:
        for block in reversed(blocks):  # the first block ends up the most recently used
            if block.key in self._blocks:
                self._blocks.move_to_end(block.key)


# --- on the model thread ------------------------------------------------------------------


def copy_in(hits: Sequence[Block], slot: int, cache: KVCache, block_size: int) -> None:
    """Put cached blocks at the start of ``slot``."""
    if not hits:
        return
    end = len(hits) * block_size
    cache.k[:, slot, :, :end] = torch.cat([b.k for b in hits], dim=2)
    cache.v[:, slot, :, :end] = torch.cat([b.v for b in hits], dim=2)


def copy_out(
    lookup: Lookup, ids: Sequence[int], slot: int, cache: KVCache, block_size: int
) -> list[Block]:
    """The full blocks of ``slot`` that the lookup of ``ids`` missed: copied out after a
    prefill, or when a sequence finishes (``ids`` its prompt and the tokens fed back)."""
    blocks: list[Block] = []
    for i in range(len(lookup.hits), len(lookup.keys)):
        start, end = i * block_size, (i + 1) * block_size
        blocks.append(
            Block(
                key=lookup.keys[i],
                parent=lookup.keys[i - 1] if i else _ROOT,
                tokens=tuple(ids[start:end]),
                k=cache.k[:, slot, :, start:end].clone(),
                v=cache.v[:, slot, :, start:end].clone(),
            )
        )
    return blocks
