"""Evaluate a tipr model: every caption of a split queries the whole image gallery (R1/R5/R10, mAP, mINP).

    python -m tipr.evaluate --model outputs/ecca-cuhk-pedes-full --dataset cuhk-pedes --data_root data/
    python -m tipr.evaluate --model user/tipr-gea --dataset rstpreid --data_root data/ --rerank --json

GEA models encode each query with its generated image (--generator, --generation_cache; default:
assets/generator if present); --rerank re-orders each query's top candidates with GIF's fusion score.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence

import tipr  # noqa: F401  (repairs torchvision before anything imports it)

import torch
from torch.utils.data import DataLoader, Dataset

from tipr.data.datasets import CaptionList, ImageList
from tipr.data.records import EvalSplit
from tipr.metrics import format_table, rank_metrics


class _Queries(Dataset):
    def __init__(self, captions: CaptionList, generated: Sequence | None):
        self.captions, self.generated = captions, generated

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, index: int) -> dict:
        item = {"index": index, "text": self.captions[index]}
        if self.generated is not None:
            image = self.generated[index]
            image, present = image if isinstance(image, tuple) else (image, True)
            item["generated"], item["has_generated"] = image, torch.tensor(bool(present))
        return item


class _Gallery(Dataset):
    def __init__(self, images: ImageList):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        return {"index": index, "image": self.images[index]}


def _loader(dataset: Dataset, batch_size: int, num_workers: int, accelerator):
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    if accelerator is None:
        return loader
    from accelerate.data_loader import prepare_data_loader

    # sharded over the ranks; gather_for_metrics drops the padding of the last batch
    return prepare_data_loader(loader, accelerator.device, num_processes=accelerator.num_processes,
                               process_index=accelerator.process_index, put_on_device=True)


def _collect(parts: list[tuple[torch.Tensor, ...]], size: int) -> list[torch.Tensor]:
    """Rows placed by their gathered index (each index exactly once)."""
    index = torch.cat([p[0] for p in parts]).long()
    if len(index) != size or not torch.equal(index.sort().values, torch.arange(size)):
        raise RuntimeError(f"evaluation gathered {len(index)} rows for {size} items; the shards did not cover "
                           f"each item exactly once")
    order = torch.empty_like(index)
    order[index] = torch.arange(size)
    return [torch.cat([p[k] for p in parts])[order] for k in range(1, len(parts[0]))]


@torch.no_grad()
def encode_split(model, split: EvalSplit, *, batch_size: int = 64, device: str | torch.device = "cpu",
                 generated: Sequence | None = None, rerank_top_k: int = 0, accelerator=None,
                 num_workers: int = 0) -> torch.Tensor:
    """Similarity [num_captions, num_images]; with `rerank_top_k`, each query's top K re-ordered by GIF first."""
    device = torch.device(device) if accelerator is None else accelerator.device
    gather = (lambda t: t) if accelerator is None else accelerator.gather_for_metrics
    autocast = accelerator.autocast if accelerator is not None else contextlib.nullcontext
    gif = model.gif if rerank_top_k > 0 else None
    if rerank_top_k > 0 and gif is None:
        raise ValueError(f"re-ranking needs a model with GIF (method gea or ecca+gea, use_gif on); this one is "
                         f"{model.method.value!r}" + ("" if model.gea_config is None else " with use_gif off"))
    transform = model.image_transform(train=False)
    was_training = model.training
    model.eval()
    try:
        parts = []
        for batch in _loader(_Gallery(ImageList(split.image_paths, transform)), batch_size, num_workers, accelerator):
            with autocast():
                feats, raw = model.image_features(batch["image"].to(device))
            out = [batch["index"].to(device), torch.nn.functional.normalize(feats.float(), dim=-1)]
            if gif is not None:
                out.append(raw.tokens.half())  # the gallery's tokens, kept for GIF (half the memory)
            parts.append(tuple(gather(t).cpu() for t in out))
        gallery, *tokens = _collect(parts, split.num_images)
        gallery_dev = gallery.to(device)
        bank = tokens[0] if tokens else None

        queries = _Queries(CaptionList(split.captions, model.backbone.tokenizer), generated)
        parts = []
        for batch in _loader(queries, batch_size, num_workers, accelerator):
            with autocast():
                ids = batch["text"].to(device)
                gen = has_gen = None
                if "generated" in batch and model.uses_generated_images:
                    gen = model.generated_features(batch["generated"].to(device))
                    has_gen = batch["has_generated"].to(device)
                feats, raw = model.text_features(ids, gen, has_gen)
            sim = torch.nn.functional.normalize(feats.float(), dim=-1) @ gallery_dev.t()  # fp32 ranking
            if gif is not None:
                with autocast():
                    sim = _rerank(model, gif, sim, raw, gen, has_gen, bank, rerank_top_k)
            parts.append((gather(batch["index"].to(device)).cpu(), gather(sim.float()).cpu()))
        (similarity,) = _collect(parts, split.num_captions)
    finally:
        model.train(was_training)
    return similarity


def _rerank(model, gif, sim, raw, gen, has_gen, bank, top_k):
    from tipr.gea.gif import FusionQuery, rerank_top_k

    gen_tokens = gen_mask = None
    if gen is not None:
        gen_tokens = gen.tokens
        gen_mask = gen.mask & has_gen.bool()[:, None]
    query = FusionQuery(raw.tokens, raw.mask, gen_tokens, gen_mask)
    return rerank_top_k(gif, query, sim, lambda i: bank[i.cpu()].to(raw.tokens.dtype), top_k=top_k,
                        weight=model.gea_config.rerank_weight)


