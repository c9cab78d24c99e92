"""Embedding a gallery with the model: its readable images, its captions and their noun phrases."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tipr.app.gallery_index import GalleryIndex
from tipr.app.gallery_source import GalleryError, GallerySource, subset
from tipr.data.images import UnreadableImage, read_image

log = logging.getLogger("tipr.app")

EmbedImages = Callable[[list[Any]], np.ndarray]  # decoded PIL images -> [n, d] normalised features
EmbedTexts = Callable[[list[str]], np.ndarray]


def drop_unreadable(source: GallerySource) -> GallerySource:
    """The source without the images that cannot be decoded (logged)."""
    bad = {}
    for i, p in enumerate(source.image_paths):
        try:
            read_image(p, max_side=64)
        except (UnreadableImage, FileNotFoundError) as err:
            bad[i] = str(err)
    if not bad:
        return source
    log.warning("skipping %d unreadable gallery images, e.g. %s", len(bad), "; ".join(list(bad.values())[:3]))
    if len(bad) == len(source.image_paths):
        raise GalleryError(f"none of the {len(bad)} images under {source.root} can be read, e.g. "
                           f"{next(iter(bad.values()))}")
    return subset(source, [i for i in range(len(source.image_paths)) if i not in bad])


def caption_phrases(captions: Sequence[str]) -> list[str]:
    """The distinct normalised noun phrases of the captions, sorted."""
    if not captions:
        return []
    from tipr.ecca.noun_phrases import caption_noun_phrases

    return sorted({p for c in dict.fromkeys(captions) for p in caption_noun_phrases(c)})


def build_index(source: GallerySource, embed_images: EmbedImages, embed_texts: EmbedTexts, fingerprint: str,
                *, batch_size: int = 64) -> GalleryIndex:
    """Embed every image (batches of ``batch_size``, decoded as evaluation does), caption and noun phrase."""
    feats = []
    for start in range(0, len(source.image_paths), batch_size):
        chunk = source.image_paths[start:start + batch_size]
        feats.append(embed_images([read_image(p) for p in chunk]))
        log.info("embedded %d / %d gallery images", start + len(chunk), len(source.image_paths))
    image_features = np.concatenate(feats).astype(np.float32)
    dim = image_features.shape[1]

    def texts(items: Sequence[str]) -> np.ndarray:
        if not items:
            return np.zeros((0, dim), np.float32)
        chunks = [embed_texts(list(items[i:i + 256])) for i in range(0, len(items), 256)]
        return np.concatenate(chunks).astype(np.float32)

    phrases = caption_phrases(source.captions)
    return GalleryIndex(source=source, image_features=image_features, caption_features=texts(source.captions),
                        phrases=phrases, phrase_features=texts(phrases), fingerprint=fingerprint)
