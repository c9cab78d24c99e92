"""Captions against the text tower's context: how many tokens each one takes, and the part the encoder sees.

CLIP's tokenizer (open_clip's ``SimpleTokenizer``) wraps a caption's BPE tokens in start and end tokens and
cuts anything longer than the context (77) to its first 76 tokens plus the end token: never an error, but a
caption's tail is silently dropped. ICFG-PEDES has such captions. ``long_captions`` counts them for a report,
``seen_text`` gives the words the encoder actually reads (WIGA's noun phrases must come from those alone).
Tokenizers without BPE access (Hugging Face text towers) are left alone: their captions are taken as seen.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


def _is_bpe(tokenizer: Any) -> bool:
    return all(hasattr(tokenizer, name) for name in ("bpe", "pat", "byte_encoder", "clean_fn", "context_length"))


def _word_spans(tokenizer: Any, caption: str) -> tuple[str, list[tuple[int, int]]]:
    """The cleaned text the tokenizer reads, and (end offset, BPE tokens) of each of its words."""
    text = tokenizer.clean_fn(caption)
    spans = []
    for match in tokenizer.pat.finditer(text):
        word = "".join(tokenizer.byte_encoder[b] for b in match.group().encode("utf-8"))
        spans.append((match.end(), len(tokenizer.bpe(word).split(" "))))
    return text, spans


def token_count(tokenizer: Any, caption: str) -> int | None:
    """Tokens of one caption before any cut, start and end tokens included (None for non-BPE tokenizers)."""
    if not _is_bpe(tokenizer):
        return None
    return 2 + sum(n for _, n in _word_spans(tokenizer, caption)[1])


def seen_text(tokenizer: Any, caption: str) -> str:
    """The caption as the encoder reads it: unchanged when it fits the context, else its cleaned text up to
    the last word whose tokens all fit (a word cut in the middle is left out)."""
    if not _is_bpe(tokenizer):
        return caption
    budget = tokenizer.context_length - 2  # start and end tokens
    text, spans = _word_spans(tokenizer, caption)
    if sum(n for _, n in spans) <= budget:
        return caption
    used, end = 0, 0
    for stop, n in spans:
        if used + n > budget:
            break
        used, end = used + n, stop
    return text[:end]


def seen_texts(tokenizer: Any, captions: Sequence[str]) -> list[str]:
    return [seen_text(tokenizer, caption) for caption in captions]


@dataclass(frozen=True)
class LongCaptions:
    """How many of ``total`` captions exceed ``context_length`` tokens, and the longest one's token count."""

    count: int
    total: int
    longest: int
    context_length: int

    def message(self, name: str) -> str:
        return (f"{name}: {self.count} of {self.total} captions are longer than the text encoder's "
                f"{self.context_length} tokens (the longest has {self.longest}); they are cut to their first "
                f"{self.context_length - 1} tokens and the end token, as CLIP does")


def long_captions(tokenizer: Any, captions: Sequence[str]) -> LongCaptions | None:
    """Count the captions the tokenizer will cut (None for non-BPE tokenizers)."""
    if not _is_bpe(tokenizer):
        return None
    counts = [token_count(tokenizer, c) or 0 for c in dict.fromkeys(captions)]
    context = tokenizer.context_length
    return LongCaptions(count=sum(n > context for n in counts), total=len(counts), longest=max(counts, default=0),
                        context_length=context)


def report_long_captions(tokenizer: Any, captions: Sequence[str], name: str) -> LongCaptions | None:
    """Log once, as a warning, how many distinct captions of a dataset the text tower will cut."""
    found = long_captions(tokenizer, captions)
    if found is not None and found.count:
        log.warning(found.message(name))
    return found
