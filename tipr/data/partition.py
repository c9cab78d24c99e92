"""Incomplete-modality partitions of the train pairs (ECCA's easy / medium / hard settings) and their manifests.

Every train pair gets one mode: COMPLETE (image and text), IMAGE_MISSING (text only) or TEXT_MISSING
(image only). Counts are exact (largest-remainder rounding of ratio * num_pairs) and the assignment is a
permutation drawn from ``numpy.random.default_rng(seed)``, so a (setting, seed, num_pairs) triple always
gives the same partition; a manifest file pins it for reuse across runs and machines.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from collections.abc import Sequence

import numpy as np


class Modality(IntEnum):
    COMPLETE = 0
    IMAGE_MISSING = 1  # text only
    TEXT_MISSING = 2  # image only


# (complete, image_missing, text_missing) fractions of the train pairs
SETTINGS: dict[str, tuple[float, float, float]] = {
    "full": (1.0, 0.0, 0.0),
    "easy": (0.5, 0.25, 0.25),
    "medium": (0.3, 0.35, 0.35),
    "hard": (0.1, 0.45, 0.45),
}
_FORMAT = "tipr-partition/1"


@dataclass(frozen=True, eq=False)
class Partition:
    setting: str
    ratios: tuple[float, float, float]
    seed: int
    modes: np.ndarray  # int8 [num_pairs], values of Modality

    @property
    def num_pairs(self) -> int:
        return len(self.modes)

    def counts(self) -> dict[Modality, int]:
        return {m: int((self.modes == m).sum()) for m in Modality}

    def indices(self, mode: Modality) -> np.ndarray:
        """Indices of the pairs in ``mode``, ascending."""
        return np.flatnonzero(self.modes == mode)

    def check(self, num_pairs: int, source: str = "this partition") -> None:
        """Raise if the partition was made for a different number of train pairs."""
        if num_pairs != self.num_pairs:
            raise ValueError(f"{source} covers {self.num_pairs} train pairs but the dataset has {num_pairs}; "
                             f"it was made for another dataset or version. Make a new one with "
                             f"partition_pairs({num_pairs}, {self.setting!r}, seed={self.seed}).")

    def save(self, path: str | os.PathLike) -> None:
        """Write the JSON manifest: setting, ratios, seed, num_pairs, counts and one mode per pair."""
        manifest = {"format": _FORMAT, "setting": self.setting, "ratios": list(self.ratios), "seed": self.seed,
                    "num_pairs": self.num_pairs, "counts": {m.name: c for m, c in self.counts().items()},
                    "modes": self.modes.tolist()}
        Path(path).write_text(json.dumps(manifest, separators=(",", ":")) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike, num_pairs: int | None = None) -> Partition:
        """Read a manifest written by ``save``; with ``num_pairs``, check it matches the dataset."""
        try:
            manifest = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"partition manifest {path} is not valid JSON: {err.msg} at line {err.lineno}, "
                             f"column {err.colno}. Re-create it with Partition.save.") from err
        missing = [k for k in ("setting", "ratios", "seed", "num_pairs", "modes")
                   if not isinstance(manifest, dict) or k not in manifest]
        if missing:
            raise ValueError(f"partition manifest {path} lacks {', '.join(missing)}; re-create it with "
                             f"Partition.save.")
        modes = np.asarray(manifest["modes"])
        valid = modes.ndim == 1 and (not modes.size or (modes.dtype.kind in "iu" and np.isin(modes, [0, 1, 2]).all()))
        if not valid:
            raise ValueError(f"partition manifest {path}: 'modes' must be a list of 0 (complete), 1 (image "
                             f"missing) or 2 (text missing).")
        if len(modes) != manifest["num_pairs"]:
            raise ValueError(f"partition manifest {path} says num_pairs={manifest['num_pairs']} but lists "
                             f"{len(modes)} modes; the file is corrupt, re-create it.")
        partition = cls(setting=str(manifest["setting"]), ratios=_check_ratios(manifest["ratios"]),
                        seed=int(manifest["seed"]), modes=modes.astype(np.int8))
        if num_pairs is not None:
            partition.check(num_pairs, source=f"partition manifest {path}")
        return partition


def partition_pairs(num_pairs: int, setting: str | tuple[float, float, float] = "medium", seed: int = 0,
                    *, groups: Sequence[int] | np.ndarray | None = None) -> Partition:
    """Assign each of ``num_pairs`` train pairs a ``Modality`` for a named setting or a ratio triple.

    With ``groups`` (one id per pair, e.g. ``TrainRecord.image_id``) the ratios apply to groups and every
    pair of a group gets the group's mode: a missing image is then missing from all its pairs, so no sibling
    caption of the same image can hand it back to the neighbour search.
    """
    if isinstance(setting, str):
        key = setting.lower()
        if key not in SETTINGS:
            raise ValueError(f"unknown partition setting {setting!r}; use one of {', '.join(SETTINGS)} or a "
                             f"(complete, image_missing, text_missing) ratio tuple.")
        name, ratios = key, SETTINGS[key]
    else:
        name, ratios = "custom", _check_ratios(setting)
    if isinstance(num_pairs, bool) or not isinstance(num_pairs, (int, np.integer)) or num_pairs < 0:
        raise ValueError(f"num_pairs must be a non-negative integer, got {num_pairs!r}")

    if groups is None:
        return Partition(setting=name, ratios=ratios, seed=int(seed), modes=_draw_modes(ratios, int(num_pairs), seed))
    group_of = np.asarray(groups).reshape(-1)
    if len(group_of) != num_pairs:
        raise ValueError(f"groups has {len(group_of)} entries for {num_pairs} pairs; pass one group id per pair")
    unique, inverse = np.unique(group_of, return_inverse=True)
    modes = _draw_modes(ratios, len(unique), seed)[inverse]
    return Partition(setting=name, ratios=ratios, seed=int(seed), modes=modes)


def _draw_modes(ratios: tuple[float, float, float], n: int, seed: int) -> np.ndarray:
    order = np.random.default_rng(seed).permutation(n)
    modes = np.empty(n, dtype=np.int8)
    start = 0
    for mode, count in zip(Modality, _exact_counts(ratios, n)):
        modes[order[start:start + count]] = mode
        start += count
    return modes


def _check_ratios(ratios) -> tuple[float, float, float]:
    try:
        values = tuple(float(r) for r in ratios)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
        raise ValueError(f"partition ratios must be three numbers in [0, 1] (complete, image_missing, "
                         f"text_missing), got {ratios!r}")
    if abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(f"partition ratios {values} sum to {sum(values):g}, not 1; give the fractions of "
                         f"complete, image-missing and text-missing pairs, e.g. (0.3, 0.35, 0.35).")
    return values  # type: ignore[return-value]


def _exact_counts(ratios: tuple[float, ...], n: int) -> list[int]:
    """Largest-remainder rounding: counts sum to n exactly, each within 1 of ratio * n."""
    total = sum(ratios)
    raw = [r / total * n for r in ratios]
    counts = [math.floor(x + 1e-9) for x in raw]
    by_remainder = sorted(range(len(raw)), key=lambda i: counts[i] - raw[i])  # largest remainder first
    for i in by_remainder[:n - sum(counts)]:
        counts[i] += 1
    return counts
