"""A captionless image's completed text feature (ECCA's HSNG + FMC over the gallery's captions), what it is
close to, and how it changes where the image ranks for a caption."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tipr.app import ranks
from tipr.app.gallery_index import GalleryIndex
from tipr.app.ranks import rank_among
from tipr.ecca.config import ECCAConfig


class CompletionError(ValueError):
    """Completion cannot run on this gallery or input; the message says why."""


@dataclass
class Completion:
    neighbours: list[int]  # caption rows chosen by HSNG, most reliable first
    distances: list[float]  # their Jaccard distances (eq. 6)
    weights: list[float]  # their FMC affinity weights (eq. 8-10), summing to 1
    completed: np.ndarray  # [d] the completed text feature, L2-normalised
    nearest_captions: list[tuple[int, float]]  # (caption row, cosine to the completed feature)
    nearest_phrases: list[tuple[str, float]]
    probe: str  # the caption the image is ranked for
    probe_kind: str  # "held-out caption" | "nearest caption"
    rank_without: int | None  # None: beyond the best RANK_WITHIN
    rank_with: int | None
    gallery_size: int


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / max(float(np.linalg.norm(x)), 1e-12)


def complete_image(index: GalleryIndex, image_feature: np.ndarray, *, row: int | None = None, k: int = ECCAConfig.k,
                   k_prime: int = ECCAConfig.k_prime, top: int = 5, probe_feature=None,
                   temperature: float = ECCAConfig.fmc_temperature) -> Completion:
    """Complete the text side of one image: the gallery row ``row``, or an outside image when ``row`` is None.

    HSNG's cross bank is the gallery's caption features and its self bank the gallery's image features
    (only the images near the image's nearest captions, which is all HSNG reads of it);
    the completed feature is FMC's weighted sum of the chosen captions. The image is then ranked for a
    probe caption (its held-out caption when the gallery keeps one, else the caption nearest to the image)
    with its plain feature and with ``normalise(image + completed)`` among the gallery's best ``RANK_WITHIN``
    for that caption; the rest of the gallery is unchanged. ``probe_feature(text) -> [d]`` encodes a held-out
    caption.
    """
    from tipr.ecca import fmc_complete, hsng_neighbours

    captions = index.caption_features
    if len(captions) == 0:
        raise CompletionError("this gallery has no captions, so there is nothing to complete from: use a gallery "
                              "with a captions.json file or a dataset root (CUHK-PEDES, ICFG-PEDES, RSTPReid layout)")
    k = min(k, len(captions), len(index))
    k_prime = min(k_prime, k)
    v = _normalise(np.asarray(image_feature, dtype=np.float32))
    query = torch.from_numpy(v[None])
    # HSNG reads the image side only for the k-th nearest image of each of the image's k nearest captions
    _, near = index.search(captions[np.argsort(-(captions @ v), kind="stable")[:k]], k)
    own = index.vectors(np.unique(near[near >= 0]))
    idx, dist = hsng_neighbours(query, torch.from_numpy(captions), torch.from_numpy(own), k=k, k_prime=k_prime)
    neighbours = idx[0].tolist()
    completed, weights = fmc_complete(query, torch.from_numpy(captions[neighbours])[None], temperature=temperature)
    t = _normalise(completed[0].numpy())

    cap_scores = captions @ t
    nearest = np.argsort(-cap_scores, kind="stable")[:top]
    phrases = []
    if len(index.phrases):
        ph_scores = index.phrase_features @ t
        phrases = [(index.phrases[i], float(ph_scores[i])) for i in np.argsort(-ph_scores, kind="stable")[:top * 2]]

    held = index.source.held_out.get(row, []) if row is not None else []
    if held and probe_feature is not None:
        probe, kind, q = held[0], "held-out caption", _normalise(np.asarray(probe_feature(held[0]), np.float32))
    else:
        j = int(np.argmax(captions @ v))
        probe, kind, q = index.source.captions[j], "nearest caption", captions[j]
    scores, rows = index.search(q, ranks.RANK_WITHIN + 1)  # + 1: the image itself may be among them
    found = rows[0] >= 0
    others = scores[0][found & (rows[0] != (-1 if row is None else row))]
    complete = int(found.sum()) == len(index)
    return Completion(neighbours=neighbours, distances=dist[0].tolist(), weights=weights[0].tolist(), completed=t,
                      nearest_captions=[(int(i), float(cap_scores[i])) for i in nearest], nearest_phrases=phrases,
                      probe=probe, probe_kind=kind, rank_without=rank_among(others, float(v @ q), complete=complete),
                      rank_with=rank_among(others, float(_normalise(v + t) @ q), complete=complete),
                      gallery_size=len(index) + (row is None))
