"""How often ECCA's completion neighbours are the right person, or look like it: HSNG against plain neighbours.

    python benchmarks/neighbour_precision.py --model outputs/ablations/run-XXXX --data_root DIR --setting medium

Encodes the train split with a model, builds the feature bank of the partition, and prints, for every sample
missing a modality, the fraction of its k' neighbours that share its identity (identities are read here for
this diagnostic only; training never sees them), with the chance level of picking an available sample at random.
On SynthPEDES it also prints how alike the neighbours' people look (the share of tipr.attribute_oracle.LOOKS they
share with the sample's person), beside 20 available samples drawn at random for each, and whether a score that
training can compute without identities tells the better completions apart: how alike the HSNG neighbours look in
the quarter of samples where the score is highest and in the quarter where it is lowest (the anchor's cosine to its
FMC completion; how alike the k' neighbours are to each other).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader

from tipr.attribute_oracle import agreement
from tipr.data import CaptionList, ImageList, Modality, build_transform, load_dataset, partition_pairs
from tipr.ecca import FeatureBank, fmc_complete
from tipr.models.tipr_model import load_model


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a tipr model folder")
    p.add_argument("--dataset", default="cuhk-pedes")
    p.add_argument("--data_root", required=True)
    p.add_argument("--setting", default="medium")
    p.add_argument("--seed", type=int, default=0, help="partition seed")
    p.add_argument("--k", type=int, default=6)
    p.add_argument("--k_prime", type=int, default=4)
    p.add_argument("--fmc_temperature", type=float, default=0.05)
    args = p.parse_args(argv)

    model = load_model(args.model)
    data = load_dataset(args.dataset, args.data_root)
    records = data.train
    partition = partition_pairs(len(records), args.setting, seed=args.seed, groups=[r.image_id for r in records])
    bank = FeatureBank([r.image_id for r in records], partition.modes)
    transform = build_transform(tuple(model.backbone.config.image_size), train=False)
    images = [{"index": i, "image": x} for i, x in enumerate(ImageList(data.train_image_paths, transform))]
    texts = [{"index": i, "text": t} for i, t in enumerate(CaptionList([r.caption for r in records], model.tokenize))]
    with torch.no_grad():
        bank.refresh(model.encode_images, model.encode_texts, DataLoader(images, batch_size=128),
                     DataLoader(texts, batch_size=128), num_images=len(data.train_image_paths),
                     num_texts=len(records))

    pair_pid = torch.tensor([r.pid for r in records])
    image_pid = torch.zeros(len(data.train_image_paths), dtype=torch.long)
    image_pid[torch.tensor([r.image_id for r in records])] = pair_pid
    looks = [None] * len(data.train_image_paths)
    for r in records:
        looks[r.image_id] = r.attributes
    pair_image = torch.tensor([r.image_id for r in records])
    with_looks = all(a is not None for a in looks)
    print(f"{args.setting}: {dict((m.name, c) for m, c in partition.counts().items())}")
    print("| missing | neighbours | same identity | chance |" + (" looks alike | chance |" if with_looks else ""))
    print("|---|---|---|---|" + ("---|---|" if with_looks else ""))
    quarters = []
    for missing, mode, pool_pid, available in (
            ("image", Modality.IMAGE_MISSING, image_pid, bank.image_available),
            ("text", Modality.TEXT_MISSING, pair_pid, bank.text_available)):
        queries = torch.from_numpy(partition.indices(mode))
        own = pair_pid[queries]
        pool = pool_pid[available]
        chance = float((pool[None, :] == own[:, None]).float().mean())
        # the image each query's person is seen in, and the image behind each pool row
        own_image = pair_image[queries]
        row_image = torch.arange(len(looks)) if missing == "image" else pair_image
        random_rows = torch.as_tensor(available).nonzero()[:, 0][torch.randint(int(available.sum()), (len(queries), 20),
                                                                 generator=torch.Generator().manual_seed(0))]
        for method in ("plain", "hsng"):
            rows = bank.neighbours_for(queries, missing, k=args.k, k_prime=args.k_prime, method=method)
            hit = float((pool_pid[rows] == own[:, None]).float().mean())
            line = f"| {missing} | {method} | {100 * hit:.1f}% | {100 * chance:.2f}% |"
            if with_looks:
                alike, stranger = (_alike(looks, own_image, row_image[r]) for r in (rows, random_rows))
                line += f" {100 * alike.mean():.1f}% | {100 * stranger.mean():.1f}% |"
                if method == "hsng":
                    anchors = bank.features("text" if missing == "image" else "image",
                                            queries if missing == "image" else own_image)
                    for name, score in _reliability(anchors, bank.features(missing, rows), args.fmc_temperature):
                        quarters.append((missing, name, _quarters(score, alike)))
            print(line)
    if quarters:
        print("\n| missing | score (HSNG neighbours) | looks alike, top quarter | bottom quarter |\n|---|---|---|---|")
        for missing, name, (top, bottom) in quarters:
            print(f"| {missing} | {name} | {100 * top:.1f}% | {100 * bottom:.1f}% |")


def _alike(looks: list, own: torch.Tensor, others: torch.Tensor) -> np.ndarray:
    """Per query, the mean share of LOOKS that its person shares with its `others` [Q, n] (image ids)."""
    return np.array([np.mean([agreement(looks[int(a)], looks[int(b)]) for b in row]) for a, row in zip(own, others)])


def _reliability(anchors: torch.Tensor, neighbours: torch.Tensor, temperature: float
                 ) -> Iterator[tuple[str, torch.Tensor]]:
    """Scores of each completion that need no identities: (name, [Q] tensor)."""
    completed, _ = fmc_complete(anchors, neighbours, temperature=temperature)
    n = torch.nn.functional.normalize(neighbours, dim=-1)
    k = n.shape[1]
    pairwise = (n @ n.transpose(1, 2)).sum((1, 2)) - k
    yield "anchor-completion cosine", torch.cosine_similarity(anchors, completed, dim=-1)
    yield "neighbours' mutual cosine", pairwise / (k * (k - 1))


def _quarters(score: torch.Tensor, values: np.ndarray) -> tuple[float, float]:
    """Mean of `values` over the quarter of queries with the highest `score`, and over the quarter with the lowest."""
    order = torch.argsort(score, descending=True).numpy()
    q = max(len(order) // 4, 1)
    return float(values[order[:q]].mean()), float(values[order[-q:]].mean())


if __name__ == "__main__":
    main()
