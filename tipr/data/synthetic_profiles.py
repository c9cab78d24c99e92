"""Real-shaped SynthPEDES: the published statistics and file formats of CUHK-PEDES, ICFG-PEDES and RSTPReid.

A profile says how a dataset is shaped (identities per split, images per person, captions per image, caption
length in words) and how its release writes it (annotation file, record fields, person id numbering, image
folder layout and file type). ``plan`` draws every person's shape from one seed, so rendering in any number of
processes gives the same dataset. Sources of each figure: docs/data.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Person:
    """One identity's plan: its json id, split, and per image the caption count and target caption lengths."""

    index: int  # 0-based position in the dataset, also the render seed key
    json_id: int
    split: str
    words: tuple[tuple[int, ...], ...]  # per image, per caption: the caption's target length in words

    @property
    def images(self) -> int:
        return len(self.words)


@dataclass(frozen=True)
class DatasetProfile:
    """How one public dataset is shaped and written."""

    name: str
    folder: str
    annotation_file: str
    path_field: str
    first_id: int  # json id of the first person
    identities: dict[str, int]  # the release's identities per split (their shares are matched)
    images_mean: dict[str, float]  # images per person, per split
    images_spread: float  # 0: every person has round(mean) images; else the negative binomial's 1/dispersion
    images_min: int
    captions_per_image: int
    words_mean: float
    words_sd: float
    words_min: int
    image_path: Callable[[Person, int], str]  # (person, image index) -> path under imgs/
    fields: tuple[str, ...]  # the record fields, in the release's order
    extra_caption_rate: float = 0.0  # share of images with one caption more than usual
    forced: tuple[str, ...] = ()  # rare shapes of the release made to appear once at any scale

    def split_sizes(self, identities: int) -> dict[str, int]:
        """Identities per split in the release's proportions; every evaluation split the release has gets at
        least two (one person alone makes retrieval trivial) and train at least one."""
        total = sum(self.identities.values())
        held = {s: max(2, round(identities * n / total)) if n else 0 for s, n in self.identities.items()
                if s != "train"}
        sizes = {"train": identities - sum(held.values()), **held}
        if sizes["train"] < 1:
            need = 1 + 2 * sum(1 for n in held.values() if n)
            raise ValueError(f"the {self.name} profile needs at least {need} identities (two per evaluation "
                             f"split, one for train), got {identities}")
        return sizes

    def plan(self, identities: int, seed: int) -> list[Person]:
        """Every person's split, image count, caption counts and caption lengths, drawn from ``seed``."""
        sizes = self.split_sizes(identities)
        rng = np.random.default_rng([seed, 7])
        people = []
        for split in SPLITS:
            for _ in range(sizes[split]):
                n = self._images(rng, split)
                captions = [self.captions_per_image] * n
                captions = [c + int(rng.random() < self.extra_caption_rate) for c in captions]
                words = tuple(tuple(self._words(rng) for _ in range(c)) for c in captions)
                index = len(people)
                people.append(Person(index=index, json_id=self.first_id + index, split=split, words=words))
        return self._force_rare_shapes(people, rng)

    def _images(self, rng: np.random.Generator, split: str) -> int:
        mean = self.images_mean[split]
        if not self.images_spread:
            return int(round(mean))
        extra = mean - self.images_min  # images_min + a negative binomial with this mean
        r = 1 / self.images_spread
        n = self.images_min + int(rng.negative_binomial(r, r / (r + extra)))
        return min(n, int(4 * mean))

    def _words(self, rng: np.random.Generator) -> int:
        return max(self.words_min, int(round(rng.normal(self.words_mean, self.words_sd))))

    def _force_rare_shapes(self, people: list[Person], rng: np.random.Generator) -> list[Person]:
        """One test image with ten captions (the release's test_query/p2703_s3526.jpg) on the last test person,
        and a person with a single image: the first test person, or the last train one when test has one."""
        test = [i for i, p in enumerate(people) if p.split == "test"]
        train = [i for i, p in enumerate(people) if p.split == "train"]
        for shape in self.forced:
            if shape == "ten captions":
                i = test[-1]
                words = (tuple(self._words(rng) for _ in range(10)),) + people[i].words[1:]
            else:  # "one image"
                i = test[0] if len(test) > 1 else train[-1]
                words = people[i].words[:1]
            people[i] = Person(index=people[i].index, json_id=people[i].json_id, split=people[i].split, words=words)
        return people

    def record(self, person: Person, image: int, captions: list[str], tokens: list[list[str]]) -> dict[str, Any]:
        """One annotation record, with the release's fields only."""
        values = {"split": person.split, "captions": captions, self.path_field: self.image_path(person, image),
                  "processed_tokens": tokens, "id": person.json_id}
        return {name: values[name] for name in self.fields}


