"""Index a gallery: embed the images no shard holds yet (this process's share of them), then assemble the
current images' features into a faiss index folder."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tipr.index.build import build_faiss, default_factory, is_lossy
from tipr.index.embed import embed_files
from tipr.index.folder import SHARDS, Text, write_build
from tipr.index.shards import ShardCache, file_stamps, plan_shards, write_shard
from tipr.index.sources import GalleryList

log = logging.getLogger("tipr.index")

RESCORE = 10  # a compressed index re-scores its best 10 x k candidates exactly


@dataclass
class Plan:
    """The images to embed, in shards, and the stamps of every listed image (shared by all processes)."""

    stamps: np.ndarray  # [N, 2] of the listed images
    pending: list[int]  # rows of the listing no shard holds
    shards: list[tuple[str, slice]]  # over ``pending``


def plan(listing: GalleryList, out: Path, *, shard_size: int) -> Plan:
    """What is left to embed. Every process computes the same plan before any of them writes a shard."""
    stamps = file_stamps([listing.path(i) for i in range(len(listing.images))])
    cache = ShardCache.read(out / SHARDS)
    pending = cache.missing(listing.images, stamps)
    return Plan(stamps, pending, plan_shards([listing.images[i] for i in pending], shard_size))


def embed_shards(model, listing: GalleryList, out: Path, work: Plan, *, rank: int = 0, world: int = 1,
                 batch_size: int = 64, num_workers: int = 2, precision: str = "no", progress=None) -> int:
    """Embed this process's shards (every ``world``-th, from ``rank``); returns the number of images embedded."""
    done = 0
    for j, (name, span) in enumerate(work.shards):
        if j % world != rank:
            continue
        rows = work.pending[span]
        paths = [listing.path(i) for i in rows]
        feats, oks = zip(*embed_files(model, paths, batch_size=batch_size, num_workers=num_workers,
                                      precision=precision, progress=progress))
        write_shard(out / SHARDS, name, [listing.images[i] for i in rows], work.stamps[rows],
                    np.concatenate(feats), np.concatenate(oks))
        done += len(rows)
    return done


def assemble(listing: GalleryList, out: Path, stamps: np.ndarray, *, model_fingerprint: str,
             factory: str | None = None, nprobe: int | None = None, text: Callable[[], Text] | None = None,
             seed: int = 0) -> dict:
    """Build the index folder from the shards: the listed images only (unreadable ones left out), then prune
    the shards nothing refers to. Returns the manifest."""
    cache = ShardCache.read(out / SHARDS)
    features, ok = cache.gather(listing.images, stamps)
    skipped = [listing.images[i] for i in np.flatnonzero(~ok)]
    if skipped:
        log.warning("left out %d unreadable images, e.g. %s", len(skipped), ", ".join(skipped[:3]))
    keep = np.flatnonzero(ok)
    if len(keep) == 0:
        raise ValueError(f"none of the {len(listing.images)} images under {listing.root} could be read")
    features = features[keep]
    factory = factory or default_factory(len(keep), features.shape[1])
    log.info("building the %s index of %d images", factory, len(keep))
    index = build_faiss(features, factory, seed=seed)
    if nprobe is not None:
        import faiss

        ivf = faiss.try_extract_index_ivf(index)
        if ivf is None:
            raise ValueError(f"--nprobe applies to IVF indexes only, not {factory!r}")
        ivf.nprobe = nprobe
    ivf_nprobe = _nprobe(index)
    root = Path(listing.root)
    manifest = {
        "model": model_fingerprint,
        "root": str(root),
        "root_relative": os.path.relpath(root, out.resolve()),
        "kind": listing.kind,
        "dim": int(features.shape[1]),
        "factory": factory,
        "nprobe": ivf_nprobe,
        "rescore": RESCORE if is_lossy(factory) else 0,
        "skipped": skipped[:100],
        "num_skipped": len(skipped),
    }
    write_build(out, manifest=manifest, images=[listing.images[i] for i in keep],
                pids=np.asarray(listing.pids, dtype=np.int64)[keep], features=features, index=index,
                text=text() if text is not None and listing.captions else None)
    cache.prune(listing.images, stamps)
    return manifest


def _nprobe(index) -> int | None:
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    return None if ivf is None else int(ivf.nprobe)


def gallery_text(model, listing: GalleryList) -> Text:
    """Caption and phrase features of the listing's captions."""
    from tipr.index.text import caption_phrases, encode_captions

    phrases = caption_phrases(listing.captions)
    return Text(listing.captions, listing.caption_pids, encode_captions(model, listing.captions), phrases,
                encode_captions(model, phrases))
