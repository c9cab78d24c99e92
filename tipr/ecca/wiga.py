"""Weighted inter-instance granularity alignment (ECCA eq. 12-19).

Captions that share noun phrases (eq. 12, see noun_phrases.py) probably describe the same
person, so WIGA softens InfoNCE's one-hot targets with the phrase-set IoU of the captions:
targets = alpha * I + (1 - alpha) * W, where W is the IoU matrix row-normalised (eq. 14). The
sum in eq. 14 runs over every k, the anchor included, so W's diagonal holds IoU_ii = 1 / row sum.
A caption with no phrase (or a missing text) has an all-zero IoU row: its W row is one-hot on
itself, i.e. plain InfoNCE for that anchor.
"""

from __future__ import annotations

from collections.abc import Sequence, Set

import torch
from torch import Tensor

from tipr.losses import info_nce


def _iou_from_multi_hot(a: Tensor, b: Tensor) -> Tensor:
    inter = a @ b.t()
    union = a.sum(1, keepdim=True) + b.sum(1)[None] - inter
    return torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(inter))


def phrase_iou(sets_a: Sequence[Set[str]], sets_b: Sequence[Set[str]]) -> Tensor:
    """IoU of phrase sets (eq. 13): [A, B] float32, 0 where both sets are empty."""
    vocab: dict[str, int] = {}
    coords = []
    for offset, sets in ((0, sets_a), (len(sets_a), sets_b)):
        for row, phrases in enumerate(sets):
            coords.extend((offset + row, vocab.setdefault(p, len(vocab))) for p in phrases)
    multi_hot = torch.zeros(len(sets_a) + len(sets_b), max(len(vocab), 1))
    if coords:
        rows, cols = torch.tensor(coords).t()
        multi_hot[rows, cols] = 1.0
    return _iou_from_multi_hot(multi_hot[: len(sets_a)], multi_hot[len(sets_a):])


def weights_from_iou(iou: Tensor) -> Tensor:
    """Row-normalise a square IoU matrix (eq. 14); all-zero rows become one-hot on the diagonal."""
    if iou.dim() != 2 or iou.shape[0] != iou.shape[1]:
        raise ValueError(f"weights_from_iou expects a square [B, B] IoU matrix, got {tuple(iou.shape)}")
    eye = torch.eye(iou.shape[0], dtype=iou.dtype, device=iou.device)
    total = iou.sum(1, keepdim=True)
    return torch.where(total > 0, iou / total.clamp_min(1e-12), eye)


def wiga_weights(phrase_sets: Sequence[Set[str]]) -> Tensor:
    """W [B, B] of one batch's captions: rows sum to 1, the diagonal included."""
    return weights_from_iou(phrase_iou(phrase_sets, phrase_sets))


def wiga_loss(img: Tensor, txt: Tensor, weights: Tensor, *, alpha: float, tau: float = 0.02,
              exclude: Tensor | None = None, row_weights: Tensor | None = None) -> Tensor:
    """L_WIGA = i2t + t2i (eq. 15-19) with soft targets alpha * I + (1 - alpha) * W.

    ``exclude`` [B, B] bool (``tipr.losses.same_image_mask``): pairs that are not negatives of each other
    (two captions of one image), left out of both softmaxes; their share of W goes to the rest of the row.
    ``row_weights`` [B] weigh each pair as an anchor (``tipr.losses.info_nce``), e.g. less for completed pairs.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"wiga_loss: alpha must lie in [0, 1], got {alpha}")
    batch = img.shape[0]
    if weights.shape != (batch, batch):
        raise ValueError(f"wiga_loss: weights must be [B, B] = ({batch}, {batch}), got {tuple(weights.shape)}; "
                         "build them with wiga_weights() or PhraseIndex.weights() for this batch")
    eye = torch.eye(batch, device=img.device)
    targets = alpha * eye + (1.0 - alpha) * weights.to(device=img.device, dtype=torch.float32).detach()
    return info_nce(img, txt, tau, targets=targets, exclude=exclude, row_weights=row_weights)


class PhraseIndex:
    """Phrase sets of a whole dataset as integer ids, for building W of a batch every step.

    ``PhraseIndex(extract_noun_phrases(captions)).weights(batch["index"], has_text)`` gives
    the same W as ``wiga_weights`` on those captions, from a multi-hot matrix over only the
    phrases present in the batch.
    """

    def __init__(self, phrase_sets: Sequence[Set[str]]):
        self.vocab = sorted({p for phrases in phrase_sets for p in phrases})
        lookup = {p: i for i, p in enumerate(self.vocab)}
        ids = [sorted(lookup[p] for p in phrases) for phrases in phrase_sets]
        self.offsets = torch.tensor([0] + [len(row) for row in ids], dtype=torch.long).cumsum(0)
        self.ids = torch.tensor([i for row in ids for i in row], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def iou(self, indices: Tensor | Sequence[int], has_text: Tensor | None = None) -> Tensor:
        """IoU [B, B] of the captions at ``indices``; rows where ``has_text`` is False count as empty."""
        idx = torch.as_tensor(indices, dtype=torch.long).cpu().reshape(-1)
        if idx.numel() and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"PhraseIndex: indices must lie in [0, {len(self)}), got min {int(idx.min())} "
                             f"max {int(idx.max())}; build the index from the same caption list as the dataset")
        starts = self.offsets[idx]
        lengths = self.offsets[idx + 1] - starts
        if has_text is not None:
            lengths = lengths * torch.as_tensor(has_text).cpu().reshape(-1).bool()
        rows = torch.repeat_interleave(torch.arange(len(idx)), lengths)
        first = torch.repeat_interleave(starts - (lengths.cumsum(0) - lengths), lengths)
        cols = self.ids[first + torch.arange(len(rows))]
        local_ids, local = torch.unique(cols, return_inverse=True)
        multi_hot = torch.zeros(len(idx), max(len(local_ids), 1))
        multi_hot[rows, local] = 1.0
        return _iou_from_multi_hot(multi_hot, multi_hot)

    def weights(self, indices: Tensor | Sequence[int], has_text: Tensor | None = None,
                device: torch.device | str | None = None) -> Tensor:
        """W [B, B] for a batch (eq. 14), on ``device``."""
        return weights_from_iou(self.iou(indices, has_text)).to(device or "cpu")
