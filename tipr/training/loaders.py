"""Dataset wrappers of the trainer: reproducible augmentation and the indexed views ECCA's bank refresh reads."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from tipr.data.datasets import Tokenize, tokenize_one
from tipr.data.partition import Modality


def item_seed(seed: int, epoch: int, index: int) -> int:
    digest = hashlib.sha256(f"{seed}:{epoch}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


class SeededItems(Dataset):
    """Item i of epoch e is drawn under its own torch seed (seed, e, i).

    Random augmentation then depends on neither the worker count nor where a resumed run starts, so a resumed
    run sees exactly the batches an uninterrupted one would. Call `set_epoch` before each epoch.
    """

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed, self.epoch = dataset, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(item_seed(self.seed, self.epoch, int(index)))
            return self.dataset[index]


class Indexed(Dataset):
    """`{"index": i, key: dataset[i]}`: the form FeatureBank.refresh reads."""

    def __init__(self, dataset: Dataset, key: str):
        self.dataset, self.key = dataset, key

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return {"index": int(index), self.key: self.dataset[index]}


class PairTexts(Dataset):
    """Token ids of every train pair for the bank refresh; a pair whose text is missing gives zeros (never read)."""

    def __init__(self, captions: Sequence[str], modes: np.ndarray | None, tokenize: Tokenize):
        self.captions = list(captions)
        self.modes = modes
        self.tokenize = tokenize
        self._blank = torch.zeros_like(tokenize_one(tokenize, ""))

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, index: int) -> dict:
        missing = self.modes is not None and self.modes[index] == Modality.TEXT_MISSING
        text = self._blank.clone() if missing else tokenize_one(self.tokenize, self.captions[index])
        return {"index": int(index), "text": text}
