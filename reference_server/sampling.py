"""Next-token selection for a batch of sequences, each with its own sampling parameters."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reference_server import tokenizer

# Random weights give near-uniform logits, so EOS would end about one answer in a hundred
# tokens. A fixed penalty makes natural lengths a few hundred tokens, closer to chat traffic.
EOS_PENALTY = 4.0

_ALLOWED = torch.full((tokenizer.VOCAB_SIZE,), float("-inf"))
_ALLOWED[list(tokenizer.PRINTABLE_IDS)] = 0.0
_ALLOWED[tokenizer.EOS] = -EOS_PENALTY


def sample_tokens(
    logits: torch.Tensor,
    *,
    temperatures: Sequence[float],
    top_ps: Sequence[float],
    allow_eos: Sequence[bool],
    generators: Sequence[torch.Generator | None],
) -> list[int]:
    """logits: (N, vocab) float32 on the CPU. Temperature 0 means greedy."""
    logits = logits + _ALLOWED
    blocked = [i for i, ok in enumerate(allow_eos) if not ok]
    if blocked:
        logits[blocked, tokenizer.EOS] = float("-inf")
    tokens = logits.argmax(dim=-1).tolist()
    # Rows on the default random stream without a top-p cut are sampled in one call (one
    # op per step instead of three per row); seeded rows keep their own stream, row by row,
    # so that a seed gives the same text whatever else is in the batch.
    shared = [
        i
        for i, t in enumerate(temperatures)
        if t > 0 and generators[i] is None and top_ps[i] >= 1.0
    ]
    if shared:
        scale = torch.tensor([temperatures[i] for i in shared])[:, None]
        probs = torch.softmax(logits[shared] / scale, dim=-1)
        for i, token in zip(shared, torch.multinomial(probs, 1)[:, 0].tolist(), strict=True):
            tokens[i] = token
    alone = set(shared)
    for i, temperature in enumerate(temperatures):
        if temperature > 0 and i not in alone:
            tokens[i] = _sample_row(logits[i] / temperature, top_ps[i], generators[i])
    return tokens


def _sample_row(logits: torch.Tensor, top_p: float, generator: torch.Generator | None) -> int:
    probs = torch.softmax(logits, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        # Keep the smallest prefix whose mass reaches top_p (always at least one token).
        drop = sorted_probs.cumsum(0) - sorted_probs >= top_p
        sorted_probs[drop] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))
