"""Plain records of a person-retrieval dataset, and the errors raised while reading one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class AnnotationError(ValueError):
    """An annotation file is malformed: bad JSON, a missing field, an unknown split value, bad ids."""


class MissingImagesError(FileNotFoundError):
    """Images listed in an annotation file are not on disk; ``paths`` holds every missing one."""

    def __init__(self, message: str, paths: list[str]):
        super().__init__(message)
        self.paths = paths


@dataclass(frozen=True)
class TrainRecord:
    """One training pair: a caption and the image it describes.

    ``pid`` follows the dataset's convention (contiguous from 0 on the train split), ``image_id`` indexes
    ``PersonDataset.train_image_paths``, ``attributes`` is the record's ``"attributes"`` field when the
    annotation has one (SynthPEDES writes it) and None otherwise.
    """

    pid: int
    image_id: int
    image_path: str
    caption: str
    attributes: Any = None


@dataclass
class EvalSplit:
    """A whole-gallery text-to-image evaluation split: every caption queries every image.

    ``caption_images[j]`` is the index in ``image_paths`` of the image caption j was written for (empty when
    the split was built without that link)."""

    image_paths: list[str] = field(default_factory=list)
    image_pids: list[int] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    caption_pids: list[int] = field(default_factory=list)
    caption_images: list[int] = field(default_factory=list)

    @property
    def num_images(self) -> int:
        return len(self.image_paths)

    @property
    def num_captions(self) -> int:
        return len(self.captions)


@dataclass
class PersonDataset:
    """A loaded dataset. ``val_is_test`` is True where the annotation has no val split (ICFG-PEDES):
    ``val`` is then the test split itself, which is what IRRA validates on."""

    name: str
    root: str
    train: list[TrainRecord]
    val: EvalSplit
    test: EvalSplit
    train_image_paths: list[str]
    val_is_test: bool = False

    @property
    def num_train_pids(self) -> int:
        return len({r.pid for r in self.train})

    def all_captions(self) -> list[str]:
        """Every caption of the dataset: train, val (unless it is the test split) and test."""
        val = [] if self.val_is_test else self.val.captions
        return [r.caption for r in self.train] + val + self.test.captions

    def summary(self) -> str:
        """One line per split: identities, images, captions."""
        rows = [f"{self.name} ({self.root})",
                f"  train: {self.num_train_pids} ids, {len(self.train_image_paths)} images, "
                f"{len(self.train)} captions"]
        for split_name, split in (("val", self.val), ("test", self.test)):
            note = " (= test)" if split_name == "val" and self.val_is_test else ""
            rows.append(f"  {split_name}: {len(set(split.image_pids))} ids, {split.num_images} images, "
                        f"{split.num_captions} captions{note}")
        return "\n".join(rows)
