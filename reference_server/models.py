"""Models built in code with seeded weights: nothing is downloaded, compute is real.

- ``CausalLM``: decoder-only transformer with a slot-based KV cache, for generation.
- ``Encoder``: bidirectional transformer with mean pooling, for embeddings.
- ``MLPClassifier``: a dense classifier, for KServe V2 tensors.
"""

from __future__ import annotations

import itertools
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from reference_server.config import ClassifierConfig, EmbedderConfig, LMConfig
from reference_server.tokenizer import PAD, VOCAB_SIZE


def _init_weights(module: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith("bias"):
                param.zero_()
            elif "norm" in name:
                param.fill_(1.0)
            else:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.02)


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def split_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, D) -> three (B, H, T, D/H) tensors."""
        b, t, d = x.shape
        qkv = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, v

    def finish(self, x: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        b, _, t, _ = attn.shape
        x = x + self.proj(attn.transpose(1, 2).reshape(b, t, -1))
        return x + self.mlp(self.norm2(x))


def _blocks(modules: nn.ModuleList) -> list[_Block]:
    return cast("list[_Block]", list(modules))


class KVCache:
    """Preallocated keys/values: ``[layers, slots, heads, max_len, head_dim]``.

    A running sequence owns one slot; continuous batching decodes any set of slots together.
    """

    def __init__(self, cfg: LMConfig, slots: int, device: torch.device, dtype: torch.dtype):
        shape = (cfg.layers, slots, cfg.heads, cfg.max_model_len, cfg.dim // cfg.heads)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)


class CausalLM(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        if cfg.dim % cfg.heads:
            raise ValueError(f"lm dim {cfg.dim} is not divisible by heads {cfg.heads}")
        self.cfg = cfg
        self.embed = nn.Embedding(VOCAB_SIZE, cfg.dim)
        self.pos = nn.Embedding(cfg.max_model_len, cfg.dim)
        self.blocks = nn.ModuleList(_Block(cfg.dim, cfg.heads) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.dim)
        _init_weights(self, cfg.seed)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x) @ self.embed.weight.T  # tied output embedding

    @torch.inference_mode()
    def prefill(self, ids: torch.Tensor, slot: int, cache: KVCache, start: int = 0) -> torch.Tensor:
        """Run a prompt (1-D ids), fill ``slot`` of the cache, return the last logits.

        With ``start`` > 0 the slot already holds the keys and values of ``ids[:start]``
        (copied from the prefix cache): only ``ids[start:]`` is computed, at positions
        ``start...``, attending over the whole prefix.
        """
        t = ids.shape[0]
        x = self.embed(ids[start:])[None] + self.pos.weight[start:t][None]
        # Query i (position start + i) sees keys 0..start + i: causal, shifted by start.
        mask = None
        if start:
            keys_at = torch.arange(t, device=ids.device)
            mask = keys_at[None] <= keys_at[start:, None]
        for i, block in enumerate(_blocks(self.blocks)):
            q, k, v = block.split_qkv(x)
            cache.k[i, slot, :, start:t] = k[0]
            cache.v[i, slot, :, start:t] = v[0]
            if mask is None:
                attn = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                keys, values = cache.k[i, slot, :, :t][None], cache.v[i, slot, :, :t][None]
                attn = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
            x = block.finish(x, attn)
        return self._logits(x[0, -1])

    @torch.inference_mode()
    def decode(
        self, ids: torch.Tensor, slots: torch.Tensor, positions: torch.Tensor, cache: KVCache
    ) -> torch.Tensor:
        """One token for each of B sequences: ids/slots/positions are 1-D of length B.

        Fastest when ``slots`` is an ascending run (lo, lo+1, ...): attention then reads the
        cache in place. Any other set of slots is gathered (copied) first, every layer.
        """
        b = ids.shape[0]
        # One host sync for both the attention span and the slot layout.
        meta = torch.cat([positions.max().reshape(1), slots]).tolist()
        span, first = meta[0] + 1, meta[1]
        run = meta[1:] == list(range(first, first + b))
        x = (self.embed(ids) + self.pos(positions))[:, None]
        # Keys at positions > a sequence's own position belong to nobody: mask them out.
        valid = torch.arange(span, device=ids.device)[None] <= positions[:, None]
        mask = valid[:, None, None, :]
        for i, block in enumerate(_blocks(self.blocks)):
            q, k, v = block.split_qkv(x)
            cache.k[i, slots, :, positions] = k[:, :, 0]
            cache.v[i, slots, :, positions] = v[:, :, 0]
            if run:
                keys = cache.k[i, first : first + b, :, :span]
                values = cache.v[i, first : first + b, :, :span]
            else:  # slice before gathering: indexing first would copy all of max_len
                keys = cache.k[i, :, :, :span].index_select(0, slots)
                values = cache.v[i, :, :, :span].index_select(0, slots)
            x = block.finish(x, F.scaled_dot_product_attention(q, keys, values, attn_mask=mask))
        return self._logits(x[:, 0])


class Encoder(nn.Module):
    def __init__(self, cfg: EmbedderConfig) -> None:
        super().__init__()
        if cfg.dim % cfg.heads:
            raise ValueError(f"embedder dim {cfg.dim} is not divisible by heads {cfg.heads}")
        self.cfg = cfg
        self.embed = nn.Embedding(VOCAB_SIZE, cfg.dim)
        self.pos = nn.Embedding(cfg.max_input_len, cfg.dim)
        self.blocks = nn.ModuleList(_Block(cfg.dim, cfg.heads) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.dim)
        _init_weights(self, cfg.seed)

    @torch.inference_mode()
    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids padded with PAD -> (B, dim) unit-norm embeddings."""
        keep = ids != PAD
        x = self.embed(ids) + self.pos.weight[: ids.shape[1]][None]
        mask = keep[:, None, None, :]
        for block in _blocks(self.blocks):
            q, k, v = block.split_qkv(x)
            x = block.finish(x, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
        x = self.norm(x) * keep[..., None]
        pooled = x.sum(1) / keep.sum(1, keepdim=True).clamp(min=1)
        return F.normalize(pooled.float(), dim=-1)


class MLPClassifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        self.cfg = cfg
        widths = [cfg.in_features] + [cfg.hidden] * (cfg.layers - 1)
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(widths):
            layers += [nn.Linear(a, b), nn.GELU()]
        layers.append(nn.Linear(widths[-1], cfg.classes))
        self.net = nn.Sequential(*layers)
        _init_weights(self, cfg.seed)

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).float()
