"""Pre-generate GEA's intermediate images for a dataset split into the generation cache (resumable).

    python -m tipr.generate --dataset CUHK-PEDES --data_root data/ --generator stabilityai/sd-turbo --cache gen/
    python -m tipr.generate --dataset synthpedes --data_root /tmp/synth --generator assets/generator --cache gen/

Images already in the cache are skipped, and each batch is written as soon as it is done, so an interrupted
run resumes where it stopped when started again with the same arguments.
"""

from __future__ import annotations

import argparse
from typing import Sequence

import tipr  # noqa: F401  (repairs torchvision before anything imports it)

from tipr.generation.cache import GenerationCache

SPLIT_CHOICES = ("train", "val", "test", "all")


def split_captions(dataset, split: str) -> list[str]:
    """The unique captions of one split of a `PersonDataset` (or of all of them), in first-seen order."""
    if split not in SPLIT_CHOICES:
        raise ValueError(f"unknown split {split!r}; pick one of {', '.join(SPLIT_CHOICES)}")
    parts = {"train": [r.caption for r in dataset.train], "val": list(dataset.val.captions),
             "test": list(dataset.test.captions)}
    names = ["train", "val", "test"] if split == "all" else [split]
    if split == "all" and dataset.val_is_test:
        names.remove("val")
    return list(dict.fromkeys(c for name in names for c in parts[name]))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tipr.generate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="cuhk-pedes, icfg-pedes, rstpreid or synthpedes")
    p.add_argument("--data_root", required=True, help="the dataset folder, or the folder that contains it")
    p.add_argument("--generator", required=True,
                   help="a diffusers pipeline: a Hub id (e.g. stabilityai/sd-turbo) or a local folder")
    p.add_argument("--cache", required=True, help="folder of the generation cache (created if missing)")
    p.add_argument("--split", default="train", choices=SPLIT_CHOICES, help="which captions to generate for")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the generator's own)")
    p.add_argument("--guidance_scale", type=float, default=None,
                   help="classifier-free guidance (default: the generator's own; 0 for turbo models)")
    p.add_argument("--batch_size", type=int, default=8, help="captions per pipeline call")
    p.add_argument("--seed", type=int, default=0, help="base seed; each caption's seed derives from it")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--num_threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--limit", type=int, default=None, help="only the first N captions (a quick look)")
    p.add_argument("--skip_missing_images", action="store_true",
                   help="drop annotation records whose image file is absent instead of failing")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None):
    args = parse_args(argv)
    if args.num_threads:
        import torch

        torch.set_num_threads(args.num_threads)
    from tipr.data import load_dataset
    from tipr.generation.pipeline import load_generator

    dataset = load_dataset(args.dataset, args.data_root, skip_missing_images=args.skip_missing_images)
    captions = split_captions(dataset, args.split)[:args.limit]
    generator = load_generator(args.generator, device=args.device, guidance_scale=args.guidance_scale)
    cache = GenerationCache(args.cache)
    stale = cache.remove_stale_temporaries()
    if stale:
        print(f"removed {len(stale)} unfinished image file(s) left in {cache.root} by an interrupted run", flush=True)
    print(f"{len(captions)} captions from {dataset.name} {args.split}; {generator}; cache {cache.root}", flush=True)
    stats = generator.fill_cache(captions, cache, seed_base=args.seed, steps=args.steps,
                                 batch_size=args.batch_size, progress=not args.no_progress)
    print(f"generated {stats.generated}, skipped {stats.skipped} (cached); "
          f"{stats.seconds_per_image:.3f} s per image ({stats.seconds:.1f} s)", flush=True)
    return stats


if __name__ == "__main__":
    main()
