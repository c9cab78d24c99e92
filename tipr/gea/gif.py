"""Generative Intermediate Fusion (GIF): a cross-encoder matching score s(t, g, v) and top-K re-ranking.

The GEA abstract says GIF "combines cross-attention between generated images, original images, and text
features to generate a unified representation optimized by triplet alignment loss". Our reading (the
project's own):

- Architecture. A learnable fusion CLS token is prepended to the text tokens ``t [B, L, d]``; each of the
  ``layers`` fusion blocks is a pre-norm transformer decoder layer: self-attention among [CLS; text],
  cross-attention from [CLS; text] to the visual memory [generated-image tokens g; original-image tokens v]
  (one softmax over both images, so every text token weighs what it imagined against what the candidate
  shows), then a feed-forward network. The streams are layer-normed and tagged with learned type embeddings
  (text / generated / original). The final CLS state is the unified representation; ``LayerNorm -> Linear``
  maps it to the scalar score ``s(t, g, v)``.
- Training (``gif_loss``). For each query, its paired image is the positive and the ``num_negatives``
  hardest negatives are mined from the (detached) two-tower similarity matrix ``sim [B, B]``. Negatives never
  include the query's own pair; with identities, they also exclude every image of the query's identity (no
  identity leak into the negatives). Scores are trained with ``tal_from_scores`` (TAL, one direction: query
  -> candidates). In the unsupervised view another image of the same person can be mined as a negative;
  nothing can prevent that without identities.
- Retrieval stays two-tower (faiss-indexable); ``rerank`` only reorders the top-K two-tower candidates it is
  given, with final score ``base + weight * s`` (cosine plus fusion score; TAL's margin puts ``s`` on the
  same scale as cosine differences). Ties keep the two-tower order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from tipr.gea.tal import tal_from_scores
from tipr.gea.tgte import _bool_mask, _check_tokens

_TEXT, _GENERATED, _ORIGINAL = 0, 1, 2


class GIF(nn.Module):
    """Fusion transformer over [text; generated image; original image] with a scalar matching head."""

    def __init__(self, *, dim: int, heads: int, layers: int, ff_mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"GIF: dim={dim} must be divisible by heads={heads}")
        if layers < 1:
            raise ValueError(f"GIF: layers must be >= 1, got {layers}")
        self.dim = dim
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.type_embed = nn.Parameter(torch.randn(3, dim) * 0.02)
        self.norm_text = nn.LayerNorm(dim)
        self.norm_visual = nn.LayerNorm(dim)
        block = nn.TransformerDecoderLayer(
            dim, heads, ff_mult * dim, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerDecoder(block, layers)
        self.norm_out = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 1)

    def score(
        self,
        text_tokens: Tensor,
        text_mask: Tensor | None,
        gen_tokens: Tensor | None,
        img_tokens: Tensor,
        *,
        gen_mask: Tensor | None = None,
        img_mask: Tensor | None = None,
    ) -> Tensor:
        """Matching score ``[B]`` of row-aligned (text, generated image, original image) triples.

        ``gen_tokens=None`` (or a ``gen_mask`` row all False) scores without a generated image.
        """
        b, l, _ = _check_tokens("text_tokens", text_tokens, self.dim)
        bi, n, _ = _check_tokens("img_tokens", img_tokens, self.dim)
        if bi != b:
            raise ValueError(f"GIF.score: text_tokens has batch {b} but img_tokens has batch {bi}")
        device = text_tokens.device
        text_mask = _bool_mask("text_mask", text_mask, (b, l), device)
        img_mask = _bool_mask("img_mask", img_mask, (b, n), device)
        memory = [self.norm_visual(img_tokens) + self.type_embed[_ORIGINAL]]
        keep = [img_mask]
        if gen_tokens is not None:
            bg, ng, _ = _check_tokens("gen_tokens", gen_tokens, self.dim)
            if bg != b:
                raise ValueError(f"GIF.score: text_tokens has batch {b} but gen_tokens has batch {bg}")
            memory.insert(0, self.norm_visual(gen_tokens) + self.type_embed[_GENERATED])
            keep.insert(0, _bool_mask("gen_mask", gen_mask, (b, ng), device))
        tgt = torch.cat([self.cls.expand(b, -1, -1), self.norm_text(text_tokens) + self.type_embed[_TEXT]], 1)
        tgt_keep = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=device), text_mask], 1)
        fused = self.blocks(
            tgt,
            torch.cat(memory, 1),
            tgt_key_padding_mask=~tgt_keep,
            memory_key_padding_mask=~torch.cat(keep, 1),
        )
        return self.head(self.norm_out(fused[:, 0])).squeeze(-1)


def hard_negatives(sim: Tensor, pids: Tensor | None, num_negatives: int) -> tuple[Tensor, Tensor]:
    """Indices ``[B, M]`` of each query's hardest negative images in ``sim [B, B]`` and their validity mask.

    Excluded: the query's own pair (diagonal) and, with ``pids``, every image of the query's identity.
    ``M = min(num_negatives, B - 1)``; rows with fewer admissible images mark the rest invalid.
    """
    if sim.dim() != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"sim must be the square two-tower similarity [B, B], got {tuple(sim.shape)}")
    if num_negatives < 1:
        raise ValueError(f"num_negatives must be >= 1, got {num_negatives}")
    batch = sim.shape[0]
    excluded = torch.eye(batch, dtype=torch.bool, device=sim.device)
    if pids is not None:
        if pids.shape != (batch,):
            raise ValueError(f"pids must have shape [{batch}], got {tuple(pids.shape)}")
        pids = pids.to(sim.device)
        excluded |= pids[:, None] == pids[None, :]
    m = min(num_negatives, batch - 1)
    masked = sim.detach().float().masked_fill(excluded, float("-inf"))
    values, index = masked.topk(m, dim=1)
    return index, torch.isfinite(values)


def gif_loss(
    gif: GIF,
    text_tokens: Tensor,
    text_mask: Tensor | None,
    gen_tokens: Tensor | None,
    img_tokens: Tensor,
    sim: Tensor,
    pids: Tensor | None,
    *,
    num_negatives: int,
    tau: float,
    margin: float,
    gen_mask: Tensor | None = None,
) -> Tensor:
    """TAL on GIF scores: each query's paired image against its hardest two-tower negatives.

    Rows are complete pairs (query text + its own image); pass only those. ``sim [B, B]`` (texts x images) is
    used for mining only (detached).
    """
    b = text_tokens.shape[0]
    if b < 2:
        raise ValueError(f"gif_loss needs at least 2 pairs in the batch to mine a negative, got {b}")
    neg_index, neg_valid = hard_negatives(sim, pids, num_negatives)
    m = neg_index.shape[1]
    query = torch.arange(b, device=text_tokens.device).repeat_interleave(1 + m)
    candidate = torch.cat([torch.arange(b, device=neg_index.device)[:, None], neg_index], 1).flatten()
    candidate = candidate.to(img_tokens.device)
    scores = gif.score(
        text_tokens[query],
        None if text_mask is None else text_mask[query],
        None if gen_tokens is None else gen_tokens[query],
        img_tokens[candidate],
        gen_mask=None if gen_mask is None else gen_mask[query],
    ).view(b, 1 + m)
    return tal_from_scores(scores[:, 0], scores[:, 1:], tau=tau, margin=margin, neg_mask=neg_valid)


class FusionQuery(NamedTuple):
    """Query side of GIF: text tokens ``[Q, L, d]`` (or ``[L, d]`` for one query), mask, generated tokens."""

    text_tokens: Tensor
    text_mask: Tensor | None
    gen_tokens: Tensor | None
    gen_mask: Tensor | None = None


CandidateTokens = Tensor | Callable[[Tensor], Tensor]


@torch.no_grad()
def rerank(
    gif: GIF,
    query: FusionQuery,
    candidate_ids: Tensor,
    candidate_img_tokens: CandidateTokens,
    base_scores: Tensor,
    *,
    weight: float,
    batch_size: int = 256,
) -> tuple[Tensor, Tensor]:
    """Reorder each query's K two-tower candidates by ``base_scores + weight * gif.score``.

    ``candidate_ids [Q, K]`` (``[K]`` for one query) index the gallery; ``candidate_img_tokens`` is either the
    gallery's token bank ``[G, N, d]`` or a function ``ids [n] -> tokens [n, N, d]``. Returns the candidate ids
    and their final scores, both ``[Q, K]`` (``[K]`` for one query) in descending order: a permutation of the
    given candidates, never adding or dropping one. Pairs are scored ``batch_size`` at a time, without grad, in
    eval mode (the module's mode is restored afterwards).
    """
    single = candidate_ids.dim() == 1
    text_tokens, text_mask, gen_tokens, gen_mask = query
    if single:
        candidate_ids, base_scores = candidate_ids[None], base_scores[None]
        text_tokens = text_tokens[None]
        text_mask = None if text_mask is None else text_mask[None]
        gen_tokens = None if gen_tokens is None else gen_tokens[None]
        gen_mask = None if gen_mask is None else gen_mask[None]
    if candidate_ids.dim() != 2 or base_scores.shape != candidate_ids.shape:
        raise ValueError(
            f"candidate_ids and base_scores must both be [Q, K] (or [K]), got {tuple(candidate_ids.shape)} and "
            f"{tuple(base_scores.shape)}"
        )
    q, k = candidate_ids.shape
    if text_tokens.shape[0] != q:
        raise ValueError(f"query has {text_tokens.shape[0]} text rows but candidate_ids has {q} queries")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if callable(candidate_img_tokens):
        fetch = candidate_img_tokens
    else:
        bank = candidate_img_tokens
        if bank.dim() != 3:
            raise ValueError(f"candidate_img_tokens must be a [G, N, d] bank or a function, got {tuple(bank.shape)}")

        def fetch(ids: Tensor) -> Tensor:
            return bank[ids.to(bank.device)]

    device = next(gif.parameters()).device
    flat_ids = candidate_ids.flatten()
    fused = torch.empty(q * k, device=device)
    was_training = gif.training
    gif.eval()
    try:
        for start in range(0, q * k, batch_size):
            rows = torch.arange(start, min(start + batch_size, q * k))
            qi = rows // k
            fused[rows.to(device)] = gif.score(
                text_tokens[qi].to(device),
                None if text_mask is None else text_mask[qi].to(device),
                None if gen_tokens is None else gen_tokens[qi].to(device),
                fetch(flat_ids[rows]).to(device),
                gen_mask=None if gen_mask is None else gen_mask[qi].to(device),
            ).float()
    finally:
        gif.train(was_training)
    final = base_scores.float() + weight * fused.view(q, k).to(base_scores.device)
    final, order = final.sort(dim=1, descending=True, stable=True)
    ids = candidate_ids.gather(1, order.to(candidate_ids.device))
    return (ids[0], final[0]) if single else (ids, final)


def rerank_top_k(
    gif: GIF,
    query: FusionQuery,
    scores: Tensor,
    candidate_img_tokens: CandidateTokens,
    *,
    top_k: int,
    weight: float,
    batch_size: int = 256,
) -> Tensor:
    """Two-tower ``scores [Q, N]`` with each query's top ``top_k`` re-ranked by GIF and lifted above the rest.

    The re-ranked candidates keep their new order (``rerank``) and sort before every other column, whose
    two-tower order is unchanged: their final scores are shifted by ``max(scores) - min(final) + 1``. Columns
    index ``candidate_img_tokens`` (a token bank or a function of column ids). This is the ranking that
    ``tipr.evaluate`` measures and the app shows.
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be [Q, N] (one row per query), got {tuple(scores.shape)}")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    base, candidates = scores.topk(min(top_k, scores.shape[1]), dim=1)
    ids, final = rerank(gif, query, candidates, candidate_img_tokens, base, weight=weight, batch_size=batch_size)
    lift = scores.max(dim=1, keepdim=True).values - final.min(dim=1, keepdim=True).values + 1.0
    return scores.scatter(1, ids, (final + lift).to(scores.dtype))
