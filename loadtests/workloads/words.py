"""The plain words synthetic prompts are written in (ASCII, at least two letters each)."""

from __future__ import annotations

import numpy as np

__all__ = ["WORDS", "words_text"]

_WORD_TEXT = """the of and to in is that it for on with as was at by be this from are or an have not
    they which one you had her all she there would their we him been has when who will more
    no if out so said what up its about into than them can only other new some could time
    these two may then do first any my now such like our over man me even most made after
    also did many before must through back years where much your way well down should because
    each just those people how too little state good very make world still own see men work
    long get here between both life being under never day same another know while last might
    us great old year off come since against go came right used take three small large house
    water light river stone paper window garden market letter number morning evening story
    question answer simple model server request token batch queue memory signal value"""
WORDS = tuple(_WORD_TEXT.split())


def words_text(head: str, n_chars: int, rng: np.random.Generator) -> str:
    """Exactly ``n_chars`` characters of words after ``head`` (longer if the head is)."""
    # Every word has >= 2 letters, so n_chars // 3 + 1 words (each with its space) always suffice.
    picks = rng.integers(0, len(WORDS), size=n_chars // 3 + 1)
    text = " ".join([head, *(WORDS[k] for k in picks.tolist())])[: max(n_chars, len(head))]
    return text[:-1] + "." if text.endswith(" ") else text
