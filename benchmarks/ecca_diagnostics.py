"""Collapse diagnostics of trained models on a split: do EPGA's codes and FMC's completions still discriminate?

    python benchmarks/ecca_diagnostics.py --data_root DIR --model outputs/ablations/run-A outputs/ablations/run-B

For each model, on the test split: R1 and mAP; the mean cosine between a caption and an image of another
person (near 1: the embedding collapsed into a cone); FMC's largest / smallest completion weight over each
caption's k' nearest images, at the model's affinity temperature (1: completion is a plain mean); and for
ECCA models, EPGA's mean prediction and Sinkhorn-code entropy over the K unified prototypes (log K: uniform)
with the mean per-row spread of the prototype scores. Identities are read for the metrics only.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from tipr.data import CaptionList, ImageList, load_dataset
from tipr.ecca.diagnostics import completion_weight_ratio, prototype_code_stats, random_pair_cosine
from tipr.metrics import rank_metrics
from tipr.models.tipr_model import load_model


@torch.no_grad()
def diagnose(model_dir: str, split, *, k_prime: int = 4) -> dict[str, float | str]:
    """The row of one model: metrics and collapse measurements on `split`."""
    model = load_model(model_dir).eval()
    images = torch.cat([model.encode_images(x) for x in DataLoader(
        ImageList(split.image_paths, model.image_transform(train=False)), batch_size=128)])
    texts = torch.cat([model.encode_texts(t) for t in DataLoader(
        CaptionList(split.captions, model.tokenize), batch_size=128)])
    text_pids, image_pids = torch.tensor(split.caption_pids), torch.tensor(split.image_pids)
    metrics = rank_metrics(torch.nn.functional.normalize(texts, dim=-1)
                           @ torch.nn.functional.normalize(images, dim=-1).t(), text_pids, image_pids)
    c = model.ecca_config
    row: dict[str, float | str] = {"R1": metrics["R1"], "mAP": metrics["mAP"],
                                   "random-pair cosine": random_pair_cosine(texts, images, text_pids, image_pids),
                                   "FMC max/min weight": completion_weight_ratio(
                                       texts, images, k_prime=c.k_prime if c else k_prime,
                                       temperature=c.fmc_temperature if c else 1.0)}
    if c is not None and c.use_epga:
        for name, feats in (("image", images), ("text", texts)):
            stats = prototype_code_stats(feats, model.prototypes(), tau=c.tau, epsilon=c.sinkhorn_epsilon,
                                         sinkhorn_iters=c.sinkhorn_iters)
            row[f"{name} code entropy"] = stats["code_entropy"]
            row[f"{name} prediction entropy"] = stats["prediction_entropy"]
            row[f"{name} score spread"] = stats["score_spread"]
        row["log K"] = stats["log_K"]
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", nargs="+", required=True, help="tipr model folders")
    p.add_argument("--name", nargs="*", default=None, help="a row name per model (default: the folder)")
    p.add_argument("--dataset", default="cuhk-pedes")
    p.add_argument("--data_root", required=True)
    p.add_argument("--split", choices=("val", "test"), default="test")
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    names = args.name or [Path(m).name for m in args.model]
    if len(names) != len(args.model):
        raise SystemExit(f"error: {len(names)} --name for {len(args.model)} --model")
    split = getattr(load_dataset(args.dataset, args.data_root), args.split)
    rows = {name: diagnose(model, split) for name, model in zip(names, args.model)}
    keys = list(dict.fromkeys(k for row in rows.values() for k in row))
    print("| model | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{row[k]:.3f}" if k in row else "–" for k in keys) + " |")


if __name__ == "__main__":
    main()
