"""Feature-level Missing-modality Completion (ECCA eq. 8-11).

The nodes of one sample's graph are [g_1 = anchor, g_2.. = its k' HSNG neighbours (+ extra nodes)]; the
edges are S_ij = exp(cos(g_i, g_j) / T) (eq. 10 has T = 1), normalised by the degree matrix Z: A = Z^-1 S (eq. 9), so
every row of A is a distribution over the nodes. The completed feature is the anchor's row of A applied to
the neighbour nodes (eq. 8), renormalised over them: a convex combination of features of the missing
modality. The paper's literal product also keeps the anchor's self-loop A_11, which mixes the anchor into
the completion and scales (completed - anchor) by (1 - A_11); ``self_loop=True`` gives that reading.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def affinity_matrix(nodes: Tensor, mask: Tensor | None = None, *, temperature: float = 1.0) -> Tensor:
    """A = Z^-1 S with S_ij = exp(cos(g_i, g_j) / temperature) over nodes [B,n,d]; masked-out nodes get no edges.

    temperature 1 is eq. 9-10 as written; below 1 the weights follow the cosines more sharply (see docs/ecca.md).
    """
    if temperature <= 0:
        raise ValueError(f"affinity temperature must be > 0, got {temperature}")
    g = F.normalize(nodes, dim=-1)
    cos = g @ g.transpose(-1, -2)
    s = torch.exp((cos - cos.amax(-1, keepdim=True).detach()) / temperature)  # the shift cancels in Z^-1 S
    if mask is not None:
        m = mask.to(s.dtype)
        s = s * m[:, :, None] * m[:, None, :]
    return s / s.sum(-1, keepdim=True).clamp_min(torch.finfo(s.dtype).tiny)


def fmc_complete(anchor: Tensor, neighbours: Tensor, *, extra_nodes: Tensor | None = None,
                 extra_mask: Tensor | None = None, self_loop: bool = False,
                 temperature: float = 1.0) -> tuple[Tensor, Tensor]:
    """Complete the missing modality of each sample from its available feature and cross-modal neighbours.

    anchor [B,d] (e.g. t_m), neighbours [B,k',d] (e.g. N_k'(t_m) from the feature bank), extra_nodes
    [B,e,d] (e.g. GEA's generated image) with extra_mask [B,e] (False where a sample has none).
    Returns (completed [B,d], weights [B,k'+e]): completed = sum_j weights_j * node_j, weights >= 0 summing
    to 1 (masked nodes weigh 0); ``temperature`` divides the cosines of the edges. With ``self_loop=True`` the anchor is a node of the sum too and weights
    are [B,1+k'+e], anchor first. Gradients reach the anchor through the edges (and the sum when
    ``self_loop``), and the neighbours if they require grad.
    """
    if anchor.ndim != 2 or neighbours.ndim != 3 or neighbours.shape[0] != anchor.shape[0] \
            or neighbours.shape[2] != anchor.shape[1]:
        raise ValueError(f"anchor must be [B,d] and neighbours [B,k',d] with the same B and d, got "
                         f"{tuple(anchor.shape)} and {tuple(neighbours.shape)}")
    batch, k_prime = neighbours.shape[:2]
    nodes = [anchor[:, None, :], neighbours.to(anchor.dtype)]
    mask = torch.ones(batch, 1 + k_prime, dtype=torch.bool, device=anchor.device)
    if extra_nodes is not None:
        if extra_nodes.ndim != 3 or extra_nodes.shape[0] != batch or extra_nodes.shape[2] != anchor.shape[1]:
            raise ValueError(f"extra_nodes must be [B,e,d] = [{batch},e,{anchor.shape[1]}], got "
                             f"{tuple(extra_nodes.shape)}")
        if extra_mask is None:
            extra_mask = torch.ones(extra_nodes.shape[:2], dtype=torch.bool, device=anchor.device)
        elif extra_mask.shape != extra_nodes.shape[:2]:
            raise ValueError(f"extra_mask must be [B,e] = {list(extra_nodes.shape[:2])}, got "
                             f"{list(extra_mask.shape)}")
        nodes.append(extra_nodes.to(anchor.dtype))
        mask = torch.cat([mask, extra_mask.to(device=anchor.device, dtype=torch.bool)], dim=1)
    elif extra_mask is not None:
        raise ValueError("extra_mask was given without extra_nodes; pass both or neither")
    nodes_t = torch.cat(nodes, dim=1)
    if self_loop:
        row = affinity_matrix(nodes_t, mask, temperature=temperature)[:, 0]  # the anchor's row of A
    else:  # the anchor's row of A renormalised over the other nodes: Z cancels, a softmax of their cosines
        nodes_t, mask = nodes_t[:, 1:], mask[:, 1:]
        cos = torch.einsum("bd,bnd->bn", F.normalize(anchor, dim=-1), F.normalize(nodes_t, dim=-1))
        if temperature <= 0:
            raise ValueError(f"affinity temperature must be > 0, got {temperature}")
        row = torch.softmax((cos / temperature).masked_fill(~mask, float("-inf")), dim=-1)
    return torch.einsum("bn,bnd->bd", row, nodes_t), row


def fmc_loss(completed: Tensor, anchor: Tensor) -> Tensor:
    """One direction of eq. 11: mean over samples of ||completed - anchor||^2 (ṽ_m pulled toward t_m).

    Call it once per direction and add: fmc_loss(ṽ, t) + fmc_loss(t̃, v). Pass L2-normalised anchors, like
    the bank features the completion is made of. An empty batch gives a zero that keeps the graph.
    """
    if completed.shape != anchor.shape or completed.ndim != 2:
        raise ValueError(f"completed and anchor must both be [B,d], got {tuple(completed.shape)} and "
                         f"{tuple(anchor.shape)}")
    if completed.shape[0] == 0:
        return (completed.sum() + anchor.sum()) * 0.0
    return (completed - anchor).pow(2).sum(-1).mean()
