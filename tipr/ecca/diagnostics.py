"""Measurements of how ECCA's pieces behave on a model's features: collapse shows here before it shows in R1.

- ``prototype_code_stats``: EPGA's predictions and Sinkhorn codes over the K unified prototypes. Uniform codes
  (entropy near log K) and flat scores (small per-row spread) mean the prototypes cluster nothing.
- ``random_pair_cosine``: the mean cosine between a caption and an image of another person. A collapsed
  embedding (everything in one cone) scores every pair alike, near 1.
- ``completion_weight_ratio``: FMC's largest over smallest neighbour weight per sample; 1 means completion
  is a plain mean and the neighbours' distances are thrown away.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from tipr.ecca.epga import sinkhorn
from tipr.ecca.fmc import fmc_complete


def _entropy(p: Tensor) -> Tensor:
    return -(p * p.clamp_min(1e-30).log()).sum(-1)


def prototype_code_stats(features: Tensor, prototypes: Tensor, *, tau: float, epsilon: float,
                         sinkhorn_iters: int) -> dict[str, float]:
    """Mean entropy of the predictions softmax(scores / tau) and of the Sinkhorn codes (nats; log K is uniform),
    the mean per-row spread max - min of the cosine scores, and log K, for features [N, d] and prototypes [K, d]."""
    scores = F.normalize(features.float(), dim=-1) @ F.normalize(prototypes.float(), dim=-1).t()
    codes = sinkhorn(scores, n_iters=sinkhorn_iters, epsilon=epsilon)
    return {"prediction_entropy": float(_entropy(F.softmax(scores / tau, dim=1)).mean()),
            "code_entropy": float(_entropy(codes).mean()),
            "score_spread": float((scores.max(1).values - scores.min(1).values).mean()),
            "log_K": math.log(prototypes.shape[0])}


def random_pair_cosine(text: Tensor, image: Tensor, text_pids: Tensor, image_pids: Tensor) -> float:
    """Mean cosine over every (caption, image) pair of different people."""
    sims = F.normalize(text.float(), dim=-1) @ F.normalize(image.float(), dim=-1).t()
    other = torch.as_tensor(text_pids)[:, None] != torch.as_tensor(image_pids)[None, :]
    if not other.any():
        raise ValueError("random_pair_cosine needs captions and images of at least two people")
    return float(sims[other].mean())


def completion_weight_ratio(anchor: Tensor, pool: Tensor, *, k_prime: int, temperature: float) -> float:
    """Mean over anchors [N, d] of FMC's largest / smallest weight over their k' nearest rows of pool [M, d]."""
    a, p = F.normalize(anchor.float(), dim=-1), F.normalize(pool.float(), dim=-1)
    rows = (a @ p.t()).topk(min(k_prime, len(p)), dim=1).indices
    _, weights = fmc_complete(a, p[rows], temperature=temperature)
    return float((weights.max(1).values / weights.min(1).values.clamp_min(1e-30)).mean())
