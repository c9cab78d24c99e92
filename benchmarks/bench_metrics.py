"""Seconds for rank_metrics at CUHK-PEDES test size (6,156 captions x 3,074 images, 1 to 5 images a person)."""

import argparse
import time

import numpy as np

from tipr.metrics import rank_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=6156)
    parser.add_argument("--gallery", type=int, default=3074)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    sim = rng.normal(size=(args.queries, args.gallery)).astype(np.float32)
    # identities with 1 to 5 images, so chunks of queries differ in their largest number of true matches
    gallery_pids = np.repeat(np.arange(args.gallery), rng.integers(1, 6, args.gallery))[: args.gallery]
    query_pids = rng.choice(gallery_pids, args.queries)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        rank_metrics(sim, query_pids, gallery_pids)
        times.append(time.perf_counter() - start)
    print(f"rank_metrics {args.queries} x {args.gallery}: best {min(times):.3f} s of {args.repeats}")


if __name__ == "__main__":
    main()
