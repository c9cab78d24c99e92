"""Prototype fusion (ECCA eq. 1-2): shared learnable prototypes attend to an instance's tokens."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PrototypeFusion(nn.Module):
    """v_i = MHA(D, z_i, z_i): a transformer cross-attention block whose query is D (s x d).

    One instance serves both modalities (D is shared across images and texts, as the paper
    says). The block is pre-norm with residuals: x = D + Attn(LN(D), LN(z)); x = x + MLP(LN(x)).
    The paper does not say how the s outputs become one vector: here they are mean-pooled,
    projected, and added to the instance's global feature. The output projection starts at
    zero, so at initialisation forward() returns the global feature unchanged and training
    starts from plain CLIP.
    """

    def __init__(self, *, dim: int, num_prototypes: int = 400, heads: int = 8, mlp_ratio: float = 4.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"PrototypeFusion: dim ({dim}) must be divisible by heads ({heads})")
        self.prototypes = nn.Parameter(torch.randn(num_prototypes, dim) * dim**-0.5)
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.proj = nn.Linear(dim, dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, global_: Tensor, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        """global_ [B, d], tokens [B, N, d], mask [B, N] bool (True = valid) or None -> [B, d]."""
        if tokens.dim() != 3 or global_.shape != (tokens.shape[0], tokens.shape[2]):
            raise ValueError(f"PrototypeFusion expects global_ [B, d] and tokens [B, N, d], got "
                             f"{tuple(global_.shape)} and {tuple(tokens.shape)}")
        batch = tokens.shape[0]
        empty = None
        padding = None
        if mask is not None:
            if mask.shape != tokens.shape[:2]:
                raise ValueError(f"PrototypeFusion: mask must be [B, N] = {tuple(tokens.shape[:2])}, "
                                 f"got {tuple(mask.shape)}")
            mask = mask.bool()
            # a row with no valid token (missing modality) would give NaN attention: attend to all
            # tokens there and drop the residual below, so that row keeps its global feature
            empty = ~mask.any(dim=1)
            padding = ~(mask | empty[:, None])
        queries = self.prototypes.unsqueeze(0).expand(batch, -1, -1)
        kv = self.norm_kv(tokens)
        x = queries + self.attn(self.norm_q(queries), kv, kv, key_padding_mask=padding, need_weights=False)[0]
        x = x + self.mlp(self.norm_mlp(x))
        residual = self.proj(x.mean(dim=1))
        if empty is not None:
            residual = residual.masked_fill(empty[:, None], 0.0)
        return global_ + residual
