"""The attribute oracle: a ranker that reads each gallery image's true attributes, the ceiling of SynthPEDES.

A caption is read into the attribute values it names (tipr.data.caption_attributes); an image scores the sum,
over those claims that its recorded attributes satisfy, of the claim's rarity -log(share of gallery images with
that value), so an image matching a rare claim ranks above one matching a common one. Images with equal scores
are ordered at random (seeded): the oracle knows no more than the caption says. What no model can beat on this
benchmark is therefore what the captions leave open, and every table shows it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from tipr.data.caption_attributes import caption_attributes
from tipr.data.records import EvalSplit
from tipr.metrics import rank_metrics

# what a person looks like: the attributes the neighbour agreement compares (view and scene left out)
LOOKS = ("gender", "hair_style", "hair_colour", "upper_type", "upper_colour", "upper_pattern", "lower_type",
         "lower_colour", "shoes_colour", "bag_type", "bag_colour", "headwear", "headwear_colour", "glasses", "carry")


def oracle_scores(captions: Sequence[str], image_attributes: Sequence[Mapping[str, Any] | None], *,
                  seed: int = 0) -> torch.Tensor:
    """Scores [num_captions, num_images]; ties broken by a seeded random order of the images."""
    if not image_attributes or any(a is None for a in image_attributes):
        raise ValueError("the attribute oracle needs every gallery image's attributes (SynthPEDES records them); "
                         "this split has images without an 'attributes' record")
    claims = [caption_attributes(c) for c in captions]
    pairs = sorted({(k, repr(v)) for claim in claims for k, v in claim.items()})
    column = {p: i for i, p in enumerate(pairs)}
    matches = torch.zeros(len(pairs), len(image_attributes))
    for i, (key, value) in enumerate(pairs):
        matches[i] = torch.tensor([repr(a.get(key)) == value for a in image_attributes], dtype=torch.float32)
    share = matches.mean(1)
    rarity = torch.where(share > 0, -torch.log(share.clamp_min(1e-12)), torch.zeros_like(share))
    weights = torch.zeros(len(captions), len(pairs))
    for q, claim in enumerate(claims):
        for k, v in claim.items():
            weights[q, column[(k, repr(v))]] = rarity[column[(k, repr(v))]]
    scores = (weights.double() @ matches.double()).round(decimals=6)
    order = torch.randperm(len(image_attributes), generator=torch.Generator().manual_seed(seed)).double()
    return (scores + order / (len(image_attributes) * 1e7)).float() if len(image_attributes) < 10 ** 6 else scores


def attribute_oracle(split: EvalSplit, *, seed: int = 0) -> dict[str, float]:
    """R1/R5/R10/mAP/mINP of the attribute oracle on `split` (percent), like `tipr.evaluate.evaluate`."""
    if len(split.image_attributes) != split.num_images:
        raise ValueError(f"the split has {len(split.image_attributes)} attribute records for {split.num_images} "
                         "images; load a SynthPEDES dataset (its annotation records each image's attributes)")
    scores = oracle_scores(split.captions, split.image_attributes, seed=seed)
    return rank_metrics(scores, torch.tensor(split.caption_pids), torch.tensor(split.image_pids))


def agreement(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """The share of LOOKS on which two people's true attributes agree."""
    return sum(a.get(key) == b.get(key) for key in LOOKS) / len(LOOKS)
