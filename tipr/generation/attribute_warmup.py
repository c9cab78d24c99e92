"""Attribute warm-up of the tiny generator's text tower: teach its pooled caption feature what the caption says
the person wears, before the UNet learns to draw from it.

A CLIP text tower trained only with InfoNCE on a few thousand captions barely separates "a red shirt and black
trousers" from "a black shirt and red trousers" (a linear probe on its pooled feature names the upper colour of
two test captions in five), and the diffusion loss alone is too weak a signal to fix that in a CPU budget. So,
on SynthPEDES, whose records carry the attributes they were rendered from, the tower is first fine-tuned with
linear heads that read each named attribute (upper / lower / shoe / hair colour, garment types, gender) off the
pooled feature. A head's target is the attribute's value only where the caption names it (one of that value's
words occurs), so the tower learns to read captions, not to guess what they leave out. At sampling time the
pipeline sees captions alone: the attributes shape training, never the input.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from tipr.data.synthetic_captions import COLOUR_WORDS, GENDER_WORDS, HAIR_COLOUR_WORDS, LOWER_WORDS, UPPER_WORDS

IGNORE = -100
# attribute key -> {value: words that name it in a caption}
ATTRIBUTE_WORDS: dict[str, Mapping[str, Sequence[str]]] = {
    "upper_colour": COLOUR_WORDS, "lower_colour": COLOUR_WORDS, "shoes_colour": COLOUR_WORDS,
    "hair_colour": HAIR_COLOUR_WORDS, "upper_type": UPPER_WORDS, "lower_type": LOWER_WORDS, "gender": GENDER_WORDS,
}


def names(caption: str, words: Sequence[str]) -> bool:
    """True where one of `words` occurs in `caption` as whole words, ignoring case."""
    text = caption.lower()
    return any(re.search(rf"\b{re.escape(w)}\b", text) for w in words)


def attribute_targets(captions: Sequence[str], attributes: Sequence[Mapping[str, Any] | None]
                      ) -> dict[str, torch.Tensor]:
    """Class index per caption for every attribute key, IGNORE where the record has no such value or the caption
    does not name it. Keys no caption names are left out."""
    targets = {}
    for key, vocabulary in ATTRIBUTE_WORDS.items():
        values = list(vocabulary)
        column = [values.index(a[key]) if a and a.get(key) in vocabulary and names(c, vocabulary[a[key]])
                  else IGNORE for c, a in zip(captions, attributes)]
        if any(v != IGNORE for v in column):
            targets[key] = torch.tensor(column)
    return targets


@dataclass
class WarmupResult:
    steps: int
    loss: float
    accuracy: dict[str, float]  # per attribute, on the training captions that name it, after the warm-up


def warm_up_text_tower(text_encoder: torch.nn.Module, token_ids: torch.Tensor, targets: dict[str, torch.Tensor], *,
                       pool, steps: int = 500, batch_size: int = 64, learning_rate: float = 5e-4,
                       weight_decay: float = 1e-2, seed: int = 0) -> WarmupResult:
    """Fine-tune `text_encoder` (token ids [N, L] -> token features [N, L, D]) so that `pool(features, ids)`
    [N, D] predicts `targets` with one linear head per attribute; the heads are thrown away afterwards."""
    width = pool(text_encoder(token_ids[:1]), token_ids[:1]).shape[-1]
    heads = torch.nn.ModuleDict({k: torch.nn.Linear(width, int(t.max()) + 1) for k, t in targets.items()})
    params = list(text_encoder.parameters()) + list(heads.parameters())
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    rng = torch.Generator().manual_seed(seed)
    was_training = text_encoder.training
    text_encoder.train().requires_grad_(True)
    loss = torch.tensor(float("nan"))
    for step in range(steps):
        for group in optimizer.param_groups:  # cosine decay, no warm-up: the heads start from zero knowledge
            group["lr"] = learning_rate * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * step / steps)).item())
        pick = torch.randint(len(token_ids), (batch_size,), generator=rng)
        pooled = pool(text_encoder(token_ids[pick]), token_ids[pick])
        losses = [F.cross_entropy(heads[k](pooled), t[pick], ignore_index=IGNORE)
                  for k, t in targets.items() if (t[pick] != IGNORE).any()]
        loss = torch.stack(losses).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    text_encoder.train(was_training).requires_grad_(False)
    with torch.no_grad():
        pooled = torch.cat([pool(text_encoder(ids), ids) for ids in token_ids.split(256)])
        accuracy = {k: (heads[k](pooled).argmax(-1) == t)[t != IGNORE].float().mean().item()
                    for k, t in targets.items()}
    return WarmupResult(steps=steps, loss=float(loss.detach()), accuracy=accuracy)
