"""What the trainer reads: the partition of the train pairs, generated images where the method needs them, and
the views of the train set that ECCA's feature bank encodes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from tipr.data import ImageList, Modality, Partition, PersonDataset, TrainPairs, build_transform, partition_pairs
from tipr.data.datasets import Tokenize
from tipr.generation.generated import GeneratedImages, WithGenerated, prepare_generated
from tipr.objectives import Objective
from tipr.training.loaders import Indexed, PairTexts, SeededItems


def make_partition(dataset: PersonDataset, *, setting: str, seed: int, by: str = "image",
                   file: str | os.PathLike | None = None) -> Partition:
    """The partition saved in `file`, or one drawn for `setting` (per image: its captions share its mode)."""
    num_pairs = len(dataset.train)
    if file:
        return Partition.load(file, num_pairs)
    groups = [r.image_id for r in dataset.train] if by == "image" else None
    return partition_pairs(num_pairs, setting, seed=seed, groups=groups)


def generation_captions(dataset: PersonDataset, partition: Partition, *,
                        uses_incomplete_pairs: bool) -> dict[str, list[str | None]]:
    """Captions to generate an image for, per split; None where a train pair needs none.

    A text-missing pair has no caption to generate from; an image-missing pair needs its image only where the
    objective completes incomplete pairs (ECCA+GEA's extra FMC node).
    """
    unused = {Modality.TEXT_MISSING} | (set() if uses_incomplete_pairs else {Modality.IMAGE_MISSING})
    train = [None if m in unused else r.caption for r, m in zip(dataset.train, partition.modes)]
    return {"train": train, "val": list(dataset.val.captions), "test": list(dataset.test.captions)}


@dataclass
class TrainData:
    """The datasets of one training run: train pairs (seeded), the bank's views, and val/test generated images."""

    train: SeededItems
    bank_loaders: tuple[DataLoader, DataLoader]  # every train image by image id, every caption by pair index
    generated: dict[str, GeneratedImages | None]


def build_train_data(dataset: PersonDataset, partition: Partition, objective: Objective, tokenizer: Tokenize, *,
                     image_size: tuple[int, int], supervised: bool, seed: int, eval_batch_size: int,
                     num_workers: int = 0, generation: dict[str, Any] | None = None) -> TrainData:
    """Everything `objective` reads from `dataset`; `generation` (keyword arguments of `prepare_generated`) is
    needed when the objective reads generated images."""
    eval_tf = build_transform(image_size, train=False)
    pairs: Dataset = TrainPairs(dataset.train, transform=build_transform(image_size, train=True), tokenize=tokenizer,
                                partition=partition, supervised=supervised)
    generated: dict[str, GeneratedImages | None] = {"val": None, "test": None}
    if objective.requires_generated:
        captions = generation_captions(dataset, partition, uses_incomplete_pairs=objective.uses_incomplete_pairs)
        keys = iter(prepare_generated([c for split in captions.values() for c in split], **(generation or {})))
        blank = torch.zeros(3, *image_size)
        generated = {name: GeneratedImages([next(keys) for _ in split], generation["cache_dir"], eval_tf, blank)
                     for name, split in captions.items()}
        pairs = WithGenerated(pairs, generated.pop("train"))
    if not objective.uses_incomplete_pairs:
        # clip, gea and ECCA without FMC can use complete pairs only: train on those, at the full batch size
        pairs = Subset(pairs, partition.indices(Modality.COMPLETE).tolist())
    bank_views = (Indexed(ImageList(dataset.train_image_paths, eval_tf), "image"),
                  PairTexts([r.caption for r in dataset.train], partition.modes, tokenizer))
    bank_loaders = tuple(DataLoader(v, batch_size=eval_batch_size, num_workers=num_workers) for v in bank_views)
    return TrainData(SeededItems(pairs, seed), bank_loaders, generated)
