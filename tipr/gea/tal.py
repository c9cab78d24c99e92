r"""Triplet alignment loss (TAL) of RDE (Qin et al., CVPR 2024), used by GEA for the two-tower features and
for GIF's fusion scores.

For a score matrix :math:`A` (rows are anchors, columns candidates), the positive set :math:`P(i)` of row
:math:`i` (same identity, or only the paired column when no identities are given) and its complement
:math:`N(i)`:

.. math::

    \alpha_{ij} = \mathrm{sg}\Big[\frac{\exp(A_{ij}/\tau)}{\sum_{k \in P(i)} \exp(A_{ik}/\tau)}\Big],
    \qquad
    \ell_i(A) = \Big[\, m - \sum_{j \in P(i)} \alpha_{ij} A_{ij}
                 + \tau \log \sum_{k \in N(i)} \exp(A_{ik}/\tau) \Big]_+

``sg`` is stop-gradient. :math:`\tau \log\sum_k \exp(A_{ik}/\tau)` is a smooth upper bound of the hardest
negative :math:`\max_{k \in N(i)} A_{ik}` (tight as :math:`\tau \to 0`), so the loss asks the (softly
weighted) positive to beat every negative by the margin :math:`m`. With cosine similarities
:math:`S = \hat t\,\hat v^\top` (texts x images) it is applied in both directions:

.. math::  \mathcal L_{TAL} = \frac{1}{B} \sum_i \big[\ell_i(S) + \ell_i(S^\top)\big]

Project choices where RDE differs or is silent: RDE sums the per-sample losses over the batch (weighted by its
clean-pair labels); we average over the batch so that the loss weight does not depend on the batch size. A
row with no negative at all (every sample in the batch shares its identity) contributes 0. Scores are
computed in float32 (``1/tau`` ~ 67 amplifies half-precision rounding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_tau(tau: float) -> None:
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")


def _negative_bound(neg_scores: Tensor, neg_valid: Tensor, tau: float) -> tuple[Tensor, Tensor]:
    """tau * logsumexp(neg / tau) over the valid entries of each row, and whether a row has any."""
    has_neg = neg_valid.any(dim=1)
    logits = (neg_scores / tau).masked_fill(~neg_valid, float("-inf"))
    # rows without a negative would give logsumexp(-inf...) = -inf and a NaN gradient; they are zeroed below
    logits = torch.where(has_neg[:, None], logits, torch.zeros_like(logits))
    return tau * torch.logsumexp(logits, dim=1), has_neg


def _tal_rows(scores: Tensor, positive: Tensor, tau: float, margin: float) -> Tensor:
    """Per-row TAL of a score matrix whose positives are marked by the boolean ``positive`` (same shape)."""
    with torch.no_grad():
        alpha = torch.softmax((scores / tau).masked_fill(~positive, float("-inf")), dim=1)
    pos = (alpha * scores).sum(dim=1)
    bound, has_neg = _negative_bound(scores, ~positive, tau)
    per_row = (margin - pos + bound).clamp(min=0)
    return torch.where(has_neg, per_row, torch.zeros_like(per_row))


def tal_loss(
    img: Tensor, txt: Tensor, pids: Tensor | None = None, *, tau: float, margin: float
) -> Tensor:
    """Bidirectional TAL between paired image and text features ``[B, d]`` (normalised here).

    ``pids [B]`` makes every pair of the same identity a positive (several per row); ``None`` keeps only the
    diagonal (instance-level positives, for the unsupervised view that carries no identities).
    """
    _check_tau(tau)
    if img.dim() != 2 or img.shape != txt.shape:
        raise ValueError(
            f"tal_loss expects img and txt of the same shape [B, d], got {tuple(img.shape)} and {tuple(txt.shape)}"
        )
    batch = img.shape[0]
    if pids is None:
        positive = torch.eye(batch, dtype=torch.bool, device=img.device)
    else:
        if pids.shape != (batch,):
            raise ValueError(f"tal_loss expects pids of shape [{batch}], got {tuple(pids.shape)}")
        pids = pids.to(img.device)
        positive = pids[:, None] == pids[None, :]
    scores = F.normalize(txt.float(), dim=-1) @ F.normalize(img.float(), dim=-1).t()  # [texts, images]
    per_pair = _tal_rows(scores, positive, tau, margin) + _tal_rows(scores.t(), positive.t(), tau, margin)
    return per_pair.mean()


def tal_from_scores(
    pos: Tensor,
    neg: Tensor,
    *,
    tau: float,
    margin: float,
    neg_mask: Tensor | None = None,
) -> Tensor:
    """One-direction TAL for scores that are not cosine matrices (e.g. GIF's cross-encoder scores).

    ``pos [B]`` is each anchor's positive score, ``neg [B, M]`` its negatives' scores (``neg_mask [B, M]``
    marks the valid ones when rows have fewer than M): mean over rows of
    ``[margin - pos + tau * logsumexp(neg / tau)]_+``; a row with no valid negative contributes 0.
    """
    _check_tau(tau)
    if pos.dim() != 1 or neg.dim() != 2 or neg.shape[0] != pos.shape[0]:
        raise ValueError(
            f"tal_from_scores expects pos [B] and neg [B, M], got {tuple(pos.shape)} and {tuple(neg.shape)}"
        )
    if neg_mask is None:
        neg_mask = torch.ones_like(neg, dtype=torch.bool)
    elif neg_mask.shape != neg.shape:
        raise ValueError(f"neg_mask must have the shape of neg {tuple(neg.shape)}, got {tuple(neg_mask.shape)}")
    bound, has_neg = _negative_bound(neg.float(), neg_mask.bool(), tau)
    per_row = (margin - pos.float() + bound).clamp(min=0)
    return torch.where(has_neg, per_row, torch.zeros_like(per_row)).mean()
