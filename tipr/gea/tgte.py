"""Text-Guided Token Enhancement (TGTE): text tokens read the generated image of their own caption.

The GEA abstract says only that TGTE "introduces diffusion-generated images as intermediate semantic
representations" that "enrich the semantic representation of text". Our reading (the project's own):

- the generated image is encoded by the shared image encoder into patch tokens ``g [B, N, d]`` (joint space);
- each TGTE layer is a gated cross-attention block in the style of Flamingo: text tokens ``x [B, L, d]``
  attend to ``g``, then a feed-forward network, each added as a residual scaled by ``tanh(gate)``::

      x <- x + tanh(a) * CrossAttn(LN(x), LN(g))
      x <- x + tanh(b) * FFN(LN(x))

  with the scalar gates ``a = b = 0`` at initialisation, so training starts from plain CLIP: with the gates
  closed the output tokens equal the input tokens exactly;
- the enhanced EOT token (``eot_feature``) is the query feature used for retrieval, which stays two-tower;
- a sample with no generated image (its row of ``gen_mask`` all False) and padded text positions
  (``text_mask`` False) are passed through unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class _GatedCrossAttentionLayer(nn.Module):
    def __init__(self, dim: int, heads: int, ff_mult: int, dropout: float) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_mult * dim), nn.GELU(), nn.Linear(ff_mult * dim, dim))
        self.attn_gate = nn.Parameter(torch.zeros(()))
        self.ff_gate = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor, gen: Tensor, ignore: Tensor) -> Tensor:
        kv = self.norm_kv(gen)
        attended, _ = self.attn(self.norm_q(x), kv, kv, key_padding_mask=ignore, need_weights=False)
        x = x + torch.tanh(self.attn_gate) * attended
        return x + torch.tanh(self.ff_gate) * self.ff(self.norm_ff(x))


class TGTE(nn.Module):
    """Gated cross-attention from text tokens to generated-image tokens (see the module docstring)."""

    def __init__(self, *, dim: int, heads: int, layers: int = 1, ff_mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"TGTE: dim={dim} must be divisible by heads={heads}")
        if layers < 1:
            raise ValueError(f"TGTE: layers must be >= 1, got {layers}")
        self.dim = dim
        self.layers = nn.ModuleList(_GatedCrossAttentionLayer(dim, heads, ff_mult, dropout) for _ in range(layers))

    def forward(
        self,
        text_tokens: Tensor,
        text_mask: Tensor | None,
        gen_tokens: Tensor,
        gen_mask: Tensor | None = None,
    ) -> Tensor:
        """Enhanced text tokens ``[B, L, d]``.

        ``text_mask [B, L]`` marks real text tokens (None: all), ``gen_mask [B, N]`` the valid generated-image
        tokens (None: all); a row of ``gen_mask`` that is all False means "no generated image".
        """
        b, l, d = _check_tokens("text_tokens", text_tokens, self.dim)
        bg, n, _ = _check_tokens("gen_tokens", gen_tokens, self.dim)
        if bg != b:
            raise ValueError(f"TGTE: text_tokens has batch {b} but gen_tokens has batch {bg}")
        text_mask = _bool_mask("text_mask", text_mask, (b, l), text_tokens.device)
        gen_mask = _bool_mask("gen_mask", gen_mask, (b, n), text_tokens.device)
        has_gen = gen_mask.any(dim=1)
        # a row with every key masked gives NaN attention; let it attend to everything and discard the result
        ignore = ~(gen_mask | ~has_gen[:, None])
        x = text_tokens
        for layer in self.layers:
            x = layer(x, gen_tokens, ignore)
        update = text_mask & has_gen[:, None]
        # torch.where (not x * mask) so untouched tokens are bit-identical to the input
        return torch.where(update[..., None], x, text_tokens)


def eot_feature(tokens: Tensor, eot_index: Tensor) -> Tensor:
    """The token at ``eot_index [B]`` of each row of ``tokens [B, L, d]``: the (enhanced) query feature.

    For open_clip's tokenizer the EOT position is ``token_ids.argmax(-1)`` (EOT has the largest id).
    """
    if tokens.dim() != 3 or eot_index.shape != (tokens.shape[0],):
        raise ValueError(
            f"eot_feature expects tokens [B, L, d] and eot_index [B], got {tuple(tokens.shape)} and "
            f"{tuple(eot_index.shape)}"
        )
    if eot_index.numel() and (int(eot_index.min()) < 0 or int(eot_index.max()) >= tokens.shape[1]):
        raise ValueError(f"eot_index must lie in [0, {tokens.shape[1]}), got {eot_index.tolist()}")
    rows = torch.arange(tokens.shape[0], device=tokens.device)
    return tokens[rows, eot_index.to(tokens.device)]


def _check_tokens(name: str, tokens: Tensor, dim: int) -> tuple[int, int, int]:
    if tokens.dim() != 3 or tokens.shape[-1] != dim:
        raise ValueError(f"{name} must have shape [B, tokens, {dim}], got {tuple(tokens.shape)}")
    return tuple(tokens.shape)  # type: ignore[return-value]


def _bool_mask(name: str, mask: Tensor | None, shape: tuple[int, int], device: torch.device) -> Tensor:
    if mask is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    if tuple(mask.shape) != shape:
        raise ValueError(f"{name} must have shape {list(shape)}, got {tuple(mask.shape)}")
    return mask.to(device=device, dtype=torch.bool)
