"""GEA's generated images for training and evaluation: fill the cache once, then read it from every rank."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from tipr.generation.cache import GenerationCache

logger = logging.getLogger(__name__)
ASSET_GENERATOR = Path("assets") / "generator"


def default_generator() -> str | None:
    """assets/generator in the working folder or the repository, if present."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (root / ASSET_GENERATOR / "model_index.json").is_file():
            return str(root / ASSET_GENERATOR)
    return None


def prepare_generated(captions: Sequence[str | None], *, generator: str | os.PathLike, cache_dir: str | os.PathLike,
                      steps: int | None = None, guidance_scale: float | None = None, seed: int = 0,
                      batch_size: int = 8, device: str | torch.device = "cpu", accelerator=None,
                      progress: bool = True) -> list[str | None]:
    """One cache key per caption (None stays None), every image in `cache_dir`.

    The main process loads the generator and generates only the captions not cached yet; the keys are then
    broadcast, so the other ranks never load the pipeline.
    """
    keys: list[str | None] | None = None
    if accelerator is None or accelerator.is_main_process:
        from tipr.generation import load_generator

        pipe = load_generator(generator, device=device, guidance_scale=guidance_scale)
        unique = list(dict.fromkeys(c for c in captions if c is not None))
        cache = GenerationCache(cache_dir)
        cache.remove_stale_temporaries()
        stats = pipe.fill_cache(unique, cache, seed_base=seed, steps=steps,
                                batch_size=batch_size, progress=progress)
        logger.info("generated images: %d new, %d cached (%s, cache %s)", stats.generated, stats.skipped, pipe,
                    cache_dir)
        memo = {c: pipe.cache_key(c, seed_base=seed, steps=steps) for c in unique}
        keys = [None if c is None else memo[c] for c in captions]
        del pipe
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    if accelerator is not None and accelerator.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        keys = broadcast_object_list([keys])[0]
    return keys


class GeneratedImages(Dataset):
    """Item i: (transformed generated image [3,H,W], True), or (zeros, False) where key i is None."""

    def __init__(self, keys: Sequence[str | None], cache_dir: str | os.PathLike,
                 transform: Callable, blank: torch.Tensor):
        self.keys = list(keys)
        self.cache = GenerationCache(cache_dir)
        self.transform = transform
        self.blank = blank

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, bool]:
        key = self.keys[index]
        if key is None:
            return self.blank.clone(), False
        image = self.cache.get(key)
        if image is None:
            raise FileNotFoundError(f"generated image {self.cache.path_for(key)} is missing or unreadable; it was "
                                    f"removed from the cache {self.cache.root} after it was filled. Run again to "
                                    f"regenerate it.")
        return self.transform(image), True


class WithGenerated(Dataset):
    """Adds "generated" and "has_generated" to the dict items of `dataset` (e.g. TrainPairs)."""

    def __init__(self, dataset: Dataset, generated: GeneratedImages):
        if len(dataset) != len(generated):
            raise ValueError(f"{len(generated)} generated images for {len(dataset)} items; pass one key per item")
        self.dataset, self.generated = dataset, generated

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.dataset[index])
        image, present = self.generated[index]
        item["generated"] = image
        item["has_generated"] = torch.tensor(bool(present))
        return item
