"""Torch datasets over loaded records: train pairs with missing modalities, and evaluation image/caption lists."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from tipr.data.images import read_image
from tipr.data.partition import Modality, Partition
from tipr.data.records import TrainRecord

Transform = Callable[[Image.Image], torch.Tensor]
Tokenize = Callable[[list[str]], torch.Tensor]  # list of captions -> LongTensor [B, L]


def tokenize_one(tokenize: Tokenize, caption: str) -> torch.Tensor:
    """Token ids [L] of one caption."""
    ids = tokenize([caption])
    if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.shape[0] != 1:
        raise TypeError(f"tokenize must map a list of B captions to a LongTensor [B, L], e.g. "
                        f"open_clip.get_tokenizer(name); got {type(ids).__name__} "
                        f"{tuple(getattr(ids, 'shape', ()))} for one caption")
    return ids[0].long()


class TrainPairs(Dataset):
    """Train pairs under an incomplete-modality partition.

    Each item is ``{"index", "image", "text", "has_image", "has_text"}``, plus ``"pid"`` when
    ``supervised=True``. A missing image is a zero tensor (the file is not opened), a missing text zero ids.
    The unsupervised view keeps no person ids at all, not even as an attribute.
    """

    def __init__(self, records: Sequence[TrainRecord], *, transform: Transform, tokenize: Tokenize,
                 partition: Partition | None = None, supervised: bool = False):
        records = list(records)
        if partition is not None:
            partition.check(len(records), source="the partition given to TrainPairs")
            self.modes = partition.modes
        else:
            self.modes = np.full(len(records), Modality.COMPLETE, dtype=np.int8)
        self.image_paths = [r.image_path for r in records]
        self.captions = [r.caption for r in records]
        self.transform = transform
        self.tokenize = tokenize
        self.supervised = supervised
        if supervised:
            self.pids = [r.pid for r in records]
        self._blank_image: torch.Tensor | None = None
        self._blank_text: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, index: int) -> dict:
        mode = self.modes[index]
        has_image, has_text = mode != Modality.IMAGE_MISSING, mode != Modality.TEXT_MISSING
        item = {
            "index": int(index),
            "image": self.transform(read_image(self.image_paths[index])) if has_image else self.blank_image(),
            "text": tokenize_one(self.tokenize, self.captions[index]) if has_text else self.blank_text(),
            "has_image": torch.tensor(bool(has_image)),
            "has_text": torch.tensor(bool(has_text)),
        }
        if self.supervised:
            item["pid"] = self.pids[index]
        return item

    def blank_image(self) -> torch.Tensor:
        """Zeros shaped like a transformed image (the transform must give one fixed size, as batching needs)."""
        if self._blank_image is None:
            self._blank_image = torch.zeros_like(self.transform(Image.new("RGB", (128, 384))))
        return self._blank_image.clone()

    def blank_text(self) -> torch.Tensor:
        if self._blank_text is None:
            self._blank_text = torch.zeros_like(tokenize_one(self.tokenize, ""))
        return self._blank_text.clone()


class ImageList(Dataset):
    """Transformed images of a list of paths (an evaluation gallery, a user's folder)."""

    def __init__(self, paths: Sequence[str | os.PathLike], transform: Transform):
        self.paths = list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(read_image(self.paths[index]))


class CaptionList(Dataset):
    """Token ids [L] of a list of captions (evaluation queries)."""

    def __init__(self, captions: Sequence[str], tokenize: Tokenize):
        self.captions = list(captions)
        self.tokenize = tokenize

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, index: int) -> torch.Tensor:
        return tokenize_one(self.tokenize, self.captions[index])
