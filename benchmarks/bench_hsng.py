"""Seconds for HSNG neighbour tables over every missing sample at CUHK-PEDES train size: exact faiss, an
approximate faiss index, and the dense torch path.

    python benchmarks/bench_hsng.py --scale 1 --dense-scale 0.1 --index IVF256,Flat:nprobe=8 HNSW32:efSearch=32

Features: 68,108 texts over 34,054 images (two captions each), d = 512, medium setting (35% of pairs
image-missing, 35% text-missing), through FeatureBank's precompute (both directions). "clustered" features
(default) put images and texts around 11,003 identity centres, as CUHK-PEDES has, so that an approximate
index meets the structure real features have; "random" ones have none. Each approximate index's tables are
compared with the exact ones: the share of its k' neighbours that the exact table has too, and (clustered
features) the share that belong to the query's own identity, which is what completion needs.
"""

import argparse
import time

import torch
import torch.nn.functional as F

from tipr.data.partition import partition_pairs
from tipr.ecca.feature_bank import FeatureBank

IDENTITIES, IMAGES, PAIRS = 11003, 34054, 68108


def identities(num_images: int, num_pairs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Identity of each image and each text of the clustered features."""
    image_pid = torch.arange(num_images) * max(1, round(IDENTITIES * num_images / IMAGES)) // num_images
    return image_pid, image_pid[torch.arange(num_pairs) * num_images // num_pairs]


def features(num_images: int, num_pairs: int, dim: int, kind: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    if kind == "random":
        return torch.randn(num_images, dim, generator=g), torch.randn(num_pairs, dim, generator=g)
    centres = F.normalize(torch.randn(max(1, round(IDENTITIES * num_images / IMAGES)), dim, generator=g), dim=-1)
    image_pid, text_pid = identities(num_images, num_pairs)
    noise = 0.8 / dim ** 0.5  # cosine to the own centre about 0.8
    return (centres[image_pid] + noise * torch.randn(num_images, dim, generator=g),
            centres[text_pid] + noise * torch.randn(num_pairs, dim, generator=g))


def make_bank(scale: float, dim: int, kind: str, seed: int = 0, **search) -> FeatureBank:
    num_images, num_pairs = round(IMAGES * scale), round(PAIRS * scale)
    images, texts = features(num_images, num_pairs, dim, kind, seed)
    bank = FeatureBank(torch.arange(num_pairs) * num_images // num_pairs,
                       partition_pairs(num_pairs, "medium", seed=seed).modes, **search)
    bank.refresh(lambda x: x, lambda x: x, [{"index": torch.arange(num_images), "image": images}],
                 [{"index": torch.arange(num_pairs), "text": texts}], num_images=num_images, num_texts=num_pairs)
    return bank


def run(bank: FeatureBank, k: int, k_prime: int) -> tuple[float, list[torch.Tensor], str]:
    """Seconds for both tables; the tables [queries, k'] (image-missing pairs, then text-missing ones)."""
    start = time.perf_counter()
    tables = []
    for modality, mode in (("image", 1), ("text", 2)):
        rows = (bank.modes == mode).nonzero()[:, 0]
        tables.append(bank.neighbours_for(rows, modality, k=k, k_prime=k_prime))
    seconds = time.perf_counter() - start
    counts = [int((bank.modes == m).sum()) for m in (1, 2)]
    return seconds, tables, (f"{counts[0]:,} texts w/o image + {counts[1]:,} images w/o text; bank "
                             f"{int(bank.image_available.sum()):,} images / {int(bank.text_available.sum()):,} texts")


def overlap(approx: list[torch.Tensor], exact: list[torch.Tensor]) -> float:
    """Share of the approximate tables' neighbours that the exact tables hold for the same sample."""
    hits = sum(int((a[:, :, None] == e[:, None, :]).any(-1).sum()) for a, e in zip(approx, exact))
    return hits / sum(a.numel() for a in approx)


def same_identity(bank: FeatureBank, tables: list[torch.Tensor]) -> float:
    """Share of the neighbours that are the query's own identity (clustered features)."""
    image_pid, text_pid = identities(len(bank.image_features), bank.num_pairs)
    image_missing, text_missing = ((bank.modes == m).nonzero()[:, 0] for m in (1, 2))
    hits = (int((image_pid[tables[0]] == text_pid[image_missing, None]).sum())
            + int((text_pid[tables[1]] == image_pid[bank.pair_image_ids[text_missing], None]).sum()))
    return hits / sum(t.numel() for t in tables)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of CUHK-PEDES size for faiss")
    parser.add_argument("--dense-scale", type=float, default=0.1, help="fraction for the dense comparison (0: skip)")
    parser.add_argument("--features", choices=("clustered", "random"), default="clustered")
    parser.add_argument("--index", nargs="*", default=["IVF256,Flat:nprobe=8"],
                        help="approximate faiss indexes to compare, each FACTORY_STRING[:SEARCH_PARAMS]")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--k-prime", type=int, default=4)
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}, {args.features} features")
    bank = make_bank(args.scale, args.dim, args.features)
    exact_s, exact, what = run(bank, args.k, args.k_prime)
    own = f", {100 * same_identity(bank, exact):.1f}% same identity" if args.features == "clustered" else ""
    print(f"faiss Flat (exact) scale {args.scale:g}: {exact_s:7.2f} s{own}  ({what})")
    for spec in args.index:
        index, _, params = spec.partition(":")
        bank = make_bank(args.scale, args.dim, args.features, faiss_index=index, faiss_params=params)
        approx_s, approx, _ = run(bank, args.k, args.k_prime)
        own = f", {100 * same_identity(bank, approx):.1f}% same identity" if args.features == "clustered" else ""
        print(f"faiss {index} ({params or 'defaults'}) scale {args.scale:g}: {approx_s:7.2f} s{own}  -> "
              f"{exact_s / approx_s:.1f}x faster, {100 * overlap(approx, exact):.1f}% of its neighbours exact")
    if args.dense_scale:
        dense, _, what = run(make_bank(args.dense_scale, args.dim, args.features, seed=1, use_faiss=False),
                             args.k, args.k_prime)
        fast, _, _ = run(make_bank(args.dense_scale, args.dim, args.features, seed=1), args.k, args.k_prime)
        print(f"dense scale {args.dense_scale:g}: {dense:7.2f} s  ({what})")
        print(f"faiss scale {args.dense_scale:g}: {fast:7.2f} s  -> dense / faiss = {dense / fast:.2f}x")


if __name__ == "__main__":
    main()
