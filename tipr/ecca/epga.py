"""Enhanced prototype-wise granularity alignment (ECCA eq. 20-24): swapped prototype prediction.

Both modalities are softly assigned to K unified prototypes C. Each modality's code, from
Sinkhorn-Knopp (without gradient), is the pseudo-label for the other modality's softmax over
prototypes, as in SwAV's swapped prediction, but across image and text instead of two views.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tipr.losses import weighted_mean


@torch.no_grad()
def sinkhorn(scores: Tensor, *, n_iters: int = 3, epsilon: float = 0.05) -> Tensor:
    """Soft codes Q [B, K] from scores [B, K] (SwAV's Sinkhorn-Knopp, equal prototype marginals).

    Each row sums to 1 (an assignment per sample); each column sums to about B / K, exactly
    in the limit of many iterations (the last step normalises the rows).
    """
    if scores.dim() != 2:
        raise ValueError(f"sinkhorn expects scores [B, K], got shape {tuple(scores.shape)}")
    if n_iters < 1 or epsilon <= 0:
        raise ValueError(f"sinkhorn needs n_iters >= 1 and epsilon > 0, got {n_iters} and {epsilon}")
    scores = scores.float() / epsilon
    q = torch.exp(scores - scores.max()).t()  # K x B; the global shift cancels in the normalisations
    num_prototypes, batch = q.shape
    q /= q.sum()
    for _ in range(n_iters):
        q /= q.sum(dim=1, keepdim=True) * num_prototypes  # each prototype gets 1/K of the mass
        q /= q.sum(dim=0, keepdim=True) * batch  # each sample gets 1/B of the mass
    return (q * batch).t()


def epga_loss(img: Tensor, txt: Tensor, prototypes: Tensor, *, tau: float, sinkhorn_iters: int,
              epsilon: float, row_weights: Tensor | None = None) -> Tensor:
    """L_EPGA (eq. 24): mean of -q_t . log p_v and -q_v . log p_t over the batch.

    img, txt [B, d] are paired features, prototypes [K, d] the unified prototypes C; all are
    L2-normalised here, so the scores are cosine similarities (eq. 20-21). ``row_weights`` [B] make the mean
    a weighted one (every pair still shares Sinkhorn's equipartition).
    """
    if img.dim() != 2 or img.shape != txt.shape or prototypes.dim() != 2 or prototypes.shape[1] != img.shape[1]:
        raise ValueError(f"epga_loss expects img, txt [B, d] and prototypes [K, d], got {tuple(img.shape)}, "
                         f"{tuple(txt.shape)} and {tuple(prototypes.shape)}")
    c = F.normalize(prototypes.float(), dim=-1)
    scores_v = F.normalize(img.float(), dim=-1) @ c.t()
    scores_t = F.normalize(txt.float(), dim=-1) @ c.t()
    q_v = sinkhorn(scores_v.detach(), n_iters=sinkhorn_iters, epsilon=epsilon)
    q_t = sinkhorn(scores_t.detach(), n_iters=sinkhorn_iters, epsilon=epsilon)
    loss_v = -(q_t * F.log_softmax(scores_v / tau, dim=1)).sum(1)  # eq. 22: image predicts the text's code
    loss_t = -(q_v * F.log_softmax(scores_t / tau, dim=1)).sum(1)  # eq. 23: text predicts the image's code
    return weighted_mean((loss_v + loss_t) / 2, row_weights)


class UnifiedPrototypes(nn.Module):
    """The K unified prototypes C shared by both modalities; forward() returns them L2-normalised."""

    def __init__(self, *, num_prototypes: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(F.normalize(torch.randn(num_prototypes, dim), dim=-1))

    def forward(self) -> Tensor:
        return F.normalize(self.weight, dim=-1)