def evaluate(model, split: EvalSplit, *, batch_size: int = 64, device: str | torch.device = "cpu",
             generated: Sequence | None = None, rerank_top_k: int = 0, accelerator=None,
             num_workers: int = 0) -> dict[str, float]:
    """R1, R5, R10, mAP and mINP (percent) of `model` on `split`.

    `generated`: item i is caption i's generated image [3,H,W] (or an (image, present) pair), for GEA models.
    `rerank_top_k` > 0 re-ranks each query's top K with GIF. With `accelerator`, encoding is sharded over
    the ranks and every rank returns the same metrics.
    """
    if split.num_images == 0 or split.num_captions == 0:
        raise ValueError(f"the split has {split.num_images} images and {split.num_captions} captions; both must "
                         f"be non-empty")
    if generated is not None and len(generated) != split.num_captions:
        raise ValueError(f"generated has {len(generated)} images for {split.num_captions} captions")
    similarity = encode_split(model, split, batch_size=batch_size, device=device, generated=generated,
                              rerank_top_k=rerank_top_k, accelerator=accelerator, num_workers=num_workers)
    return rank_metrics(similarity, torch.tensor(split.caption_pids), torch.tensor(split.image_pids))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tipr.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a model folder saved by train/run.py, or a Hub repo id")
    p.add_argument("--dataset", required=True, help="cuhk-pedes, icfg-pedes, rstpreid or synthpedes")
    p.add_argument("--data_root", required=True, help="the dataset folder, or the folder that contains it")
    p.add_argument("--split", choices=("test", "val"), default="test", help="which split to evaluate")
    p.add_argument("--batch_size", type=int, default=64, help="images or captions per forward pass")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--num_workers", type=int, default=0, help="data-loading worker processes")
    p.add_argument("--rerank", action="store_true", help="GEA: re-rank the top candidates with GIF's fusion score")
    p.add_argument("--rerank_top_k", type=int, default=None, help="candidates re-ranked (default: the model's)")
    p.add_argument("--rerank_weight", type=float, default=None,
                   help="final score = cosine + weight * fusion score (default: the model's; pick it on --split val)")
    p.add_argument("--generator", default=None,
                   help="GEA: text-to-image pipeline for the queries' generated images (default: assets/generator)")
    p.add_argument("--generation_cache", default=None,
                   help="GEA: folder of generated images (default: .cache/tipr-generated)")
    p.add_argument("--generation_steps", type=int, default=None,
                   help="denoising steps (default: what the model was trained with, else the generator's)")
    p.add_argument("--generation_seed", type=int, default=0, help="base seed of the per-caption seeds")
    p.add_argument("--skip_missing_images", action="store_true", help="drop records whose image file is absent")
    p.add_argument("--json", action="store_true", help="print one JSON object with the metrics instead of a table")
    args = p.parse_args(argv)
    if args.rerank_weight is not None and args.rerank_weight < 0:
        p.error(f"--rerank_weight {args.rerank_weight}: must be >= 0 (0 keeps the two-tower order)")
    return args


def generated_for(model, captions: Sequence[str], *, generator: str | None, cache_dir: str, steps: int | None = None,
                  seed: int = 0, device: str | torch.device = "cpu", accelerator=None, progress: bool = True):
    """Generated images of `captions` for a GEA model (None for other models, or when no generator is found)."""
    if not model.uses_generated_images:
        return None
    from tipr.generation.generated import GeneratedImages, default_generator, prepare_generated

    generator = generator or default_generator()
    if generator is None:
        print("warning: this model reads generated images but no --generator was given and assets/generator "
              "is absent; queries are encoded without them", file=sys.stderr)
        return None
    keys = prepare_generated(captions, generator=generator, cache_dir=cache_dir, steps=steps, seed=seed,
                             device=device, accelerator=accelerator, progress=progress)
    transform = model.image_transform(train=False)
    blank = torch.zeros(3, *model.backbone.config.image_size)
    return GeneratedImages(keys, cache_dir, transform, blank)


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    from tipr.data import load_dataset
    from tipr.data.text_context import report_long_captions
    from tipr.gea.config import GEAConfig
    from tipr.models.tipr_model import load_model

    # with --json, stdout carries the JSON object only (libraries print progress there)
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = load_model(args.model, device=device)
        dataset = load_dataset(args.dataset, args.data_root, skip_missing_images=args.skip_missing_images)
        split = getattr(dataset, args.split)
        report_long_captions(model.backbone.tokenizer, split.captions, f"{dataset.name} {args.split}")
        trained_steps = model.gea_config.generation_steps if model.gea_config else 0
        generated = generated_for(model, split.captions, generator=args.generator,
                                  cache_dir=args.generation_cache or ".cache/tipr-generated",
                                  steps=args.generation_steps or trained_steps or None, seed=args.generation_seed,
                                  device=device, progress=not args.json)
        top_k = 0
        if args.rerank_weight is not None and model.gea_config is not None:
            model.gea_config.rerank_weight = args.rerank_weight
        if args.rerank:
            top_k = args.rerank_top_k or (model.gea_config or GEAConfig()).rerank_top_k
        metrics = evaluate(model, split, batch_size=args.batch_size, device=device, generated=generated,
                           rerank_top_k=top_k, num_workers=args.num_workers)
    if args.json:
        print(json.dumps(metrics))
    else:
        name = f"{dataset.name} {args.split}" + (f" (GIF re-rank top {top_k})" if top_k else "")
        print(format_table({name: metrics}))
    return metrics


if __name__ == "__main__":
    main()