def _cuhk_path(p: Person, k: int) -> str:
    # CUHK-PEDES gathers five re-id sets, each with its own folder, naming and file type
    source = p.index % 5
    if source == 0:
        return f"CUHK01/{p.json_id:04d}{k:03d}.png"
    if source == 1:
        return f"CUHK03/{p.json_id}_{k + 1:03d}.png"
    if source == 2:
        return f"Market/{p.json_id:04d}_c{k % 6 + 1}s1_{k:06d}_00.jpg"
    if source == 3:
        return f"cam_{'ab'[k % 2]}/{p.json_id:03d}_{k}.bmp"
    return f"{'test' if p.split == 'test' else 'train'}_query/p{p.json_id}_s{k}.jpg"


def _icfg_path(p: Person, k: int) -> str:
    # MSMT17 naming inside ICFG-PEDES: <split>/<pid>/<pid>_<camera>_<k>_<session>_<frame>_<crop>.jpg
    folder = "test" if p.split == "test" else "train"
    return f"{folder}/{p.json_id:04d}/{p.json_id:04d}_{k % 15:03d}_{k:02d}_0303morning_{k * 37:04d}_0.jpg"


def _rstp_path(p: Person, k: int) -> str:
    return f"{p.json_id:04d}_c{k * 3 % 15 + 1}_{k:04d}.jpg"


PROFILES: dict[str, DatasetProfile] = {
    "cuhk-pedes": DatasetProfile(
        name="cuhk-pedes", folder="CUHK-PEDES", annotation_file="reid_raw.json", path_field="file_path",
        first_id=1, identities={"train": 11003, "val": 1000, "test": 1000},
        images_mean={"train": 34054 / 11003, "val": 3078 / 1000, "test": 3074 / 1000}, images_spread=0.5,
        images_min=2, captions_per_image=2, words_mean=23.5, words_sd=6.0, words_min=8,
        image_path=_cuhk_path, fields=("split", "captions", "file_path", "processed_tokens", "id"),
        extra_caption_rate=9 / 40206, forced=("one image", "ten captions")),
    "icfg-pedes": DatasetProfile(
        name="icfg-pedes", folder="ICFG-PEDES", annotation_file="ICFG-PEDES.json", path_field="file_path",
        first_id=0, identities={"train": 3102, "val": 0, "test": 1000},
        images_mean={"train": 34674 / 3102, "test": 19848 / 1000}, images_spread=0.5, images_min=1,
        captions_per_image=1, words_mean=37.2, words_sd=11.0, words_min=12,
        image_path=_icfg_path, fields=("id", "file_path", "captions", "processed_tokens", "split")),
    "rstpreid": DatasetProfile(
        name="rstpreid", folder="RSTPReid", annotation_file="data_captions.json", path_field="img_path",
        first_id=0, identities={"train": 3701, "val": 200, "test": 200},
        images_mean={"train": 5, "val": 5, "test": 5}, images_spread=0.0, images_min=5,
        captions_per_image=2, words_mean=26.0, words_sd=3.0, words_min=23,
        image_path=_rstp_path, fields=("id", "img_path", "captions", "split")),
}


def get_profile(name: str) -> DatasetProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known profiles: {', '.join(PROFILES)}") from None
