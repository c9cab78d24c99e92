"""Losses shared by the methods: the symmetric InfoNCE baseline."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def info_nce(img: Tensor, txt: Tensor, tau: float, targets: Tensor | None = None) -> Tensor:
    """Symmetric InfoNCE over L2-normalised features: image-to-text plus text-to-image.

    The two directions are summed, as in ECCA's eq. 19 (CLIP averages them: halve this for
    that convention). ``targets`` [B, B] are soft labels, row i the weights of every pair j
    as a positive for anchor i, used in both directions (rows must sum to 1); ``None`` means
    the paired sample is the only positive (one-hot on the diagonal).
    """
    if img.dim() != 2 or img.shape != txt.shape:
        raise ValueError(f"info_nce expects img and txt of the same shape [B, d], got {tuple(img.shape)} "
                         f"and {tuple(txt.shape)}")
    if tau <= 0:
        raise ValueError(f"info_nce: temperature tau must be > 0, got {tau}")
    logits = F.normalize(img.float(), dim=-1) @ F.normalize(txt.float(), dim=-1).t() / tau
    if targets is None:
        labels = torch.arange(img.shape[0], device=img.device)
        return F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)
    if targets.shape != logits.shape:
        raise ValueError(f"info_nce: targets must be [B, B] = {tuple(logits.shape)}, got {tuple(targets.shape)}")
    targets = targets.to(logits)
    i2t = -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()
    t2i = -(targets * F.log_softmax(logits.t(), dim=1)).sum(1).mean()
    return i2t + t2i
