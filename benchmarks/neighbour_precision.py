"""How often ECCA's completion neighbours are the right person: HSNG against plain nearest neighbours.

    python benchmarks/neighbour_precision.py --model outputs/ablations/run-XXXX --data_root DIR --setting medium

Encodes the train split with a model, builds the feature bank of the partition, and prints, for every sample
missing a modality, the fraction of its k' neighbours that share its identity (identities are read here for
this diagnostic only; training never sees them), with the chance level of picking an available sample at random.
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.data import DataLoader

from tipr.data import CaptionList, ImageList, Modality, build_transform, load_dataset, partition_pairs
from tipr.ecca import FeatureBank
from tipr.models.tipr_model import load_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a tipr model folder")
    p.add_argument("--dataset", default="cuhk-pedes")
    p.add_argument("--data_root", required=True)
    p.add_argument("--setting", default="medium")
    p.add_argument("--seed", type=int, default=0, help="partition seed")
    p.add_argument("--k", type=int, default=6)
    p.add_argument("--k_prime", type=int, default=4)
    args = p.parse_args()

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
    print(f"{args.setting}: {dict((m.name, c) for m, c in partition.counts().items())}")
    print("| missing | neighbours | same identity | chance |")
    print("|---|---|---|---|")
    for missing, mode, pool_pid, available in (
            ("image", Modality.IMAGE_MISSING, image_pid, bank.image_available),
            ("text", Modality.TEXT_MISSING, pair_pid, bank.text_available)):
        queries = torch.from_numpy(partition.indices(mode))
        own = pair_pid[queries]
        pool = pool_pid[available]
        chance = float((pool[None, :] == own[:, None]).float().mean())
        for method in ("plain", "hsng"):
            rows = bank.neighbours_for(queries, missing, k=args.k, k_prime=args.k_prime, method=method)
            hit = float((pool_pid[rows] == own[:, None]).float().mean())
            print(f"| {missing} | {method} | {100 * hit:.1f}% | {100 * chance:.2f}% |")


if __name__ == "__main__":
    main()
