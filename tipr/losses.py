"""Losses shared by the methods: the symmetric InfoNCE baseline, and which pairs of a batch are no negatives."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def same_image_mask(image_ids: Tensor) -> Tensor:
    """[B, B] bool: True where two *different* rows of a batch are pairs of the same image.

    Two captions of one image describe the same picture, so neither is a negative for the other's image:
    ``info_nce(..., exclude=same_image_mask(ids))`` leaves them out of both softmaxes.
    """
    ids = torch.as_tensor(image_ids).reshape(-1)
    same = ids[:, None] == ids[None, :]
    return same & ~torch.eye(len(ids), dtype=torch.bool, device=ids.device)


def info_nce(img: Tensor, txt: Tensor, tau: float, targets: Tensor | None = None,
             exclude: Tensor | None = None, row_weights: Tensor | None = None) -> Tensor:
    """Symmetric InfoNCE over L2-normalised features: image-to-text plus text-to-image.

    The two directions are summed, as in ECCA's eq. 19 (CLIP averages them: halve this for
    that convention). ``targets`` [B, B] are soft labels, row i the weights of every pair j
    as a positive for anchor i, used in both directions (rows must sum to 1); ``None`` means
    the paired sample is the only positive (one-hot on the diagonal). ``exclude`` [B, B] bool
    (e.g. ``same_image_mask``) removes entries from both softmaxes: they are neither negatives
    nor positives (their target weight goes to the row's other entries in proportion). ``row_weights`` [B] >= 0
    weigh each pair's two anchor terms (its image against every text, its text against every image) in a weighted
    mean; a pair of weight 0 is still a negative of the others.
    """
    if img.dim() != 2 or img.shape != txt.shape:
        raise ValueError(f"info_nce expects img and txt of the same shape [B, d], got {tuple(img.shape)} "
                         f"and {tuple(txt.shape)}")
    if tau <= 0:
        raise ValueError(f"info_nce: temperature tau must be > 0, got {tau}")
    logits = F.normalize(img.float(), dim=-1) @ F.normalize(txt.float(), dim=-1).t() / tau
    if exclude is not None:
        if exclude.shape != logits.shape or exclude.dtype != torch.bool:
            raise ValueError(f"info_nce: exclude must be a bool [B, B] = {tuple(logits.shape)} mask, got "
                             f"{exclude.dtype} {tuple(exclude.shape)}")
        exclude = exclude.to(logits.device) & ~torch.eye(len(logits), dtype=torch.bool, device=logits.device)
        if not exclude.any():
            exclude = None
    if targets is None and exclude is None and row_weights is None:
        labels = torch.arange(img.shape[0], device=img.device)
        return F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)
    if targets is None:
        targets = torch.eye(len(logits), device=logits.device)
    if targets.shape != logits.shape:
        raise ValueError(f"info_nce: targets must be [B, B] = {tuple(logits.shape)}, got {tuple(targets.shape)}")
    targets = targets.to(logits)
    per_pair = (_soft_cross_entropy(logits, targets, exclude)
                + _soft_cross_entropy(logits.t(), targets, None if exclude is None else exclude.t()))
    return weighted_mean(per_pair, row_weights)


def weighted_mean(values: Tensor, weights: Tensor | None) -> Tensor:
    """Mean of per-pair losses [B]; with ``weights`` [B] (>= 0, not all 0) the weighted mean."""
    if weights is None:
        return values.mean()
    if weights.shape != values.shape or bool((weights < 0).any()) or not bool(weights.sum() > 0):
        raise ValueError(f"row weights must be [B] = {list(values.shape)}, >= 0 and not all 0; got "
                         f"{list(weights.shape)} summing to {float(weights.sum()):g}")
    weights = weights.to(values)
    return (weights * values).sum() / weights.sum()


def _soft_cross_entropy(logits: Tensor, targets: Tensor, exclude: Tensor | None) -> Tensor:
    """Per row: -sum_j targets_ij log softmax_j(logits_i), excluded entries dropped from both."""
    if exclude is not None:
        logits = logits.masked_fill(exclude, float("-inf"))
        targets = targets.masked_fill(exclude, 0.0)
        targets = targets / targets.sum(1, keepdim=True).clamp_min(torch.finfo(targets.dtype).tiny)
    log_p = F.log_softmax(logits, dim=1)
    return -(targets * log_p.masked_fill(targets == 0, 0.0)).sum(1)
