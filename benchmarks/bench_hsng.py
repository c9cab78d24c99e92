"""Seconds for HSNG neighbour tables over every missing sample at CUHK-PEDES train size, faiss vs dense.

Random L2-normalised features: 68,108 texts over 34,054 images (two captions each), d = 512, medium
setting (35% of pairs image-missing, 35% text-missing), through FeatureBank's precompute (both directions).
faiss runs at --scale; the dense torch path runs at --dense-scale and, for the ratio, faiss again there.
"""

import argparse
import time

import torch

from tipr.data.partition import partition_pairs
from tipr.ecca.feature_bank import FeatureBank


def make_bank(scale: float, dim: int, use_faiss: bool, seed: int = 0) -> FeatureBank:
    num_images, num_pairs = round(34054 * scale), round(68108 * scale)
    g = torch.Generator().manual_seed(seed)
    images, texts = torch.randn(num_images, dim, generator=g), torch.randn(num_pairs, dim, generator=g)
    bank = FeatureBank(torch.arange(num_pairs) * num_images // num_pairs,
                       partition_pairs(num_pairs, "medium", seed=seed).modes, use_faiss=use_faiss)
    bank.refresh(lambda x: x, lambda x: x, [{"index": torch.arange(num_images), "image": images}],
                 [{"index": torch.arange(num_pairs), "text": texts}], num_images=num_images, num_texts=num_pairs)
    return bank


def run(bank: FeatureBank, k: int, k_prime: int) -> tuple[float, str]:
    start = time.perf_counter()
    for modality, mode in (("image", 1), ("text", 2)):
        bank.neighbours_for((bank.modes == mode).nonzero()[:1, 0], modality, k=k, k_prime=k_prime)
    seconds = time.perf_counter() - start
    counts = [int((bank.modes == m).sum()) for m in (1, 2)]
    return seconds, (f"{counts[0]:,} texts w/o image + {counts[1]:,} images w/o text; bank "
                     f"{int(bank.image_available.sum()):,} images / {int(bank.text_available.sum()):,} texts")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of CUHK-PEDES size for faiss")
    parser.add_argument("--dense-scale", type=float, default=0.1, help="fraction for the dense comparison")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--k-prime", type=int, default=4)
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    seconds, what = run(make_bank(args.scale, args.dim, True), args.k, args.k_prime)
    print(f"faiss scale {args.scale:g}: {seconds:7.2f} s  ({what})")
    dense, what = run(make_bank(args.dense_scale, args.dim, False, seed=1), args.k, args.k_prime)
    fast, _ = run(make_bank(args.dense_scale, args.dim, True, seed=1), args.k, args.k_prime)
    print(f"dense scale {args.dense_scale:g}: {dense:7.2f} s  ({what})")
    print(f"faiss scale {args.dense_scale:g}: {fast:7.2f} s  -> dense / faiss = {dense / fast:.2f}x")


if __name__ == "__main__":
    main()
