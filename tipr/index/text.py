"""The text side of a gallery with captions: caption and noun-phrase features for the app's Captionless tab."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def caption_phrases(captions: Sequence[str]) -> list[str]:
    """The distinct normalised noun phrases of the captions, sorted."""
    if not captions:
        return []
    from tipr.ecca.noun_phrases import caption_noun_phrases

    return sorted({p for c in dict.fromkeys(captions) for p in caption_noun_phrases(c)})


@torch.inference_mode()
def encode_captions(model, texts: Sequence[str], *, batch_size: int = 256) -> np.ndarray:
    """L2-normalised text features [n, d] float32 (the plain text tower)."""
    device = next(model.parameters()).device
    chunks = [model.encode_texts(model.tokenize(list(texts[i:i + batch_size])).to(device)).float().cpu().numpy()
              for i in range(0, len(texts), batch_size)]
    return np.concatenate(chunks) if chunks else np.zeros((0, model.backbone.embed_dim), np.float32)
