"""python -m tipr.index --model M --gallery G --out INDEX_FOLDER [--index FACTORY]

Embeds a gallery into an index folder for the app and scripts; ``accelerate launch -m tipr.index ...`` splits
the work across processes (GPUs, machines) and writes one index. A rerun embeds only what changed.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("tipr.index")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tipr.index", description=__doc__.split("\n\n")[1])
    p.add_argument("--model", required=True, help="a tipr model folder (save_pretrained) or a Hugging Face Hub id")
    p.add_argument("--gallery", required=True,
                   help="a folder of images, a dataset root in the CUHK-PEDES, ICFG-PEDES or RSTPReid layout (its "
                        "test split) or a list file (one image path per line, optionally a tab and a person id)")
    p.add_argument("--out", required=True, help="the index folder to write or update")
    p.add_argument("--index", default=None,
                   help="a faiss factory string (Flat, IVF4096,Flat, HNSW32, IVF4096,PQ64, ...); default by gallery "
                        "size: Flat below 50k images, IVF{n},Flat below 500k, IVF{n},PQ{d/8} with exact re-scoring "
                        "above")
    p.add_argument("--nprobe", type=int, default=None, help="inverted lists visited per query (IVF indexes)")
    p.add_argument("--batch_size", type=int, default=64, help="images per forward pass")
    p.add_argument("--num_workers", type=int, default=2, help="DataLoader processes decoding images")
    p.add_argument("--shard_size", type=int, default=4096,
                   help="images per feature shard: a killed run loses at most one shard per process")
    p.add_argument("--mixed_precision", choices=("auto", "no", "fp16", "bf16"), default="auto",
                   help="autocast dtype of the image tower; auto: bf16 (or fp16) on a GPU, full precision on a CPU")
    p.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is present")
    p.add_argument("--seed", type=int, default=0, help="seed of the training sample and the k-means")
    args = p.parse_args(argv)
    for name in ("batch_size", "shard_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.num_workers < 0:
        p.error(f"--num_workers must be >= 0, got {args.num_workers}")
    if args.nprobe is not None and args.nprobe < 1:
        p.error(f"--nprobe must be >= 1, got {args.nprobe}")
    return args


def main(argv: Sequence[str] | None = None) -> dict | None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return run(args)
    except (ValueError, FileNotFoundError, ConnectionError) as err:  # bad input: the message says what to do
        raise SystemExit(f"python -m tipr.index: error: {err}") from None


def run(args: argparse.Namespace) -> dict | None:
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from tipr.generation.cache import model_fingerprint
    from tipr.index.build import new_index
    from tipr.index.embed import default_precision
    from tipr.index.indexer import assemble, embed_shards, gallery_text, plan
    from tipr.index.sources import list_gallery
    from tipr.models.tipr_model import load_model

    accelerator = Accelerator(cpu=args.cpu)
    out = Path(args.out)
    listing = list_gallery(args.gallery)
    model = load_model(args.model).to(accelerator.device)  # safetensors refuses torch device strings like "cpu:0"
    if args.index:
        new_index(args.index, model.backbone.embed_dim)  # a typo fails now, not after hours of embedding
    precision = default_precision(accelerator.device) if args.mixed_precision == "auto" else args.mixed_precision
    work = plan(listing, out, shard_size=args.shard_size)
    accelerator.wait_for_everyone()  # every process planned from the same shards before any writes one
    if accelerator.is_main_process:
        log.info("%s: %d images, %d to embed in %d shards over %d processes", listing.root, len(listing.images),
                 len(work.pending), len(work.shards), accelerator.num_processes)
    start = time.perf_counter()
    rank, world = accelerator.process_index, accelerator.num_processes
    share = sum(len(work.pending[span]) for j, (_, span) in enumerate(work.shards) if j % world == rank)
    desc = "embedding" if world == 1 else f"embedding (process 0's share, {world} processes)"
    with tqdm(total=share, desc=desc, unit="img", disable=not accelerator.is_main_process, dynamic_ncols=True) as bar:
        mine = embed_shards(model, listing, out, work, rank=rank, world=world, batch_size=args.batch_size,
                            num_workers=args.num_workers, precision=precision, progress=bar)
    log.info("process %d embedded %d images in %.1f s", rank, mine, time.perf_counter() - start)
    accelerator.wait_for_everyone()
    manifest = None
    if accelerator.is_main_process:
        manifest = assemble(listing, out, work.stamps, model_fingerprint=model_fingerprint(args.model),
                            factory=args.index, nprobe=args.nprobe, text=lambda: gallery_text(model, listing),
                            seed=args.seed)
        log.info("wrote %s: %d images, %s", out, len(listing.images) - manifest["num_skipped"], manifest["factory"])
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return manifest


if __name__ == "__main__":
    main()
